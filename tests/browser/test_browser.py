"""Smoke test in a real browser: the dashboard served by `streamlit run`, seen through Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[2] / "test-artifacts" / "overview.png"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT_MS = 30_000
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture
def page(chromium: Path, dashboard_url: str) -> Iterator[Page]:
    """A Chromium page on the dashboard's landing page."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(dashboard_url)
            yield page
        finally:
            browser.close()


def show_whole_page(page: Page) -> None:
    """Make the viewport as tall as the page: Streamlit scrolls inside ``stMain``, not the document."""
    main = page.get_by_test_id("stMain")
    height = main.evaluate("main => main.scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(height, VIEWPORT["height"])})
    fits = "main => main.scrollHeight <= main.clientHeight"
    page.wait_for_function(f"({fits})(document.querySelector('[data-testid=stMain]'))", timeout=WAIT_MS)


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
            nav = page.get_by_test_id("stSidebarNav")
            expect(nav.get_by_text("Signals")).to_be_visible(timeout=WAIT_MS)
            nav.get_by_role("link", name="Site risk heatmap").click()
            expect(page.get_by_role("heading", name="Site risk heatmap")).to_be_visible(timeout=WAIT_MS)
            expect(page.locator(".js-plotly-plot .heatmaplayer").first).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_test_id("stDataFrame")).to_be_visible(timeout=WAIT_MS)
            show_whole_page(page)
            HEATMAP_SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=HEATMAP_SCREENSHOT, full_page=True)
        finally:
            browser.close()
