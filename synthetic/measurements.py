"""Laboratory results and vital signs.

Each analyte or vital sign is a subject mean (between-subject variation, correlated
across analytes) plus a visit deviation (within-subject variation, correlated across
analytes; autocorrelated over visits for vital signs), on the log scale for skewed
analytes. Laboratory results have occasional abnormal excursions, reference ranges
and CTCAE-like grades. Fabricated subjects copy a real subject of their site with a
fraction of its visit-to-visit variation.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from synthetic.design import catalogue
from synthetic.injection import Injection
from synthetic.random import KeyedRandom

__all__ = ["make_labs", "make_vitals"]

_FABRICATED_WITHIN = 0.3   # share of the donor's visit deviation a fabricated subject keeps
_FABRICATED_NOISE = 0.1    # own noise of a fabricated value, in within-subject sds


def _correlation(codes: list[str], pairs: list[list]) -> np.ndarray:
    r = np.eye(len(codes))
    for a, b, rho in pairs:
        i, j = codes.index(a), codes.index(b)
        r[i, j] = r[j, i] = rho
    return np.linalg.cholesky(r)


def _normals(rng: KeyedRandom, stream: str, keys: np.ndarray, width: int, chol: np.ndarray) -> np.ndarray:
    """Correlated standard normals: one row per key, ``width`` columns."""
    z = rng.normal(stream, keys[:, None], np.arange(width)[None, :])
    return z @ chol.T


def _visit_keys(subject_keys: np.ndarray, visitnum: np.ndarray) -> np.ndarray:
    return subject_keys * 32 + visitnum


def _with_fabrication(subjects: pl.DataFrame, sid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: is the subject fabricated, and the key whose draws its values come from."""
    fabricated = subjects["fabricated"].to_numpy()[sid]
    keys = subjects["key"].to_numpy()
    donor = subjects["donor_sid"].fill_null(0).to_numpy()[sid]
    return fabricated, np.where(fabricated, keys[donor], keys[sid])


def make_labs(subjects: pl.DataFrame, visits: pl.DataFrame, inj: Injection, rng: KeyedRandom) -> pl.DataFrame:
    """One row per analyte of every laboratory visit: the ``lb`` columns plus sid and day."""
    labs = catalogue()["labs"]
    codes = [a["code"] for a in labs]
    chol = _correlation(codes, catalogue()["lab_correlations"])
    lv = visits.filter("lab")
    sid = lv["sid"].to_numpy()
    vnum = lv["VISITNUM"].to_numpy()
    day = lv["day"].to_numpy()
    site = lv["site_idx"].to_numpy()
    own_key = subjects["key"].to_numpy()[sid]
    fabricated, source_key = _with_fabrication(subjects, sid)
    female = subjects["SEX"].to_numpy()[sid] == "F"

    mean = np.array([a["mean"] for a in labs])
    sd = np.array([a["sd"] for a in labs])
    between = np.array([a["between"] for a in labs])
    f_shift = np.array([a.get("female_shift", 0.0) for a in labs])
    b = _normals(rng, "lab.subject", source_key, len(codes), chol) * sd * np.sqrt(between)
    w = _normals(rng, "lab.visit", _visit_keys(source_key, vnum), len(codes), chol) * sd * np.sqrt(1 - between)
    own = _normals(rng, "lab.fabricated", _visit_keys(own_key, vnum), len(codes), np.eye(len(codes)))
    w = np.where(fabricated[:, None], _FABRICATED_WITHIN * w + _FABRICATED_NOISE * sd * own, w)
    y = mean + f_shift * female[:, None] + b + w

    vkey = _visit_keys(own_key, vnum)
    spike_p = np.array([a["spike"][0] for a in labs])
    spike_size = np.array([a["spike"][1] for a in labs])
    direction = np.array([1.0 if a["grade"]["direction"] == "high" else -1.0 for a in labs])
    u = rng.uniform("lab.spike", vkey[:, None], np.arange(len(codes))[None, :])
    size = spike_size * (0.6 + 0.8 * rng.uniform("lab.spike_size", vkey[:, None], np.arange(len(codes))[None, :]))
    y = y + np.where((u < spike_p) & ~fabricated[:, None], direction * size * sd, 0.0)  # invented data look normal
    is_log = np.array([a["scale"] == "log" for a in labs])
    value = np.where(is_log, np.exp(y), np.maximum(y, 0.0))

    active, m = inj.active("lab_calibration_shift", site, day)
    shifted = np.array([c in inj.analytes for c in codes])
    value = np.where(active[:, None] & shifted, value * (1 + m[:, None]), value)
    for j, a in enumerate(labs):
        value[:, j] = np.round(value[:, j], a["decimals"])

    missing = catalogue()["lab_missing"]
    panel_missing = rng.uniform("lab.panel_missing", vkey) < missing["panel"]
    result_missing = rng.uniform("lab.missing", vkey[:, None], np.arange(len(codes))[None, :]) < missing["result"]
    value = np.where(panel_missing[:, None] | result_missing, np.nan, value)

    lo = np.array([a["range"][0] for a in labs])
    hi = np.array([a["range"][1] for a in labs])
    lo_f = np.array([a.get("range_female", a["range"])[0] for a in labs])
    hi_f = np.array([a.get("range_female", a["range"])[1] for a in labs])
    lln = np.where(female[:, None], lo_f, lo)
    uln = np.where(female[:, None], hi_f, hi)
    grade = np.zeros(value.shape, dtype=np.int64)
    for j, a in enumerate(labs):
        g = a["grade"]
        limit = uln[:, j] if g["direction"] == "high" else lln[:, j]
        cuts = [limit] + [c * limit if g["basis"] == "uln" else np.full(len(limit), float(c)) for c in g["cutoffs"]]
        beyond = (lambda x, c: x > c) if g["direction"] == "high" else (lambda x, c: x < c)
        grade[:, j] = sum(beyond(value[:, j], c).astype(np.int64) for c in cuts)

    n_rows = len(sid) * len(codes)
    frame = pl.DataFrame({
        "sid": np.repeat(sid, len(codes)),
        "VISITNUM": np.repeat(vnum, len(codes)).astype(np.float64),
        "day": np.repeat(day, len(codes)),
        "analyte": np.tile(np.arange(len(codes)), len(sid)).astype(np.int8),
        "LBSTRESN": value.reshape(n_rows),
        "LBSTNRLO": lln.reshape(n_rows),
        "LBSTNRHI": uln.reshape(n_rows),
        "grade": grade.reshape(n_rows),
    }, nan_to_null=True)
    units = pl.DataFrame({"analyte": np.arange(len(codes)).astype(np.int8), "LBTESTCD": codes,
                          "LBSTRESU": [a["unit"] for a in labs]})
    return frame.join(units, on="analyte", how="left").with_columns(
        LBNRIND=pl.when(pl.col("LBSTRESN").is_null()).then(None)
        .when(pl.col("LBSTRESN") < pl.col("LBSTNRLO")).then(pl.lit("LOW"))
        .when(pl.col("LBSTRESN") > pl.col("LBSTNRHI")).then(pl.lit("HIGH"))
        .otherwise(pl.lit("NORMAL")),
        LBTOXGR=pl.when(pl.col("LBSTRESN").is_null()).then(None).otherwise(pl.col("grade").cast(pl.String)),
    ).drop("analyte", "grade")


