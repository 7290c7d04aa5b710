"""Studies for the site-vs-rest battery tests (means, spread, distribution, missingness, rounding,
proportions): tiny hand-made measurement studies, and one synthetic study with the anomalies that the
shared fixtures of conftest.py do not inject (built once per process)."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import numpy as np
import polars as pl

from rbqm.derive import AnalysisTables, derive_tables
from synthetic import AnomalySpec, SynthConfig

from .conftest import DESIGN, analysis_of

#: anomaly -> (site, magnitude) of ``shifted_study``
SHIFTED = {"lab_calibration_shift": ("1004", 0.2), "sae_under_reporting": ("1014", 1.0)}


def measurement_study(readings: pl.DataFrame, *, countries: dict[str, str] | None = None,
                      extra: dict[str, pl.DataFrame] | None = None) -> AnalysisTables:
    """A study from vital-sign readings: SITEID, USUBJID, VISITNUM, VSTESTCD, VSSTRESN (null allowed).

    Every subject is enrolled at its site; sites are in FRA unless ``countries`` says otherwise.
    """
    countries = countries or {}
    dm = (readings.select("USUBJID", "SITEID").unique(maintain_order=True)
          .with_columns(STUDYID=pl.lit("HAND"), ARMCD=pl.lit("A"), RFSTDTC=pl.lit("2024-01-01"),
                        COUNTRY=pl.col("SITEID").replace_strict(countries, default="FRA", return_dtype=pl.String)))
    vs = readings.select("USUBJID", "VSTESTCD", pl.col("VISITNUM").cast(pl.Float64),
                         pl.col("VSSTRESN").cast(pl.Float64), VSDTC=pl.lit("2024-01-02"))
    return derive_tables({"dm": dm, "vs": vs, **(extra or {})}, as_of=date(2025, 1, 1))


def random_readings(sites: dict[str, tuple[int, float]], *, seed: int, code: str = "HR", visits: int = 4,
                    between: float = 8.0, within: float = 5.0, decimals: int = 1) -> pl.DataFrame:
    """Readings of one vital sign: {site: (subjects, mean level)}, normal subject levels and visit noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for site, (subjects, mean) in sites.items():
        levels = rng.normal(mean, between, subjects)
        for k, level in enumerate(levels):
            values = np.round(level + rng.normal(0, within, visits), decimals)
            rows += [{"SITEID": site, "USUBJID": f"{site}-{k}", "VISITNUM": float(v + 1), "VSTESTCD": code,
                      "VSSTRESN": float(values[v])} for v in range(visits)]
    return pl.DataFrame(rows)


@lru_cache(maxsize=1)
def shifted_study() -> AnalysisTables:
    """The conftest design (40 sites, 4,000 subjects, seed 8) with a +20% creatinine calibration shift
    at site 1004 and every serious AE reported as non-serious at site 1014, from the study start."""
    anomalies = tuple(AnomalySpec(type=kind, magnitude=magnitude, sites=(site,), start=0.0)
                      for kind, (site, magnitude) in SHIFTED.items())
    return analysis_of(SynthConfig(**DESIGN, anomalies=anomalies))


def p_below(out: pl.DataFrame, level: float) -> float:
    """The share of rows with a p-value below ``level``."""
    return float((out["p_value"] < level).mean())
