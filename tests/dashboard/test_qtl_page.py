"""The QTL page through AppTest: P(exceed), observed minus expected, the limits' history, changing a limit
as a quality lead (stored with its rationale, audited, and used by the analysis at once), and the breaches:
opened from the analysis, evaluated by a central monitor, signed off by a quality lead, read only for a
sponsor viewer, and downloaded as CSV and as the study report's section."""

from __future__ import annotations

import io
import os
from pathlib import Path

import polars as pl
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from rbqm.analysis import analyze_study
from rbqm.permissions import PermissionDenied
from rbqm.qtl import breach_log_markdown, load_qtl_definitions, study_qtls
from rbqm.signals import derive_signals
from rbqm.store import list_records, open_store
from rbqm.store.qtl import (
    breach_log, effective_definitions, evaluate_breach, set_limit, stored_limits, sync_breaches,
)

from .conftest import sign_in
from .test_app import plotted
from .test_pages import figure

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGE = "pages/qtl.py"
SUBMIT = "FormSubmitter:qtl_limits_form-Save limits"
EVALUATE = "FormSubmitter:qtl_evaluate_form-Save the evaluation"
SIGN_OFF = "FormSubmitter:qtl_sign_off_form-Sign off"
BREACHED = "tolerance limit breached"
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


# --- Breaches ----------------------------------------------------------------------------------


def in_store(url: str, call):
    store = open_store(url)
    try:
        return call(store)
    finally:
        store.close()


def breach_records(url: str) -> list[tuple[str, str, str]]:
    """The audit trail of the breaches: (actor, action, reason), oldest first."""
    def read(store):
        with store.read() as session:
            return [(r.actor, r.action, r.reason) for r in list_records(session, "ada", object_type="qtl_breach")]
    return sorted(in_store(url, read), key=lambda r: ("open" not in r[1], r))  # the opening first


def breach_table(at: AppTest):
    return next(d.value for d in at.dataframe if "breach_id" in d.value.columns)


def forms(at: AppTest) -> set[str]:
    return {block.proto.form.form_id for block in at.get("form")}


@pytest.fixture
def breached(demo_dir: Path, fresh_store_url: str, analysis, target: dict) -> dict:
    """The target QTL's study limits set (by quinn, in the store) so that every cut breaches them; returns the
    engine's QTLs with those limits and the breach the page must open: the run's first cut and its evidence."""
    limits = in_store(fresh_store_url, lambda s: (
        set_limit(s, "quinn", analysis.study_id, target["qtl_id"], limit=target["tolerance"],
                  secondary_limit=target["secondary"], expected_rate=target["expected"], rationale="tighter"),
        stored_limits(s, analysis.study_id))[1])
    frame = study_qtls(demo_dir / "demo", limits=limits)
    assert frame.filter(pl.col("status") == BREACHED)["qtl_id"].unique().to_list() == [target["qtl_id"]]
    rows = frame.filter(pl.col("qtl_id") == target["qtl_id"]).sort("cut_date")
    assert rows["status"].to_list() == [BREACHED] * len(analysis.cut_dates)  # one run, from the first cut
    return {"frame": frame, "limits": limits, "evidence": rows.row(0, named=True)}


def test_a_central_monitor_opens_and_evaluates_a_breach(fresh_store_url: str, analysis, target: dict,
                                                         breached: dict) -> None:
    at = open_qtl("central_monitor")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    evidence = breached["evidence"]
    opened = [i.value for i in at.info if i.value.startswith("Opened an evaluation")]
    assert opened == [f"Opened an evaluation for 1 new breach(es): {target['qtl_id']} at {evidence['cut_date']}."]
    shown = breach_table(at)
    assert shown["qtl_id"].tolist() == [target["qtl_id"]] and shown["status_shown"].tolist() == ["open"]
    assert [d.date() for d in shown["first_cut"]] == [evidence["cut_date"]]
    assert (shown["estimate"][0], shown["lower"][0], shown["upper"][0], shown["limit"][0]) == pytest.approx(
        (evidence["estimate"], evidence["lower"], evidence["upper"], target["tolerance"]))
    assert forms(at) == {"qtl_evaluate_form"}  # neither the limits nor the sign-off
    note = next(i.value for i in at.info if "only these roles may" in i.value)
    assert "sign one off (admin or quality lead)" in note and "evaluate a breach" not in note
    breach = int(shown["breach_id"][0])
    assert breach_records(fresh_store_url) == [
        ("cleo", "qtl.breach_open", f"tolerance limit breached at cut {evidence['cut_date']}: estimate "
                                    f"{evidence['estimate']:.4g} >= limit {target['tolerance']:.4g}")]

    at.text_area(key=f"qtl_root_cause_{breach}").input("criterion 4 misread at two sites")
    at.text_area(key=f"qtl_capa_{breach}").input("protocol clarification letter; retraining")
    at.text_input(key=f"qtl_eval_reason_{breach}").input("evaluation meeting")
    at.button(key=EVALUATE).click().run()  # "systemic?" left unanswered
    assert [e.value for e in at.error] == ["Say whether the issue is systemic: it is part of the documented "
                                           "assessment."]
    assert len(breach_records(fresh_store_url)) == 1
    at.radio(key=f"qtl_systemic_{breach}").set_value(True)
    at.button(key=EVALUATE).click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value == (f"Saved the evaluation of breach #{breach} ({target['qtl_id']}): systemic. "
                                   "It awaits sign-off by a quality lead.")
    row = breach_table(at).iloc[0]
    assert (row["status_shown"], row["systemic_shown"], row["assessed_by"]) == ("evaluated", "yes", "cleo")
    assert at.text_input(key=f"qtl_eval_reason_{breach}").value == ""  # cleared for the next change
    stored = in_store(fresh_store_url, lambda s: breach_log(s, analysis.study_id)).row(0, named=True)
    assert (stored["status"], stored["systemic"], stored["root_cause"], stored["capa"], stored["assessed_by"],
            stored["version"]) == ("evaluated", True, "criterion 4 misread at two sites",
                                   "protocol clarification letter; retraining", "cleo", 2)
    assert breach_records(fresh_store_url)[1:] == [("cleo", "qtl.evaluate", "evaluation meeting")]


