"""rbqm.kri.compute.subject_counts: every KRI's numerator and denominator per subject, by hand on the tiny
study of test_compute, and adding up to compute_kris' site results on a synthetic study."""

from __future__ import annotations

import polars as pl
import pytest

from rbqm.derive import derive_tables
from rbqm.kri import compute_kris, load_definitions
from rbqm.kri.compute import subject_counts
from synthetic import SynthConfig, build_trial, tables_at

from .test_compute import CUT, study  # noqa: F401  (the tiny study fixture)

DEFINITIONS = load_definitions()


@pytest.fixture(scope="module")
def counts(study) -> pl.DataFrame:  # noqa: F811
    return subject_counts(derive_tables(study, as_of=CUT), DEFINITIONS)


def _by_subject(counts: pl.DataFrame, kri: str) -> dict[str, tuple[float | None, float | None]]:
    rows = counts.filter(pl.col("kri_id") == kri).sort("USUBJID")
    return {r["USUBJID"]: (r["numerator"], r["denominator"]) for r in rows.iter_rows(named=True)}


def test_ae_rate_per_subject_is_ae_records_and_days_on_study(counts) -> None:
    # days on study to 2024-04-30: A 121, B 30, D 107, E 22, F 61; C is a screen failure (not enrolled);
    # F's AE of 2024-05-15 is after the cut
    assert _by_subject(counts, "kri0001") == {"A": (2.0, 121.0), "B": (1.0, 30.0), "C": (0.0, 0.0),
                                              "D": (0.0, 107.0), "E": (1.0, 22.0), "F": (0.0, 61.0)}


def test_serious_ae_rate_counts_only_serious_events(counts) -> None:
    assert {s: n for s, (n, _) in _by_subject(counts, "kri0002").items()} == {
        "A": 1.0, "B": 0.0, "C": 0.0, "D": 0.0, "E": 1.0, "F": 0.0}


def test_subject_counts_are_one_or_zero(counts) -> None:
    # screen failure rate: screen failures over screened subjects
    assert _by_subject(counts, "kri0012") == {"A": (0.0, 1.0), "B": (0.0, 1.0), "C": (1.0, 1.0),
                                              "D": (0.0, 1.0), "E": (0.0, 1.0), "F": (0.0, 1.0)}


def test_a_part_counted_from_the_sites_table_is_empty(study) -> None:  # noqa: F811
    sites = pl.DataFrame({"SITEID": ["S1", "S2", "S3"], "COUNTRY": ["USA", "USA", "DEU"],
                          "PLANNEDENR": [4, 4, 2]})
    counts = subject_counts(derive_tables({**study, "sites": sites}, as_of=CUT), DEFINITIONS)
    # enrolment versus plan: enrolled subjects over the sites' PLANNEDENR
    assert _by_subject(counts, "kri0016") == {"A": (1.0, None), "B": (1.0, None), "C": (0.0, None),
                                              "D": (1.0, None), "E": (1.0, None), "F": (1.0, None)}


def test_kris_the_study_cannot_compute_have_no_rows(counts) -> None:
    assert counts.filter(pl.col("kri_id") == "kri0008").is_empty()  # queries and datapoints are missing
    assert counts.columns == ["kri_id", "USUBJID", "SITEID", "COUNTRY", "numerator", "denominator"]


def test_site_rows_add_up_to_the_site_results() -> None:
    cfg = SynthConfig(sites=6, subjects=150, countries=2, seed=5, months=12)
    tables = {name: frame.collect() for name, frame in tables_at(build_trial(cfg), cfg.end_day).items()}
    analysis = derive_tables(tables, as_of=cfg.end)
    results = compute_kris(analysis, DEFINITIONS, study_id="S", cut_date=cfg.end).results
    sums = (subject_counts(analysis, DEFINITIONS).group_by("kri_id", "SITEID")
            .agg(pl.col("numerator").sum(), pl.col("denominator").sum(),
                 per_subject=pl.col("denominator").is_not_null().all()))
    site = (results.filter((pl.col("level") == "site") & pl.col("numerator").is_not_null())
            .join(sums, left_on=["kri_id", "group_id"], right_on=["kri_id", "SITEID"], how="left",
                  suffix="_subjects"))
    assert site["numerator_subjects"].null_count() == 0  # every computed KRI has its listing
    assert (site["numerator"] == site["numerator_subjects"]).all()
    per_subject = site.filter("per_subject")
    assert (per_subject["denominator"] == per_subject["denominator_subjects"]).all()
    assert site.filter(~pl.col("per_subject"))["kri_id"].unique().to_list() == ["kri0016"]
    assert site["kri_id"].n_unique() >= 20
