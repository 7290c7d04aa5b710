"""Smoke test in a real browser: the dashboard served by `streamlit run`, seen through Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from .conftest import BROWSER_PASSWORD, BROWSER_USER

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "test-artifacts" / "overview.png"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT_MS = 90_000  # generous: the first visit to an analysis page computes every cut
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture
def page(chromium: Path, dashboard_url: str) -> Iterator[Page]:
    """A Chromium page on the dashboard's landing page."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(dashboard_url)
            sign_in(page)
            yield page
        finally:
            browser.close()


def sign_in(page: Page, password: str = BROWSER_PASSWORD) -> None:
    """Fill the sign-in form as a user does (the only page until someone signs in)."""
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
    page.get_by_label("Username").fill(BROWSER_USER)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def show_whole_page(page: Page) -> None:
    """Make the viewport as tall as the page, for the screenshot: Streamlit scrolls inside ``stMain``,
    not the document. Content still rendering can grow the page, so grow the viewport until it fits
    (a few rounds; the screenshot is taken either way)."""
    main = page.get_by_test_id("stMain")
    for _ in range(10):
        height = main.evaluate("main => main.scrollHeight")
        page.set_viewport_size({"width": VIEWPORT["width"], "height": max(height, VIEWPORT["height"])})
        page.wait_for_timeout(500)
        if main.evaluate("main => main.scrollHeight <= main.clientHeight"):
            return


def test_overview_renders_in_a_browser(page: Page, tiny_study_counts: dict[str, int | str]) -> None:
    expect(page.get_by_role("heading", name="Study overview")).to_be_visible(timeout=WAIT_MS)
    metric_values = {
        label: page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")
        for label in ("Enrolled", "Sites")
    }
    expected = tiny_study_counts
    expect(metric_values["Enrolled"]).to_have_text(str(expected["enrolled"]), timeout=WAIT_MS)
    # Wait for the chart and the table to draw before the screenshot.
    expect(page.locator(".js-plotly-plot .bars path").first).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=WAIT_MS)
    show_whole_page(page)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)
    expect(metric_values["Sites"]).to_have_text(str(expected["sites"]))
    expect(page.get_by_test_id("stException")).to_have_count(0)


HEATMAP_SCREENSHOT = SCREENSHOT.parent / "heatmap.png"


def test_heatmap_renders_in_a_browser(chromium: Path, generated_dashboard_url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            # Start on the landing page and follow the menu, as a user does. (A fresh server whose very
            # first request is a deep link such as /heatmap runs that page in Streamlit's legacy pages/
            # mode once, without app.py's frame; see the dashboard notes.)
            page.goto(generated_dashboard_url)
            sign_in(page)
            nav = page.get_by_test_id("stSidebarNav")
            expect(nav.get_by_text("Signals", exact=True)).to_be_visible(timeout=WAIT_MS)
            nav.get_by_role("link", name="Site risk heatmap").click()
            expect(page.get_by_role("heading", name="Site risk heatmap")).to_be_visible(timeout=WAIT_MS)
            expect(page.locator(".js-plotly-plot .heatmaplayer").first).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=WAIT_MS)
            show_whole_page(page)
            HEATMAP_SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=HEATMAP_SCREENSHOT, full_page=True)
        finally:
            browser.close()


SIGN_IN_SCREENSHOT = SCREENSHOT.parent / "sign-in.png"
SIGNALS_SCREENSHOT = SCREENSHOT.parent / "signals.png"


def test_sign_in_page_refuses_a_wrong_password(chromium: Path, dashboard_url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(dashboard_url)
            expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)  # no menu before signing in
            SIGN_IN_SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=SIGN_IN_SCREENSHOT, full_page=True)
            sign_in(page, password="not the password")
            expect(page.get_by_text("Sign-in failed")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_test_id("stMetric")).to_have_count(0)
        finally:
            browser.close()


def test_a_deep_link_signed_out_shows_only_the_sign_in_form(chromium: Path, generated_dashboard_url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(f"{generated_dashboard_url}/signals")
            expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
            page.wait_for_timeout(1000)
            expect(page.get_by_test_id("stDataFrame")).to_have_count(0)
            expect(page.get_by_role("heading", name="Signals and actions")).to_have_count(0)
        finally:
            browser.close()


def test_signals_page_renders_in_a_browser(chromium: Path, generated_dashboard_url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(generated_dashboard_url)
            sign_in(page)
            nav = page.get_by_test_id("stSidebarNav")
            nav.get_by_role("link", name="Signals and actions").click()
            expect(page.get_by_role("heading", name="Signals and actions")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_test_id("stDataFrame")).to_have_count(2, timeout=WAIT_MS)
            expect(page.get_by_role("button", name="Save")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text(f"Signed in as {BROWSER_USER}")).to_be_visible()
            show_whole_page(page)
            SIGNALS_SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=SIGNALS_SCREENSHOT, full_page=True)
            expect(page.get_by_test_id("stException")).to_have_count(0)
        finally:
            browser.close()
