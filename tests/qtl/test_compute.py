"""compute_qtls on synthetic studies: every QTL computes, the counts match a hand count, injected
problems worsen their QTL, and missing inputs give "not computable", never zeros."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from rbqm.derive import AnalysisTables, derive_tables
from rbqm.qtl import (QTL_RESULT_COLUMNS, QTL_STATUSES, clopper_pearson, compute_qtls, load_qtl_definitions,
                      one_sided_proportion, site_counts)
from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at

DESIGN = dict(sites=16, subjects=1200, countries=4, seed=5, months=24)
CUT = 0.6  # share of the study period: enrolment is still running, so the clean study is within limits
ANOMALIES = (
    AnomalySpec(type="excess_eligibility_violations", magnitude=0.3, sites=("1001", "1002", "1003"), start=0.0),
    AnomalySpec(type="high_discontinuation", magnitude=5.0, sites=("1004", "1005", "1006"), start=0.0),
)
STUDY, CUT_DATE = "SYN", date(2025, 6, 30)


def _tables(cfg: SynthConfig) -> tuple[dict[str, pl.DataFrame], date]:
    day = int(cfg.end_day * CUT)
    tables = {name: lf.collect() for name, lf in tables_at(build_trial(cfg), day).items()}
    return tables, cfg.start + timedelta(days=day)


def _compute(tables: dict[str, pl.DataFrame], as_of: date) -> pl.DataFrame:
    analysis = derive_tables(tables, as_of=as_of)
    return compute_qtls(analysis, load_qtl_definitions(), study_id=STUDY, cut_date=CUT_DATE)


@pytest.fixture(scope="module")
def clean_tables() -> tuple[dict[str, pl.DataFrame], date]:
    return _tables(SynthConfig(**DESIGN))


@pytest.fixture(scope="module")
def clean(clean_tables) -> pl.DataFrame:
    return _compute(*clean_tables)


@pytest.fixture(scope="module")
def injected() -> pl.DataFrame:
    return _compute(*_tables(SynthConfig(**DESIGN, anomalies=ANOMALIES)))


def _row(results: pl.DataFrame, qtl_id: str) -> dict:
    return results.filter(pl.col("qtl_id") == qtl_id).row(0, named=True)


def test_every_qtl_computes_on_a_synthetic_study(clean):
    library = load_qtl_definitions()
    assert clean.schema == pl.Schema(QTL_RESULT_COLUMNS)
    assert clean["qtl_id"].to_list() == [d.id for d in library]
    assert clean["method"].to_list() == [d.method for d in library]
    assert clean["note"].null_count() == clean.height, clean.filter(pl.col("note").is_not_null())
    assert set(clean["status"]) <= set(QTL_STATUSES) and clean["status"].null_count() == 0
    assert (clean["study_id"] == STUDY).all() and (clean["cut_date"] == CUT_DATE).all()
    numbers = clean.select("numerator", "denominator", "estimate", "lower", "upper", "limit", "secondary_limit",
                           "probability_exceed")
    assert numbers.null_count().sum_horizontal().item() == 0
    assert ((clean["lower"] <= clean["estimate"]) & (clean["estimate"] <= clean["upper"])).all()
    assert ((clean["secondary_limit"] < clean["limit"]) & clean["probability_exceed"].is_between(0, 1)).all()
    assert (clean["numerator"] > 0).all() and (clean["denominator"] > clean["numerator"]).all()


def test_counts_and_statistics_by_hand(clean, clean_tables):
    tables, as_of = clean_tables
    subjects = derive_tables(tables, as_of=as_of)["subjects"].collect()
    enrolled = subjects.filter("enrolled")
    # qtl0002: ineligible among enrolled, gsm.qtl's one-sided test with p0 = 0.03
    row = _row(clean, "qtl0002")
    n, x = enrolled.height, enrolled["ineligible"].sum()
    assert (row["numerator"], row["denominator"]) == (x, n)
    assert row["estimate"] == pytest.approx(x / n)
    assert (row["lower"], row["upper"]) == pytest.approx(clopper_pearson(x, n))
    assert row["limit"] == pytest.approx(one_sided_proportion(x, n, 0.03).limit)
    assert row["secondary_limit"] == 0.03
    # qtl0006: enrolled subjects with an important CONCOMITANT MEDICATION deviation (dv, dated by the cut)
    dv = tables["dv"].filter(pl.col("DVSTDTC") <= as_of.isoformat())
    conmed = dv.filter((pl.col("DVIMPFL") == "Y") & (pl.col("DVCAT") == "CONCOMITANT MEDICATION"))["USUBJID"]
    expected = enrolled.filter(pl.col("USUBJID").is_in(conmed.implode())).height
    assert _row(clean, "qtl0006")["numerator"] == expected
    # qtl0009: every important deviation per 1,000 days on study
    row = _row(clean, "qtl0009")
    assert row["numerator"] == dv.filter(pl.col("DVIMPFL") == "Y").height
    assert row["denominator"] == enrolled["days_on_study"].sum()
    assert row["estimate"] == pytest.approx(1000 * row["numerator"] / row["denominator"], rel=0.05)


def test_status_follows_the_limits(clean):
    for row in clean.iter_rows(named=True):
        worse = [row["estimate"] >= row["secondary_limit"], row["estimate"] >= row["limit"]]
        expected = 2 if worse[1] else 1 if worse[0] else 0
        assert row["status"] == QTL_STATUSES[expected], row["qtl_id"]


@pytest.mark.parametrize("qtl_id", ["qtl0002", "qtl0004"])  # eligibility violations; withdrawal / lost
def test_injected_problems_worsen_their_qtl(clean, injected, qtl_id):
    before, after = _row(clean, qtl_id), _row(injected, qtl_id)
    assert before["status"] == "within limits"
    assert QTL_STATUSES.index(after["status"]) > QTL_STATUSES.index(before["status"])
    assert after["estimate"] > before["estimate"]
    assert after["probability_exceed"] > 0.9 > 0.1 > before["probability_exceed"]


def test_results_are_reproducible(clean, clean_tables):
    assert _compute(*clean_tables).equals(clean)


def test_missing_tables_are_not_computable(clean_tables):
    tables, as_of = clean_tables
    out = _compute({k: v for k, v in tables.items() if k not in {"dv", "sv"}}, as_of)
    notes = dict(zip(out["qtl_id"], out["note"]))
    assert notes["qtl0001"] == "not computable: needs dv" and notes["qtl0009"] == "not computable: needs dv"
    assert notes["qtl0005"] == "not computable: needs sv"
    assert notes["qtl0002"] is None
    blank = out.filter(pl.col("note").is_not_null())
    nulls = blank.select("numerator", "estimate", "status", "probability_exceed").null_count().row(0)
    assert nulls == (blank.height,) * 4


def test_without_ie_eligibility_is_not_computable(clean_tables):
    tables, as_of = clean_tables
    out = _compute({k: v for k, v in tables.items() if k != "ie"}, as_of)
    assert dict(zip(out["qtl_id"], out["note"]))["qtl0002"] == "not computable: needs ie"


def test_an_empty_column_is_not_computable(clean_tables):
    tables, as_of = clean_tables
    out = _compute(tables | {"dv": tables["dv"].with_columns(DVCAT=pl.lit(None, pl.String))}, as_of)
    notes = dict(zip(out["qtl_id"], out["note"]))
    assert notes["qtl0006"] == notes["qtl0007"] == "not computable: needs dv.DVCAT"
    assert notes["qtl0001"] is None          # any category: DVCAT not needed


def test_no_enrolled_subjects_gives_no_data(clean_tables):
    tables, _ = clean_tables
    first = min(tables["dm"]["RFICDTC"].drop_nulls())
    out = _compute(tables, date.fromisoformat(first[:10]))
    assert (out["note"] == "no data: the denominator is 0").all()
    assert out["estimate"].null_count() == out.height and out["status"].null_count() == out.height


def test_a_binary_numerator_counts_only_the_denominator_population(clean_tables):
    """A deviation of a screen failure is not a deviation of an enrolled subject: the share stays a share."""
    tables, as_of = clean_tables
    analysis = derive_tables(tables, as_of=as_of)
    failure = analysis["subjects"].filter(~pl.col("enrolled")).select("USUBJID").collect()["USUBJID"][0]
    extra = tables["dv"].head(1).with_columns(USUBJID=pl.lit(failure), DVIMPFL=pl.lit("Y"))
    with_extra = derive_tables(tables | {"dv": pl.concat([tables["dv"], extra])}, as_of=as_of)
    definition = next(d for d in load_qtl_definitions() if d.id == "qtl0001")
    before, after = (site_counts(a, definition).collect() for a in (analysis, with_extra))
    assert before.sort("SITEID").equals(after.sort("SITEID"))
    assert (after["numerator"] <= after["denominator"]).all()
    assert isinstance(analysis, AnalysisTables)
