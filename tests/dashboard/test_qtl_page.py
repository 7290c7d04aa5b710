"""The QTL page through AppTest: P(exceed), observed minus expected, the limits' history, and changing a
limit as a quality lead (stored with its rationale, audited, and used by the analysis at once)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from rbqm.analysis import analyze_study
from rbqm.qtl import load_qtl_definitions
from rbqm.signals import derive_signals
from rbqm.store import list_records, open_store
from rbqm.store.qtl import set_limit, stored_limits

from .conftest import sign_in
from .test_app import plotted
from .test_pages import figure

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGE = "pages/qtl.py"
SUBMIT = "FormSubmitter:qtl_limits_form-Save limits"
LIBRARY = {d.id: d for d in load_qtl_definitions()}


@pytest.fixture(scope="module")
def analysis(generated_data: Path):
    """The engine's analysis of the study with the library's limits."""
    return analyze_study(generated_data / "demo", permutations=int(os.environ["RBQM_PERMUTATIONS"]))


@pytest.fixture
def demo_dir(generated_data: Path, fresh_store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RBQM_DATA_DIR", str(generated_data))
    return generated_data


@pytest.fixture(scope="module")
def target(analysis) -> dict:
    """A fixed-limit binary QTL with events at the latest cut, and limits that put it in breach."""
    latest = analysis.qtl.filter(pl.col("cut_date") == max(analysis.cut_dates))
    candidates = latest.filter(pl.col("method").is_in(["proportion_exact", "beta_binomial"])
                               & (pl.col("estimate") > 0)).sort("estimate", descending=True)
    row = candidates.row(0, named=True)
    tolerance = round(row["estimate"] / 2, 4)
    return {"qtl_id": row["qtl_id"], "row": row, "expected": round(tolerance / 4, 4),
            "secondary": round(tolerance / 2, 4), "tolerance": tolerance}


def open_qtl(role: str) -> AppTest:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=120), role).run()
    return at.switch_page(PAGE).run()


def table_row(at: AppTest, qtl_id: str) -> dict:
    table = at.dataframe[0].value
    return table[table["qtl_id"] == qtl_id].iloc[0].to_dict()


def fill_form(at: AppTest, target: dict, rationale: str) -> AppTest:
    if at.selectbox(key="qtl").value != target["qtl_id"]:
        at.selectbox(key="qtl").set_value(target["qtl_id"]).run()
    qtl_id = target["qtl_id"]
    at.number_input(key=f"qtl_expected_{qtl_id}").set_value(target["expected"])
    at.number_input(key=f"qtl_secondary_{qtl_id}").set_value(target["secondary"])
    at.number_input(key=f"qtl_tolerance_{qtl_id}").set_value(target["tolerance"])
    at.text_area(key=f"qtl_rationale_{qtl_id}").input(rationale)
    return at.button(key=SUBMIT).click().run()


def test_probability_and_observed_minus_expected_charts(demo_dir: Path, analysis) -> None:
    at = open_qtl("admin")
    assert not at.exception, at.exception
    latest = analysis.qtl.filter(pl.col("cut_date") == max(analysis.cut_dates)).drop_nulls("probability_exceed")
    bars = figure(at, "qtl_probability").data[0]
    assert dict(zip(bars.y, plotted(bars.x), strict=True)) == pytest.approx(
        dict(zip(latest["qtl_id"], latest["probability_exceed"], strict=True)))
    assert at.dataframe[0].value["limits_from"].unique().tolist() == ["library"]
    qtl_id = at.selectbox(key="qtl").value
    oe = {t.name: plotted(t.y) for t in figure(at, "qtl_oe").data}
    rows = analysis.qtl.filter(pl.col("qtl_id") == qtl_id).sort("cut_date")
    d = LIBRARY[qtl_id]  # by hand: O - E = numerator - denominator x expected rate
    expected = [num - den * d.expected_rate / d.metric_scale
                for num, den in zip(rows["numerator"], rows["denominator"], strict=True)]
    assert oe["observed - expected"] == pytest.approx(expected)
    assert oe["tolerance limit"] == pytest.approx(
        [den * (lim - d.expected_rate) for den, lim in zip(rows["denominator"], rows["limit"], strict=True)])
    assert any("Never changed for this study" in m.value for m in at.markdown)


def test_quality_lead_changes_a_limit_and_the_statuses_follow(demo_dir: Path, fresh_store_url: str, analysis,
                                                               target: dict) -> None:
    qtl_id = target["qtl_id"]
    at = open_qtl("quality_lead")
    assert table_row(at, qtl_id)["status_shown"] != "▲▲ tolerance limit breached"
    fill_form(at, target, "protocol amendment 2 tightened the limit")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value.startswith(f"Saved the limits of {qtl_id}")

    row = table_row(at, qtl_id)
    assert (row["limit"], row["secondary_limit"], row["limits_from"]) == (
        pytest.approx(target["tolerance"]), pytest.approx(target["secondary"]), "study")
    assert row["status_shown"] == "▲▲ tolerance limit breached"
    store = open_store(fresh_store_url)
    try:
        limits = stored_limits(store, analysis.study_id)
        with store.read() as session:
            records = list_records(session, "ada", object_type="qtl_limit")
    finally:
        store.close()
    assert limits == {qtl_id: {"limit": target["tolerance"], "secondary_limit": target["secondary"],
                               "expected_rate": target["expected"], "method": target["row"]["method"]}}
    assert [(r.actor, r.reason, r.old_value) for r in records] == [
        ("quinn", "protocol amendment 2 tightened the limit", None)]
    # The page shows what `rbqm analyze --db` computes with the stored limits, for every QTL and cut.
    engine = analyze_study(demo_dir / "demo", qtl_limits=limits).qtl
    shown = at.dataframe[0].value
    latest = engine.filter(pl.col("cut_date") == max(analysis.cut_dates)).sort("qtl_id")
    assert shown["qtl_id"].tolist() == latest["qtl_id"].to_list()
    assert shown["limit"].tolist() == pytest.approx(latest["limit"].to_list(), nan_ok=True)
    assert shown["probability_exceed"].tolist() == pytest.approx(latest["probability_exceed"].to_list(),
                                                                 nan_ok=True)
    history = at.dataframe[1].value
    assert history["by"].tolist() == ["quinn"] and history["old"].tolist() == ["library's"]
    assert history["rationale"].tolist() == ["protocol amendment 2 tightened the limit"]
    assert at.number_input(key=f"qtl_tolerance_{qtl_id}").value == pytest.approx(target["tolerance"])
    assert at.text_area(key=f"qtl_rationale_{qtl_id}").value == ""  # cleared for the next change


def test_a_rationale_is_required(demo_dir: Path, fresh_store_url: str, analysis, target: dict) -> None:
    at = fill_form(open_qtl("quality_lead"), target, "   ")
    assert not at.exception
    assert len(at.error) == 1 and "rationale is required" in at.error[0].value
    store = open_store(fresh_store_url)
    try:
        assert stored_limits(store, analysis.study_id) == {}
    finally:
        store.close()


def test_invalid_limits_are_a_message_and_nothing_is_stored(demo_dir: Path, fresh_store_url: str, analysis,
                                                           target: dict) -> None:
    swapped = target | {"secondary": target["tolerance"], "tolerance": target["secondary"]}
    at = fill_form(open_qtl("admin"), swapped, "typo")
    assert len(at.error) == 1 and "limits must increase" in at.error[0].value
    store = open_store(fresh_store_url)
    try:
        assert stored_limits(store, analysis.study_id) == {}
    finally:
        store.close()


def test_a_change_made_meanwhile_is_a_conflict(demo_dir: Path, fresh_store_url: str, analysis, target: dict) -> None:
    at = open_qtl("quality_lead")
    at.selectbox(key="qtl").set_value(target["qtl_id"]).run()
    store = open_store(fresh_store_url)
    try:  # someone else, on the command line, while the form is open
        set_limit(store, "ada", analysis.study_id, target["qtl_id"], limit=0.9, secondary_limit=0.8,
                  rationale="from the CLI")
    finally:
        store.close()
    fill_form(at, target, "my change")
    assert len(at.error) == 1 and "changed by someone else" in at.error[0].value


@pytest.mark.parametrize("role", ["central_monitor", "sponsor_viewer"])
def test_other_roles_see_the_limits_read_only(demo_dir: Path, role: str) -> None:
    at = open_qtl(role)
    assert not at.exception, at.exception
    assert not at.get("form") and not at.text_area
    note = [i.value for i in at.info if "Read only" in i.value]
    assert note and "admin or quality lead" in note[0]


def test_a_limit_set_on_the_command_line_reaches_the_signals_page(demo_dir: Path, fresh_store_url: str, analysis,
                                                                  target: dict) -> None:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=120), "admin").run()
    at.switch_page("pages/signals.py").run()  # signals cached with the library's limits
    store = open_store(fresh_store_url)
    try:
        set_limit(store, "quinn", analysis.study_id, target["qtl_id"], limit=target["tolerance"],
                  secondary_limit=target["secondary"], expected_rate=target["expected"], rationale="tighter")
        limits = stored_limits(store, analysis.study_id)
    finally:
        store.close()
    at.run()
    assert not at.exception, at.exception
    signals = derive_signals(analyze_study(demo_dir / "demo", qtl_limits=limits))
    latest = signals.filter((pl.col("cut_date") == pl.col("cut_date").max()) & (pl.col("kind") == "qtl"))
    shown = at.dataframe[0].value
    assert sorted(s for s in shown["signal_id"] if s in set(latest["signal_id"])) == sorted(latest["signal_id"])
    assert any(target["qtl_id"] in s for s in latest["signal_id"])
