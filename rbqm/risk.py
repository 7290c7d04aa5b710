"""Risk assessment: critical-to-quality risks, RACT-style scoring and the indicators that control them.

ICH E6(R3) starts quality management with a risk assessment: identify what is critical to quality
(ICH E8(R1) factors), score each risk, decide how it is controlled and review it as data arrive.

* The library (``key_risk_indicators/risk0001.yaml`` ..., one risk per file named by its id, and
  ``risk_categories.yaml`` with the critical-to-quality categories and their weights) is a template
  register: :func:`load_risk_register`.
* Scoring follows the approach of the TransCelerate Risk Assessment and Categorization Tool (RACT):
  each risk is scored on impact, likelihood and detectability (1-3 each), categories carry weights,
  and the study gets an overall risk level. The arithmetic is our own (docs/risk.md):

  - risk score = impact x likelihood x detectability (1-27; detectability 3 = hard to detect);
  - risk level: low below 8, medium from 8 to 17, high from 18 (:data:`LEVEL_CUTOFFS`), so a risk
    rated medium on all three (2 x 2 x 2 = 8) is medium and one high on two and medium on the third
    (3 x 3 x 2 = 18) is high;
  - category score = the highest score among its risks (a category is as risky as its worst risk);
  - study score = sum(weight x category score) / sum(weight) over the categories that hold a risk,
    and the study level uses the same cut-offs.
* :func:`link_status` reads each risk's indicators (KRI ids, QTL ids, central-monitoring test names)
  at the latest cut of an :class:`rbqm.analysis.Analysis`; :func:`gaps` lists risks without an
  indicator and indicators that control no risk; :func:`risk_history` records what the indicators
  show at every cut and :func:`review_proposals` reads it with the review rule (``risk_review.yaml``,
  :class:`ReviewRule`): raise the likelihood of a risk whose indicators give evidence at several
  sites over consecutive cuts (or whose QTL is breached), lower it when they stay quiet for several
  cuts; :func:`review_queue` joins the quality lead's decisions.

Pure functions: the study's own, edited register and the decisions live in the store (``rbqm.store.risks``);
the spreadsheet export is ``rbqm.risk_export``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rbqm.analysis import Analysis
from rbqm.csm import ALL_TESTS
from rbqm.errors import DefinitionError
from rbqm.kri.definition import DEFAULT_LIBRARY, KriDefinition, load_definitions, load_library
from rbqm.qtl import QTL_STATUSES, QtlDefinition, load_qtl_definitions
from rbqm.signals import CSM_ALPHA, CSM_RED

__all__ = ["CATEGORIES_FILE", "REVIEW_FILE", "LEVEL_CUTOFFS", "REGISTER_COLUMNS", "HISTORY_COLUMNS",
           "PROPOSAL_COLUMNS", "QUEUE_COLUMNS", "RiskCategory", "RiskDefinition", "RiskRegister", "ReviewRule",
           "StudyRisk", "RiskReport", "load_risk_register", "load_review_rule", "risk_score", "risk_level",
           "score_register", "study_risk", "link_status", "gaps", "risk_history", "review_proposals",
           "review_queue", "assess_risks", "flat_register", "report_markdown", "CSM_UNDER_REPORTING",
           "check_risk", "known_indicators"]

CATEGORIES_FILE = "risk_categories.yaml"
REVIEW_FILE = "risk_review.yaml"
RISK_PATTERN = "risk[0-9][0-9][0-9][0-9].yaml"

#: (lowest medium score, lowest high score): low below 8, medium 8-17, high 18 and above.
LEVEL_CUTOFFS: tuple[float, float] = (8, 18)

#: Columns of :func:`score_register`, in order.
REGISTER_COLUMNS: dict[str, pl.DataType] = {
    "risk_id": pl.String(), "name": pl.String(), "category": pl.String(), "factor": pl.String(), "weight": pl.Float64(),
    "impact": pl.Int64(), "likelihood": pl.Int64(), "detectability": pl.Int64(), "score": pl.Int64(),
    "level": pl.String(), "owner": pl.String(), "rationale": pl.String(), "controls": pl.List(pl.String()),
    "indicators": pl.List(pl.String()),
}

_Score = Field(ge=1, le=3)


class RiskCategory(BaseModel):
    """A critical-to-quality factor category (ICH E8(R1)) and its weight in the study risk level."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    weight: float = Field(gt=0)
    description: str


