"""Suggested actions for signals, where to look, and a ranking of sites for the next visit.

The actions are data: ``key_risk_indicators/actions.yaml`` maps signal kinds and indicators to
targeted actions (from a severity on) with a one-sentence rationale, and names where to look
(``LOOK_AT``), which :func:`suggest_actions` computes from the study's analysis tables
(``rbqm.where_to_look``). The priority formula is documented in :func:`priority_expr` and
docs/signals.md.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rbqm.analysis import Analysis
from rbqm.derive import AnalysisTables, derive_tables
from rbqm.errors import DefinitionError, RbqmError
from rbqm.io import scan_study
from rbqm.kri.definition import DEFAULT_LIBRARY
from rbqm.study import list_cuts
from rbqm.where_to_look import LOOKS, where_to_look

__all__ = ["ACTION_COLUMNS", "ActionRule", "ActionsFile", "LOOK_AT", "PLACEHOLDERS", "PLAN_COLUMNS",
           "Suggestion", "load_actions", "plan_visits", "priority_expr", "suggest_actions"]

ACTIONS_FILE = DEFAULT_LIBRARY / "actions.yaml"
LOOK_AT = (*LOOKS, "none")
PLACEHOLDERS = ("site_id", "indicator", "severity", "state", "consecutive_cuts", "summary")

ACTION_COLUMNS: dict[str, pl.DataType] = {
    "signal_id": pl.String(), "site_id": pl.String(), "kind": pl.String(), "indicator": pl.String(),
    "severity": pl.String(), "state": pl.String(), "action": pl.String(), "label": pl.String(),
    "priority": pl.Float64(), "where_to_look": pl.String(), "why": pl.String(),
}
PLAN_COLUMNS: dict[str, pl.DataType] = {
    "rank": pl.Int64(), "site_id": pl.String(), "visit": pl.String(), "priority": pl.Float64(),
    "signals": pl.Int64(), "red": pl.Int64(), "actions": pl.String(),
}


class Suggestion(BaseModel):
    """One action a rule suggests, from a severity on, with its rationale template."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    action: str
    from_: Literal["amber", "red"] = Field(alias="from")
    why: str

    @model_validator(mode="after")
    def _placeholders(self) -> Suggestion:
        used = {name for _, name, _, _ in string.Formatter().parse(self.why) if name is not None}
        if unknown := used - set(PLACEHOLDERS):
            raise ValueError(f"unknown placeholder(s) {', '.join(sorted(unknown))} in why; "
                             f"use {', '.join(PLACEHOLDERS)}")
        return self


