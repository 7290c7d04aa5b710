"""``rbqm analyze``: results, bounds and site risk for every data cut, and clean errors for bad input."""

from __future__ import annotations

import inspect
from datetime import date

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import rbqm.cli  # noqa: F401  (registers the commands)
from rbqm.actions import ACTION_COLUMNS
from rbqm.analysis import OUTPUT_TABLES, PERMUTATIONS, analyze_study
from rbqm.cli._app import app
from rbqm.kri.compute import RESULT_COLUMNS
from rbqm.signals import SIGNAL_COLUMNS

runner = CliRunner()


@pytest.fixture(scope="module")
def analysed(study_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze") / "out"
    result = runner.invoke(app, ["analyze", str(study_dir), "--out", str(out), "--permutations", "3"])
    return out, result


def test_analyze_writes_every_table_in_both_formats(analysed):
    out, result = analysed
    assert result.exit_code == 0, result.output
    for name in OUTPUT_TABLES:
        parquet = pl.read_parquet(out / f"{name}.parquet")
        assert parquet.height > 0
        assert pl.read_csv(out / f"{name}.csv", try_parse_dates=True).height == parquet.height
    results = pl.read_parquet(out / "results.parquet")
    assert set(RESULT_COLUMNS) <= set(results.columns)
    assert {"previous_score", "score_change", "flag_change", "flagged_cuts"} <= set(results.columns)
    assert results["cut_date"].n_unique() == 3
    risk = pl.read_parquet(out / "site_risk.parquet")
    assert {"site_id", "country", "risk_score", "rank", "red", "amber", "cut_date"} <= set(risk.columns)
    assert risk["risk_score"].drop_nulls().is_between(0, 100).all()


def test_analyze_writes_the_signals_and_their_suggested_actions(analysed, study_dir):
    out, result = analysed
    assert result.exit_code == 0, result.output
    signals = pl.read_parquet(out / "signals.parquet")
    actions = pl.read_parquet(out / "actions.parquet")
    assert list(signals.columns) == list(SIGNAL_COLUMNS) and list(actions.columns) == list(ACTION_COLUMNS)
    assert signals["cut_date"].n_unique() == 3
    latest = signals.filter(pl.col("cut_date") == signals["cut_date"].max(), pl.col("state") != "resolved")
    # every action answers an open signal of the latest cut, and every red open signal has an action
    assert set(actions["signal_id"]) <= set(latest["signal_id"])
    assert set(latest.filter(pl.col("severity") == "red")["signal_id"]) <= set(actions["signal_id"])
    assert pl.read_csv(out / "actions.csv").height == actions.height
    assert "open signals" in result.output


def test_cli_output_equals_the_engine(analysed, study_dir):
    out, _ = analysed
    engine = analyze_study(study_dir, permutations=3)
    # equal up to floating-point summation order (polars may sum a group's values in another order)
    assert_frame_equal(pl.read_parquet(out / "results.parquet"), engine.results, rel_tol=1e-9, abs_tol=1e-12)
    assert_frame_equal(pl.read_parquet(out / "site_risk.parquet"), engine.site_risk, rel_tol=1e-9, abs_tol=1e-12)


def test_reruns_on_the_same_cut_are_identical(study_dir):
    a = analyze_study(study_dir, as_of=date(2025, 5, 1))
    b = analyze_study(study_dir, as_of=date(2025, 5, 1))
    assert a.results.equals(b.results) and a.cut_dates == [date(2025, 5, 1)]


@pytest.mark.parametrize(("args", "message"), [
    (["analyze", "{missing}", "--out", "{out}"], "not a study folder"),
    (["analyze", "{study}", "--out", "{out}", "--as-of", "yesterday"], "--as-of must be an ISO 8601 date"),
    (["analyze", "{study}", "--out", "{out}", "--kri-dir", "{missing}"], "no such KRI folder"),
    (["analyze", "{study}", "--out", "{out}", "--permutations", "-1"], "--permutations must be 'auto' or a whole number"),
])
def test_bad_input_exits_2_without_traceback(args, message, study_dir, tmp_path):
    filled = [a.format(missing=tmp_path / "nope", out=tmp_path / "out", study=study_dir) for a in args]
    result = runner.invoke(app, filled)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_analyze_uses_the_study_limits_from_the_store(study_dir, tmp_path):
    """A limit set with rbqm qtl set-limit changes the qtl output of rbqm analyze --db."""
    from rbqm.analysis import study_id_of
    from rbqm.store import open_store, users
    from rbqm.store import qtl as store_qtl

    db = f"sqlite:///{tmp_path / 'rbqm.db'}"
    store = open_store(db)
    with store.write() as session:
        users.add_user(session, "root", "lead", role="admin", password="a long passphrase here")
    study_id = study_id_of(study_dir)
    store_qtl.set_limit(store, "lead", study_id, "qtl0008", limit=0.5, secondary_limit=0.4,
                        rationale="test: a very lenient limit")
    store.close()
    out = tmp_path / "out"
    result = runner.invoke(app, ["analyze", str(study_dir), "--out", str(out), "--no-csm", "--db", db])
    assert result.exit_code == 0, result.output
    qtl = pl.read_parquet(out / "qtl.parquet").filter(pl.col("qtl_id") == "qtl0008")
    assert qtl["limit"].unique().to_list() == [0.5]


def test_site_risk_carries_the_data_inconsistency_score_at_the_latest_cut(analysed):
    out, result = analysed
    assert "most inconsistent site" in result.output
    risk = pl.read_parquet(out / "site_risk.parquet")
    assert risk.schema["dis"] == pl.Float64 and risk.schema["dis_rank"] == pl.Int64
    latest = risk.filter(pl.col("cut_date") == risk["cut_date"].max())
    scored = latest.filter(pl.col("dis").is_not_null())
    assert scored.height >= 0.8 * latest.height
    assert sorted(scored["dis_rank"]) == list(range(1, scored.height + 1))
    assert (scored["dis"] >= 0).all()
    # 3 permutations: the smallest p-value is about 1 / (1 + 3 x sites), the largest dis its -log10
    assert scored["dis"].max() <= np.log10(1 + 3 * latest.height) + 1e-9
    assert scored.sort("dis_rank")["dis"].is_sorted(descending=True)
    earlier = risk.filter(pl.col("cut_date") < risk["cut_date"].max())
    assert earlier["dis"].null_count() == earlier.height          # only the latest cut is scored


def test_csm_holds_the_kri_profile_of_every_cut(analysed):
    out, _ = analysed
    csm = pl.read_parquet(out / "csm.parquet")
    profile = csm.filter(pl.col("test") == "kri_profile")
    assert profile["cut_date"].n_unique() == 3 and set(profile["variable"]) == {"KRIs"}
    assert csm.equals(csm.sort(["cut_date", "test", "variable", "site_id"]))


def test_no_csm_or_no_permutations_leave_dis_null(study_dir):
    for analysis in (analyze_study(study_dir, as_of=date(2025, 5, 1), csm=False, permutations=3),
                     analyze_study(study_dir, as_of=date(2025, 5, 1), permutations=0)):
        assert analysis.site_risk["dis"].null_count() == analysis.site_risk.height
        assert analysis.site_risk["dis_rank"].null_count() == analysis.site_risk.height


def test_the_command_asks_for_the_documented_permutations():
    from rbqm.cli.analyze import analyze_command
    assert inspect.signature(analyze_command).parameters["permutations"].default == PERMUTATIONS == "auto"
