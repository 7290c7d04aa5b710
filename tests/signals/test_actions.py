"""rbqm.actions: the actions file, suggestions naming the right subjects and pages, the visit plan."""

from __future__ import annotations


import polars as pl
import pytest

from rbqm.actions import ACTION_COLUMNS, PLAN_COLUMNS, load_actions, plan_visits, suggest_actions
from rbqm.derive import derive_tables
from rbqm.errors import DefinitionError
from rbqm.io import scan_study
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


def test_plan_ranks_sites_by_the_sum_of_their_signals_priorities(late_actions):
    plan = plan_visits(late_actions)
    assert plan.schema == pl.Schema(PLAN_COLUMNS)
    assert plan["rank"].to_list() == list(range(1, plan.height + 1))
    assert plan["priority"].is_sorted(descending=True)
    sums = (late_actions.filter(pl.col("site_id") != "study").unique("signal_id")
            .group_by("site_id").agg(pl.col("priority").sum().round(2)))
    assert dict(plan.select("site_id", "priority").rows()) == dict(sums.rows())
    assert "1003" in plan["site_id"].head(2).to_list()  # the late site is among the first visited
