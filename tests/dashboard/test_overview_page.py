"""The study overview's sections over the analysis (rbqm.overview) through AppTest: enrolment against plan
by country and site, red and amber sites, QTL status and what changed since the previous cut; for every
role, on the tiny hand-made study (numbers by hand) and on a small generated study (numbers from the
engine)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import plotly.io
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from rbqm.analysis import Analysis, analyze_study
from rbqm.derive import derive_tables
from rbqm.io import scan_study
from rbqm.overview import cut_overview, enrolment_vs_plan
from rbqm.permissions import Role
from rbqm.signals import derive_signals

from .conftest import sign_in
from .study_builder import CUT
from .test_app import metrics, plotted

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
LATEST = "latest (full study)"
SECTIONS = ["Enrolment versus plan", "Enrolment by site", "Red and amber sites", "Quality tolerance limits"]


def open_overview(role: str = "admin") -> AppTest:
    return sign_in(AppTest.from_file(str(APP), default_timeout=120), role).run()  # the default page


def chart(at: AppTest, key: str):
    return plotly.io.from_json(next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key)).proto.spec)


def headings(at: AppTest) -> list[str]:
    return [s.value for s in at.subheader]


def changes(at: AppTest) -> list[str]:
    """The lines of the "what changed" list (Markdown escapes removed)."""
    block = next(m.value for m in at.markdown if m.value.startswith("- "))
    return [line.removeprefix("- ").replace("\\", "") for line in block.splitlines()]


# --- the tiny study: two sites, plans of 3 and 4, one cut ------------------------------------------------


def test_enrolment_against_plan_by_hand(study_data_dir: Path) -> None:
    at = open_overview()
    assert not at.exception and not at.error
    shown = metrics(at)
    # full study: site 101 enrolled 2 of 3 planned, site 102 3 of 4: 5 of 7
    assert (shown["Share of plan"], shown["Planned enrolment"], shown["Sites with a plan"]) == ("71%", "7", "2 of 2")
    figure = chart(at, "country_enrolment")
    bars, plan = figure.data
    assert (list(bars.x), plotted(bars.y)) == (["DEU", "FRA"], [3, 2])
    assert list(figure.layout.xaxis.ticktext) == ["DEU<br>3 of 4 planned (75%)", "FRA<br>2 of 3 planned (67%)"]
    assert (list(plan.x), plotted(plan.y), plan.marker.symbol) == (["DEU", "FRA"], [4, 3], "line-ew")
    at.selectbox(key="cut").set_value(CUT).run()
    assert metrics(at)["Share of plan"] == "43%"  # at the cut: 1 + 2 of 7
    site_plan = next(d.value for d in at.dataframe if "share_of_plan" in d.value.columns)
    assert site_plan[["site_id", "enrolled", "planned"]].values.tolist() == [["101", 1, 3], ["102", 2, 4]]


def test_a_study_without_a_plan_says_so(study_data_dir: Path) -> None:
    for sites in (study_data_dir / "demo").rglob("sites.parquet"):
        pl.read_parquet(sites).drop("PLANNEDENR").write_parquet(sites)
    at = open_overview()
    assert not at.exception and not at.error
    assert any("no planned enrolment (column PLANNEDENR)" in i.value for i in at.info)
    assert "Share of plan" not in metrics(at)
    figure = chart(at, "country_enrolment")
    assert list(figure.layout.xaxis.ticktext) == ["DEU<br>3 enrolled, no plan", "FRA<br>2 enrolled, no plan"]
    assert len(figure.data[1].x) == 0  # no plan marker
    site_plan = next(d.value for d in at.dataframe if "share_of_plan" in d.value.columns)
    assert site_plan["plan_note"].tolist() == ["no plan", "no plan"]


def test_a_single_cut_has_nothing_to_compare(study_data_dir: Path) -> None:
    at = open_overview()
    assert "What changed" in headings(at)
    assert any(f"{CUT} is the study's first data cut" in i.value and "Choose a later cut" in i.value for i in at.info)
    assert not [m for m in at.markdown if m.value.startswith("- ")]


# --- a generated study: 12 sites, 3 countries, 2 cuts -----------------------------------------------------


@pytest.fixture(scope="module")
def analysis(generated_data: Path) -> Analysis:
    return analyze_study(generated_data / "demo", permutations=int(os.environ["RBQM_PERMUTATIONS"]))


@pytest.fixture(autouse=True)
def _fresh_streamlit_cache() -> Iterator[None]:
    """Overrides conftest's: the generated study's analysis is computed once for the module (the tiny study's
    tests use folders of their own, which are cache keys of their own)."""
    yield


@pytest.fixture
def demo_dir(generated_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBQM_DATA_DIR", str(generated_data))
    return generated_data


@pytest.mark.parametrize("role", [str(role) for role in Role])
def test_every_role_reads_every_section(demo_dir: Path, analysis: Analysis, role: str) -> None:
    at = open_overview(role)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    previous = sorted(analysis.cut_dates)[-2]
    assert headings(at)[1:] == [*SECTIONS, f"What changed since {previous}", "Tables"]
    assert {"Red sites", "Amber sites", "Sites without a flag", "● within limits"} <= set(metrics(at))
    assert not at.get("form")  # nothing to change here


def test_sections_show_the_engine_at_the_latest_cut(demo_dir: Path, analysis: Analysis) -> None:
    at = open_overview()
    latest = max(analysis.cut_dates)
    expected = cut_overview(analysis, latest, signals=derive_signals(analysis))
    now, before = expected.site_counts.row(-1, named=True), expected.site_counts.row(-2, named=True)
    shown = {m.label: (m.value, m.proto.delta) for m in at.metric}
    assert shown["Red sites"] == (str(now["red_sites"]), str(now["red_sites"] - before["red_sites"]))
    assert shown["Amber sites"] == (str(now["amber_sites"]), str(now["amber_sites"] - before["amber_sites"]))
    assert shown["Sites without a flag"][0] == str(now["no_flag_sites"])
    counts = dict(expected.qtl_counts.iter_rows())
    assert shown["▲ secondary limit crossed"][0] == str(counts["secondary limit crossed"])
    assert shown["▲▲ tolerance limit breached"][0] == str(counts["tolerance limit breached"])
    assert changes(at) == expected.changes
    flags = chart(at, "site_flags")
    assert [trace.name.split(":")[0] for trace in flags.data] == ["▲▲ red", "▲ amber", "no flag"]
    assert [plotted(trace.y) for trace in flags.data] == [
        expected.site_counts[c].to_list() for c in ("red_sites", "amber_sites", "no_flag_sites")]
    assert {trace.marker.pattern.shape for trace in flags.data} == {"x", "/", ""}  # not colour alone
    outside = next(d.value for d in at.dataframe if "qtl_id" in d.value.columns)
    assert outside["qtl_id"].tolist() == expected.qtls_outside_limits["qtl_id"].to_list()
    assert all(status[0] in "▲" for status in outside["status"])


def test_country_bars_are_the_full_study_and_then_the_chosen_cut(demo_dir: Path, analysis: Analysis) -> None:
    at = open_overview()
    study = demo_dir / "demo"
    full = enrolment_vs_plan(derive_tables(scan_study(study)), by="country")
    bars, plan = chart(at, "country_enrolment").data
    assert (list(bars.x), plotted(bars.y), plotted(plan.y)) == (
        full["country"].to_list(), full["enrolled"].to_list(), full["planned"].to_list())
    first = min(analysis.cut_dates)
    at.selectbox(key="cut").set_value(first.isoformat()).run()
    assert not at.exception and not at.error
    at_cut = enrolment_vs_plan(derive_tables(scan_study(study / "cuts" / first.isoformat()), as_of=first), by="country")
    bars, _ = chart(at, "country_enrolment").data
    assert plotted(bars.y) == at_cut["enrolled"].to_list()
    assert headings(at)[-2] == "What changed"  # the first cut: nothing before it
    assert any(f"{first} is the study's first data cut" in i.value for i in at.info)
    red = cut_overview(analysis, first).site_counts.row(-1, named=True)["red_sites"]
    assert metrics(at)["Red sites"] == str(red)


def test_an_analysis_that_fails_is_an_error_and_the_rest_still_shows(
        study_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RBQM_PERMUTATIONS", "many")  # the analysis refuses it with a message
    at = open_overview()
    assert not at.exception
    assert len(at.error) == 1 and "RBQM_PERMUTATIONS must be 'auto' or a whole number" in at.error[0].value
    assert "Data page" in at.error[0].value
    assert headings(at)[-1] == "Tables" and "Red and amber sites" not in headings(at)
    assert metrics(at)["Enrolled"] == "5" and metrics(at)["Share of plan"] == "71%"
