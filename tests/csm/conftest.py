"""Synthetic studies for the CSM tests (built once per worker) and a builder of tiny hand-made studies."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from rbqm.derive import AnalysisTables, derive_tables
from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at

# 40 sites, ~100 enrolled subjects a site (as tests/kri/test_synthetic.py)
DESIGN = dict(sites=40, subjects=4000, countries=5, seed=8, months=24)
# anomaly -> (site, magnitude); all start at the study start
INJECTED = {
    "ae_under_reporting": (("1005", 0.5), ("1003", 0.8)),
    "digit_preference": (("1010", 0.5),),
    "fabricated_subjects": (("1015", 0.5),),
}


def analysis_of(cfg: SynthConfig) -> AnalysisTables:
    tables = {name: lf.collect() for name, lf in tables_at(build_trial(cfg), cfg.end_day).items()}
    return derive_tables(tables, as_of=cfg.end)


@pytest.fixture(scope="session")
def clean() -> AnalysisTables:
    return analysis_of(SynthConfig(**DESIGN))


@pytest.fixture(scope="session")
def injected() -> AnalysisTables:
    anomalies = tuple(AnomalySpec(type=kind, magnitude=magnitude, sites=(site,), start=0.0)
                      for kind, where in INJECTED.items() for site, magnitude in where)
    return analysis_of(SynthConfig(**DESIGN, anomalies=anomalies))


@pytest.fixture(scope="session")
def small() -> AnalysisTables:
    """12 sites, ~20 subjects each: enough sites to estimate between-site variation."""
    return analysis_of(SynthConfig(sites=12, subjects=240, countries=3, seed=5, months=18))


def hand_study(subjects: dict[str, tuple[str, list[str], list[str]]], *, as_of: date = date(2025, 1, 1),
               extra: dict[str, pl.DataFrame] | None = None) -> AnalysisTables:
    """A study from {USUBJID: (SITEID, visit dates, AE onset dates)}; all enrolled on the first visit date."""
    dm = pl.DataFrame({
        "STUDYID": "HAND", "USUBJID": list(subjects), "SITEID": [s for s, _, _ in subjects.values()],
        "COUNTRY": "FRA", "ARMCD": "A",
        "RFSTDTC": [visits[0] if visits else "2024-01-01" for _, visits, _ in subjects.values()],
    })
    sv = pl.DataFrame(
        [{"USUBJID": u, "VISITNUM": float(i + 1), "VISIT": f"V{i + 1}", "SVSTDTC": d}
         for u, (_, visits, _) in subjects.items() for i, d in enumerate(visits)],
        schema={"USUBJID": pl.String, "VISITNUM": pl.Float64, "VISIT": pl.String, "SVSTDTC": pl.String})
    ae = pl.DataFrame(
        [{"USUBJID": u, "AESEQ": i + 1, "AEDECOD": "HEADACHE", "AESTDTC": d, "AESER": "N"}
         for u, (_, _, onsets) in subjects.items() for i, d in enumerate(onsets)],
        schema={"USUBJID": pl.String, "AESEQ": pl.Int64, "AEDECOD": pl.String, "AESTDTC": pl.String,
                "AESER": pl.String})
    return derive_tables({"dm": dm, "sv": sv, "ae": ae, **(extra or {})}, as_of=as_of)
