"""rbqm.actions: the actions file, suggestions naming the right subjects and pages, the visit plan."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from synthetic import AnomalySpec, SynthConfig, generate_study
from rbqm.actions import ACTION_COLUMNS, PLAN_COLUMNS, load_actions, plan_visits, suggest_actions
from rbqm.analysis import analyze_study
from rbqm.derive import derive_tables
from rbqm.errors import DefinitionError
from rbqm.io import scan_study
from rbqm.signals import derive_signals
from rbqm.study import list_cuts


@pytest.fixture(scope="module")
def late_tables(late_study, late_analysis):
    return derive_tables(scan_study(list_cuts(late_study)[-1]), as_of=late_analysis.cut_dates[-1])


@pytest.fixture(scope="module")
def late_actions(late_analysis, late_signals, late_tables):
    return suggest_actions(late_analysis, late_signals, tables=late_tables)


def test_shipped_file_loads_and_every_kind_has_a_catch_all():
    file = load_actions()
    assert {rule.kind for rule in file.rules if not rule.indicators} == {"kri", "qtl", "csm"}


@pytest.mark.parametrize("text, message", [
    ("actions: {a: A}\nrules: [{kind: kri, look_at: none, suggest: [{action: b, from: amber, why: w}]}]",
     "rules.0.suggest.0.action: unknown action 'b'"),
    ("actions: {a: A}\nrules: [{kind: kri, look_at: none, suggest: [{action: a, from: amber, why: '{site}'}]}]",
     "unknown placeholder"),
    ("actions: {a: A}\nrules: [{kind: kri, look_at: sql, suggest: [{action: a, from: amber, why: w}]}]",
     "rules.0.look_at"),
    ("actions: {a: A}\nrules: [{kind: kri, look_at: none, typo: 1, suggest: [{action: a, from: red, why: w}]}]",
     "rules.0.typo"),
])
def test_loader_names_file_and_key(tmp_path, text, message):
    path = tmp_path / "actions.yaml"
    path.write_text(text)
    with pytest.raises(DefinitionError, match=message) as caught:
        load_actions(path)
    assert str(path) in str(caught.value)


def test_contract_and_priority_order(late_actions, late_signals):
    assert late_actions.schema == pl.Schema(ACTION_COLUMNS)
    assert late_actions["priority"].is_sorted(descending=True)
    latest = late_signals.filter(pl.col("cut_date") == pl.col("cut_date").max(), pl.col("state") != "resolved")
    assert set(late_actions["signal_id"]) == set(latest["signal_id"])
    assert late_actions["why"].str.contains("{", literal=True).not_().all()


def test_late_entry_names_the_oldest_unentered_pages(late_actions, late_tables):
    rows = late_actions.filter(pl.col("signal_id") == "kri0010@1003")
    assert set(rows["action"]) == {"remote_review", "site_retraining"}  # amber: no investigator call yet
    where = rows["where_to_look"][0]
    oldest = (late_tables.with_sites("pages").filter(pl.col("SITEID") == "1003", ~pl.col("entered"))
              .sort("days_to_entry", descending=True).head(3).collect())
    for page in oldest.iter_rows(named=True):
        assert f"{page['USUBJID']} {page['FORM']} visit {int(page['VISITNUM'])} ({page['days_to_entry']} days, " \
               "not entered)" in where
    unentered = late_tables.with_sites("pages").filter(pl.col("SITEID") == "1003", ~pl.col("entered"))
    assert where.startswith(f"Oldest unentered pages ({unentered.collect().height} not entered")


def test_plan_ranks_the_late_site_first(late_actions):
    plan = plan_visits(late_actions)
    assert plan.schema == pl.Schema(PLAN_COLUMNS)
    assert plan["rank"].to_list() == list(range(1, plan.height + 1))
    assert "study" not in plan["site_id"].to_list()
    assert plan["site_id"][0] == "1003"


def test_ae_under_reporting_names_subjects_longest_on_study_without_ae(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ae") / "study"
    generate_study(SynthConfig(sites=8, subjects=480, countries=2, seed=3, months=12, anomalies=(
        AnomalySpec(type="ae_under_reporting", magnitude=0.9, sites=("1002",), start=0.1),)), folder)
    analysis = analyze_study(folder)
    signals = derive_signals(analysis)
    actions = suggest_actions(analysis, signals, study_dir=Path(folder))
    rows = actions.filter(pl.col("signal_id") == "csm:ae_under_reporting:AE@1002")
    assert "ae_reconciliation" in set(rows["action"])
    tables = derive_tables(scan_study(folder))
    expected = (tables["subjects"].filter(pl.col("SITEID") == "1002", pl.col("enrolled"))
                .join(tables["ae"].select("USUBJID").unique(), on="USUBJID", how="anti")
                .sort(["days_on_study", "USUBJID"], descending=[True, False]).head(5).collect())
    where = rows["where_to_look"][0]
    assert where.startswith("Enrolled subjects with no AE reported")
    for subject in expected.iter_rows(named=True):
        assert f"{subject['USUBJID']} ({subject['days_on_study']} days)" in where
