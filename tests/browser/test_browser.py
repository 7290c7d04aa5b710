"""Smoke test in a real browser: the dashboard served by `streamlit run`, seen through Chromium."""

from __future__ import annotations

import re
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


def sign_in(page: Page, password: str = BROWSER_PASSWORD, username: str = BROWSER_USER) -> None:
    """Fill the sign-in form as a user does (the only page until someone signs in)."""
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)
    # after a sign-out, the previous page's own "Username" field (Users and roles) lingers until the
    # rerun has finished: wait until the sign-in form's is the only one
    username_field = page.get_by_role("textbox", name="Username")
    expect(username_field).to_have_count(1, timeout=WAIT_MS)
    username_field.fill(username)
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
    metric_values = {  # by the exact label: "Sites" is also in "Red sites" and "Sites with a plan"
        label: page.get_by_test_id("stMetric").filter(
            has=page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)).get_by_test_id("stMetricValue")
        for label in ("Enrolled", "Sites")
    }
    expected = tiny_study_counts
    expect(metric_values["Enrolled"]).to_have_text(str(expected["enrolled"]), timeout=WAIT_MS)
    # Wait for the chart and the table to draw before the screenshot.
    expect(page.locator(".js-plotly-plot .bars path").first).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("stDataFrame").last).to_be_visible(timeout=WAIT_MS)  # the rows per table, last
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
            drill_into_a_site_profile(page)
        finally:
            browser.close()


PROFILE_SCREENSHOT = SCREENSHOT.parent / "site-profile.png"
DATA_SCREENSHOT = SCREENSHOT.parent / "data.png"


def drill_into_a_site_profile(page: Page) -> None:
    """From the heatmap: click the top row's first cell, land on that site's profile; back on the heatmap
    nothing opens by itself; then the Data page validates the study folder."""
    page.set_viewport_size(VIEWPORT)
    plot_area = page.locator(".js-plotly-plot .nsewdrag").first
    plot_area.scroll_into_view_if_needed()
    ticks = page.locator(".js-plotly-plot .yaxislayer-above .ytick text")
    top = min(range(ticks.count()), key=lambda i: ticks.nth(i).bounding_box()["y"])
    first_site = ticks.nth(top).text_content()  # the top row: risk rank 1
    box = plot_area.bounding_box()
    assert box is not None and first_site
    page.mouse.click(box["x"] + 12, box["y"] + 12)  # the top-left cell: the first site's first KRI
    expect(page.get_by_role("heading", name="Site profile")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("heading", name=f"Site {first_site}", exact=False)).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("stMetric").filter(has_text="Risk rank").get_by_test_id("stMetricValue")) \
        .to_have_text(re.compile(r"^1 of \d+$"), timeout=WAIT_MS)
    expect(page.get_by_role("heading", name="Subjects behind the numbers")).to_be_visible(timeout=WAIT_MS)
    listing = page.get_by_test_id("stExpander").filter(has_text="kri0001 · Adverse event rate")
    listing.get_by_text("kri0001 · Adverse event rate").click()  # open the AE listing, for the screenshot
    expect(listing.get_by_test_id("stDataFrame")).to_be_visible(timeout=WAIT_MS)
    show_whole_page(page)
    page.screenshot(path=PROFILE_SCREENSHOT, full_page=True)
    expect(page.get_by_test_id("stException")).to_have_count(0)

    page.set_viewport_size(VIEWPORT)
    nav = page.get_by_test_id("stSidebarNav")
    nav.get_by_role("link", name="Site risk heatmap").click()
    expect(page.get_by_role("heading", name="Site risk heatmap")).to_be_visible(timeout=WAIT_MS)
    page.wait_for_timeout(3000)  # a selection left over from the click would switch pages again by now
    expect(page.get_by_role("heading", name="Site risk heatmap")).to_be_visible()
    table = page.get_by_test_id("stDataFrame").first
    table.scroll_into_view_if_needed()
    box = table.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + 14, box["y"] + 35 + 35 + 17)  # the second row's selection box: rank 2
    expect(page.get_by_role("heading", name="Site profile")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("stMetric").filter(has_text="Risk rank").get_by_test_id("stMetricValue")) \
        .to_have_text(re.compile(r"^2 of \d+$"), timeout=WAIT_MS)

    nav.get_by_role("link", name="Data").click()
    expect(page.get_by_role("heading", name="Validation")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_test_id("stMetric").filter(has_text="Errors").get_by_test_id("stMetricValue")) \
        .to_have_text("0", timeout=WAIT_MS)
    expect(page.get_by_role("button", name=re.compile("Ingest the data cut of"))).to_be_visible(timeout=WAIT_MS)
    show_whole_page(page)
    page.screenshot(path=DATA_SCREENSHOT, full_page=True)
    expect(page.get_by_test_id("stException")).to_have_count(0)


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