def make_vitals(subjects: pl.DataFrame, visits: pl.DataFrame, sites: pl.DataFrame, inj: Injection,
                rng: KeyedRandom) -> pl.DataFrame:
    """One row per vital sign of every visit: the ``vs`` columns plus sid and day."""
    vitals = catalogue()["vitals"]
    codes = [v["code"] for v in vitals]
    k = len(codes)
    chol = _correlation(codes, catalogue()["vital_correlations"])
    sid = visits["sid"].to_numpy()
    vnum = visits["VISITNUM"].to_numpy()
    day = visits["day"].to_numpy()
    site = visits["site_idx"].to_numpy()
    own_key = subjects["key"].to_numpy()[sid]
    fabricated, source_key = _with_fabrication(subjects, sid)
    female = subjects["SEX"].to_numpy()[sid] == "F"
    age = subjects["AGE"].to_numpy()[sid]
    asia = sites["asia"].to_numpy()[site]

    mean = np.array([v["mean"] for v in vitals], dtype=np.float64)
    between = np.array([v["between_sd"] for v in vitals])
    within = np.array([v["within_sd"] for v in vitals])
    rho = np.array([v["autocorrelation"] for v in vitals])
    level = (mean + np.array([v["age_slope"] for v in vitals]) * (age[:, None] - 57)
             + np.array([v.get("female_shift", 0.0) for v in vitals]) * female[:, None]
             + np.array([v.get("asia_shift", 0.0) for v in vitals]) * asia[:, None])
    b = _normals(rng, "vs.subject", source_key, k, chol) * between

    # AR(1) over the visit sequence, on a dense subject x visit grid, then the visits that took place
    n_visits = len(catalogue()["visits"])
    subject_source = np.where(subjects["fabricated"].to_numpy(),
                              subjects["key"].to_numpy()[subjects["donor_sid"].fill_null(0).to_numpy()],
                              subjects["key"].to_numpy())
    grid_keys = _visit_keys(subject_source[:, None], np.arange(1, n_visits + 1)[None, :])
    z = rng.normal("vs.visit", grid_keys[:, :, None], np.arange(k)[None, None, :]) @ chol.T
    for visit in range(1, n_visits):
        z[:, visit] = rho * z[:, visit - 1] + np.sqrt(1 - rho**2) * z[:, visit]
    w = z[sid, vnum - 1] * within
    del z
    own = _normals(rng, "vs.fabricated", _visit_keys(own_key, vnum), k, np.eye(k))
    w = np.where(fabricated[:, None], _FABRICATED_WITHIN * w + _FABRICATED_NOISE * within * own, w)
    value = level + b + w

    vkey = _visit_keys(own_key, vnum)
    decimals = np.array([v["decimals"] for v in vitals])
    value = np.round(value * 10.0**decimals) / 10.0**decimals
    bp = np.isin(np.array(codes), ["SYSBP", "DIABP"])
    u = rng.uniform("vs.rounding", vkey[:, None], np.arange(k)[None, :])
    rounding = sites["rounding"].to_numpy()[site]
    value = np.where(bp & (u < rounding[:, None]), np.round(value / 5) * 5, value)
    active, m = inj.active("digit_preference", site, day)
    u = rng.uniform("anomaly.digits", vkey[:, None], np.arange(k)[None, :])
    value = np.where(bp & active[:, None] & (u < m[:, None]), np.round(value / 10) * 10, value)
    missing = rng.uniform("vs.missing", vkey[:, None], np.arange(k)[None, :]) < catalogue()["vital_missing"]
    value = np.where(missing, np.nan, value)

    frame = pl.DataFrame({
        "sid": np.repeat(sid, k), "VISITNUM": np.repeat(vnum, k).astype(np.float64), "day": np.repeat(day, k),
        "test": np.tile(np.arange(k), len(sid)).astype(np.int8), "VSSTRESN": value.reshape(-1),
    }, nan_to_null=True)
    units = pl.DataFrame({"test": np.arange(k).astype(np.int8), "VSTESTCD": codes,
                          "VSSTRESU": [v["unit"] for v in vitals]})
    return frame.join(units, on="test", how="left").drop("test")
