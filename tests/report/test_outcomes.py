"""The report's "Actions: status and outcomes" figures are ``rbqm.outcomes``'s: the same as the dashboard's
signals page and ``rbqm signals outcomes``, with counts known by construction.

Six signals are acted on in the store: five at the first cut, chosen by how their indicator moved to the
second cut (two whose severity fell, one whose severity rose, one red at both cuts whose strength grew by
more than the margin, one at the same severity within the margin), and one at the second cut (no later
cut yet). So, by the rule of docs/signals.md: improved 2, unchanged 1, worsened 2, too early 1; 2 of 5
assessed improved (40%) against the 83% benchmark.
"""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

import rbqm.cli  # noqa: F401  (registers the commands)
from rbqm.cli._app import app
from rbqm.outcomes import signal_outcomes, summarize_outcomes
from rbqm.report import make_report, render_html, render_pdf, restrict_to_cut
from rbqm.report.layout import Figures, Table, layout_report
from rbqm.signal_workflow import load_workflow
from rbqm.signals import derive_signals, indicator_levels
from rbqm.store import open_store
from rbqm.store import signals as store_signals
from rbqm.store.actions import action_baselines, add_action

from .conftest import make_store
from .test_render import pdf_text

MARGIN = {"kri": 1.0, "csm": 1.0, "qtl": 0.1}
"""signal_workflow.yaml's outcome margins, written out (the first test checks they are the shipped ones)."""
EXPECTED = {"improved": 2, "unchanged": 1, "worsened": 2, "too_early": 1}


def _moves(analysis) -> pl.DataFrame:
    """Each indicator flagged at the first cut with its level and strength at both cuts (finite strengths)."""
    first, second = analysis.cut_dates[:2]
    levels = indicator_levels(analysis).unique(["signal_id", "cut_date"])
    at = lambda cut: levels.filter(pl.col("cut_date") == cut).select("signal_id", "kind", "level", "strength")
    both = at(first).join(at(second).drop("kind"), on="signal_id", suffix="_2")
    return (both.filter(pl.col("level") > 0, pl.col("strength").is_finite(), pl.col("strength_2").is_finite())
            .with_columns(moved=pl.col("strength_2") - pl.col("strength"),
                          margin=pl.col("kind").replace_strict(MARGIN, return_dtype=pl.Float64))
            .sort("signal_id"))


def _choose(moves: pl.DataFrame) -> dict[str, list[str]]:
    """The signals to act on, by what their indicator did (the rule of rbqm.outcomes, applied by hand)."""
    same = pl.col("level_2") == pl.col("level")
    pick = lambda *where, n=1: moves.filter(*where)["signal_id"].head(n).to_list()
    chosen = {
        "fell": pick(pl.col("level_2") < pl.col("level"), n=2),
        "rose": pick(pl.col("level_2") > pl.col("level")),
        "grew": pick(same, pl.col("moved") >= pl.col("margin")),
        "steady": pick(same, pl.col("moved").abs() < pl.col("margin")),
    }
    taken = {s for ids in chosen.values() for s in ids}
    chosen["later"] = pick(same, ~pl.col("signal_id").is_in(list(taken)))
    assert [len(v) for v in chosen.values()] == [2, 1, 1, 1, 1], chosen  # the study has one of each
    return chosen


@pytest.fixture(scope="module")
def acted(tmp_path_factory, analysis):
    """A store whose signals were recorded at the first cut, five of them acted on then, and one more
    acted on after the second cut was recorded."""
    url = make_store(tmp_path_factory.mktemp("outcomes") / "rbqm.db")
    store = open_store(url)
    chosen = _choose(_moves(analysis))
    first = restrict_to_cut(analysis, analysis.cut_dates[0])
    store_signals.sync_signals(store, "ada", derive_signals(first))
    for what in ("fell", "rose", "grew", "steady"):
        for signal_id in chosen[what]:
            add_action(store, "ada", signal_id, action="remote_review", reason=f"test: {what}")
    store_signals.sync_signals(store, "ada", derive_signals(analysis))
    add_action(store, "ada", chosen["later"][0], action="remote_review", reason="test: acted on later")
    yield store, url, chosen
    store.close()