ADMIN_SCREENSHOT = SCREENSHOT.parent / "admin.png"
QTL_EDIT_SCREENSHOT = SCREENSHOT.parent / "qtl-quality-lead.png"
QTL_READ_ONLY_SCREENSHOT = SCREENSHOT.parent / "qtl-sponsor-viewer.png"
ADMIN_USER, ADMIN_PASSWORD = "admin", "an admin passphrase"  # the admin conftest adds to each served store


def open_menu_page(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=WAIT_MS)


def add_account(page: Page, username: str, role: str, password: str) -> None:
    """Add an account on the Users and roles page, with a typed password."""
    form = page.get_by_test_id("stForm").filter(has=page.get_by_role("button", name="Add account"))
    form.get_by_label("Username", exact=True).fill(username)
    form.get_by_test_id("stSelectbox").click()
    page.get_by_role("option", name=role).click()
    form.get_by_text("Type one").click()
    form.get_by_label("Password (when typed; at least 12 characters)", exact=True).fill(password)
    form.get_by_role("button", name="Add account").click()
    expect(page.get_by_text(f"Added {username} ({role})")).to_be_visible(timeout=WAIT_MS)


def wait_until_idle(page: Page) -> None:
    """Wait until the script's run has finished (Streamlit's running indicator is gone)."""
    page.wait_for_timeout(500)
    expect(page.get_by_test_id("stStatusWidgetRunningIcon")).to_have_count(0, timeout=WAIT_MS)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT_MS)