def test_a_quality_lead_signs_off_only_an_evaluated_breach(fresh_store_url: str, analysis, target: dict,
                                                           breached: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    downloads: dict[str, bytes] = {}
    keep = MemoryMediaFileStorage.load_and_get_id

    def spy(self, path_or_data, mimetype, kind, filename=None):  # what each download button offers
        downloads[filename] = path_or_data.encode() if isinstance(path_or_data, str) else path_or_data
        return keep(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    at = open_qtl("quality_lead")
    assert not at.exception, at.exception
    breach = int(breach_table(at)["breach_id"][0])
    assert forms(at) == {"qtl_limits_form", "qtl_evaluate_form", "qtl_sign_off_form"}
    at.text_input(key="qtl_sign_reason").input("QTL review board")
    at.button(key=SIGN_OFF).click().run()
    assert [e.value for e in at.error] == [
        f"QTL breach #{breach} is open: only an evaluated breach can be signed off (record its evaluation first: "
        "rbqm qtl evaluate, or the QTL page)"]
    assert [r[:2] for r in breach_records(fresh_store_url)] == [("quinn", "qtl.breach_open")]

    # a central monitor evaluates it meanwhile (on the command line): signing off what was not read is refused
    in_store(fresh_store_url, lambda s: evaluate_breach(
        s, "cleo", breach, systemic=False, root_cause="one site's screening log", capa="retrain site 1003",
        reason="evaluation meeting", expected_version=1))
    at.button(key=SIGN_OFF).click().run()
    assert len(at.error) == 1 and "was changed by someone else" in at.error[0].value
    assert breach_table(at)["status_shown"].tolist() == ["evaluated"]  # the page shows it now
    at.button(key=SIGN_OFF).click().run()
    assert not at.error, [e.value for e in at.error]
    assert at.success[0].value == f"Signed off breach #{breach} ({target['qtl_id']})."
    assert breach_table(at)[["status_shown", "signed_off_by"]].values.tolist() == [["signed off", "quinn"]]
    assert forms(at) == {"qtl_limits_form"}  # nothing left to evaluate or sign off
    assert any("Every breach is signed off" in c.value for c in at.caption)
    assert [r[:2] for r in breach_records(fresh_store_url)] == [
        ("quinn", "qtl.breach_open"), ("cleo", "qtl.evaluate"), ("quinn", "qtl.sign_off")]
    assert breach_records(fresh_store_url)[-1][2] == "QTL review board"

    log = in_store(fresh_store_url, lambda s: breach_log(s, analysis.study_id))
    definitions = in_store(fresh_store_url, lambda s: effective_definitions(s, analysis.study_id,
                                                                            load_qtl_definitions()))
    section = breach_log_markdown(log, definitions=definitions, study_id=analysis.study_id)
    assert "not systemic (isolated)" in section and "**Sign-off:** quinn on" in section
    assert any(m.value == section.strip() for m in at.markdown)  # the preview (Streamlit strips the last newline)
    study = analysis.study_id
    assert downloads[f"{study}-important-qtl-deviations.md"].decode() == section
    csv = pl.read_csv(io.BytesIO(downloads[f"{study}-qtl-breaches.csv"]), schema=log.schema)
    assert csv.equals(log)


def test_a_sponsor_viewer_reads_the_breaches_and_gets_no_form(fresh_store_url: str, analysis, target: dict,
                                                             breached: dict) -> None:
    at = open_qtl("sponsor_viewer")
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    evidence = breached["evidence"]
    assert [w.value for w in at.warning] == [
        f"1 breach(es) in the analysis are not in the breach log yet ({target['qtl_id']} at {evidence['cut_date']}): "
        "they are recorded when a admin or quality lead or central monitor opens this page (or with "
        "`rbqm qtl breaches STUDY_DIR --sync`)."]
    assert breach_records(fresh_store_url) == []  # a viewer's visit writes nothing

    in_store(fresh_store_url, lambda s: sync_breaches(s, "cleo", analysis.study_id, breached["frame"]))
    at.run()
    assert not at.warning
    assert breach_table(at)["status_shown"].tolist() == ["open"]
    assert not forms(at) and not at.text_area and not at.text_input and not at.radio
    note = next(i.value for i in at.info if "only these roles may" in i.value)
    assert note == ("You are signed in as Sponsor viewer (read only): only these roles may evaluate a breach (admin "
                    "or quality lead or central monitor) and sign one off (admin or quality lead); the store refuses "
                    "the change to anyone else.")
    assert len(at.get("download_button")) == 2
    breach = int(breach_table(at)["breach_id"][0])
    with pytest.raises(PermissionDenied, match="may not qtl.evaluate"):
        in_store(fresh_store_url, lambda s: evaluate_breach(s, "sam", breach, systemic=True, root_cause="x",
                                                            capa="y", reason="z"))
