"""Detection benchmark: how well the product finds each anomaly type of the synthetic generator.

For every anomaly type at the magnitudes of ``bench/detect.yaml``, replicate studies (seeds 1..N), each
with the anomaly injected at one site, plus the clean twin of every seed (keyed randomness: the twin
differs only at that site). For every study and site: the product's score for the type (the CSM tests
or KRIs the yaml names), the funnel-plot KRI baseline, the data inconsistency score when ``run_csm``
returns one, and every CSM test and KRI on its own. Per type, magnitude and method: the TPR at
site-level FPR 0.01 and 0.05 (thresholds from the pooled clean-site scores: non-injected sites and
clean studies), the AUC, the sensitivity at the product's flagging rule and the specificity on clean
studies. Then the published simaerep simulation and a variant with visit-dependent AE rates, against
the funnel plot. Writes ``docs/detection.md`` and ``bench/results/detect.json`` / ``detect.csv``.

    make bench-detect                                         # the full run
    python -m bench.detect --replicates 10                    # a reduced run
    python -m bench.detect --replicates 2 --types digit_preference --published 20 --out /tmp/d.md
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from scipy.special import log_ndtr
from scipy.stats import rankdata

from rbqm import stats
from rbqm.stats import bh_expr
from rbqm.csm import run_csm
from rbqm.csm._simaerep import (SubjectVisits, event_probabilities, simulate_sites, site_variation,
                                subject_visits)
from rbqm.derive import AnalysisTables, derive_tables
from rbqm.errors import RbqmError
from rbqm.kri import KriDefinition, compute_kris, load_definitions
from synthetic import ANOMALY_TYPES, AnomalySpec, SynthConfig, build_trial, tables_at

CONFIG = Path(__file__).with_name("detect.yaml")
KEYS = ["study", "site_id"]
#: KRI methods whose score is not a z-score (no normal tail p-value).
_NOT_Z = {"identity", "identity_count", "fisher"}
_SMALLEST_P = 1e-300


# --------------------------------------------------------------------------------------------- config
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Signal(_Model):
    """One site-level signal: a CSM test (``csm``, ``"*"`` for all), a KRI (``kri``) or the data
    inconsistency score (``dis``: ``calibrated`` by permutations, or its ``reference`` p-value)."""

    csm: str | None = None
    kri: str | None = None
    dis: Literal["calibrated", "reference"] | None = None
    direction: Literal["low", "high"] | None = None
    variables: tuple[str, ...] | None = None
    flag_effect_at_most: float | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Signal:
        if sum(x is not None for x in (self.csm, self.kri, self.dis)) != 1:
            raise ValueError("a signal names exactly one of csm (a test), kri (a KRI id) or dis")
        if self.csm is None and (self.direction or self.variables or self.flag_effect_at_most is not None):
            raise ValueError("direction, variables and flag_effect_at_most apply to csm signals only")
        return self

    @property
    def name(self) -> str:
        """``csm:TEST``, ``kri:ID`` or ``dis:VARIANT``, with the direction when one is set."""
        base = (f"csm:{self.csm}" if self.csm is not None else f"kri:{self.kri}" if self.kri is not None
                else f"dis:{self.dis}")
        return base + (f" ({self.direction})" if self.direction else "")


class TypeSpec(_Model):
    magnitudes: tuple[float, ...]
    moderate: float
    product: tuple[Signal, ...]
    baseline: Signal | None = None
    analytes: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> TypeSpec:
        if len(self.magnitudes) < 3 or list(self.magnitudes) != sorted(set(self.magnitudes)):
            raise ValueError(f"magnitudes must be at least 3 increasing values; got {list(self.magnitudes)}")
        if self.moderate not in self.magnitudes:
            raise ValueError(f"moderate ({self.moderate}) must be one of the magnitudes {list(self.magnitudes)}")
        if not self.product:
            raise ValueError("product must name at least one signal")
        if self.baseline is not None and self.baseline.kri is None:
            raise ValueError("baseline must be a KRI ({kri: ID}) or null")
        return self


class StudySpec(_Model):
    sites: int
    subjects: int
    countries: int
    months: int
    start: float = 0.0


class VisitDependent(_Model):
    first_visit_rate: float
    late_rate: float
    decay_visits: float
    site_visits: tuple[float, float]


class PublishedSpec(_Model):
    studies: int
    sites: int
    subjects_per_site: int
    ae_per_visit: float
    visits_mean: float
    visits_sd: float
    magnitudes: tuple[float, ...]
    threshold: float
    reference_tpr: dict[float, float]
    reference_fpr: tuple[float, float]
    visit_dependent: VisitDependent


class Targets(_Model):
    published: dict[str, float]
    beat_baseline: tuple[str, ...]
    auc_at_moderate: dict[str, float]
    specificity: float


class DisSpec(_Model):
    permutations: int = 0


class DetectConfig(_Model):
    replicates: int
    r: int
    fpr: tuple[float, ...]
    q_level: float
    kri_flag_at: Literal[1, 2] = 1
    study: StudySpec
    dis: DisSpec = DisSpec()
    types: dict[str, TypeSpec]
    published: PublishedSpec
    targets: Targets

    @model_validator(mode="after")
    def _types(self) -> DetectConfig:
        for kind, spec in self.types.items():
            if kind not in ANOMALY_TYPES:
                raise ValueError(f"unknown anomaly type {kind!r}; valid: {', '.join(ANOMALY_TYPES)}")
            low, high, meaning = ANOMALY_TYPES[kind]
            if not all(low <= m <= high for m in spec.magnitudes):
                raise ValueError(f"{kind}: magnitudes ({meaning}) must lie in [{low}, {high}]")
            if len(spec.product) > 1 and any(s.kri and _is_identity(s.kri) for s in spec.product):
                raise ValueError(f"{kind}: an identity KRI has no p-value, so it cannot be combined with "
                                 "other signals; list it alone")
        return self


def _is_identity(kri_id: str) -> bool:
    return _definitions()[kri_id].method in _NOT_Z if kri_id in _definitions() else False


@cache
def _definitions() -> dict[str, KriDefinition]:
    return {d.id: d for d in load_definitions()}


def load_config(path: Path = CONFIG) -> DetectConfig:
    """The benchmark design of ``path`` (default ``bench/detect.yaml``).

    Raises
    ------
    RbqmError
        Naming the file and the key of the first mistake.
    """
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return DetectConfig.model_validate(raw)
    except OSError as exc:
        raise RbqmError(f"{path}: cannot read the benchmark design ({exc.strerror})") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "top level"
        raise RbqmError(f"{path}: {where}: {err['msg']}") from exc


# ------------------------------------------------------------------------------------ one study (worker)
@dataclass(frozen=True)
class Job:
    """One unit of work: a synthetic study (``anomaly`` "clean" for none) or the published design."""

    study: int
    anomaly: str
    magnitude: float | None
    seed: int
    variant: str = "synthetic"


def study_findings(config: DetectConfig, job: Job) -> dict[str, pl.DataFrame]:
    """Generate one synthetic study and return its ``sites`` (``injected``, ``eligible``), CSM rows
    (``csm``, with the ``sign`` of each finding), site KRI rows (``kri``) and ``dis`` rows."""
    spec: tuple[AnomalySpec, ...] = ()
    if job.anomaly != "clean":
        analytes = config.types[job.anomaly].analytes
        spec = (AnomalySpec(type=job.anomaly, magnitude=job.magnitude, sites=1, start=config.study.start,
                            **({"analytes": analytes} if analytes else {})),)
    s = config.study
    cfg = SynthConfig(sites=s.sites, subjects=s.subjects, countries=s.countries, months=s.months, seed=job.seed,
                      anomalies=spec)
    records = build_trial(cfg)
    lazy = tables_at(records, cfg.end_day)
    analysis = derive_tables(dict(zip(lazy, pl.collect_all(lazy.values()))), as_of=cfg.end)
    sites = study_sites(analysis, injected=records.truth["SITEID"].to_list())
    if not sites.filter("injected")["eligible"].all():
        raise RbqmError(f"{job}: the injected site is not among the sites with the median enrolment")
    csm = run_csm(analysis, study_id=str(job.study), cut_date=cfg.end, seed=job.seed, r=config.r)
    kri = compute_kris(analysis, list(_definitions().values()), study_id=str(job.study), cut_date=cfg.end)
    kri = kri.results.filter(pl.col("level") == "site").select(
        "kri_id", "score", "flag", "method", "metric", site_id="group_id")
    dis = dis_rows(analysis, csm, permutations=config.dis.permutations, seed=job.seed)
    return {name: frame.with_columns(study=pl.lit(job.study))
            for name, frame in (("sites", sites), ("csm", signed(csm, analysis, r=config.r, seed=job.seed)), ("kri", kri), ("dis", dis))}


def study_sites(analysis: AnalysisTables, *, injected: list[str]) -> pl.DataFrame:
    """Every site with an enrolled subject: ``subjects``, ``injected`` and ``eligible`` (at least the
    median enrolment over all sites: the sites the generator picks an anomaly's site from)."""
    enrolled = (analysis["subjects"].filter(pl.col("enrolled").fill_null(False))
                .group_by(site_id=pl.col("SITEID").cast(pl.String)).agg(subjects=pl.len()))
    return (analysis["sites"].select(site_id=pl.col("SITEID").cast(pl.String)).unique()
            .join(enrolled, on="site_id", how="left").with_columns(pl.col("subjects").fill_null(0))
            .with_columns(eligible=pl.col("subjects") >= pl.max_horizontal(pl.col("subjects").median(), 1))
            .filter(pl.col("subjects") > 0).sort("site_id").collect()
            .with_columns(injected=pl.col("site_id").is_in(injected)))


#: Tests whose two-sided p-value hides its direction, with the ``serious`` option of the simulation
#: that gives it (simaerep's event_prob compares BH q-values of the two directions, so its sign can
#: disagree with the side of the p-value).
SIMULATED_DIRECTIONS = {"ae_under_reporting": False, "sae_under_reporting": True}


def signed(csm: pl.DataFrame, analysis: AnalysisTables, *, r: int, seed: int) -> pl.DataFrame:
    """The CSM rows the benchmark reads, with ``sign``, the direction of each finding.

    For the AE tests, the sign of observed minus expected AEs (the mean of the test's own replicates:
    same ``r`` and ``seed`` as ``run_csm``). For the other tests, the sign of the effect or, when it is
    0, of the statistic against the median over the study's sites.
    """
    median = pl.col("statistic").median().over("test", "variable")
    sign = (pl.when(pl.col("effect") != 0).then(pl.col("effect").sign())
            .otherwise((pl.col("statistic") - median).sign()))
    parts = [pl.DataFrame(schema={"site_id": pl.String, "test": pl.String, "simulated_sign": pl.Float64})]
    for test, serious in SIMULATED_DIRECTIONS.items():
        if csm.filter(pl.col("test") == test).height:
            data = subject_visits(analysis, serious=serious)
            totals = simulate_sites(data, r=r, seed=seed)
            observed = np.bincount(data.site, weights=data.cumulative[np.arange(len(data.visits)), data.visits - 1],
                                   minlength=len(data.site_id))
            parts.append(pl.DataFrame({"site_id": data.site_id, "test": test,
                                       "simulated_sign": np.sign(observed - totals.mean(axis=1))}))
    return (csm.join(pl.concat(parts), on=["site_id", "test"], how="left")
            .select("site_id", "test", "variable", "p_value", "q_value", "effect",
                    sign=pl.coalesce("simulated_sign", sign).fill_null(0.0)))


def dis_rows(analysis: AnalysisTables, csm: pl.DataFrame, *, permutations: int, seed: int) -> pl.DataFrame:
    """The data inconsistency score per site: ``reference`` (the combined p-values' tail probability
    were they independent, no permutations: cheap, and rank-equivalent within a study) and, with
    ``permutations`` > 0, ``calibrated`` (``rbqm.csm.data_inconsistency``, about ``permutations``
    times the battery's time). ``logp`` is -log10 of the p-value; ``q_value`` its BH adjustment
    (calibrated only). No rows when this release of ``rbqm.csm`` has no data inconsistency score."""
    empty = pl.DataFrame(schema={"site_id": pl.String, "variant": pl.String, "logp": pl.Float64,
                                 "q_value": pl.Float64})
    try:
        from rbqm.csm._inconsistency import data_inconsistency, dis_statistic
    except ImportError:
        return empty
    reference = dis_statistic(csm).select(
        "site_id", variant=pl.lit("reference"), logp=-pl.col("reference_log_p") / np.log(10),
        q_value=pl.lit(None, pl.Float64))
    parts = [empty, reference.filter(pl.col("logp").is_not_null())]
    if permutations:
        calibrated = data_inconsistency(analysis, csm, permutations=permutations, seed=seed)
        parts.append(calibrated.filter(pl.col("p_value").is_not_null()).select(
            "site_id", variant=pl.lit("calibrated"), logp=pl.col("dis"), q_value=bh_expr("p_value")))
    return pl.concat(parts)


def published_study(rng: np.random.Generator, spec: PublishedSpec, under: float, *,
                    visit_dependent: bool) -> SubjectVisits:
    """One study of the published simaerep simulation (site 0 reports ``1 - under`` of its AEs).

    With ``visit_dependent``, the AE rate falls with the visit and each site has its own mean number
    of visits (``spec.visit_dependent``); otherwise a constant ``ae_per_visit`` and ``visits_mean``.
    """
    n = spec.sites * spec.subjects_per_site
    site = np.repeat(np.arange(spec.sites), spec.subjects_per_site)
    vd = spec.visit_dependent
    centre = rng.uniform(*vd.site_visits, spec.sites)[site] if visit_dependent else spec.visits_mean
    visits = np.maximum(1, np.round(rng.normal(centre, spec.visits_sd, n))).astype(np.int64)
    k = np.arange(visits.max())
    rate = (vd.late_rate + (vd.first_visit_rate - vd.late_rate) * np.exp(-k / vd.decay_visits)
            if visit_dependent else np.full(k.size, spec.ae_per_visit))
    reported = np.where(site == 0, 1.0 - under, 1.0)
    per_visit = rng.poisson(rate[None, :] * reported[:, None]) * (k[None, :] < visits[:, None])
    return SubjectVisits([str(i) for i in range(spec.sites)], site, visits, per_visit.cumsum(axis=1))


def published_sites(spec: PublishedSpec, *, r: int, under: float, visit_dependent: bool,
                    seed: int) -> pl.DataFrame:
    """Per simulated study and site: simaerep as published (``event``, ``p_under``), with the product's
    allowance for between-site variation (``event_tau``, ``p_under_tau``), and the funnel-plot z of AEs
    per visit (``funnel_z``, gsm's over-dispersed normal approximation)."""
    rng = np.random.default_rng(seed)
    parts = []
    for study in range(spec.studies):
        data = published_study(rng, spec, under, visit_dependent=visit_dependent)
        totals = simulate_sites(data, r=r, seed=study)
        last = data.cumulative[np.arange(len(data.visits)), data.visits - 1]
        observed = np.bincount(data.site, weights=last, minlength=spec.sites)
        visits = np.bincount(data.site, weights=data.visits, minlength=spec.sites)
        plain = event_probabilities(observed, totals, seed=study)
        tau = event_probabilities(observed, totals, tau=site_variation(observed, totals), seed=study)
        funnel = stats.normal_approx(pl.DataFrame({"group_id": data.site_id, "numerator": observed,
                                                   "denominator": visits}), kind="rate")
        parts.append(pl.DataFrame({
            "study": study, "site_id": data.site_id, "injected": np.arange(spec.sites) == 0,
            "event": plain.event_prob, "p_under": plain.p_under,
            "event_tau": tau.event_prob, "p_under_tau": tau.p_under, "funnel_z": funnel["score"],
        }))
    return pl.concat(parts)


def _work(task: tuple[DetectConfig, Job]) -> tuple[Job, dict[str, pl.DataFrame]]:
    config, job = task
    if job.variant == "synthetic":
        return job, study_findings(config, job)
    visit_dependent = job.variant == "visit-dependent"
    sites = published_sites(config.published, r=config.r, under=job.magnitude or 0.0,
                            visit_dependent=visit_dependent, seed=job.seed)
    return job, {"published": sites}


# --------------------------------------------------------------------------------------------- metrics
def _scores(values: Iterable[float]) -> np.ndarray:
    """Scores as floats; a missing score (site not scored) ranks lowest."""
    out = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    return np.where(np.isnan(out), -np.inf, out)


def auc(positive: Sequence[float] | np.ndarray, negative: Sequence[float] | np.ndarray) -> float:
    """The probability that a positive site outscores a negative one, ties counting one half
    (the Mann-Whitney AUC); missing scores rank lowest. NaN when either set is empty.

    Examples
    --------
    >>> auc([3.0, 1.0], [2.0, 0.0])
    0.75
    """
    pos, neg = _scores(positive), _scores(negative)
    if not pos.size or not neg.size:
        return float("nan")
    ranks = rankdata(np.r_[pos, neg])
    return float((ranks[:pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def threshold_at_fpr(negative: Sequence[float] | np.ndarray, fpr: float) -> float:
    """The smallest threshold t (among the negative scores) with share(negative > t) <= ``fpr``: the
    (k+1)-th largest negative score, k = floor(fpr x n). Sites flag when their score exceeds t."""
    neg = np.sort(_scores(negative))[::-1]
    k = int(np.floor(fpr * neg.size + 1e-9))
    return float(neg[k]) if k < neg.size else float("-inf")


def tpr_at_fpr(positive: Sequence[float] | np.ndarray, negative: Sequence[float] | np.ndarray,
               fpr: float) -> tuple[float, float]:
    """(TPR, achieved FPR) at the threshold of :func:`threshold_at_fpr` (ties make it conservative).

    Examples
    --------
    >>> tpr_at_fpr([5.0, 1.5], [0.0, 1.0, 2.0, 3.0], 0.25)
    (0.5, 0.25)
    """
    t = threshold_at_fpr(negative, fpr)
    pos, neg = _scores(positive), _scores(negative)
    return float(np.mean(pos > t)) if pos.size else float("nan"), float(np.mean(neg > t))


def separation(positive: np.ndarray, negative: np.ndarray, fprs: Sequence[float]) -> dict[str, float]:
    """AUC and TPR (with the achieved FPR) at each of ``fprs``."""
    out = {"auc": auc(positive, negative), "positives": int(positive.size), "negatives": int(negative.size)}
    for fpr in fprs:
        out[f"tpr@{fpr:g}"], out[f"fpr@{fpr:g}"] = tpr_at_fpr(positive, negative, fpr)
    return out


# ----------------------------------------------------------------------------------- signals per site
def signal_scores(findings: dict[str, pl.DataFrame], signal: Signal, *, q_level: float,
                  kri_flag_at: int = 1) -> pl.DataFrame:
    """Per study and site: ``score`` (higher = more suspicious), ``logp`` (-log10 p, null for identity
    KRIs) and ``flag`` (the flagging rule) of one signal. Sites the signal does not score are absent."""
    if signal.csm is not None:
        return _csm_scores(findings["csm"], signal, q_level=q_level)
    if signal.dis is not None:
        return (findings["dis"].filter(pl.col("variant") == signal.dis)
                .select(*KEYS, "logp", score="logp", flag=(pl.col("q_value") < q_level).fill_null(False)))
    return _kri_scores(findings["kri"], signal.kri, flag_at=kri_flag_at)


def _csm_scores(csm: pl.DataFrame, signal: Signal, *, q_level: float) -> pl.DataFrame:
    rows = csm if signal.csm == "*" else csm.filter(pl.col("test") == signal.csm)
    if signal.variables:
        rows = rows.filter(pl.col("variable").is_in(signal.variables))
    p, match = pl.col("p_value"), pl.lit(True)
    if signal.direction:  # two-sided p -> one-sided in the signal's direction
        match = pl.col("sign") == (-1.0 if signal.direction == "low" else 1.0)
        p = pl.when(match).then(p / 2).otherwise(1 - p / 2)
    flag = (pl.col("effect") <= signal.flag_effect_at_most if signal.flag_effect_at_most is not None
            else (pl.col("q_value") < q_level) & match)
    return (rows.with_columns(logp=-p.clip(_SMALLEST_P, 1.0).log10(), flag=flag.fill_null(False))
            .group_by(KEYS).agg(pl.col("logp").max(), pl.col("flag").any())
            .with_columns(score=pl.col("logp")))


def _kri_scores(kri: pl.DataFrame, kri_id: str, *, flag_at: int) -> pl.DataFrame:
    d = _definitions()[kri_id]
    sign = {"low": -1.0, "high": 1.0, "both": 1.0}[d.concern]
    rows = kri.filter((pl.col("kri_id") == kri_id) & pl.col("score").is_not_null())
    value = pl.col("metric") if d.method in {"identity", "identity_count"} else pl.col("score")
    if d.method == "fisher":  # score is the p-value
        value = -pl.col("score").clip(_SMALLEST_P, 1.0).log10()
    z = value.abs() if d.concern == "both" else sign * value
    flag = (pl.col("flag").abs() if d.concern == "both" else sign * pl.col("flag").cast(pl.Float64)) >= flag_at
    out = rows.select(*KEYS, score=z, flag=flag.fill_null(False))
    if d.method in _NOT_Z:
        return out.with_columns(logp=pl.lit(None, pl.Float64))
    tails = 2.0 if d.concern == "both" else 1.0  # normal tail p of the z-score in the direction of concern
    logp = -(log_ndtr(-out["score"].to_numpy()) + np.log(tails)) / np.log(10)
    return out.with_columns(logp=pl.Series(np.maximum(logp, 0.0)))


def method_scores(findings: dict[str, pl.DataFrame], signals: Sequence[Signal], *, q_level: float,
                  kri_flag_at: int = 1) -> pl.DataFrame:
    """A method's score per study and site: the signal's own score when there is one signal, else the
    largest -log10 p over its signals; flagged when any signal flags."""
    parts = [signal_scores(findings, s, q_level=q_level, kri_flag_at=kri_flag_at).select(*KEYS, "score", "logp", "flag")
             for s in signals]
    combined = pl.concat(parts).group_by(KEYS).agg(
        score=pl.col("score").max() if len(parts) == 1 else pl.col("logp").max(), flag=pl.col("flag").any())
    return findings["sites"].join(combined, on=KEYS, how="left").with_columns(pl.col("flag").fill_null(False))


def available(findings: dict[str, pl.DataFrame], signal: Signal) -> bool:
    """Whether the studies hold the signal's test or KRI (a test another release may add)."""
    if signal.csm is not None:
        return signal.csm == "*" or findings["csm"].filter(pl.col("test") == signal.csm).height > 0
    if signal.dis is not None:
        return findings["dis"].filter(pl.col("variant") == signal.dis).height > 0
    return signal.kri in _definitions()


# ------------------------------------------------------------------------------------------ evaluation
def _arrays(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Scores of the injected sites and of the other sites that could have been injected."""
    if "eligible" in frame.columns:
        frame = frame.filter("eligible")
    score = frame["score"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
    injected = frame["injected"].to_numpy()
    return score[injected], score[~injected]


def evaluate(findings: dict[str, pl.DataFrame], jobs: pl.DataFrame, config: DetectConfig,
             types: Sequence[str]) -> list[dict[str, Any]]:
    """Metric rows for every type, magnitude and method (``product``, ``baseline``, ``dis`` and
    ``signal`` rows for every CSM test and KRI on its own)."""
    rows = []
    auto = [Signal(csm=t) for t in sorted(findings["csm"]["test"].unique())]
    auto += [Signal(kri=k) for k in sorted(findings["kri"]["kri_id"].unique())]
    for kind in types:
        spec = config.types[kind]
        methods: dict[str, tuple[str, tuple[Signal, ...]]] = {}
        product = tuple(s for s in spec.product if available(findings, s))
        if product:
            methods["product"] = (" + ".join(s.name for s in product), product)
        if spec.baseline is not None:
            methods["baseline"] = (spec.baseline.name, (spec.baseline,))
        for variant, method in (("calibrated", "dis"), ("reference", "dis_reference")):
            if available(findings, Signal(dis=variant)):
                methods[method] = (f"dis:{variant}", (Signal(dis=variant),))
        methods |= {f"signal {s.name}": (s.name, (s,)) for s in auto}
        for method, (label, signals) in methods.items():
            scored = method_scores(findings, signals, q_level=config.q_level,
                                   kri_flag_at=config.kri_flag_at).join(jobs, on="study")
            clean = scored.filter(pl.col("anomaly") == "clean")
            spec_site = 1 - clean["flag"].mean() if clean.height else float("nan")
            spec_study = (clean.group_by("study").agg(pl.col("flag").any())["flag"].not_().mean()
                          if clean.height else float("nan"))
            for magnitude in spec.magnitudes:
                cell = scored.filter(((pl.col("anomaly") == kind) & (pl.col("magnitude") == magnitude))
                                     | (pl.col("anomaly") == "clean"))
                injected_studies = cell.filter(pl.col("anomaly") == kind)
                pos, neg = _arrays(cell)
                rows.append({
                    "type": kind, "magnitude": magnitude, "moderate": magnitude == spec.moderate,
                    "method": method.split(" ")[0], "signal": label,
                    **separation(pos, neg, config.fpr),
                    "rule_tpr": _mean(injected_studies.filter("injected")["flag"]),
                    "rule_fpr": _mean(injected_studies.filter(~pl.col("injected"))["flag"]),
                    "specificity": spec_site, "clean_studies_unflagged": spec_study,
                })
    return rows


def _mean(series: pl.Series) -> float:
    return float(series.cast(pl.Float64).mean()) if series.len() else float("nan")


def evaluate_published(frames: dict[tuple[str, float], pl.DataFrame], config: DetectConfig) -> list[dict[str, Any]]:
    """Metric rows of the published simaerep design and its visit-dependent variant."""
    spec, rows = config.published, []
    floor = 0.5 / config.r  # p_under 0 (every replicate above the site): half a replicate
    for (variant, magnitude), frame in sorted(frames.items()):
        methods = {
            "simaerep (published)": (-pl.col("p_under").clip(floor, 1.0).log10(), pl.col("event")),
            "simaerep (product default)": (-pl.col("p_under_tau").clip(floor, 1.0).log10(), pl.col("event_tau")),
            "funnel plot (AEs per visit)": (-pl.col("funnel_z"), None),
        }
        for method, (score, event) in methods.items():
            scored = frame.with_columns(score=score)
            pos, neg = _arrays(scored)
            row = {"variant": variant, "magnitude": magnitude, "method": method,
                   **separation(pos, neg, config.fpr), "reference_tpr": spec.reference_tpr.get(magnitude)}
            if event is not None:
                flagged = scored.with_columns(flag=event <= -spec.threshold)
                row |= {"rule_tpr": _mean(flagged.filter("injected")["flag"]),
                        "rule_fpr": _mean(flagged.filter(~pl.col("injected"))["flag"])}
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------- runs
def make_jobs(config: DetectConfig, *, types: Sequence[str], replicates: int,
              published: int) -> list[Job]:
    """Clean studies (seeds 1..replicates), injected studies and, unless ``published`` is 0, one job per
    variant and magnitude of the published design.

    The k-th replicate of the i-th type of the design (in file order) has seed 1000 (i + 1) + k at
    every magnitude: the magnitudes of a type are paired (same trial, same site, only the magnitude
    differs), the types and the clean studies are independent trials."""
    order = list(config.types)
    jobs = [Job(0, "clean", None, seed) for seed in range(1, replicates + 1)]
    jobs += [Job(0, kind, m, 1000 * (order.index(kind) + 1) + k) for kind in types
             for m in config.types[kind].magnitudes for k in range(1, replicates + 1)]
    if published:
        jobs += [Job(0, "", m, 1000 * v + round(100 * m), variant)
                 for v, variant in enumerate(("published", "visit-dependent"))
                 for m in config.published.magnitudes]
    return [Job(i, j.anomaly, j.magnitude, j.seed, j.variant) for i, j in enumerate(jobs)]


def run_jobs(config: DetectConfig, jobs: list[Job], *, workers: int,
             progress: bool = True) -> list[tuple[Job, dict[str, pl.DataFrame]]]:
    """Run the jobs on ``workers`` processes (in this process when 1), largest first."""
    tasks = [(config, j) for j in sorted(jobs, key=lambda j: j.variant == "synthetic")]
    done, started, out = 0, time.perf_counter(), []
    if workers <= 1:
        results: Iterable = map(_work, tasks)
    else:
        os.environ.setdefault("POLARS_MAX_THREADS", "1")  # one thread per worker: workers = cores
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_work, tasks, chunksize=1)
    try:
        for result in results:
            out.append(result)
            done += 1
            if progress and (done % max(1, len(tasks) // 20) == 0 or done == len(tasks)):
                print(f"  {done}/{len(tasks)} studies, {time.perf_counter() - started:.0f} s", file=sys.stderr,
                      flush=True)
    finally:
        if workers > 1:
            pool.close()
            pool.join()
    return out


def _stack(results: list[tuple[Job, dict[str, pl.DataFrame]]], part: str) -> pl.DataFrame:
    frames = [r[part] for job, r in results if part in r]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def run(config: DetectConfig, *, types: Sequence[str], replicates: int, published: int,
        workers: int) -> dict[str, Any]:
    """Run the benchmark and return its report: metadata, ``metrics`` and ``published`` rows."""
    if published:
        config = config.model_copy(update={"published": config.published.model_copy(update={"studies": published})})
    jobs = make_jobs(config, types=types, replicates=replicates, published=published)
    started = time.perf_counter()
    results = run_jobs(config, jobs, workers=workers)
    seconds = time.perf_counter() - started
    synthetic = [r for r in results if r[0].variant == "synthetic"]
    findings = {part: _stack(synthetic, part) for part in ("sites", "csm", "kri", "dis")}
    job_table = pl.DataFrame([{"study": j.study, "anomaly": j.anomaly, "magnitude": j.magnitude} for j, _ in synthetic],
                             schema={"study": pl.Int32, "anomaly": pl.String, "magnitude": pl.Float64})
    findings = {k: v.with_columns(pl.col("study").cast(pl.Int32)) for k, v in findings.items()}
    published_frames = {(j.variant, j.magnitude): r["published"] for j, r in results if j.variant != "synthetic"}
    return {
        "meta": _meta(config, types=types, replicates=replicates, workers=workers, seconds=seconds,
                      studies=len(synthetic), published=published),
        "metrics": evaluate(findings, job_table, config, types),
        "published": evaluate_published(published_frames, config),
    }


def _meta(config: DetectConfig, **extra: Any) -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], check=False, capture_output=True, text=True,
                              cwd=Path(__file__).parent)
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    commit = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "config": config.model_dump(mode="json"), **extra}


# ---------------------------------------------------------------------------------------------- report
def _f(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def _get(metrics: list[dict], **match: Any) -> dict | None:
    return next((m for m in metrics if all(m.get(k) == v for k, v in match.items())), None)


def targets(report: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """Each target of the config's ``targets``: (what, met or None when not measured, the figures)."""
    config = DetectConfig.model_validate(report["meta"]["config"])
    t, metrics, published = config.targets, report["metrics"], report["published"]
    out: list[tuple[str, bool | None, str]] = []
    p = _get(published, variant="published", magnitude=t.published["magnitude"], method="simaerep (published)")
    if p:
        ok = p["rule_tpr"] >= t.published["tpr"] and p["rule_fpr"] <= t.published["fpr"]
        out.append((f"simaerep published design at {t.published['magnitude']:.0%} under-reporting: TPR >= "
                    f"{t.published['tpr']} with FPR <= {t.published['fpr']}", ok,
                    f"TPR {p['rule_tpr']:.3f}, FPR {p['rule_fpr']:.4f}"))
    key = f"tpr@{config.fpr[0]:g}"
    for kind in t.beat_baseline:
        pairs = _comparisons(kind, config, metrics, published)
        short = [f"{where}: TPR {a[key]:.2f} vs {b[key]:.2f}, AUC {a['auc']:.2f} vs {b['auc']:.2f}"
                 for where, a, b in pairs if not _at_least(a, b, key)]
        if pairs:
            out.append((f"{kind}: product at least as good as the funnel plot (TPR at FPR {config.fpr[0]:g} and "
                        "AUC, to two decimals) at every magnitude"
                        + (", synthetic and visit-dependent simulation" if kind == "ae_under_reporting" else ""),
                        not short,
                        "; ".join(short) or f"{len(pairs)} comparisons, all met"))
    for kind, level in t.auc_at_moderate.items():
        m = _get(metrics, type=kind, moderate=True, method="product")
        if m:
            out.append((f"{kind}: AUC >= {level} at the moderate magnitude ({m['magnitude']:g})",
                        m["auc"] >= level, f"AUC {m['auc']:.3f}"))
    specs = {m["type"]: m["specificity"] for m in metrics if m["method"] == "product"}
    if specs:
        low = {k: v for k, v in specs.items() if not v >= t.specificity}
        out.append((f"specificity >= {t.specificity} on clean studies (product's flagging rule, every type)",
                    not low, ", ".join(f"{k} {v:.3f}" for k, v in low.items())
                    or f"lowest {min(specs.values()):.3f}"))
    return out


def _at_least(a: dict, b: dict, key: str) -> bool:
    return round(a[key], 2) >= round(b[key], 2) and round(a["auc"], 2) >= round(b["auc"], 2)


def _comparisons(kind: str, config: DetectConfig, metrics: list[dict],
                 published: list[dict]) -> list[tuple[str, dict, dict]]:
    """(where, product row, baseline row) at every magnitude of the synthetic studies and, for AE
    under-reporting, of the simulation with visit-dependent AE rates (simaerep with the product's
    default vs the funnel plot). Not the published simulation: with a constant AE rate and equal
    follow-up, AEs per visit is all there is to know and the funnel plot is the matching model."""
    pairs = [(f"synthetic {m:g}", _get(metrics, type=kind, magnitude=m, method="product"),
              _get(metrics, type=kind, magnitude=m, method="baseline")) for m in config.types[kind].magnitudes]
    if kind == "ae_under_reporting":
        pairs += [(f"visit-dependent {m:g}",
                   _get(published, variant="visit-dependent", magnitude=m, method="simaerep (product default)"),
                   _get(published, variant="visit-dependent", magnitude=m, method="funnel plot (AEs per visit)"))
                  for m in config.published.magnitudes]
    return [(where, a, b) for where, a, b in pairs if a and b]


def render(report: dict[str, Any]) -> str:
    """docs/detection.md from a report."""
    meta, metrics, published = report["meta"], report["metrics"], report["published"]
    config = DetectConfig.model_validate(meta["config"])
    fprs = [f"{f:g}" for f in config.fpr]
    s = config.study
    lines = [
        "# Detection benchmark",
        "",
        "<!-- Generated by `make bench-detect` (python -m bench.detect); edit bench/detect.py or "
        "bench/detect.yaml, not this file. -->",
        "",
        f"Run {meta['date']} at commit {meta['commit']}: {meta['replicates']} replicate studies per anomaly type "
        f"and magnitude plus {meta['replicates']} clean studies ({meta['studies']} synthetic studies), "
        f"{config.published.studies} simulated studies per magnitude of the published simaerep design; "
        f"{meta['seconds'] / 60:.1f} minutes on {meta['workers']} worker(s). Raw figures: "
        "`bench/results/detect.json` and `detect.csv`; the design: [`bench/detect.yaml`](../bench/detect.yaml).",
        "",
        "## Design",
        "",
        f"- **Studies.** Each replicate is a synthetic trial (`SynthConfig(sites={s.sites}, subjects={s.subjects}, "
        f"countries={s.countries}, months={s.months})`) with one anomaly injected at one site (chosen by the "
        f"seed among the sites with at least the median enrolment) "
        f"{'from the study start' if s.start == 0 else f'from {s.start:.0%} into the study period'}, "
        "analysed at the final data cut. Replicate k of the i-th type has seed 1000 i + k at every magnitude, "
        "so a type's magnitudes are paired (same trial and site, keyed randomness: only the anomaly "
        f"differs); the clean studies have seeds 1..{meta['replicates']}.",
        "- **Scores per site.** *Product*: the method the product uses for that problem (the yaml names it): "
        "for a CSM test, -log10 of the site's smallest p-value over the test's variables (one-sided in the "
        "direction of concern where one is set); for a KRI, its z-score in its direction of concern (the "
        "metric for KRIs with fixed limits); several signals combine by the largest -log10 p. *Baseline*: "
        "the gsm funnel-plot KRI most related to the problem, its z-score in the direction of concern "
        "(n/a when no KRI relates). *dis*: the data inconsistency score (every CSM p-value of the site "
        "combined; `rbqm.csm.data_inconsistency`), calibrated by permutations when the design asks for "
        "them, else its reference p-value, which ranks sites within a study the same way.",
        f"- **TPR at FPR {' and '.join(fprs)}.** The threshold is set on the pooled scores of the sites "
        "without the anomaly that could have been chosen for it (at least the median enrolment of their "
        "study: the other sites of the injected studies and the clean studies' sites) so that at most that "
        "share of them exceed it; the TPR is the share of injected sites above it. **AUC**: the probability "
        "that the injected site outscores such a site (ties count one half). Smaller sites are left out of "
        "these two: too few data for any method, they would flatter every method. Sites a method does not "
        "score rank lowest.",
        f"- **Flagged** is the share of injected sites the product flags with its own rule (CSM: BH q < "
        f"{config.q_level:g}, or event_prob <= -0.95 for the AE tests; KRIs: "
        f"{'amber or red' if config.kri_flag_at == 1 else 'red'} in the direction of concern, which "
        "opens a signal). **Specificity** is the share of the clean studies' sites (every site with a "
        "subject) it does not flag.",
        "",
        "How to read: a method that ranks the injected site first in every study has AUC 1 and TPR 1. "
        "AUC 0.5 is chance. A TPR at FPR 0.01 near 1 means the site would be found among the 1% most "
        "suspicious sites. `*` marks the moderate magnitude, where the targets are judged.",
        "",
        "## Targets",
        "",
    ]
    for what, ok, figures in targets(report):
        mark = "not measured" if ok is None else ("met" if ok else "**not met**")
        lines.append(f"- {what}: {mark} ({figures})")
    lines += ["", "## Per anomaly type and magnitude", ""]
    header = ["type", "magnitude", "product", *(f"TPR@{f}" for f in fprs), "AUC", "flagged",
              "baseline", *(f"TPR@{f}" for f in fprs), "AUC"]
    dis = next((d for d in ("dis", "dis_reference") if any(m["method"] == d for m in metrics)), None)
    if dis:
        header += ["dis " + f"TPR@{fprs[0]}", "dis AUC"]
    rows = []
    for kind, spec in config.types.items():
        for magnitude in spec.magnitudes:
            a = _get(metrics, type=kind, magnitude=magnitude, method="product")
            if a is None and _get(metrics, type=kind) is None:
                continue
            b = _get(metrics, type=kind, magnitude=magnitude, method="baseline")
            row = [kind, f"{magnitude:g}" + (" *" if magnitude == spec.moderate else ""),
                   a["signal"] if a else "n/a", *(_f(a and a[f"tpr@{f}"]) for f in fprs), _f(a and a["auc"]),
                   _f(a and a["rule_tpr"]), b["signal"] if b else "n/a",
                   *(_f(b and b[f"tpr@{f}"]) for f in fprs), _f(b and b["auc"])]
            if dis:
                d = _get(metrics, type=kind, magnitude=magnitude, method=dis)
                row += [_f(d and d[f"tpr@{fprs[0]}"]), _f(d and d["auc"])]
            rows.append(row)
    lines += _table(header, rows)
    lines += ["## Specificity on clean studies", "",
              f"Share of the {meta['replicates']} clean studies' sites that the method does not flag, and share of "
              "clean studies in which it flags no site at all.", ""]
    rows = []
    for kind in config.types:
        a = _get(metrics, type=kind, method="product")
        b = _get(metrics, type=kind, method="baseline")
        if a is None and b is None:
            continue
        rows.append([kind, _f(a and a["specificity"], 3), _f(a and a["clean_studies_unflagged"]),
                     _f(b and b["specificity"], 3), _f(b and b["clean_studies_unflagged"])])
    lines += _table(["type", "product: sites", "product: studies", "baseline: sites", "baseline: studies"], rows)
    lines += _published_section(published, config)
    lines += _signals_section(metrics, config)
    return "\n".join(lines).rstrip() + "\n"


def _published_section(published: list[dict], config: DetectConfig) -> list[str]:
    if not published:
        return []
    p = config.published
    vd = p.visit_dependent
    lines = [
        "## simaerep's published design, and visit-dependent AE rates", "",
        f"{p.studies} simulated studies per magnitude: {p.sites} sites x {p.subjects_per_site} subjects, "
        f"Poisson {p.ae_per_visit:g} AEs per visit, {p.visits_mean:g} +- {p.visits_sd:g} visits, site 0 "
        f"under-reporting; r = {config.r}. *Flagged* is simaerep's rule, event_prob <= -{p.threshold:g} after BH "
        f"(published TPR {', '.join(f'{v:g}' for v in p.reference_tpr.values())} at "
        f"{', '.join(f'{m:.0%}' for m in p.reference_tpr)}; FPR {p.reference_fpr[0]:g}-{p.reference_fpr[1]:g}). "
        "*Product default* adds the allowance for natural between-site variation (docs/csm.md). The funnel plot "
        "scores AEs per visit with gsm's over-dispersed normal approximation (low is the concern).",
        "",
        f"The visit-dependent variant: the AE rate at visit k is {vd.late_rate:g} + "
        f"{vd.first_visit_rate - vd.late_rate:g} exp(-(k-1)/{vd.decay_visits:g}) and each site's subjects have "
        f"{vd.site_visits[0]:g} to {vd.site_visits[1]:g} visits on average (uniform by site), so AEs per visit "
        "differ between sites with their follow-up; simaerep compares subjects at the same visit. "
        "This is the comparison with the funnel plot that matters: in the published design every subject "
        "has the same AE rate and follow-up, AEs per visit says everything and the funnel plot is the "
        "matching model, so simaerep can at best equal it there.",
        "",
    ]
    fprs = [f"{f:g}" for f in config.fpr]
    rows = []
    for m in published:
        rows.append([m["variant"], f"{m['magnitude']:.0%}", m["method"], _f(m.get("rule_tpr"), 3),
                     _f(m.get("rule_fpr"), 4), _f(m["reference_tpr"] if m["variant"] == "published"
                                                  and m["method"] == "simaerep (published)" else None, 3),
                     *(_f(m[f"tpr@{f}"]) for f in fprs), _f(m["auc"], 3)])
    return lines + _table(["variant", "under-reporting", "method", "flagged (TPR)", "FPR", "published TPR",
                           *(f"TPR@{f}" for f in fprs), "AUC"], rows)


def _signals_section(metrics: list[dict], config: DetectConfig, top: int = 3) -> list[str]:
    lines = ["## Every test and KRI on its own, at the moderate magnitude", "",
             f"The {top} single signals with the highest AUC for each type (every CSM test `run_csm` returns "
             "and every KRI of the library, each scored alone), to see which check finds which problem; "
             "all signals at all magnitudes are in `bench/results/detect.csv`.", ""]
    rows = []
    for kind in config.types:
        ranked = sorted((m for m in metrics if m["type"] == kind and m["moderate"] and m["method"] == "signal"),
                        key=lambda m: -np.nan_to_num(m["auc"], nan=-1))
        if ranked:
            rows.append([kind, "; ".join(f"{m['signal']} {_f(m['auc'])}" for m in ranked[:top])])
    return lines + _table(["type", f"best {top} signals (AUC)"], rows)


def write_results(report: dict[str, Any], *, out: Path, results: Path) -> None:
    """Write the markdown page and the raw figures (JSON with metadata, CSV of the metric rows)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report), encoding="utf-8")
    results.mkdir(parents=True, exist_ok=True)
    (results / "detect.json").write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
    pl.DataFrame(report["metrics"]).write_csv(results / "detect.csv")
    if report["published"]:
        pl.DataFrame(report["published"]).write_csv(results / "detect-published.csv")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m bench.detect [--replicates N] [--types T ...] [--out FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.detect", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="benchmark design (default bench/detect.yaml)")
    parser.add_argument("--replicates", type=int, help="studies per type and magnitude (default: the config's)")
    parser.add_argument("--types", nargs="+", metavar="TYPE", help="anomaly types (default: every type of the config)")
    parser.add_argument("--published", type=int, help="studies per magnitude of the published design (0: skip)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--out", type=Path, default=Path("docs/detection.md"), help="markdown page to write")
    parser.add_argument("--results", type=Path, default=Path("bench/results"), help="folder of the raw figures")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        types = args.types or list(config.types)
        unknown = [t for t in types if t not in config.types]
        if unknown:
            raise RbqmError(f"--types: unknown {', '.join(unknown)}; valid: {', '.join(config.types)}")
        replicates = config.replicates if args.replicates is None else args.replicates
        published = config.published.studies if args.published is None else args.published
        if replicates < 1 or published < 0 or args.workers < 1:
            raise RbqmError("--replicates and --workers must be at least 1, --published at least 0")
    except RbqmError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    report = run(config, types=types, replicates=replicates, published=published, workers=args.workers)
    write_results(report, out=args.out, results=args.results)
    for what, ok, figures in targets(report):
        print(f"{'MET ' if ok else 'NOT MET' if ok is not None else '-'}  {what} ({figures})")
    print(f"Wrote {args.out} and {args.results}/detect.json ({report['meta']['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
