"""The site profile page through AppTest: header, KRIs with their trend, central monitoring, open signals,
subject listings, and arriving from the heatmap with the site chosen."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from rbqm.analysis import analyze_study
from rbqm.signals import derive_signals

from .conftest import sign_in

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
APP = DASHBOARD / "app.py"
PAGE = "pages/site_profile.py"


@pytest.fixture(scope="module")
def analysis(generated_data: Path):
    return analyze_study(generated_data / "demo", permutations=int(os.environ["RBQM_PERMUTATIONS"]))


@pytest.fixture(autouse=True)
def _fresh_streamlit_cache() -> Iterator[None]:
    """Overrides conftest's: the tests here share one generated study (its analysis is computed once); the
    others use folders of their own, which are cache keys of their own."""
    yield


@pytest.fixture
def demo_dir(generated_data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBQM_DATA_DIR", str(generated_data))
    return generated_data


def open_profile(role: str = "admin", **state) -> AppTest:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=120), role).run()
    for key, value in state.items():
        at.session_state[key] = value
    return at.switch_page(PAGE).run()


def ranked(analysis, cut: date) -> pl.DataFrame:
    return analysis.site_risk.filter(pl.col("cut_date") == cut).sort("rank", "site_id", nulls_last=True)


def table(at: AppTest, *columns: str):
    """The first dataframe shown with all of ``columns`` (plain dataframes have no key in AppTest)."""
    return next(frame.value for frame in at.dataframe if set(columns) <= set(frame.value.columns))


def listing(at: AppTest, kri: str):
    """The subject listing in the expander of KRI ``kri``."""
    return next(e for e in at.expander if e.label.split(" · ")[0].split()[-1] == kri).dataframe[0].value


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_the_top_ranked_site_by_default_with_its_header(demo_dir: Path, analysis) -> None:
    at = open_profile()
    assert not at.exception and not at.error
    cut = max(analysis.cut_dates)
    top = ranked(analysis, cut).row(0, named=True)
    assert at.selectbox(key="profile_site").value == top["site_id"]
    assert at.subheader[0].value.startswith(f"Site {top['site_id']} · {top['country']} · ")
    dm = pl.read_parquet(demo_dir / "demo" / "cuts" / cut.isoformat() / "dm.parquet").filter(
        pl.col("SITEID") == top["site_id"])
    enrolled = dm.filter(pl.col("RFSTDTC").is_not_null() & (pl.col("RFSTDTC") <= cut.isoformat())
                         & ~pl.col("ARMCD").str.to_uppercase().is_in(["SCRNFAIL", "NOTASSGN"])).height
    shown = metrics(at)
    assert shown["Subjects"] == f"{enrolled} / {dm.height}"
    assert shown["Risk rank"] == f"1 of {ranked(analysis, cut)['rank'].is_not_null().sum()}"
    assert shown["Risk score"] == f"{top['risk_score']:.1f}"
    assert shown["Red / amber flags"] == f"{top['red']} / {top['amber']}"


def test_every_kri_of_the_site_with_flag_marks_and_history(demo_dir: Path, analysis) -> None:
    at = open_profile()
    cut = max(analysis.cut_dates)
    site = at.selectbox(key="profile_site").value
    results = analysis.results.filter((pl.col("level") == "site") & (pl.col("group_id") == site)
                                      & (pl.col("cut_date") == cut)).sort("kri_id")
    kris = table(at, "kri", "scores")
    assert len(kris) == results.height
    assert [k.split(" · ")[0] for k in kris["kri"]] == results["kri_id"].to_list()
    marks = {-2: "▼▼", -1: "▼", 1: "▲", 2: "▲▲"}
    for flag, text in zip(results["flag"].to_list(), kris["flag"], strict=True):
        if flag is None:
            assert text.startswith("· ")  # · not scored, or the note: · too few to score (...)
        elif flag:
            assert text.startswith(marks[flag] + " ")
        else:
            assert text == "not flagged"
    assert all(len(scores) == len(analysis.cut_dates) for scores in kris["scores"])


def test_the_subjects_behind_each_number_add_up(demo_dir: Path, analysis) -> None:
    at = open_profile()
    cut = max(analysis.cut_dates)
    site = at.selectbox(key="profile_site").value
    results = analysis.results.filter((pl.col("level") == "site") & (pl.col("group_id") == site)
                                      & (pl.col("cut_date") == cut) & pl.col("numerator").is_not_null())
    labels = [e.label for e in at.expander if " · " in e.label and ": " in e.label]
    assert len(labels) == results.height
    ae = results.row(by_predicate=pl.col("kri_id") == "kri0001", named=True)
    assert any(f"kri0001 · Adverse event rate: {ae['numerator']:g} / {ae['denominator']:g}" in label
               for label in labels)
    subjects = listing(at, "kri0001")
    assert subjects["numerator"].sum() == ae["numerator"]
    assert subjects["denominator"].sum() == ae["denominator"]
    assert subjects["days_on_study"].fillna(0).sum() == ae["denominator"]  # AE rate: per 1,000 days on study
    planned = listing(at, "kri0016")  # enrolment versus the sites' plan
    assert planned["denominator"].isna().all()


def test_central_monitoring_and_open_signals_of_the_site(demo_dir: Path, analysis) -> None:
    at = open_profile()
    cut = max(analysis.cut_dates)
    site = at.selectbox(key="profile_site").value
    findings = analysis.csm.filter((pl.col("cut_date") == cut) & (pl.col("site_id") == site))
    assert len(table(at, "test", "q_value", "description")) == findings.height > 0
    notable = findings.filter(pl.col("q_value") < 0.05).sort("p_value")
    told = next(m.value for m in at.markdown if "(" in m.value and m.value.startswith("- **")
                and any(test in m.value for test in findings["test"].str.replace_all("_", " ").to_list()))
    expected = notable if notable.height else findings.sort("p_value").head(3)
    assert [line.split("): ", 1)[1] for line in told.splitlines()] == expected["description"].to_list()
    if notable.is_empty():
        assert any("Nothing stands out" in m.value for m in at.markdown)
    signals = derive_signals(analysis).filter((pl.col("cut_date") == cut) & (pl.col("site_id") == site)
                                              & (pl.col("state") != "resolved"))
    if signals.is_empty():
        assert any("No open signal" in i.value for i in at.info)
    else:
        told = [m.value for m in at.markdown if "open signal" in m.value]
        assert told == [f"**{signals.height} open signal{'s' if signals.height > 1 else ''}**"]
        listed = next(m.value for m in at.markdown if m.value.startswith("- **●") and "status new" in m.value)
        ids = sorted(line.split("`")[1] for line in listed.splitlines())
        assert ids == sorted(signals["signal_id"].to_list())


def test_arriving_from_the_heatmap_chooses_that_site(demo_dir: Path, analysis) -> None:
    site = ranked(analysis, max(analysis.cut_dates))["site_id"][-1]
    at = open_profile(open_site=(str(demo_dir / "demo"), site))
    assert not at.exception
    assert at.selectbox(key="profile_site").value == site
    assert at.subheader[0].value.startswith(f"Site {site} ")
    assert "open_site" not in at.session_state  # used once
    at.switch_page("pages/overview.py").run()
    at.switch_page(PAGE).run()
    assert at.selectbox(key="profile_site").value == site  # kept while moving between pages


def test_a_handoff_for_another_study_is_ignored(demo_dir: Path, analysis) -> None:
    at = open_profile(open_site=("/elsewhere/other", "1007"))
    top = ranked(analysis, max(analysis.cut_dates))["site_id"][0]
    assert at.selectbox(key="profile_site").value == top


def test_an_earlier_cut(demo_dir: Path, analysis) -> None:
    at = open_profile()
    first = min(analysis.cut_dates)
    at.selectbox(key="cut_profile").set_value(first).run()
    assert not at.exception
    assert f"Key risk indicators at {first}" in [s.value for s in at.subheader]
    assert any(f"those of the latest cut, {max(analysis.cut_dates)}" in c.value for c in at.caption)
    assert all(len(scores) == 1 for scores in table(at, "kri", "scores")["scores"])


def test_a_sponsor_viewer_sees_the_profile(demo_dir: Path) -> None:
    at = open_profile(role="sponsor_viewer")
    assert not at.exception and not at.error and at.metric


def test_a_study_with_only_dm_and_sites(study_data_dir: Path) -> None:
    at = open_profile()
    assert not at.exception, at.exception
    assert not at.error
    assert any("No central monitoring test ran" in i.value for i in at.info)


def test_empty_data_dir_says_what_to_run(empty_data_dir: Path) -> None:
    at = open_profile()
    assert not at.exception
    assert len(at.info) == 1 and "make run" in at.info[0].value


def test_the_page_run_without_app_py_asks_to_sign_in(study_data_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DASHBOARD))
    at = AppTest.from_file(str(DASHBOARD / "pages" / "site_profile.py"), default_timeout=30).run()
    assert not at.exception
    assert at.text_input(key="login_user") and not at.selectbox