def test_quality_lead_changes_a_limit_and_a_sponsor_viewer_may_not(chromium: Path, generated_dashboard_url: str,
                                                                 generated_data_dir: Path) -> None:
    """An admin adds a quality lead and a sponsor viewer on the Users and roles page; the quality lead changes
    a QTL's limits with a rationale and sees the new status; the sponsor viewer sees them read-only."""
    import polars as pl

    from rbqm.qtl import study_qtls

    first = study_qtls(generated_data_dir / "demo").filter(pl.col("qtl_id") == "qtl0001")
    estimate = first.filter(pl.col("cut_date") == pl.col("cut_date").max())["estimate"].item()
    tolerance = round(estimate / 2, 4)  # below the estimate: the tolerance limit is breached
    assert tolerance > 0.001
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(generated_dashboard_url)
            sign_in(page, ADMIN_PASSWORD, ADMIN_USER)
            open_menu_page(page, "Users and roles")
            add_account(page, "lead", "Quality lead", "the lead's long passphrase")
            add_account(page, "viewer", "Sponsor viewer (read only)", "the viewer's long passphrase")
            wait_until_idle(page)
            expect(page.get_by_label("Username", exact=True)).to_have_value("")  # the form was reset
            show_whole_page(page)
            page.screenshot(path=ADMIN_SCREENSHOT, full_page=True)
            page.set_viewport_size(VIEWPORT)
            sign_out(page)

            sign_in(page, "the lead's long passphrase", "lead")
            open_menu_page(page, "Quality tolerance limits")
            nav = page.get_by_test_id("stSidebarNav")
            expect(nav.get_by_role("link", name="Users and roles")).to_be_visible()  # read-only for a quality lead
            form = page.get_by_test_id("stForm")
            expect(form).to_be_visible(timeout=WAIT_MS)
            for label, value in (("Expected rate", tolerance / 4), ("Secondary limit", tolerance / 2),
                                 ("Tolerance limit", tolerance)):
                form.get_by_label(label, exact=True).fill(f"{value:.4f}")
            form.get_by_label("Rationale (required; kept in the audit trail with the old and new limits)").fill(
                "protocol amendment 2")
            form.get_by_role("button", name="Save limits").click()
            expect(page.get_by_text("Saved the limits of qtl0001")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text("The study's own limits, set by lead")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text("Rationale: protocol amendment 2")).to_be_visible()
            wait_until_idle(page)
            expect(form.get_by_role("button", name="Save limits")).to_be_visible(timeout=WAIT_MS)
            expect(form.get_by_label("Tolerance limit", exact=True)).to_have_value(f"{tolerance:.4f}")
            expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=WAIT_MS)
            show_whole_page(page)
            page.screenshot(path=QTL_EDIT_SCREENSHOT, full_page=True)
            expect(page.get_by_test_id("stException")).to_have_count(0)
            page.set_viewport_size(VIEWPORT)
            sign_out(page)

            sign_in(page, "the viewer's long passphrase", "viewer")
            open_menu_page(page, "Quality tolerance limits")
            expect(page.get_by_text("Read only. Only the admin or quality lead role")).to_be_visible(timeout=WAIT_MS)
            expect(page.get_by_text("The study's own limits, set by lead")).to_be_visible()
            expect(page.get_by_role("button", name="Save limits")).to_have_count(0)
            expect(nav.get_by_role("link", name="Users and roles")).to_have_count(0)  # not in a viewer's menu
            expect(page.get_by_test_id("stForm")).to_have_count(0)
            show_whole_page(page)
            page.screenshot(path=QTL_READ_ONLY_SCREENSHOT, full_page=True)
        finally:
            browser.close()


REPORT_SCREENSHOT = SCREENSHOT.parent / "report.png"


def test_oversight_report_exports_html_and_pdf(chromium: Path, generated_dashboard_url: str,
                                               generated_data_dir: Path, tmp_path: Path) -> None:
    """On the Oversight report page: build the report, then download the HTML and the PDF as a user does."""
    import polars as pl

    study_id = pl.read_parquet(generated_data_dir / "demo" / "dm.parquet")["STUDYID"][0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            page.goto(generated_dashboard_url)
            sign_in(page)
            open_menu_page(page, "Oversight report")
            page.get_by_role("button", name="Build the report").click()
            expect(page.get_by_text("is ready")).to_be_visible(timeout=WAIT_MS)
            files = {}
            for label, suffix in (("Download HTML", ".html"), ("Download PDF", ".pdf")):
                with page.expect_download(timeout=WAIT_MS) as started:
                    page.get_by_role("button", name=label).click()
                download = started.value
                name = download.suggested_filename
                assert re.fullmatch(rf"oversight-{re.escape(study_id)}-\d{{4}}-\d{{2}}-\d{{2}}{re.escape(suffix)}", name), name
                saved = tmp_path / name
                download.save_as(saved)
                files[suffix] = saved.read_bytes()
            assert all(len(data) > 0 for data in files.values())
            html = files[".html"].decode("utf-8")
            assert html.startswith("<!DOCTYPE html>") and study_id in html and "Trends over the data cuts" in html
            assert files[".pdf"].startswith(b"%PDF") and files[".pdf"].rstrip().endswith(b"%%EOF")
            show_whole_page(page)
            page.screenshot(path=REPORT_SCREENSHOT, full_page=True)
            expect(page.get_by_test_id("stException")).to_have_count(0)
        finally:
            browser.close()
