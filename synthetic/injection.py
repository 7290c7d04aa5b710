"""Where and from when each anomaly acts: anomaly specs resolved to sites and study days."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from rbqm.errors import DefinitionError
from synthetic.anomalies import ANOMALY_TYPES, AnomalySpec
from synthetic.design import SynthConfig
from synthetic.random import KeyedRandom

__all__ = ["Injection", "resolve_anomalies"]

_NEVER = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class Injection:
    """Per anomaly type, per site: its magnitude and first study day (day 0 = study start)."""

    magnitude: dict[str, np.ndarray]
    start_day: dict[str, np.ndarray]
    analytes: tuple[str, ...]
    truth: pl.DataFrame

    def site(self, kind: str, site_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For rows at sites ``site_idx``: (injected here?, magnitude, start day)."""
        mag = self.magnitude[kind][site_idx]
        return ~np.isnan(mag), np.nan_to_num(mag), self.start_day[kind][site_idx]

    def active(self, kind: str, site_idx: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For rows at sites ``site_idx`` dated ``day``: (anomaly acts on this row?, magnitude)."""
        here, mag, start = self.site(kind, site_idx)
        return here & (day >= start), mag


def resolve_anomalies(cfg: SynthConfig, sites: pl.DataFrame, enrolled: np.ndarray,
                      rng: KeyedRandom) -> Injection:
    """Choose each anomaly's sites and turn its start into a study day.

    Sites given as a count are drawn by the seed among sites with at least the median
    enrolment, distinct across anomalies while enough remain.
    """
    n = sites.height
    site_ids = sites["SITEID"].to_list()
    magnitude = {kind: np.full(n, np.nan) for kind in ANOMALY_TYPES}
    start_day = {kind: np.full(n, _NEVER, dtype=np.int64) for kind in ANOMALY_TYPES}
    eligible = np.flatnonzero(enrolled >= max(np.median(enrolled), 1))
    order = list(rng.generator("anomaly.sites").permutation(eligible))
    used: list[int] = []
    rows = []
    analytes: tuple[str, ...] = ()
    for spec in cfg.anomalies:
        chosen = _choose(spec, site_ids, order, used, eligible)
        day = _start_day(cfg, spec)
        for idx in chosen:
            magnitude[spec.type][idx] = spec.magnitude
            start_day[spec.type][idx] = day
            rows.append({
                "SITEID": site_ids[idx], "ANOMALY": spec.type, "MAGNITUDE": spec.magnitude,
                "STARTDTC": cfg.to_date(day).isoformat(),
                "DETAIL": ANOMALY_TYPES[spec.type][2]
                + (f" ({', '.join(spec.analytes or ('CREAT',))})" if spec.type == "lab_calibration_shift" else ""),
            })
        if spec.type == "lab_calibration_shift":
            analytes = spec.analytes or ("CREAT",)
    truth = pl.DataFrame(rows, schema={"SITEID": pl.String, "ANOMALY": pl.String, "MAGNITUDE": pl.Float64,
                                       "STARTDTC": pl.String, "DETAIL": pl.String})
    return Injection(magnitude, start_day, analytes, truth.sort("SITEID", "ANOMALY"))


def _choose(spec: AnomalySpec, site_ids: list[str], order: list[int], used: list[int],
            eligible: np.ndarray) -> list[int]:
    if isinstance(spec.sites, tuple):
        unknown = [s for s in spec.sites if s not in site_ids]
        if unknown:
            raise DefinitionError(f"anomaly {spec.type}: unknown site(s) {', '.join(unknown)}; "
                                  f"sites run from {site_ids[0]} to {site_ids[-1]}")
        return [site_ids.index(s) for s in spec.sites]
    fresh = [i for i in order if i not in used]
    pool = fresh if len(fresh) >= spec.sites else fresh + [i for i in order if i in used]
    if len(pool) < spec.sites:
        raise DefinitionError(f"anomaly {spec.type}: {spec.sites} sites asked for, but only "
                              f"{len(eligible)} sites have enough subjects")
    chosen = [int(i) for i in pool[: spec.sites]]
    used.extend(chosen)
    return chosen


def _start_day(cfg: SynthConfig, spec: AnomalySpec) -> int:
    if isinstance(spec.start, float):
        return int(spec.start * cfg.end_day)
    day = cfg.to_day(spec.start)
    if not 0 <= day < cfg.end_day:
        raise DefinitionError(f"anomaly {spec.type}: start {spec.start} is outside the study "
                              f"({cfg.start} to {cfg.end})")
    return day