class RiskDefinition(BaseModel):
    """One risk of the register (one ``riskNNNN.yaml`` file of the library).

    ``impact``, ``likelihood`` and ``detectability`` are 1 (low; easy to detect) to 3 (high; hard to
    detect). ``indicators`` names KRI ids, QTL ids and central-monitoring test names
    (``rbqm.csm.ALL_TESTS``) that watch the risk; an empty list is allowed and reported as a gap.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^risk\d{4}$")
    name: str
    category: str
    description: str
    impact: int = _Score
    likelihood: int = _Score
    detectability: int = _Score
    rationale: str
    controls: tuple[str, ...] = Field(min_length=1)
    indicators: tuple[str, ...] = ()
    owner: str | None = None

    @property
    def score(self) -> int:
        """impact x likelihood x detectability."""
        return risk_score(self.impact, self.likelihood, self.detectability)


@dataclass(frozen=True)
class RiskRegister:
    """The categories and risks of one study (or of the library template)."""

    categories: dict[str, RiskCategory]
    risks: tuple[RiskDefinition, ...]

    @property
    def indicators(self) -> set[str]:
        """Every indicator some risk names."""
        return {i for r in self.risks for i in r.indicators}


def _load_categories(folder: Path) -> dict[str, RiskCategory]:
    path = folder / CATEGORIES_FILE if (folder / CATEGORIES_FILE).is_file() else DEFAULT_LIBRARY / CATEGORIES_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or set(raw) != {"categories"} or not isinstance(raw["categories"], dict):
        raise DefinitionError(f"{path}: needs exactly one key, categories (a mapping of category ids)")
    out = {}
    for key, spec in raw["categories"].items():
        try:
            out[key] = RiskCategory.model_validate(spec)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or key}: {e['msg']}" for e in exc.errors())
            raise DefinitionError(f"{path}: categories.{key}: {problems}") from exc
    return out


class ReviewRule(BaseModel):
    """When :func:`review_proposals` proposes re-scoring a risk (``risk_review.yaml``; docs/risk.md).

    A site gives *evidence* for a risk at a cut when one of the risk's KRIs flags red there, one of
    its central-monitoring tests is significant there, or ``amber_indicators`` or more of its
    indicators flag there. Raise the likelihood when the evidence covers ``min_sites`` sites at each
    of the last ``persist_cuts`` cuts, or ``burst_sites`` sites at the latest cut, or a QTL of the
    risk is breached; lower it after ``quiet_cuts`` cuts without any flag.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_sites: int = Field(2, ge=1)
    persist_cuts: int = Field(2, ge=1)
    burst_sites: int = Field(4, ge=1)
    amber_indicators: int = Field(2, ge=1)
    quiet_cuts: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _burst_needs_more_sites(self) -> ReviewRule:
        if self.burst_sites < self.min_sites:
            raise ValueError(f"burst_sites ({self.burst_sites}) must be at least min_sites ({self.min_sites})")
        return self


def load_review_rule(folder: Path | None = None, **changes: int) -> ReviewRule:
    """The review rule of ``folder``'s ``risk_review.yaml`` (else the shipped one), with ``changes``.

    Raises
    ------
    DefinitionError
        Naming the file (or ``changes``) and the key of the mistake.

    Examples
    --------
    >>> load_review_rule().persist_cuts, load_review_rule(min_sites=3).min_sites
    (2, 3)
    """
    folder = Path(folder) if folder else DEFAULT_LIBRARY
    path = folder / REVIEW_FILE if (folder / REVIEW_FILE).is_file() else DEFAULT_LIBRARY / REVIEW_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise DefinitionError(f"{path}: needs a mapping of {', '.join(ReviewRule.model_fields)}")
    try:
        return ReviewRule.model_validate(raw | changes)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(rule)'}: {e['msg']}" for e in exc.errors())
        where = f"{path} with {changes}" if changes else str(path)
        raise DefinitionError(f"{where}: {problems}") from exc


def load_risk_register(folder: Path | None = None) -> RiskRegister:
    """The risk library of ``folder`` (default: the shipped ``key_risk_indicators``) as a register.

    Every ``riskNNNN.yaml`` is validated (frozen, unknown keys rejected), its category must be one
    of ``risk_categories.yaml`` (the folder's, else the shipped one) and every indicator it names must
    be a KRI or QTL of the same folder or a central-monitoring test.

    Raises
    ------
    DefinitionError
        Naming the file and the key of the first mistake.

    Examples
    --------
    >>> register = load_risk_register()
    >>> register.risks[0].id, register.risks[0].indicators
    ('risk0001', ('kri0001', 'kri0021', 'ae_under_reporting'))
    """
    folder = Path(folder) if folder else DEFAULT_LIBRARY
    risks = load_library(folder, (RISK_PATTERN,), RiskDefinition, "risk")
    categories = _load_categories(folder)
    known = known_indicators(folder)
    for risk in risks:
        check_risk(risk, categories, known, where=str(folder / f"{risk.id}.yaml"))
    return RiskRegister(categories=categories, risks=tuple(risks))


def known_indicators(folder: Path | None = None) -> set[str]:
    """Every indicator a risk may name: the KRI and QTL ids of ``folder`` (default: the shipped
    library) and the central-monitoring tests (``rbqm.csm.ALL_TESTS``)."""
    return {d.id for d in load_definitions(folder)} | {d.id for d in load_qtl_definitions(folder)} | set(ALL_TESTS)


def check_risk(risk: RiskDefinition, categories: dict[str, RiskCategory], known: set[str], *, where: str) -> None:
    """Raise ``DefinitionError`` (prefixed by ``where``, e.g. the file) unless the risk's category is one of
    ``categories`` and every indicator it names is in ``known``, once."""
    if risk.category not in categories:
        raise DefinitionError(f"{where}: category: unknown category {risk.category!r}; {CATEGORIES_FILE} "
                              f"defines {', '.join(categories)}")
    unknown = [i for i in risk.indicators if i not in known]
    if unknown:
        raise DefinitionError(f"{where}: indicators: unknown indicator {', '.join(map(repr, unknown))}; give "
                              f"KRI ids, QTL ids or central-monitoring tests ({', '.join(ALL_TESTS)})")
    if len(set(risk.indicators)) != len(risk.indicators):
        raise DefinitionError(f"{where}: indicators: an indicator is named twice")


