"""``rbqm analyze``: results, bounds and site risk for every data cut, and clean errors for bad input."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from typer.testing import CliRunner

import rbqm.cli  # noqa: F401  (registers the commands)
from rbqm.analysis import OUTPUT_TABLES, analyze_study
from rbqm.cli._app import app
from rbqm.kri.compute import RESULT_COLUMNS

runner = CliRunner()


@pytest.fixture(scope="module")
def analysed(study_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze") / "out"
    result = runner.invoke(app, ["analyze", str(study_dir), "--out", str(out)])
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


def test_cli_output_equals_the_engine(analysed, study_dir):
    out, _ = analysed
    engine = analyze_study(study_dir)
    assert pl.read_parquet(out / "results.parquet").equals(engine.results)
    assert pl.read_parquet(out / "site_risk.parquet").equals(engine.site_risk)


def test_reruns_on_the_same_cut_are_identical(study_dir):
    a = analyze_study(study_dir, as_of=date(2025, 5, 1))
    b = analyze_study(study_dir, as_of=date(2025, 5, 1))
    assert a.results.equals(b.results) and a.cut_dates == [date(2025, 5, 1)]


@pytest.mark.parametrize(("args", "message"), [
    (["analyze", "{missing}", "--out", "{out}"], "not a study folder"),
    (["analyze", "{study}", "--out", "{out}", "--as-of", "yesterday"], "--as-of must be an ISO 8601 date"),
    (["analyze", "{study}", "--out", "{out}", "--kri-dir", "{missing}"], "no such KRI folder"),
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
    from rbqm.store import open_store
    from rbqm.store import qtl as store_qtl
    from rbqm.store import users

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