class ActionRule(BaseModel):
    """Which signals a rule covers (kind, and indicators: empty for all; a CSM test's name covers each of
    its variables), where to look, what to do."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["kri", "qtl", "csm"]
    indicators: tuple[str, ...] = ()
    look_at: Literal[LOOK_AT]  # type: ignore[valid-type]
    suggest: tuple[Suggestion, ...] = Field(min_length=1)


class ActionsFile(BaseModel):
    """``actions.yaml``: the catalogue of actions (id -> label) and the rules, first match wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    actions: dict[str, str] = Field(min_length=1)
    rules: tuple[ActionRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_actions(self) -> ActionsFile:
        for i, rule in enumerate(self.rules):
            for j, suggestion in enumerate(rule.suggest):
                if suggestion.action not in self.actions:
                    raise ValueError(f"rules.{i}.suggest.{j}.action: unknown action {suggestion.action!r}; "
                                     f"the catalogue has {', '.join(self.actions)}")
        return self

    def rule_frame(self) -> pl.DataFrame:
        """One row per (rule, suggestion): rule, kind, indicator ("" = any), look_at, action, label, from, why."""
        rows = [{"rule": i, "kind": r.kind, "indicator": ind, "look_at": r.look_at, "action": s.action,
                 "label": self.actions[s.action], "from": s.from_, "why": s.why}
                for i, r in enumerate(self.rules) for ind in (r.indicators or ("",)) for s in r.suggest]
        return pl.DataFrame(rows)


def load_actions(path: Path | None = None) -> ActionsFile:
    """The actions file (default: the shipped ``key_risk_indicators/actions.yaml``), validated.

    Raises
    ------
    DefinitionError
        Naming the file and the key of the first mistake.

    Examples
    --------
    >>> "site_retraining" in load_actions().actions
    True
    """
    path = Path(path) if path else ACTIONS_FILE
    if not path.is_file():
        raise DefinitionError(f"{path}: no such actions file")
    try:
        return ActionsFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise DefinitionError(f"{path}: {problems}") from exc


def priority_expr() -> pl.Expr:
    """Priority of a signal's actions (higher first), from columns severity, consecutive_cuts,
    risk_score (0-100, the site's risk score at the cut; 0 at study level) and size_ratio (the
    site's enrolled subjects over the median site's; study level counts as 2):

        priority = severity (amber 1, red 2)
                   * persistence (1 + 0.5 * min(consecutive_cuts - 1, 4))    -> 1 to 3
                   * site risk   (1 + risk_score / 100)                      -> 1 to 2
                   * site size   (sqrt(size_ratio) clipped to 0.5 to 2)      -> 0.5 to 2

    rounded to 2 decimals (0.5 to 24).
    """
    severity = pl.col("severity").replace_strict({"amber": 1.0, "red": 2.0}, return_dtype=pl.Float64)
    persistence = 1 + 0.5 * (pl.col("consecutive_cuts") - 1).clip(0, 4)
    risk = 1 + pl.col("risk_score").fill_null(0) / 100
    size = pl.col("size_ratio").fill_null(1).sqrt().clip(0.5, 2)
    return (severity * persistence * risk * size).round(2)


def _tables_of(study_dir: Path, analysis: Analysis) -> AnalysisTables:
    cuts = list_cuts(study_dir)
    folder = cuts[-1] if cuts else Path(study_dir)
    return derive_tables(scan_study(folder), as_of=analysis.cut_dates[-1])


def suggest_actions(analysis: Analysis, signals: pl.DataFrame, *, tables: AnalysisTables | None = None,
                    study_dir: Path | None = None, actions_file: Path | None = None,
                    kri_dir: Path | None = None) -> pl.DataFrame:
    """Targeted actions for the signals open at the latest cut, with where to look and why.

    Parameters
    ----------
    analysis : Analysis
        The analysis the signals were derived from (its ``site_risk`` feeds the priority).
    signals : polars.DataFrame
        From ``rbqm.signals.derive_signals(analysis)``; rows of the latest cut that are not resolved count.
    tables, study_dir
        The analysis tables at the latest cut, or the study folder to derive them from (its newest
        cut): where to look is computed from them. One of the two is required.
    actions_file : Path, optional
        Replaces ``key_risk_indicators/actions.yaml``.
    kri_dir : Path, optional
        The KRI and QTL definitions' folder (default: the shipped library), for where to look.

    Returns
    -------
    polars.DataFrame
        ``ACTION_COLUMNS``, one row per signal and suggested action, highest priority first.
        ``priority`` follows :func:`priority_expr`.
    """
    if tables is None:
        if study_dir is None:
            raise RbqmError("suggest_actions needs the analysis tables (tables=) or the study folder (study_dir=)")
        tables = _tables_of(study_dir, analysis)
    rules = load_actions(actions_file).rule_frame()
    latest = analysis.cut_dates[-1]
    open_signals = signals.filter(pl.col("cut_date") == latest, pl.col("state") != "resolved")
    # first matching rule: the specific indicator's rule, else the kind's catch-all rule
    first = (open_signals.select("signal_id", "kind", "indicator")
             .join(rules.select("rule", "kind", "indicator").unique(), on="kind", suffix="_rule")
             .filter((pl.col("indicator_rule") == "") | (pl.col("indicator_rule") == pl.col("indicator"))
                     | (pl.col("indicator_rule") == pl.col("indicator").str.split(":").list.first()))
             .group_by("signal_id").agg(rule=pl.col("rule").min()))
    suggestions = (open_signals.join(first, on="signal_id")
                   .join(rules.drop("kind", "indicator").unique(["rule", "action"]), on="rule")
                   .filter((pl.col("from") == "amber") | (pl.col("severity") == "red")))
    risk = analysis.site_risk.filter(pl.col("cut_date") == latest).select("site_id", "risk_score")
    enrolled = (tables["subjects"].filter(pl.col("enrolled")).group_by("SITEID").agg(n=pl.len())
                .select(site_id="SITEID", size_ratio=pl.col("n") / pl.col("n").median()).collect())
    suggestions = (suggestions.join(risk, on="site_id", how="left").join(enrolled, on="site_id", how="left")
                   .with_columns(size_ratio=pl.when(pl.col("site_id") == "study").then(4.0)
                                 .otherwise(pl.col("size_ratio")))
                   .with_columns(priority=priority_expr(),
                                 variable=pl.col("indicator").str.split(":").list.last()))
    wanted = suggestions.unique("signal_id").select("signal_id", "site_id", "indicator", "variable", "look_at")
    joined = suggestions.join(where_to_look(tables, wanted, kri_dir=kri_dir), on="signal_id", how="left")
    fallback = (pl.when(pl.col("site_id") == "study").then(pl.lit("All sites: start with the highest-ranked sites "
                                                                  "of the monitoring plan."))
                .otherwise(pl.format("Site {}: the subjects and pages behind {} at the latest cut.",
                                     "site_id", "indicator")))
    why = pl.col("why")
    for name in PLACEHOLDERS:
        why = why.str.replace_all("{" + name + "}", pl.col(name).cast(pl.String), literal=True)
    return (joined.with_columns(where_to_look=pl.col("where_to_look").fill_null(fallback), why=why)
            .select(list(ACTION_COLUMNS)).cast(ACTION_COLUMNS)
            .sort(["priority", "signal_id", "action"], descending=[True, False, False]))


def plan_visits(actions: pl.DataFrame) -> pl.DataFrame:
    """Sites ranked for the next visit or remote review, from :func:`suggest_actions`.

    A site's priority is the sum of its signals' priorities; ``visit`` is "on-site" when any
    suggested action needs the source (targeted SDV/SDR or a for-cause visit), else "remote".
    Study-level signals (QTLs) are left out: they concern every site.

    Examples
    --------
    >>> actions = pl.DataFrame({"signal_id": ["a@1", "a@1", "b@2"], "site_id": ["1", "1", "2"],
    ...     "severity": ["red", "red", "amber"], "action": ["targeted_sdv", "remote_review", "remote_review"],
    ...     "priority": [4.0, 4.0, 1.0]})
    >>> plan_visits(actions).select("rank", "site_id", "visit", "priority").rows()
    [(1, '1', 'on-site', 4.0), (2, '2', 'remote', 1.0)]
    """
    site = actions.filter(pl.col("site_id") != "study")
    per_signal = site.unique(["signal_id"], keep="first").group_by("site_id").agg(
        priority=pl.col("priority").sum().round(2), signals=pl.len().cast(pl.Int64),
        red=(pl.col("severity") == "red").sum().cast(pl.Int64))
    per_action = site.group_by("site_id").agg(
        actions=pl.col("action").unique().sort().str.join(", "),
        onsite=pl.col("action").is_in(["targeted_sdv", "for_cause_visit"]).any())
    return (per_signal.join(per_action, on="site_id")
            .with_columns(visit=pl.when(pl.col("onsite")).then(pl.lit("on-site")).otherwise(pl.lit("remote")))
            .sort(["priority", "red", "site_id"], descending=[True, True, False])
            .with_row_index("rank", offset=1)
            .select(list(PLAN_COLUMNS)).cast(PLAN_COLUMNS))