def risk_score(impact: int, likelihood: int, detectability: int) -> int:
    """The RACT-style risk score: impact x likelihood x detectability, each 1-3 (so 1-27).

    Examples
    --------
    >>> risk_score(3, 2, 3)
    18
    """
    for name, value in (("impact", impact), ("likelihood", likelihood), ("detectability", detectability)):
        if value not in (1, 2, 3):
            raise ValueError(f"risk_score: {name} must be 1, 2 or 3; got {value!r}")
    return impact * likelihood * detectability


def risk_level(score: float) -> str:
    """``low`` below 8, ``medium`` from 8 to below 18, ``high`` from 18 (:data:`LEVEL_CUTOFFS`).

    Examples
    --------
    >>> [risk_level(s) for s in (6, 8, 12, 17.9, 18, 27)]
    ['low', 'medium', 'medium', 'medium', 'high', 'high']
    """
    medium, high = LEVEL_CUTOFFS
    return "high" if score >= high else "medium" if score >= medium else "low"


def _level_expr(score: pl.Expr) -> pl.Expr:
    """:func:`risk_level` as a polars expression."""
    medium, high = LEVEL_CUTOFFS
    return (pl.when(score >= high).then(pl.lit("high")).when(score >= medium).then(pl.lit("medium"))
            .otherwise(pl.lit("low")))


def score_register(register: RiskRegister) -> pl.DataFrame:
    """One row per risk with its score and level (``REGISTER_COLUMNS``; ``factor`` is the name of the
    critical-to-quality category), in id order.

    Examples
    --------
    >>> score_register(load_risk_register()).select("risk_id", "score", "level").row(0)
    ('risk0001', 18, 'high')
    """
    rows = [{"risk_id": r.id, "name": r.name, "category": r.category, "factor": register.categories[r.category].name,
             "weight": float(register.categories[r.category].weight), "impact": r.impact,
             "likelihood": r.likelihood, "detectability": r.detectability, "score": r.score,
             "level": risk_level(r.score), "owner": r.owner, "rationale": r.rationale,
             "controls": list(r.controls), "indicators": list(r.indicators)}
            for r in register.risks]
    return pl.DataFrame(rows, schema=REGISTER_COLUMNS)


@dataclass(frozen=True)
class StudyRisk:
    """The overall study risk: ``score`` (weighted mean of category scores), its ``level``, and
    ``categories`` (category, name, weight, risks, score = highest risk score, level)."""

    score: float
    level: str
    categories: pl.DataFrame


def study_risk(register: RiskRegister) -> StudyRisk:
    """The overall study risk level: sum(weight x category score) / sum(weight), over the categories
    holding at least one risk, where a category's score is its highest risk score.

    Examples
    --------
    >>> overall = study_risk(load_risk_register())
    >>> round(overall.score, 2), overall.level
    (10.67, 'medium')
    """
    scored = score_register(register)
    if scored.is_empty():
        return StudyRisk(0.0, "low", pl.DataFrame(schema={"category": pl.String, "name": pl.String,
                                                          "weight": pl.Float64, "risks": pl.UInt32,
                                                          "score": pl.Int64, "level": pl.String}))
    names = {k: c.name for k, c in register.categories.items()}
    by_category = (scored.group_by("category", maintain_order=True)
                   .agg(weight=pl.col("weight").first(), risks=pl.len(), score=pl.col("score").max())
                   .with_columns(name=pl.col("category").replace_strict(names))
                   .sort("category"))
    total = float((by_category["weight"] * by_category["score"]).sum() / by_category["weight"].sum())
    by_category = by_category.with_columns(level=_level_expr(pl.col("score")))
    return StudyRisk(total, risk_level(total),
                     by_category.select("category", "name", "weight", "risks", "score", "level"))


# --- indicators at each cut -------------------------------------------------------------------------

#: CSM tests that count only in the under-reporting direction (``effect < 0``): a site reporting more
#: AEs than expected is a safety question, not evidence of under-reporting.
CSM_UNDER_REPORTING = ("ae_under_reporting", "sae_under_reporting")

_EVIDENCE = {"cut_date": pl.Date, "indicator": pl.String, "kind": pl.String, "site_id": pl.String,
             "level": pl.Int64}
_COMPUTED = {"cut_date": pl.Date, "indicator": pl.String}
_LINKS = {"risk_id": pl.String, "indicator": pl.String}

#: Columns of :func:`risk_history`, in order.
HISTORY_COLUMNS: dict[str, pl.DataType] = {
    "risk_id": pl.String(), "cut_date": pl.Date(), "computed": pl.UInt32(), "flagged_sites": pl.List(pl.String()),
    "n_flagged_sites": pl.UInt32(), "evidence_sites": pl.List(pl.String()), "n_evidence_sites": pl.UInt32(),
    "qtl_level": pl.Int64(),
}


def _has_cuts(frame: pl.DataFrame) -> bool:
    return frame.height > 0 and "cut_date" in frame.columns


