"""Outcome tracking: did the indicator of an actioned signal improve at later cuts?

A signal was actioned at a cut (``rbqm.store.actions.action_baselines``: its first linked action,
or the first time its status was ``action_planned`` or ``in_progress``). Its indicator at that cut
(the baseline) is compared with the latest later cut (``rbqm.signals.indicator_levels``):

* ``improved``: the flag's severity fell (red to amber, or no longer flagged), or at the same
  severity the strength moved toward normal by at least the kind's margin;
* ``worsened``: the severity rose, or the strength moved away from normal by at least the margin;
* ``unchanged``: neither;
* ``too_early``: no later cut yet (or the indicator was not computed at any later cut).

Strength is KRI ``|score|``, CSM ``-log10(q)`` and QTL ``estimate / tolerance limit``; the
margins (1 z unit, a tenfold change of q, a tenth of the limit) and the benchmark (83% of
signalled sites improved after action; de Viron 2023) are in ``signal_workflow.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from rbqm.analysis import Analysis
from rbqm.signal_workflow import Workflow, load_workflow
from rbqm.signals import indicator_levels

__all__ = ["OUTCOMES", "OUTCOME_COLUMNS", "OutcomeSummary", "signal_outcomes", "summarize_outcomes"]

OUTCOMES: dict[str, str] = {
    "improved": "severity fell, or strength moved toward normal by at least the margin",
    "unchanged": "same severity, strength within the margin",
    "worsened": "severity rose, or strength moved away from normal by at least the margin",
    "too_early": "no later cut yet",
}

OUTCOME_COLUMNS: dict[str, pl.DataType] = {
    "study_id": pl.String(), "signal_id": pl.String(), "kind": pl.String(), "indicator": pl.String(),
    "site_id": pl.String(), "source": pl.String(), "planned_cut": pl.Date(), "baseline_level": pl.Int64(),
    "baseline_strength": pl.Float64(), "compared_cut": pl.Date(), "level": pl.Int64(), "strength": pl.Float64(),
    "outcome": pl.String(), "note": pl.String(),
}

_LEVEL = {0: "not flagged", 1: "amber", 2: "red"}


def _state(level: str, strength: str, cut: str) -> pl.Expr:
    return pl.format("{} at {} (strength {})", pl.col(level).replace_strict(_LEVEL, return_dtype=pl.String),
                     pl.col(cut), pl.col(strength).round(2).cast(pl.String).fill_null("n/a"))


def signal_outcomes(analysis: Analysis, baselines: pl.DataFrame, *, as_of: date | None = None,
                    workflow: Workflow | None = None, levels: pl.DataFrame | None = None) -> pl.DataFrame:
    """The outcome of every actioned signal: its indicator at the action's cut against the latest later cut.

    Parameters
    ----------
    analysis : Analysis
        The study's analysis over its cuts (``rbqm.analysis.analyze_study``).
    baselines : polars.DataFrame
        ``study_id``, ``signal_id``, ``planned_cut`` (and optionally ``source``): one row per actioned
        signal, as ``rbqm.store.actions.action_baselines`` returns.
    as_of : date, optional
        Use only the cuts up to this date (what was known then); default every cut.
    workflow : Workflow, optional
        Replaces the shipped ``signal_workflow.yaml`` (its ``outcomes.margins``).
    levels : polars.DataFrame, optional
        ``rbqm.signals.indicator_levels(analysis)`` when the caller has it already (the dashboard caches
        it: at 1,000 sites it takes a few tenths of a second); computed when omitted.

    Returns
    -------
    polars.DataFrame
        ``OUTCOME_COLUMNS``, one row per baseline, by signal. ``baseline_*`` are the indicator at the
        last analysed cut on or before ``planned_cut``; ``compared_cut``, ``level`` and ``strength``
        at the latest later cut (empty when ``too_early``); ``outcome`` one of ``OUTCOMES``;
        ``note`` one sentence.

    Examples
    --------
    >>> from rbqm.csm import CSM_COLUMNS
    >>> cuts = [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]
    >>> results = pl.DataFrame({"study_id": "S", "cut_date": cuts * 2, "level": "site",
    ...     "group_id": ["1"] * 3 + ["2"] * 3, "kri_id": "kri0010", "score": [3.5, 2.4, 0.5, 2.5, 2.9, 3.2],
    ...     "flag": [2, 1, 0, 1, 1, 2]}, schema_overrides={"flag": pl.Int8})
    >>> analysis = Analysis("S", cuts, results, pl.DataFrame(), pl.DataFrame(), pl.DataFrame(),
    ...                     pl.DataFrame(schema=CSM_COLUMNS))
    >>> baselines = pl.DataFrame({"study_id": "S", "signal_id": ["kri0010@1", "kri0010@2"],
    ...                           "planned_cut": [date(2025, 1, 1), date(2025, 1, 1)]})
    >>> signal_outcomes(analysis, baselines).select("signal_id", "outcome").rows()
    [('kri0010@1', 'improved'), ('kri0010@2', 'worsened')]
    >>> signal_outcomes(analysis, baselines, as_of=date(2025, 1, 1))["outcome"].to_list()
    ['too_early', 'too_early']
    """
    margins = (workflow or load_workflow()).outcomes.margins
    levels = indicator_levels(analysis) if levels is None else levels
    if as_of is not None:
        levels = levels.filter(pl.col("cut_date") <= as_of)
    if "source" not in baselines.columns:
        baselines = baselines.with_columns(source=pl.lit(None, pl.String))
    keys = ["study_id", "signal_id"]
    paired = baselines.select(*keys, "planned_cut", "source").join(levels, on=keys, how="inner")
    before = (paired.filter(pl.col("cut_date") <= pl.col("planned_cut")).sort("cut_date")
              .group_by(keys).last()
              .select(*keys, "source", "planned_cut", "kind", "indicator", "site_id", baseline_level="level",
                      baseline_strength="strength"))
    after = (paired.filter(pl.col("cut_date") > pl.col("planned_cut")).sort("cut_date")
             .group_by(keys).last().select(*keys, compared_cut="cut_date", level="level", strength="strength"))
    margin = pl.col("kind").replace_strict(margins, default=None, return_dtype=pl.Float64)
    moved = pl.col("strength") - pl.col("baseline_strength")
    outcome = (pl.when(pl.col("compared_cut").is_null()).then(pl.lit("too_early"))
               .when(pl.col("level") < pl.col("baseline_level")).then(pl.lit("improved"))
               .when(pl.col("level") > pl.col("baseline_level")).then(pl.lit("worsened"))
               .when(moved <= -margin).then(pl.lit("improved"))
               .when(moved >= margin).then(pl.lit("worsened"))
               .otherwise(pl.lit("unchanged")))
    then = _state("baseline_level", "baseline_strength", "planned_cut")
    now = _state("level", "strength", "compared_cut")
    note = (pl.when(pl.col("compared_cut").is_null())
            .then(pl.format("{}; no later cut yet.", then))
            .otherwise(pl.format("{}; {}{}.", then, now, pl.when(pl.col("level") == pl.col("baseline_level"))
                                 .then(pl.format(": strength moved {} (margin {})", moved.round(2), margin))
                                 .otherwise(pl.lit("")))))
    return (before.join(after, on=keys, how="left")
            .with_columns(outcome=outcome)
            .with_columns(note=note)
            .select(list(OUTCOME_COLUMNS)).cast(OUTCOME_COLUMNS)
            .sort(keys))


@dataclass(frozen=True)
class OutcomeSummary:
    """How many actioned signals improved, and the share of those assessed, against the benchmark."""

    improved: int
    unchanged: int
    worsened: int
    too_early: int
    share_improved: float | None
    benchmark: float
    benchmark_source: str

    @property
    def assessed(self) -> int:
        """Signals with a later cut to compare with."""
        return self.improved + self.unchanged + self.worsened


def summarize_outcomes(outcomes: pl.DataFrame, *, workflow: Workflow | None = None) -> OutcomeSummary:
    """Counts by outcome and the share improved among the assessed signals (None when none is assessed).

    Examples
    --------
    >>> outcomes = pl.DataFrame({"outcome": ["improved", "improved", "worsened", "too_early"]})
    >>> summary = summarize_outcomes(outcomes)
    >>> summary.assessed, round(summary.share_improved, 3), summary.benchmark
    (3, 0.667, 0.83)
    """
    rules = (workflow or load_workflow()).outcomes
    counts = dict.fromkeys(OUTCOMES, 0) | dict(outcomes.group_by("outcome").len().iter_rows())
    assessed = counts["improved"] + counts["unchanged"] + counts["worsened"]
    return OutcomeSummary(improved=counts["improved"], unchanged=counts["unchanged"], worsened=counts["worsened"],
                          too_early=counts["too_early"],
                          share_improved=counts["improved"] / assessed if assessed else None,
                          benchmark=rules.benchmark, benchmark_source=rules.benchmark_source)
