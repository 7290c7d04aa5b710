"""Signals: every finding of an analysis that calls for a documented decision, tracked across cuts.

A signal is an amber or red KRI flag of a site, a QTL whose secondary limit is crossed (amber) or
whose tolerance limit is breached (red), or a central-monitoring (CSM) finding with q < 0.05
(red below 0.01). The same study, source kind, indicator and site is the same signal at every
cut, named by ``signal_id``:

* ``kri0010@1003``: KRI ``kri0010`` at site 1003;
* ``qtl0002@study``: QTL ``qtl0002`` (study level);
* ``csm:digit_preference:VS:SYSBP@1010``: a CSM test on a variable (as in the ``csm`` table, domain included) at a site.

:func:`derive_signals` returns one row per signal and cut at which it is flagged, plus one
``resolved`` row at the first cut at which a signal flagged at the previous cut is not.
The workflow (owner, status, due date) lives in the store (``rbqm.store.signals``); see
docs/signals.md.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rbqm.analysis import Analysis
from rbqm.kri import load_definitions
from rbqm.qtl import load_qtl_definitions

__all__ = ["SIGNAL_COLUMNS", "SIGNAL_STATES", "LEVEL_COLUMNS", "CSM_ALPHA", "CSM_RED", "derive_signals",
           "indicator_levels", "signal_id_expr"]

#: The columns of :func:`derive_signals`, in order, with their dtypes.
SIGNAL_COLUMNS: dict[str, pl.DataType] = {
    "signal_id": pl.String(), "study_id": pl.String(), "cut_date": pl.Date(), "kind": pl.String(),
    "indicator": pl.String(), "site_id": pl.String(), "severity": pl.String(), "state": pl.String(),
    "first_cut": pl.Date(), "consecutive_cuts": pl.Int64(), "summary": pl.String(),
}

#: The columns of :func:`indicator_levels`, in order, with their dtypes.
LEVEL_COLUMNS: dict[str, pl.DataType] = {
    "study_id": pl.String(), "signal_id": pl.String(), "cut_date": pl.Date(), "kind": pl.String(),
    "indicator": pl.String(), "site_id": pl.String(), "level": pl.Int64(), "strength": pl.Float64(),
}

SIGNAL_STATES: dict[str, str] = {
    "new": "flagged now, not at the previous cut (or this is the first cut)",
    "persisting": "flagged at the previous cut and now, with the same severity",
    "escalated": "flagged at both, red now after amber",
    "de-escalated": "flagged at both, amber now after red",
    "resolved": "flagged at the previous cut, not now",
}

CSM_ALPHA = 0.05
"""A CSM finding is a signal when its q-value is below this (amber)."""
CSM_RED = 0.01
"""... and red when its q-value is below this."""

_SEVERITY = {1: "amber", 2: "red"}
_QTL_LEVEL = {"secondary limit crossed": 1, "tolerance limit breached": 2}
_KEYS = ["study_id", "kind", "indicator", "site_id"]


def signal_id_expr() -> pl.Expr:
    """``signal_id`` from the ``kind``, ``indicator`` and ``site_id`` columns (``kri0001@1003``)."""
    return pl.concat_str(pl.when(pl.col("kind") == "csm").then(pl.lit("csm:")).otherwise(pl.lit("")),
                         pl.col("indicator"), pl.lit("@"), pl.col("site_id"))


def _kri_flags(results: pl.DataFrame, names: dict[str, str]) -> pl.DataFrame:
    return results.filter(pl.col("level") == "site").select(
        "study_id", "cut_date", kind=pl.lit("kri"), indicator=pl.col("kri_id"), site_id=pl.col("group_id"),
        level=pl.col("flag").fill_null(0).abs().cast(pl.Int64),
        strength=pl.col("score").cast(pl.Float64).abs(),
        detail=pl.format("{} at site {} (score {})",
                         pl.col("kri_id").replace_strict(names, default=pl.col("kri_id")),
                         pl.col("group_id"), pl.col("score").round(2)),
    )


def _qtl_flags(qtl: pl.DataFrame, names: dict[str, str]) -> pl.DataFrame:
    return qtl.select(
        "study_id", "cut_date", kind=pl.lit("qtl"), indicator=pl.col("qtl_id"), site_id=pl.lit("study"),
        level=pl.col("status").replace_strict(_QTL_LEVEL, default=0, return_dtype=pl.Int64),
        strength=(pl.col("estimate") / pl.col("limit")).cast(pl.Float64),
        detail=pl.format("{} (study level: {} against secondary limit {} and tolerance limit {})",
                         pl.col("qtl_id").replace_strict(names, default=pl.col("qtl_id")),
                         pl.col("estimate").round(4), pl.col("secondary_limit").round(4), pl.col("limit").round(4)),
    )


def _csm_flags(csm: pl.DataFrame) -> pl.DataFrame:
    q = pl.col("q_value")
    return csm.select(
        "study_id", "cut_date", kind=pl.lit("csm"),
        indicator=pl.concat_str(pl.col("test"), pl.lit(":"), pl.col("variable")),  # the whole variable: SV:X and EX:X differ
        site_id=pl.col("site_id"),
        level=pl.when(q < CSM_RED).then(2).when(q < CSM_ALPHA).then(1).otherwise(0).cast(pl.Int64),
        strength=(1.0 / q.cast(pl.Float64)).log10(),  # -log10 q, but never -0.0 when q is 1
        detail=pl.col("description").str.strip_chars_end("."),
    )


def _indicators(analysis: Analysis, *, kri_dir: Path | None = None, named: bool = True) -> pl.DataFrame:
    """Every signal candidate at every cut it was computed: keys, level (0, 1 amber, 2 red), strength, and
    detail (naming the indicators from their definitions when ``named``, else by id)."""
    kri_names = {d.id: d.name for d in load_definitions(kri_dir)} if named else {}
    qtl_names = {d.id: d.name for d in load_qtl_definitions(kri_dir)} if named else {}
    parts = [_kri_flags(analysis.results, kri_names)] if analysis.results.height else []
    if analysis.qtl.height:
        parts.append(_qtl_flags(analysis.qtl, qtl_names))
    if analysis.csm.height:
        parts.append(_csm_flags(analysis.csm))
    if not parts:
        return pl.DataFrame(schema={"study_id": pl.String, "cut_date": pl.Date, "kind": pl.String,
                                    "indicator": pl.String, "site_id": pl.String, "level": pl.Int64,
                                    "strength": pl.Float64, "detail": pl.String})
    return pl.concat(parts, how="vertical_relaxed")


def indicator_levels(analysis: Analysis) -> pl.DataFrame:
    """Every signal's indicator at every cut it was computed, flagged or not: its level and strength.

    ``level`` is 0 (not flagged), 1 (amber) or 2 (red), as in :func:`derive_signals`. ``strength``
    says how far from normal the indicator is, by kind: KRI ``|score|`` (empty when too few to
    score), CSM ``-log10(q)``, QTL ``estimate / tolerance limit``. ``rbqm.outcomes`` compares them
    across cuts.

    Returns
    -------
    polars.DataFrame
        ``LEVEL_COLUMNS``, sorted by signal and cut.

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.csm import CSM_COLUMNS
    >>> results = pl.DataFrame({"study_id": ["S"] * 2, "cut_date": [date(2025, 1, 1), date(2025, 2, 1)],
    ...     "level": ["site"] * 2, "group_id": ["1003"] * 2, "kri_id": ["kri0010"] * 2,
    ...     "score": [3.4, 1.2], "flag": [2, 0]}, schema_overrides={"flag": pl.Int8})
    >>> analysis = Analysis("S", [date(2025, 1, 1), date(2025, 2, 1)], results, pl.DataFrame(),
    ...     pl.DataFrame(), pl.DataFrame(), pl.DataFrame(schema=CSM_COLUMNS))
    >>> indicator_levels(analysis).select("signal_id", "level", "strength").rows()
    [('kri0010@1003', 2, 3.4), ('kri0010@1003', 0, 1.2)]
    """
    return (_indicators(analysis, named=False).with_columns(signal_id=signal_id_expr())
            .select(list(LEVEL_COLUMNS)).cast(LEVEL_COLUMNS).sort(["study_id", "signal_id", "cut_date"]))


def derive_signals(analysis: Analysis, *, kri_dir: Path | None = None) -> pl.DataFrame:
    """The signals of an analysis, one row per signal and cut at which it is flagged or resolved.

    Parameters
    ----------
    analysis : Analysis
        From ``rbqm.analysis.analyze_study`` (one or more cuts; ``results``, ``qtl`` and ``csm``).
    kri_dir : Path, optional
        The definitions' folder, for the indicators' names in ``summary`` (default: the shipped library).

    Returns
    -------
    polars.DataFrame
        ``SIGNAL_COLUMNS``: ``severity`` is amber or red (for a resolved row, the severity it had);
        ``state`` one of ``SIGNAL_STATES``; ``first_cut`` the first cut at which the signal was ever
        flagged; ``consecutive_cuts`` how many cuts in a row, up to this one, it has been flagged
        (0 when resolved); ``summary`` one sentence. Sorted by cut, kind, indicator and site.

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.csm import CSM_COLUMNS
    >>> results = pl.DataFrame({"study_id": ["S"] * 2, "cut_date": [date(2025, 1, 1), date(2025, 2, 1)],
    ...     "level": ["site"] * 2, "group_id": ["1003"] * 2, "kri_id": ["kri0010"] * 2,
    ...     "score": [2.5, 3.4], "flag": [1, 2]}, schema_overrides={"flag": pl.Int8})
    >>> analysis = Analysis("S", [date(2025, 1, 1), date(2025, 2, 1)], results, pl.DataFrame(),
    ...     pl.DataFrame(), pl.DataFrame(), pl.DataFrame(schema=CSM_COLUMNS))
    >>> derive_signals(analysis).select("signal_id", "severity", "state", "consecutive_cuts").rows()
    [('kri0010@1003', 'amber', 'new', 1), ('kri0010@1003', 'red', 'escalated', 2)]
    """
    flags = _indicators(analysis, kri_dir=kri_dir).filter(pl.col("level") > 0).drop("strength")
    cuts = pl.DataFrame({"cut_date": analysis.cut_dates}, schema={"cut_date": pl.Date})
    by = "signal_id"
    level = pl.col("level")
    before = pl.col("previous_level")
    flagged = (level > 0).cast(pl.Int64)
    grid = (flags.select(_KEYS).unique().join(cuts, how="cross")
            .join(flags, on=[*_KEYS, "cut_date"], how="left")
            .with_columns(signal_id=signal_id_expr(), level=level.fill_null(0))
            .sort([by, "cut_date"])
            .with_columns(previous_level=level.shift(1).over(by).fill_null(0),
                          previous_detail=pl.col("detail").shift(1).over(by),
                          _run=(flagged == 0).cum_sum().over(by),
                          first_cut=pl.when(level > 0).then(pl.col("cut_date")).min().over(by))
            .with_columns(consecutive_cuts=flagged.cum_sum().over([by, "_run"]) * flagged,
                          state=pl.when((level > 0) & (before == 0)).then(pl.lit("new"))
                          .when((level > 0) & (level > before)).then(pl.lit("escalated"))
                          .when((level > 0) & (level < before)).then(pl.lit("de-escalated"))
                          .when(level > 0).then(pl.lit("persisting"))
                          .when(before > 0).then(pl.lit("resolved")))
            .filter(pl.col("state").is_not_null()))
    severity = pl.when(level > 0).then(level).otherwise(before).replace_strict(_SEVERITY, return_dtype=pl.String)
    cuts_text = pl.when(pl.col("consecutive_cuts") == 1).then(pl.lit("cut")).otherwise(pl.lit("cuts"))
    summary = (pl.when(pl.col("state") == "resolved")
               .then(pl.format("{}: no longer flagged (it was {} at the previous cut).",
                               pl.col("previous_detail"), severity))
               .otherwise(pl.format("{}: {}, {} for {} consecutive {}.", pl.col("detail"), severity,
                                    pl.col("state"), pl.col("consecutive_cuts"), cuts_text)))
    return (grid.with_columns(severity=severity, summary=summary)
            .select(list(SIGNAL_COLUMNS))
            .cast(SIGNAL_COLUMNS)
            .sort(["cut_date", "kind", "indicator", "site_id"]))
