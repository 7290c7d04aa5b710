"""KRI numerators, denominators, notes and the site risk score on a tiny hand-built study."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from rbqm.derive import derive_tables
from rbqm.kri import compute_kris, load_definitions, site_risk
from rbqm.kri.definition import KriDefinition

CUT = date(2024, 4, 30)


def _dm(rows):
    cols = ["USUBJID", "SITEID", "COUNTRY", "RFICDTC", "RFSTDTC", "RFENDTC", "DTHDTC", "ARMCD"]
    return pl.DataFrame([dict(zip(cols, r)) for r in rows], schema={c: pl.String for c in cols}).with_columns(
        STUDYID=pl.lit("T1"))


@pytest.fixture(scope="module")
def study() -> dict[str, pl.DataFrame]:
    """Three sites; subject days on study to 2024-04-30 are A 121, B 30, D 107, E 22, F 61."""
    dm = _dm([
        ("A", "S1", "USA", "2023-12-20", "2024-01-01", None, None, "A"),
        ("B", "S1", "USA", "2024-01-20", "2024-02-01", "2024-03-01", None, "P"),
        ("C", "S1", "USA", "2024-01-25", None, None, None, "SCRNFAIL"),
        ("D", "S2", "USA", "2024-01-02", "2024-01-15", None, None, "A"),
        ("E", "S2", "USA", "2024-01-05", "2024-01-20", "2024-02-10", "2024-02-10", "P"),
        ("F", "S3", "DEU", "2024-02-20", "2024-03-01", None, None, "A"),
    ])
    ae = pl.DataFrame({
        "USUBJID": ["A", "A", "B", "E", "F"], "AESEQ": [1, 2, 1, 1, 1],
        "AEDECOD": ["HEADACHE", "PNEUMONIA", "NAUSEA", "SEPSIS", "RASH"],
        "AESTDTC": ["2024-01-10", "2024-02-10", "2024-02-15", "2024-02-08", "2024-05-15"],
        "AESER": ["N", "Y", "N", "Y", "N"], "AETOXGR": ["1", "3", "2", "5", "1"],
    })
    ds = pl.DataFrame({
        "USUBJID": ["B", "B", "E", "E"], "DSCAT": ["DISPOSITION EVENT"] * 4,
        "DSSCAT": ["STUDY PARTICIPATION", "STUDY TREATMENT"] * 2,
        "DSDECOD": ["WITHDRAWAL BY SUBJECT", "WITHDRAWAL BY SUBJECT", "DEATH", "DEATH"],
        "DSSTDTC": ["2024-03-01", "2024-02-20", "2024-02-10", "2024-02-10"],
    })
    dv = pl.DataFrame({"USUBJID": ["A", "A", "D"], "DVTERM": ["X", "Y", "Z"],
                       "DVSTDTC": ["2024-02-01", "2024-03-01", "2024-02-01"], "DVIMPFL": ["Y", "N", "N"]})
    ie = pl.DataFrame({"USUBJID": ["C", "D"], "IETESTCD": ["INCL01", "EXCL01"], "IECAT": ["INCLUSION", "EXCLUSION"]})
    return {"dm": dm, "ae": ae, "ds": ds, "dv": dv, "ie": ie}


@pytest.fixture(scope="module")
def results(study) -> pl.DataFrame:
    analysis = derive_tables(study, as_of=CUT)
    return compute_kris(analysis, load_definitions(), study_id="T1", cut_date=CUT).results


def _row(results, kri, group, level="site"):
    row = results.filter((pl.col("kri_id") == kri) & (pl.col("group_id") == group) & (pl.col("level") == level))
    assert row.height == 1
    return row.row(0, named=True)


@pytest.mark.parametrize(("kri", "group", "numerator", "denominator"), [
    ("kri0001", "S1", 3, 151), ("kri0001", "S2", 1, 129), ("kri0001", "S3", 0, 61),   # AE after the cut left out
    ("kri0002", "S1", 1, 151), ("kri0002", "S2", 1, 129),
    ("kri0003", "S1", 1, 151), ("kri0003", "S2", 1, 129),
    ("kri0004", "S1", 1, 151), ("kri0004", "S2", 0, 129),
    ("kri0006", "S1", 1, 2), ("kri0006", "S2", 1, 2), ("kri0006", "S3", 0, 1),
    ("kri0007", "S1", 1, 2),
    ("kri0012", "S1", 1, 3), ("kri0012", "S2", 0, 2),
    ("kri0014", "S1", 0, 2), ("kri0014", "S2", 1, 2),                                # the screen failure's IE does not count
    ("kri0015", "S2", 1, 2), ("kri0015", "S1", 0, 2),                                # E died 21 days after randomisation
])
def test_numerator_and_denominator(results, kri, group, numerator, denominator):
    row = _row(results, kri, group)
    assert (row["numerator"], row["denominator"]) == (numerator, denominator)
    assert row["metric"] == pytest.approx(numerator / denominator)


def test_country_level_sums_its_sites(results):
    usa = _row(results, "kri0001", "USA", level="country")
    assert (usa["numerator"], usa["denominator"]) == (4, 280)


def test_missing_inputs_are_not_computable_never_zero(results):
    row = _row(results, "kri0008", "S1")
    assert row["note"] == "not computable: needs datapoints, queries"
    assert row["numerator"] is None and row["score"] is None and row["flag"] is None


def test_below_minimum_is_too_few_to_score(results):
    row = _row(results, "kri0006", "S1")          # numerator 1 < 3
    assert row["score"] is None and row["flag"] is None
    assert row["note"].startswith("too few to score")


def test_identity_kris_score_the_count(results):
    row = _row(results, "kri0015", "S2")
    assert row["score"] == 1 and row["flag"] == 1   # thresholds (1, 2): one early death is amber


def test_site_risk_score_by_hand():
    """Two KRIs with weights (32, 16, 0, 1, 2) and (0, 0, 0, 16, 32): a red-low on the first and nothing on the
    second gives 100 * (32 + 0) / (32 + 32) = 50."""
    def make(kid, weights):
        return KriDefinition.model_validate({
            "id": kid, "name": kid, "description": "-", "numerator": {"table": "ae", "count": "records"},
            "denominator": {"table": "subjects", "sum": "days_on_study"}, "metric_unit": "-",
            "method": "normal_approx_rate", "thresholds": [-2, -1, 2, 3], "flags": [-2, -1, 0, 1, 2],
            "minimum": {"applies_to": "denominator", "count": 30}, "concern": "low", "weights": weights})
    defs = [make("kri9001", [32, 16, 0, 1, 2]), make("kri9002", [0, 0, 0, 16, 32])]
    results = pl.DataFrame({"level": ["site"] * 4, "group_id": ["S1", "S1", "S2", "S2"],
                            "kri_id": ["kri9001", "kri9002", "kri9001", "kri9002"],
                            "flag": [-2, 0, 1, None]}, schema_overrides={"flag": pl.Int8})
    sites = pl.DataFrame({"site_id": ["S1", "S2", "S3"], "country": ["USA", "USA", "DEU"]})
    risk = site_risk(results, defs, sites)
    by_site = {r["site_id"]: r for r in risk.iter_rows(named=True)}
    assert by_site["S1"]["risk_score"] == pytest.approx(50.0)
    assert by_site["S2"]["risk_score"] == pytest.approx(100 * 1 / 32)       # only kri9001 scored at S2
    assert by_site["S3"]["risk_score"] is None and by_site["S3"]["kris_scored"] == 0
    assert (by_site["S1"]["rank"], by_site["S2"]["rank"]) == (1, 2)
    assert (by_site["S1"]["red"], by_site["S2"]["amber"]) == (1, 1)


def test_fisher_kri_flags_by_p_value_with_direction(study):
    """A fisher KRI: thresholds are (red, amber) p-values, the sign of the flag is the direction."""
    d = KriDefinition.model_validate({
        "id": "kri9100", "name": "Screen failures (exact)", "description": "-", "metric_unit": "share",
        "numerator": {"table": "subjects", "count": "subjects", "where": [{"column": "screen_failure", "equals": True}]},
        "denominator": {"table": "subjects", "count": "subjects"}, "method": "fisher",
        "thresholds": [0.01, 0.05], "flags": [2, 1, 0], "minimum": {"applies_to": "denominator", "count": 1},
        "concern": "high", "weights": [16, 8, 0], "levels": ["site"]})
    out = compute_kris(derive_tables(study, as_of=CUT), [d], study_id="T1", cut_date=CUT)
    site = out.results
    assert site["flag"].to_list() == [0, 0, 0]          # 1 of 3 vs 0 of 5: p = 0.375, nothing flagged
    assert site["score"].is_between(0, 1).all()
    assert out.site_risk["risk_score"].to_list() == [0.0, 0.0, 0.0]


def test_fisher_definition_needs_p_value_thresholds():
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="a fisher KRI flags by p-value"):
        KriDefinition.model_validate({
            "id": "kri9101", "name": "x", "description": "-", "metric_unit": "share",
            "numerator": {"table": "subjects", "count": "subjects"}, "denominator": {"table": "subjects", "count": "subjects"},
            "method": "fisher", "thresholds": [-2, 2], "flags": [-1, 0, 1], "minimum": {"applies_to": "denominator", "count": 1},
            "concern": "high", "weights": [1, 0, 1]})


def test_visit_kris_need_sv_and_tv(results):
    assert _row(results, "kri0017", "S1")["note"] == "not computable: needs sv, tv"


def test_missed_and_out_of_window_visits(study):
    """Subject A (start 2024-01-01): day 1 done, day 15 skipped, day 29 visit done on day 36 (window +-3), day 57
    not yet due. Subject D (start 2024-01-15): day 1 and day 15 (on day 16) done."""
    tv = pl.DataFrame({"VISITNUM": [1.0, 2.0, 3.0, 4.0, 5.0], "VISITDY": [None, 1, 15, 29, 57],
                       "TVWINLO": [0, 0, 3, 3, 7], "TVWINHI": [0, 0, 3, 3, 7]})
    sv = pl.DataFrame({"USUBJID": ["A", "A", "D", "D"], "VISITNUM": [2.0, 4.0, 2.0, 3.0],
                       "SVSTDTC": ["2024-01-01", "2024-02-05", "2024-01-15", "2024-01-30"]})
    out = compute_kris(derive_tables({**study, "sv": sv, "tv": tv}, as_of=CUT),
                       [d for d in load_definitions() if d.id in {"kri0017", "kri0018"}], study_id="T1", cut_date=CUT)
    missed = out.results.filter((pl.col("kri_id") == "kri0017") & (pl.col("level") == "site"))
    window = out.results.filter((pl.col("kri_id") == "kri0018") & (pl.col("level") == "site"))
    by = lambda frame: {r["group_id"]: (r["numerator"], r["denominator"]) for r in frame.iter_rows(named=True)}  # noqa: E731
    assert by(missed)["S1"] == (1, 3)     # A: visits 2, 3 (missed), 4 due; B has no visits, so none are due
    assert by(missed)["S2"] == (0, 2)     # D: visits 2 and 3 done; 4 not yet overtaken
    assert by(window)["S1"] == (1, 2)     # A's day-29 visit on study day 36
    assert by(window)["S2"] == (0, 2)     # D's day-15 visit on study day 16 is inside +-3


def test_no_deaths_is_zero_not_missing(study):
    """DTHDTC empty everywhere because nobody died: early deaths are 0, not 'not computable'."""
    alive = {**study, "dm": study["dm"].with_columns(DTHDTC=pl.lit(None, pl.String))}
    out = compute_kris(derive_tables(alive, as_of=CUT), [d for d in load_definitions() if d.id == "kri0015"],
                       study_id="T1", cut_date=CUT).results
    assert out["note"].drop_nulls().to_list() == [] and out["numerator"].sum() == 0


def test_a_column_the_study_leaves_empty_is_not_computable(study):
    """AETOXGR absent: the grade 3+ AE rate cannot be computed, and says why."""
    ungraded = {**study, "ae": study["ae"].drop("AETOXGR")}
    out = compute_kris(derive_tables(ungraded, as_of=CUT), [d for d in load_definitions() if d.id == "kri0021"],
                       study_id="T1", cut_date=CUT).results
    assert out["note"].unique().to_list() == ["not computable: needs ae.grade"]
