"""The Signals pages (heatmap, KRI explorer, QTLs, central monitoring) through AppTest, on a small
generated study with two data cuts."""

from __future__ import annotations

import os
from pathlib import Path

import plotly.io
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from rbqm.analysis import analyze_study

from .conftest import sign_in
from .test_app import plotted

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGES = ["pages/overview.py", "pages/heatmap.py", "pages/kri_explorer.py", "pages/qtl.py", "pages/monitoring.py",
         "pages/signals.py"]
SIGNAL_PAGES = PAGES[1:]


@pytest.fixture(scope="module")
def analysis(generated_data: Path):
    """The engine's own analysis of the study, to compare the pages with."""
    return analyze_study(generated_data / "demo", permutations=int(os.environ["RBQM_PERMUTATIONS"]))


@pytest.fixture
def demo_dir(generated_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBQM_DATA_DIR", str(generated_data))
    return generated_data


def open_page(page: str, role: str = "admin") -> AppTest:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=120), role).run()
    return at.switch_page(page).run()


def figure(at: AppTest, key: str):
    chart = next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id)
    return plotly.io.from_json(chart.proto.spec)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(demo_dir: Path, page: str) -> None:
    at = open_page(page)
    assert not at.exception, at.exception
    assert not at.error
    assert at.caption and len(at.caption[0].value) > 80  # each page says what it shows


def test_heatmap_has_one_row_per_site_by_risk_rank(demo_dir: Path, analysis) -> None:
    at = open_page("pages/heatmap.py")
    cut = max(analysis.cut_dates)
    assert at.selectbox(key="cut_heatmap").value == cut
    heatmap = figure(at, "heatmap").data[0]
    ranked = analysis.site_risk.filter(pl.col("cut_date") == cut).sort("rank")["site_id"].to_list()
    assert list(heatmap.y) == ranked and len(ranked) == 12
    assert len(heatmap.z) == 12
    symbols = {text for row in heatmap.text for text in row}
    assert symbols & {"▼▼", "▼", "▲", "▲▲"}  # flags are marked, not only coloured
    table = at.dataframe[0].value
    assert list(table["site_id"]) == ranked


def test_heatmap_country_filter_keeps_that_countrys_sites(demo_dir: Path, analysis) -> None:
    at = open_page("pages/heatmap.py")
    country = sorted(analysis.site_risk["country"].unique().to_list())[0]
    at.multiselect(key="country").set_value([country]).run()
    assert not at.exception
    cut = max(analysis.cut_dates)
    expected = analysis.site_risk.filter((pl.col("cut_date") == cut) & (pl.col("country") == country))
    assert sorted(figure(at, "heatmap").data[0].y) == sorted(expected["site_id"].to_list())
    assert 0 < expected.height < 12


def test_heatmap_earlier_cut(demo_dir: Path, analysis) -> None:
    at = open_page("pages/heatmap.py")
    first = min(analysis.cut_dates)
    at.selectbox(key="cut_heatmap").set_value(first).run()
    assert not at.exception
    expected = analysis.site_risk.filter(pl.col("cut_date") == first).sort("rank")["site_id"].to_list()
    assert list(figure(at, "heatmap").data[0].y) == expected


def test_kri_explorer_funnel_has_the_bound_lines(demo_dir: Path, analysis) -> None:
    at = open_page("pages/kri_explorer.py")
    kri, level = at.selectbox(key="kri").value, at.radio(key="level").value
    assert level == "site"
    cut = max(analysis.cut_dates)
    thresholds = (analysis.bounds.filter((pl.col("kri_id") == kri) & (pl.col("level") == level)
                                         & (pl.col("cut_date") == cut))["threshold"].unique().sort().to_list())
    funnel = figure(at, "funnel")
    assert funnel.layout.xaxis.type == "log"
    lines = [t.name for t in funnel.data if t.mode == "lines"]
    assert lines == [f"bound: score {t:+g}" for t in thresholds] and thresholds
    points = sum(len(plotted(t.x)) for t in funnel.data if t.mode == "markers")
    scored = analysis.results.filter((pl.col("kri_id") == kri) & (pl.col("level") == level)
                                     & (pl.col("cut_date") == cut) & pl.col("flag").is_not_null())
    assert points == scored.height
    assert "Definition" in at.expander[0].label


def test_kri_explorer_country_level_and_trend(demo_dir: Path) -> None:
    at = open_page("pages/kri_explorer.py")
    at.radio(key="level").set_value("country").run()
    assert not at.exception
    assert len(at.selectbox(key="group").options) == 3
    trend = figure(at, "trend").data[0]
    assert len(trend.x) == 2  # one point per data cut


def test_qtl_page_lists_every_qtl(demo_dir: Path, analysis) -> None:
    at = open_page("pages/qtl.py")
    table = at.dataframe[0].value
    latest = analysis.qtl.filter(pl.col("cut_date") == max(analysis.cut_dates))
    assert sorted(table["qtl_id"]) == sorted(latest["qtl_id"].to_list())
    assert all(any(word in status for word in ("within", "crossed", "breached")) for status in table["status_shown"])
    at.selectbox(key="qtl").set_value(latest["qtl_id"][-1]).run()
    names = [t.name for t in figure(at, "qtl_trend").data]
    assert names == ["estimate", "secondary limit", "tolerance limit"]


def test_monitoring_filter_changes_the_rows(demo_dir: Path, analysis) -> None:
    at = open_page("pages/monitoring.py")
    latest = analysis.csm.filter(pl.col("cut_date") == max(analysis.cut_dates))
    rows = at.dataframe[0].value
    assert len(rows) == latest.height
    assert list(rows["p_value"]) == sorted(rows["p_value"])
    at.selectbox(key="csm_test").set_value("ae_under_reporting").run()
    filtered = at.dataframe[0].value
    assert 0 < len(filtered) < latest.height
    assert set(filtered["test"]) == {"ae_under_reporting"}


@pytest.mark.parametrize("page", PAGES)
def test_empty_data_dir_says_what_to_run_on_every_page(empty_data_dir: Path, page: str) -> None:
    at = open_page(page)
    assert not at.exception
    assert len(at.info) == 1 and "make run" in at.info[0].value
    assert not at.get("plotly_chart")


def test_study_choice_is_kept_across_pages(demo_dir: Path, tmp_path: Path) -> None:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=120)).run()
    at.selectbox(key="study").set_value(str(demo_dir / "demo")).run()
    at.switch_page("pages/qtl.py").run()
    assert at.selectbox(key="study").value == str(demo_dir / "demo")


@pytest.mark.parametrize("page", SIGNAL_PAGES)
def test_study_with_only_dm_and_sites_shows_messages_not_tracebacks(study_data_dir: Path, page: str) -> None:
    at = open_page(page)
    assert not at.exception, at.exception


@pytest.mark.parametrize("page", SIGNAL_PAGES)
def test_unreadable_study_shows_the_error_on_every_page(study_data_dir: Path, page: str) -> None:
    broken = study_data_dir / "broken"
    broken.mkdir()
    (broken / "dm.csv").write_text(
        "STUDYID,USUBJID,SITEID,COUNTRY,RFICDTC,ARMCD,AGE\nX,X-1,1,FRA,2024-01-01,A,forty\n", encoding="utf-8"
    )
    at = sign_in(AppTest.from_file(str(APP), default_timeout=120)).run()
    at.selectbox(key="study").set_value(str(broken)).run()
    at.switch_page(page).run()
    assert not at.exception
    assert len(at.error) == 1 and "forty" in at.error[0].value
    assert not at.get("plotly_chart")