def _evidence(analysis: Analysis, kri_defs: Iterable[KriDefinition]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Flags at every cut, one row per cut, indicator and site (``study`` for QTLs) with level 1
    (amber) or 2 (red); and the indicators computed at each cut (``cut_date``, ``indicator``).

    A KRI counts only in its direction of concern (``concern: low`` counts negative flags); a CSM
    finding counts when q < 0.05 (red below 0.01), as in rbqm.signals, the AE tests only for
    under-reporting (:data:`CSM_UNDER_REPORTING`); a QTL by its status.
    """
    concern = {d.id: d.concern for d in kri_defs}
    parts, computed = [], []
    if _has_cuts(analysis.results):
        kri = analysis.results.filter(pl.col("level") == "site", pl.col("flag").is_not_null())
        computed.append(kri.select("cut_date", indicator="kri_id"))
        direction = pl.col("kri_id").replace_strict(concern, default="both")
        flag = pl.col("flag").cast(pl.Int64)
        parts.append(kri.filter(((direction == "low") & (flag < 0)) | ((direction == "high") & (flag > 0))
                                | ((direction == "both") & (flag != 0)))
                     .select("cut_date", indicator="kri_id", kind=pl.lit("kri"), site_id="group_id", level=flag.abs()))
    if _has_cuts(analysis.qtl):
        computed.append(analysis.qtl.select("cut_date", indicator="qtl_id"))
        levels = {s: i for i, s in enumerate(QTL_STATUSES)}
        parts.append(analysis.qtl.select(
            "cut_date", indicator="qtl_id", kind=pl.lit("qtl"), site_id=pl.lit("study"),
            level=pl.col("status").replace_strict(levels, default=0, return_dtype=pl.Int64)).filter(pl.col("level") > 0))
    if _has_cuts(analysis.csm):
        computed.append(analysis.csm.select("cut_date", indicator="test"))
        q = pl.col("q_value")
        under_only = pl.col("test").is_in(list(CSM_UNDER_REPORTING))
        parts.append(analysis.csm.filter(q < CSM_ALPHA, ~under_only | (pl.col("effect") < 0)).select(
            "cut_date", indicator="test", kind=pl.lit("csm"), site_id="site_id",
            level=pl.when(q < CSM_RED).then(2).otherwise(1).cast(pl.Int64)))
    evidence = pl.concat([p.cast(_EVIDENCE) for p in parts]) if parts else pl.DataFrame(schema=_EVIDENCE)
    # one row per cut, indicator and site: its worst level (a CSM test may flag several variables)
    evidence = evidence.group_by("cut_date", "indicator", "kind", "site_id").agg(pl.col("level").max())
    done = pl.concat([c.cast(_COMPUTED) for c in computed]).unique() if computed else pl.DataFrame(schema=_COMPUTED)
    return evidence.sort("cut_date", "indicator", "site_id"), done


def _latest_cut(analysis: Analysis) -> date | None:
    return max(analysis.cut_dates) if analysis.cut_dates else None


def _links(register: RiskRegister) -> pl.DataFrame:
    return pl.DataFrame([(r.id, i) for r in register.risks for i in r.indicators], schema=_LINKS, orient="row")


def _sites(n: int) -> str:
    return f"{n} site" if n == 1 else f"{n} sites"


def _indicator_text(indicator: str, rows: pl.DataFrame, computed: set[str]) -> str:
    if indicator not in computed:
        return f"{indicator} not computed"
    mine = rows.filter(pl.col("indicator") == indicator)
    if mine.is_empty():
        return f"{indicator} within limits" if indicator.startswith("qtl") else f"{indicator} no flag"
    kind = mine["kind"][0]
    if kind == "qtl":
        return f"{indicator} {QTL_STATUSES[int(mine['level'].max())]}"
    if kind == "csm":
        return f"{indicator} significant at {_sites(mine.height)}"
    red, amber = (mine.filter(pl.col("level") == 2).height, mine.filter(pl.col("level") == 1).height)
    text = [f"red at {_sites(red)}"] if red else []
    if amber:
        text.append(f"amber at {amber}" if red else f"amber at {_sites(amber)}")
    return f"{indicator} {', '.join(text)}"


_STATUS = {"risk_id": pl.String, "flagged_sites": pl.List(pl.String), "n_flagged_sites": pl.Int64,
           "qtl_level": pl.Int64, "status": pl.String}


def _link_status(register: RiskRegister, evidence: pl.DataFrame, computed: pl.DataFrame,
                 cut: date | None) -> pl.DataFrame:
    at_cut = pl.col("cut_date") == pl.lit(cut, pl.Date) if cut is not None else pl.lit(False)
    now = evidence.filter(at_cut)
    done = set(computed.filter(at_cut)["indicator"])
    rows = []
    for risk in register.risks:
        mine = now.filter(pl.col("indicator").is_in(list(risk.indicators)))
        sites = sorted(set(mine.filter(pl.col("kind") != "qtl")["site_id"]))
        qtl = mine.filter(pl.col("kind") == "qtl")["level"]
        status = ("; ".join(_indicator_text(i, mine, done) for i in risk.indicators)
                  if risk.indicators else "no indicator watches this risk")
        rows.append({"risk_id": risk.id, "flagged_sites": sites, "n_flagged_sites": len(sites),
                     "qtl_level": int(qtl.max()) if qtl.len() else 0, "status": status})
    return pl.DataFrame(rows, schema=_STATUS)


def link_status(register: RiskRegister, analysis: Analysis, *,
                kri_defs: Iterable[KriDefinition] | None = None) -> pl.DataFrame:
    """Per risk, the current status of its indicators at the latest cut of ``analysis``.

    Parameters
    ----------
    register : RiskRegister
    analysis : Analysis
        From ``rbqm.analysis.analyze_study`` (only the latest cut is read).
    kri_defs : list of KriDefinition, optional
        For each KRI's direction of concern (default: the shipped library).

    Returns
    -------
    polars.DataFrame
        ``risk_id``; ``flagged_sites`` (sorted site ids where any indicator flags); ``n_flagged_sites``;
        ``qtl_level`` (0 within limits, 1 secondary limit crossed, 2 tolerance limit breached: the
        worst of its QTLs); ``status``, one sentence such as
        ``"kri0001 red at 1 site, amber at 1; kri0021 no flag; ae_under_reporting significant at 2 sites"``.

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.csm import CSM_COLUMNS
    >>> results = pl.DataFrame({"study_id": "S", "cut_date": date(2025, 1, 1), "level": "site",
    ...     "group_id": ["1001", "1002", "1003"], "kri_id": "kri0001", "flag": [-2, -1, 2]},
    ...     schema_overrides={"flag": pl.Int8})
    >>> analysis = Analysis("S", [date(2025, 1, 1)], results, pl.DataFrame(), pl.DataFrame(),
    ...     pl.DataFrame(), pl.DataFrame(schema=CSM_COLUMNS))
    >>> link_status(load_risk_register(), analysis).row(0)
    ('risk0001', ['1001', '1002'], 2, 0, 'kri0001 red at 1 site, amber at 1; kri0021 not computed; ae_under_reporting not computed')
    """
    evidence, computed = _evidence(analysis, kri_defs if kri_defs is not None else load_definitions())
    return _link_status(register, evidence, computed, _latest_cut(analysis))


def gaps(register: RiskRegister, kri_defs: Iterable[KriDefinition], qtl_defs: Iterable[QtlDefinition],
         csm_tests: Iterable[str]) -> pl.DataFrame:
    """Risks that no indicator watches, and indicators that control no risk.

    Returns
    -------
    polars.DataFrame
        ``gap`` (``risk without indicator`` or ``indicator without risk``), ``id`` (risk id, or KRI /
        QTL id or CSM test) and ``name``; risks first, then KRIs, QTLs and tests, each in id order.

    Examples
    --------
    >>> frame = gaps(load_risk_register(), load_definitions(), load_qtl_definitions(), ALL_TESTS)
    >>> frame.filter(pl.col("gap") == "risk without indicator")["id"].to_list()
    ['risk0004']
    """
    linked = register.indicators
    rows = [("risk without indicator", r.id, r.name) for r in register.risks if not r.indicators]
    rows += [("indicator without risk", d.id, d.name) for d in sorted(kri_defs, key=lambda d: d.id)
             if d.id not in linked]
    rows += [("indicator without risk", d.id, d.name) for d in sorted(qtl_defs, key=lambda d: d.id)
             if d.id not in linked]
    rows += [("indicator without risk", t, f"central monitoring: {t}") for t in sorted(csm_tests)
             if t not in linked]
    return pl.DataFrame(rows, schema={"gap": pl.String, "id": pl.String, "name": pl.String}, orient="row")


# --- review: evidence over the cuts and re-scoring proposals ----------------------------------------


def _history(register: RiskRegister, cut_dates: list[date], evidence: pl.DataFrame, computed: pl.DataFrame,
             rule: ReviewRule) -> pl.DataFrame:
    links = _links(register)
    grid = (pl.DataFrame({"risk_id": [r.id for r in register.risks]}, schema={"risk_id": pl.String})
            .join(pl.DataFrame({"cut_date": cut_dates}, schema={"cut_date": pl.Date}), how="cross"))
    sites = evidence.filter(pl.col("kind") != "qtl").join(links, on="indicator")
    # a site gives evidence when a KRI flags red or a CSM test is significant there, or when several of
    # the risk's indicators flag amber there (one amber flag alone is what chance gives most often)
    per_site = sites.group_by("risk_id", "cut_date", "site_id").agg(
        strong=((pl.col("kind") == "csm") | (pl.col("level") >= 2)).any()
        | (pl.col("indicator").n_unique() >= rule.amber_indicators))
    by_cut = per_site.group_by("risk_id", "cut_date").agg(
        flagged_sites=pl.col("site_id").sort(), evidence_sites=pl.col("site_id").filter("strong").sort())
    qtl = (evidence.filter(pl.col("kind") == "qtl").join(links, on="indicator")
           .group_by("risk_id", "cut_date").agg(qtl_level=pl.col("level").max()))
    done = computed.join(links, on="indicator").group_by("risk_id", "cut_date").agg(computed=pl.len())
    empty = pl.lit([], pl.List(pl.String))
    return (grid.join(done, on=["risk_id", "cut_date"], how="left")
            .join(by_cut, on=["risk_id", "cut_date"], how="left")
            .join(qtl, on=["risk_id", "cut_date"], how="left")
            .with_columns(pl.col("computed").fill_null(0), pl.col("flagged_sites", "evidence_sites").fill_null(empty),
                          pl.col("qtl_level").fill_null(0))
            .with_columns(n_flagged_sites=pl.col("flagged_sites").list.len(),
                          n_evidence_sites=pl.col("evidence_sites").list.len())
            .select(list(HISTORY_COLUMNS)).cast(HISTORY_COLUMNS).sort("risk_id", "cut_date"))


def risk_history(register: RiskRegister, analysis: Analysis, *, rule: ReviewRule | None = None,
                 kri_defs: Iterable[KriDefinition] | None = None) -> pl.DataFrame:
    """What each risk's indicators show at every cut of ``analysis``: the record the review rule reads.

    Returns
    -------
    polars.DataFrame
        One row per risk and cut (:data:`HISTORY_COLUMNS`): ``computed`` (how many of the risk's
        indicators were computed), ``flagged_sites`` (any flag in the direction of concern),
        ``evidence_sites`` (a KRI red, a CSM finding, or ``rule.amber_indicators`` of its indicators
        amber at the site), their counts and ``qtl_level`` (0 within limits, 1 secondary limit
        crossed, 2 tolerance limit breached).

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.csm import CSM_COLUMNS
    >>> cuts = [date(2025, 1, 1), date(2025, 2, 1)]
    >>> results = pl.DataFrame({"cut_date": cuts * 2, "level": "site", "group_id": ["1001", "1001", "1002", "1002"],
    ...     "kri_id": "kri0001", "flag": [0, -2, -1, -1]}, schema_overrides={"flag": pl.Int8})
    >>> analysis = Analysis("S", cuts, results, pl.DataFrame(), pl.DataFrame(), pl.DataFrame(),
    ...     pl.DataFrame(schema=CSM_COLUMNS))
    >>> risk_history(load_risk_register(), analysis).filter(pl.col("risk_id") == "risk0001").select(
    ...     "cut_date", "n_flagged_sites", "evidence_sites").rows()
    [(datetime.date(2025, 1, 1), 1, []), (datetime.date(2025, 2, 1), 2, ['1001'])]
    """
    rule = rule or load_review_rule()
    evidence, computed = _evidence(analysis, kri_defs if kri_defs is not None else load_definitions())
    return _history(register, sorted(analysis.cut_dates), evidence, computed, rule)


#: Columns of :func:`review_proposals`, in order.
PROPOSAL_COLUMNS: dict[str, pl.DataType] = {
    "risk_id": pl.String(), "name": pl.String(), "direction": pl.String(), "likelihood": pl.Int64(),
    "proposed_likelihood": pl.Int64(), "score": pl.Int64(), "proposed_score": pl.Int64(), "level": pl.String(),
    "proposed_level": pl.String(), "evidence": pl.String(),
}


def _why_raise(row: dict, rule: ReviewRule) -> list[str]:
    n, sites = row["n_evidence_sites"], ", ".join(row["evidence_sites"])
    why = []
    if row["persisted"] or row["burst"]:
        since = (f" and at {rule.min_sites} or more sites at each of the last {rule.persist_cuts} cuts"
                 if row["persisted"] and rule.persist_cuts > 1 else "")
        why.append(f"its indicators give evidence at {_sites(n)} ({sites}) at this cut{since}")
    if row["qtl_level"] >= 2:
        why.append("a QTL has its tolerance limit breached")
    return why


def _proposals(register: RiskRegister, history: pl.DataFrame, status: pl.DataFrame, rule: ReviewRule) -> pl.DataFrame:
    k, q = rule.persist_cuts, rule.quiet_cuts
    quiet = (pl.col("n_flagged_sites") == 0) & (pl.col("qtl_level") == 0) & (pl.col("computed") > 0)
    summary = (history.group_by("risk_id", maintain_order=True).agg(
        pl.col("n_evidence_sites", "evidence_sites", "qtl_level").last(),
        persisted=(pl.len() >= k) & (pl.col("n_evidence_sites").tail(k) >= rule.min_sites).all(),
        burst=pl.col("n_evidence_sites").last() >= rule.burst_sites,
        quiet=(pl.len() >= q) & quiet.tail(q).all(),
        quiet_from=pl.col("cut_date").tail(q).first(), cut=pl.col("cut_date").last())
        .join(status.select("risk_id", "status"), on="risk_id"))
    by_risk = {row["risk_id"]: row for row in summary.iter_rows(named=True)}
    rows = []
    for risk in register.risks:
        row = by_risk.get(risk.id)
        if row is None:  # an analysis without cuts
            continue
        raise_ = risk.likelihood < 3 and (row["persisted"] or row["burst"] or row["qtl_level"] >= 2)
        lower = risk.likelihood > 1 and row["quiet"]
        if not (raise_ or lower):
            continue
        proposed = risk.likelihood + (1 if raise_ else -1)
        if raise_:
            evidence = (f"{risk.name}: judged likelihood {risk.likelihood}, but {' and '.join(_why_raise(row, rule))}: "
                        f"{row['status']}.")
        else:
            evidence = (f"{risk.name}: judged likelihood {risk.likelihood}, and none of its indicators has flagged at "
                        f"any site, nor a QTL crossed a limit, at the last {q} cuts ({row['quiet_from']} to "
                        f"{row['cut']}): {row['status']}.")
        score = risk_score(risk.impact, proposed, risk.detectability)
        rows.append({"risk_id": risk.id, "name": risk.name, "direction": "raise" if raise_ else "lower",
                     "likelihood": risk.likelihood, "proposed_likelihood": proposed, "score": risk.score,
                     "proposed_score": score, "level": risk_level(risk.score), "proposed_level": risk_level(score),
                     "evidence": evidence})
    return pl.DataFrame(rows, schema=PROPOSAL_COLUMNS)


def review_proposals(register: RiskRegister, analysis: Analysis, *, rule: ReviewRule | None = None,
                     kri_defs: Iterable[KriDefinition] | None = None) -> pl.DataFrame:
    """Re-scoring proposals at the latest cut, for the quality lead to accept or reject.

    The rule (:class:`ReviewRule`, ``risk_review.yaml``; docs/risk.md) reads :func:`risk_history`:

    * **raise** the likelihood by one (when below 3) when one of the risk's QTLs has breached its
      tolerance limit at the latest cut, or its indicators give evidence at ``min_sites`` or more
      sites at each of the last ``persist_cuts`` cuts, or at ``burst_sites`` or more at the latest
      cut alone (noise rule: evidence at a few sites once is not enough);
    * **lower** it by one (when above 1) when, at each of the last ``quiet_cuts`` cuts, at least
      one of its indicators was computed and none flagged at any site nor crossed a QTL limit.

    Parameters
    ----------
    register : RiskRegister
    analysis : Analysis
        From ``rbqm.analysis.analyze_study``; every cut is read.
    rule : ReviewRule, optional
        Default: :func:`load_review_rule` of the shipped library.
    kri_defs : list of KriDefinition, optional
        For each KRI's direction of concern (default: the shipped library).

    Returns
    -------
    polars.DataFrame
        :data:`PROPOSAL_COLUMNS`: ``risk_id``, ``name``, ``direction`` (``raise`` or ``lower``),
        ``likelihood``, ``proposed_likelihood``, ``score``, ``proposed_score``, ``level``,
        ``proposed_level`` and ``evidence`` (one sentence), in risk id order.

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.csm import CSM_COLUMNS
    >>> cuts = [date(2025, 1, 1), date(2025, 2, 1)]
    >>> results = pl.DataFrame({"cut_date": [c for c in cuts for _ in range(2)], "level": "site",
    ...     "group_id": ["1001", "1002"] * 2, "kri_id": "kri0001", "flag": [-2, -2, -2, -2]},
    ...     schema_overrides={"flag": pl.Int8})
    >>> analysis = Analysis("S", cuts, results, pl.DataFrame(), pl.DataFrame(), pl.DataFrame(),
    ...     pl.DataFrame(schema=CSM_COLUMNS))
    >>> review_proposals(load_risk_register(), analysis).select("risk_id", "direction", "likelihood",
    ...     "proposed_likelihood", "proposed_score").row(0)
    ('risk0001', 'raise', 2, 3, 27)
    """
    rule = rule or load_review_rule()
    evidence, computed = _evidence(analysis, kri_defs if kri_defs is not None else load_definitions())
    history = _history(register, sorted(analysis.cut_dates), evidence, computed, rule)
    status = _link_status(register, evidence, computed, _latest_cut(analysis))
    return _proposals(register, history, status, rule)


#: Columns :func:`review_queue` adds to the proposals.
QUEUE_COLUMNS: dict[str, pl.DataType] = {
    "decision": pl.String(), "reason": pl.String(), "decided_by": pl.String(), "decided_at": pl.Datetime("us", "UTC"),
    "earlier": pl.String(),
}


def review_queue(proposals: pl.DataFrame, decisions: pl.DataFrame, cut: date | None) -> pl.DataFrame:
    """The proposals of ``cut`` with the quality lead's decisions (``rbqm.store.risks.list_decisions``).

    Returns
    -------
    polars.DataFrame
        ``proposals`` with ``decision`` (``accepted``, ``rejected``, or null while pending),
        ``reason``, ``decided_by``, ``decided_at`` of the decision at ``cut``, and ``earlier``: the
        latest decision on the same risk in the same direction at an earlier cut, in words (null if none).
        Pending proposals first, then by risk id.

    Examples
    --------
    >>> from datetime import date, datetime, timezone
    >>> proposals = pl.DataFrame({"risk_id": ["risk0001", "risk0003"], "direction": ["raise", "raise"]})
    >>> decisions = pl.DataFrame({"risk_id": ["risk0003", "risk0001"], "cut_date": [date(2025, 2, 1), date(2025, 1, 1)],
    ...     "likelihood": [2, 2], "proposed_likelihood": [3, 3], "decision": ["accepted", "rejected"],
    ...     "reason": ["confirmed", "known cause"], "decided_by": ["quinn", "quinn"],
    ...     "decided_at": [datetime(2025, 2, 2, tzinfo=timezone.utc)] * 2})
    >>> review_queue(proposals, decisions, date(2025, 2, 1)).select("risk_id", "decision", "earlier").rows()
    [('risk0001', None, 'rejected at 2025-01-01 by quinn: known cause'), ('risk0003', 'accepted', None)]
    """
    direction = (pl.when(pl.col("proposed_likelihood") > pl.col("likelihood")).then(pl.lit("raise"))
                 .otherwise(pl.lit("lower")))
    made = decisions.with_columns(direction=direction)
    now = made.filter(pl.col("cut_date") == cut).select("risk_id", *list(QUEUE_COLUMNS)[:4])
    before = (made.filter(pl.col("cut_date") < cut).sort("cut_date").group_by("risk_id", "direction").last()
              .select("risk_id", "direction", earlier=pl.format("{} at {} by {}: {}", "decision", "cut_date",
                                                                  "decided_by", "reason")))
    return (proposals.join(now, on="risk_id", how="left").join(before, on=["risk_id", "direction"], how="left")
            .with_columns(pl.col(name).cast(dtype) for name, dtype in QUEUE_COLUMNS.items())
            .sort(pl.col("decision").is_not_null(), "risk_id"))


@dataclass(frozen=True)
class RiskReport:
    """Everything ``rbqm risk show`` prints: the scored register with each risk's indicator status,
    the overall study risk, the gaps and the review proposals of the latest cut; also the evidence
    history the proposals come from (:func:`risk_history`) and the rule that read it."""

    study_id: str
    cut_date: date | None
    register: pl.DataFrame
    study: StudyRisk
    gaps: pl.DataFrame
    proposals: pl.DataFrame
    history: pl.DataFrame
    rule: ReviewRule

    def to_dict(self) -> dict:
        """A JSON-ready dict (without the history)."""
        return {"study_id": self.study_id, "cut_date": str(self.cut_date),
                "study_risk": {"score": round(self.study.score, 4), "level": self.study.level,
                               "categories": self.study.categories.to_dicts()},
                "register": self.register.to_dicts(), "gaps": self.gaps.to_dicts(),
                "review_rule": self.rule.model_dump(), "proposals": self.proposals.to_dicts()}


def assess_risks(register: RiskRegister, analysis: Analysis, *, kri_dir: Path | None = None,
                 rule: ReviewRule | None = None) -> RiskReport:
    """The register scored and linked to ``analysis``, the study risk, the gaps and the proposals.

    ``kri_dir`` is the folder of the KRI and QTL definitions and of ``risk_review.yaml`` (default:
    the shipped library); ``rule`` replaces the review rule read from it.
    """
    kri_defs = load_definitions(kri_dir)
    rule = rule or load_review_rule(kri_dir)
    evidence, computed = _evidence(analysis, kri_defs)
    cut = _latest_cut(analysis)
    status = _link_status(register, evidence, computed, cut)
    history = _history(register, sorted(analysis.cut_dates), evidence, computed, rule)
    return RiskReport(
        study_id=analysis.study_id, cut_date=cut,
        register=score_register(register).join(status, on="risk_id", how="left"), study=study_risk(register),
        gaps=gaps(register, kri_defs, load_qtl_definitions(kri_dir), ALL_TESTS),
        proposals=_proposals(register, history, status, rule), history=history, rule=rule)


def flat_register(report: RiskReport) -> pl.DataFrame:
    """The register of ``report`` with list columns joined: controls by ``"; "``, ids by ``", "``
    (for CSV and spreadsheets).

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.csm import CSM_COLUMNS
    >>> empty = Analysis("S", [date(2025, 1, 1)], pl.DataFrame(), pl.DataFrame(), pl.DataFrame(),
    ...     pl.DataFrame(), pl.DataFrame(schema=CSM_COLUMNS))
    >>> flat_register(assess_risks(load_risk_register(), empty))["indicators"][0]
    'kri0001, kri0021, ae_under_reporting'
    """
    return report.register.with_columns(pl.col("indicators", "flagged_sites").list.join(", "),
                                        pl.col("controls").list.join("; "))


def _md_table(frame: pl.DataFrame) -> list[str]:
    if frame.is_empty():
        return ["None."]
    cell = lambda v: "" if v is None else str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return lines


def report_markdown(report: RiskReport) -> str:
    """The risk assessment as a Markdown section of the oversight report (heading level 2).

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.csm import CSM_COLUMNS
    >>> empty = Analysis("S", [date(2025, 1, 1)], pl.DataFrame(), pl.DataFrame(), pl.DataFrame(),
    ...     pl.DataFrame(), pl.DataFrame(schema=CSM_COLUMNS))
    >>> report_markdown(assess_risks(load_risk_register(), empty)).splitlines()[0]
    '## Risk assessment: S at 2025-01-01'
    """
    register = flat_register(report).select("risk_id", "name", "category", "impact", "likelihood",
                                            "detectability", "score", "level", "status")
    lines = [f"## Risk assessment: {report.study_id} at {report.cut_date}", "",
             f"Overall study risk: **{report.study.level}** (weighted score {report.study.score:.2f} of 27).", "",
             "### Register", "", *_md_table(register), "",
             "### Review proposals", "", *_md_table(report.proposals.select(
                 "risk_id", "direction", "likelihood", "proposed_likelihood", "proposed_score", "proposed_level",
                 "evidence")), "",
             "### Gaps", "", *_md_table(report.gaps), ""]
    return "\n".join(lines)