def test_the_margins_are_the_shipped_ones():
    assert load_workflow().outcomes.margins == MARGIN and load_workflow().outcomes.benchmark == 0.83


def test_the_report_counts_each_outcome(acted, analysis, study):
    store, _, chosen = acted
    report = make_report(analysis, study_dir=study, store=store, actor="sam")
    summary = report.outcome_summary
    assert {k: getattr(summary, k) for k in EXPECTED} == EXPECTED
    assert summary.assessed == 5 and summary.share_improved == pytest.approx(0.4) and summary.benchmark == 0.83
    outcome = dict(report.outcomes.select("signal_id", "outcome").iter_rows())
    expected = {"fell": "improved", "rose": "worsened", "grew": "worsened", "steady": "unchanged",
                "later": "too_early"}
    assert outcome == {s: expected[what] for what, ids in chosen.items() for s in ids}


def test_the_report_shows_what_the_dashboard_and_the_cli_show(acted, analysis, study):
    store, url, _ = acted
    report = make_report(analysis, study_dir=study, store=store, actor="sam")
    dashboard = signal_outcomes(analysis, action_baselines(store, "sam", study_id=analysis.study_id))
    assert report.outcomes.equals(dashboard)
    result = CliRunner().invoke(app, ["signals", "outcomes", str(study), "--json", "--db", url, "--actor", "sam"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.output)["summary"]
    assert {k: cli[k] for k in (*EXPECTED, "assessed")} == {**EXPECTED, "assessed": 5}
    assert cli["share_improved"] == pytest.approx(report.outcome_summary.share_improved)


def test_an_earlier_cut_has_no_later_cut_to_compare_with(acted, analysis, study):
    store, _, _ = acted
    first = analysis.cut_dates[0]
    report = make_report(analysis, study_dir=study, store=store, actor="sam", cut=first)
    assert set(report.outcomes["outcome"]) == {"too_early"}
    # as `rbqm signals outcomes --as-of FIRST`: every actioned signal, none assessed yet
    baselines = action_baselines(store, "sam", study_id=analysis.study_id)
    assert report.outcomes.equals(signal_outcomes(analysis, baselines, as_of=first))
    assert report.outcome_summary == summarize_outcomes(report.outcomes)
    assert report.outcome_summary.too_early == 6 and report.outcome_summary.share_improved is None


def test_the_outcomes_are_rendered(acted, analysis, study):
    store, _, chosen = acted
    report = make_report(analysis, study_dir=study, store=store, actor="sam")
    section = next(s for s in layout_report(report) if s.key == "actions")
    figures = next(b for b in section.blocks if isinstance(b, Figures) and b.items[0][0] == "Improved after action")
    assert [(label, value) for label, value, _ in figures.items] == [
        ("Improved after action", "40%"), ("Improved", "2"), ("Unchanged", "1"), ("Worsened", "2"),
        ("Too early", "1")]
    assert figures.items[0][2] == "2 of 5 assessed; benchmark 83%"
    table = next(b for b in section.blocks if isinstance(b, Table) and b.title == "Actioned signals, worsened first")
    assert [row[3].text for row in table.rows] == ["worsened"] * 2 + ["unchanged"] + ["improved"] * 2 + ["too early"]
    assert {row[0].text for row in table.rows} == {s for ids in chosen.values() for s in ids}
    html = render_html(report)
    assert '<div class="label">Improved after action</div><div class="value">40%</div>' in html
    assert "43 points below the benchmark" in html
    text = pdf_text(render_pdf(report))
    assert "IMPROVED AFTER ACTION" in text and "2 of 5 assessed; benchmark 83%" in text
    assert "43 points below the benchmark" in text


def test_without_the_store_the_report_says_outcomes_need_it(report):
    section = next(s for s in layout_report(report) if s.key == "actions")
    notes = [b.text for b in section.blocks if getattr(b, "kind", None) == "note"]
    assert any("needs the store's record of which signals were actioned" in n for n in notes)
    assert not any(isinstance(b, Figures) and b.items[0][0] == "Improved after action" for b in section.blocks)
