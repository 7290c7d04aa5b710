"""Compute every QTL of a library on a study's analysis tables: one row per QTL.

For each definition: count the numerator and denominator per site (the same ``Count`` filters
and aggregations as the KRIs), add them up for the study, estimate the study rate with the
definition's method, compare it with the limits, and compute the posterior probability that
the true study rate exceeds the tolerance limit from a hierarchical model over the sites
(beta-binomial for shares, gamma-Poisson for rates). See docs/qtl.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import reduce

import numpy as np
import polars as pl

from pydantic import ValidationError

from rbqm.derive import AnalysisTables
from rbqm.errors import DefinitionError
from rbqm.kri.definition import Count
from rbqm.qtl._hierarchical import PosteriorPredictive, beta_binomial_predictive, gamma_poisson_predictive
from rbqm.qtl._proportion import clopper_pearson, one_sided_proportion
from rbqm.qtl.definition import QtlDefinition

__all__ = ["BETA_BINOMIAL_BOUNDS", "QTL_RESULT_COLUMNS", "QTL_STATUSES", "compute_qtls", "site_counts", "with_limits"]

#: Status of a QTL, from best to worst.
QTL_STATUSES = ("within limits", "secondary limit crossed", "tolerance limit breached")

QTL_RESULT_COLUMNS = {
    "study_id": pl.String, "cut_date": pl.Date, "qtl_id": pl.String, "numerator": pl.Float64,
    "denominator": pl.Float64, "estimate": pl.Float64, "lower": pl.Float64, "upper": pl.Float64,
    "limit": pl.Float64, "secondary_limit": pl.Float64, "status": pl.String,
    "probability_exceed": pl.Float64, "method": pl.String, "note": pl.String,
}

#: Confidence (or credible) level of ``lower`` and ``upper``.
LEVEL = 0.95
#: Posterior draws of the study rate (Monte Carlo error of probability_exceed <= 0.0036).
DRAWS = 20_000
_SEED = 20110  # fixed: the same data always give the same probabilities
#: Bounds (a_max, b_max) of the uniform hyper-priors of the beta-binomial model of a binary QTL. Berry's
#: U(0, 10) forces a + b <= 10 / (1 - mean), i.e. a between-site standard deviation of at least about
#: sqrt(mean / 11): far more heterogeneity than shares of 1-15% show, and the truncated prior pulls the
#: study rate up by about half a standard error. U(0, 100) leaves room for the heterogeneity QTL data
#: have (docs/qtl.md). The gamma-Poisson model's mean is free of its shape bound, so it keeps its default.
BETA_BINOMIAL_BOUNDS = (100.0, 100.0)


# derived columns that rbqm.derive leaves empty when a study table is absent: name the table
_DERIVED_FROM = {("subjects", "ineligible"): "ie"}


def _value_checks(d: QtlDefinition) -> list[tuple[str, str, pl.Expr]]:
    """(table, column, scope) for every column a QTL matches by value or sums.

    The column is an input the study lacks when the rows the rest of its count's filter selects exist
    but hold no value in it (e.g. DVCAT empty on the important deviations). A table without rows, or a
    filter that selects none (no deaths yet), is a count of zero, not a missing input. ``not_in`` and
    ``is_null`` make sense on an empty column, so they are not checked (the KRIs' rule).
    """
    def scope(conditions: list[pl.Expr]) -> pl.Expr:  # as long as the frame, even without conditions
        return reduce(lambda a, b: a & b, conditions, pl.repeat(True, pl.len())).fill_null(False)

    checks = []
    for count in (d.numerator, d.denominator):
        for w in count.where:
            if w.not_in is None and w.is_null is None:
                checks.append((count.table, w.column, scope([x.expr() for x in count.where if x is not w])))
        if count.sum:
            checks.append((count.table, count.sum, scope([x.expr() for x in count.where])))
    return checks


def _missing_columns(analysis: AnalysisTables, definitions: list[QtlDefinition]) -> dict[str, list[str]]:
    """``table.column`` inputs each definition lacks (see ``_value_checks``), in one parallel pass."""
    keyed = {d.id: [(t, c, scope, f"{t}|{c}|{scope}") for t, c, scope in _value_checks(d)] for d in definitions}
    unique = {key: (t, c, scope) for checks in keyed.values() for t, c, scope, key in checks}
    found = pl.collect_all([
        analysis[t].select(rows=scope.any(), values=pl.col(c).filter(scope).is_not_null().any())
        for t, c, scope in unique.values()
    ])
    lacking = {key for key, frame in zip(unique, found) if frame["rows"].item() and not frame["values"].item()}
    return {d_id: sorted({_DERIVED_FROM.get((t, c), f"{t}.{c}") for t, c, _, key in checks if key in lacking})
            for d_id, checks in keyed.items()}


def _per_site(analysis: AnalysisTables, count: Count, name: str) -> pl.LazyFrame:
    return (analysis.with_sites(count.table).filter(count.filter_expr())
            .group_by("SITEID").agg(count.agg_expr().cast(pl.Float64).alias(name)))


def site_counts(analysis: AnalysisTables, definition: QtlDefinition) -> pl.LazyFrame:
    """Numerator and denominator of a QTL per site (``SITEID``, ``numerator``, ``denominator``).

    A rate counts its numerator and denominator independently, as a KRI does. A binary QTL is a
    share of the denominator's population: its numerator counts only the subjects (or, for records,
    the rows of the same table) that the denominator counts and that also match the numerator's
    filter, so ``numerator <= denominator`` at every site. Sites without any counted row are absent.

    Examples
    --------
    >>> from rbqm.derive import derive_tables
    >>> from rbqm.qtl import load_qtl_definitions
    >>> from synthetic import SynthConfig, build_trial, tables_at
    >>> cfg = SynthConfig(sites=8, subjects=400, countries=2, seed=1, months=12)
    >>> analysis = derive_tables({n: f.collect() for n, f in tables_at(build_trial(cfg), cfg.end_day).items()})
    >>> important_deviations = load_qtl_definitions()[0]  # qtl0001
    >>> site_counts(analysis, important_deviations).sort("SITEID").collect().row(0)
    ('1001', 3.0, 22.0)
    """
    num, den = definition.numerator, definition.denominator
    if definition.kind == "rate":
        return (_per_site(analysis, num, "numerator")
                .join(_per_site(analysis, den, "denominator"), on="SITEID", how="full", coalesce=True)
                .with_columns(pl.col("numerator", "denominator").fill_null(0.0)))
    if num.count == "records":
        return (analysis.with_sites(den.table).filter(den.filter_expr()).group_by("SITEID").agg(
            numerator=num.filter_expr().fill_null(False).sum().cast(pl.Float64),
            denominator=pl.len().cast(pl.Float64)))
    population = (analysis.with_sites(den.table).filter(den.filter_expr())
                  .select("USUBJID", "SITEID").unique("USUBJID"))
    cases = (analysis[num.table].filter(num.filter_expr())
             .select("USUBJID").unique().with_columns(_case=pl.lit(1.0)))
    return (population.join(cases, on="USUBJID", how="left").group_by("SITEID")
            .agg(numerator=pl.col("_case").sum().cast(pl.Float64), denominator=pl.len().cast(pl.Float64)))


def _status(estimate: float, secondary: float, limit: float) -> str:
    """Each limit belongs to the worse side."""
    if estimate >= limit:
        return QTL_STATUSES[2]
    return QTL_STATUSES[1] if estimate >= secondary else QTL_STATUSES[0]


def _judge(d: QtlDefinition, sites: pl.DataFrame) -> dict[str, object]:
    """The statistics of one QTL from its per-site counts."""
    events = sites["numerator"].to_numpy().astype(float)
    sizes = sites["denominator"].to_numpy().astype(float)
    numerator, denominator = float(events.sum()), float(sizes.sum())
    row: dict[str, object] = {"numerator": numerator, "denominator": denominator}
    if denominator <= 0:
        return row | {"note": "no data: the denominator is 0"}
    used = sizes > 0
    model: PosteriorPredictive = (beta_binomial_predictive(sizes[used], events[used], *BETA_BINOMIAL_BOUNDS)
                                  if d.kind == "binary"
                                  else gamma_poisson_predictive(sizes[used], events[used]))
    theta = model.study_rate(draws=DRAWS, seed=_SEED) * d.metric_scale
    secondary, limit = d.secondary_limit, d.tolerance_limit
    if d.method in ("beta_binomial", "gamma_poisson"):
        estimate = model.study_rate_mean() * d.metric_scale
        lower, upper = np.quantile(theta, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    else:
        estimate = numerator / denominator
        lower, upper = clopper_pearson(int(numerator), int(denominator), LEVEL)
        if d.method == "one_sided_proportion":
            limit = one_sided_proportion(int(numerator), int(denominator), d.expected_rate).limit
            secondary = d.expected_rate
    return row | {
        "estimate": float(estimate), "lower": float(lower), "upper": float(upper), "limit": float(limit),
        "secondary_limit": float(secondary), "status": _status(estimate, secondary, limit),
        "probability_exceed": float(np.mean(theta > limit)),
    }


#: The keys of one QTL's limits in ``with_limits`` (and of ``rbqm.store.qtl.stored_limits``).
LIMIT_KEYS = ("limit", "secondary_limit", "expected_rate", "method")


def with_limits(definitions: list[QtlDefinition],
                limits: Mapping[str, Mapping[str, float | str | None]] | None) -> list[QtlDefinition]:
    """``definitions`` with a study's own limits: ``{qtl_id: {"limit", "secondary_limit", "expected_rate",
    "method"}}``; a missing or ``None`` value keeps the library's.

    Each changed definition is validated again (limits increase, a binary QTL's limits are proportions, a
    method that derives its limits -- one_sided_proportion -- cannot take fixed ones).

    Raises
    ------
    DefinitionError
        Naming the QTL and the mistake; also for a ``qtl_id`` that is not among ``definitions``.

    Examples
    --------
    >>> from rbqm.qtl import load_qtl_definitions
    >>> library = load_qtl_definitions()
    >>> changed = with_limits(library, {"qtl0001": {"limit": 0.3, "secondary_limit": 0.22}})
    >>> [(d.id, d.secondary_limit, d.tolerance_limit) for d in changed][:1]
    [('qtl0001', 0.22, 0.3)]
    """
    limits = dict(limits or {})
    unknown = sorted(set(limits) - {d.id for d in definitions})
    if unknown:
        raise DefinitionError(f"limits for unknown QTL {', '.join(unknown)}: the definitions are "
                              f"{', '.join(d.id for d in definitions)}")
    out = []
    for d in definitions:
        given = {k: v for k, v in limits.get(d.id, {}).items() if v is not None}
        if not given:
            out.append(d)
            continue
        bad = sorted(set(given) - set(LIMIT_KEYS))
        if bad:
            raise DefinitionError(f"limits of {d.id}: unknown key {', '.join(bad)}; use {', '.join(LIMIT_KEYS)}")
        fields = d.model_dump() | {"tolerance_limit" if k == "limit" else k: v for k, v in given.items()}
        try:
            out.append(QtlDefinition.model_validate(fields))
        except ValidationError as exc:
            problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise DefinitionError(f"limits of {d.id} ({', '.join(f'{k}={v}' for k, v in given.items())}): "
                                  f"{problems}") from exc
    return out


def compute_qtls(analysis: AnalysisTables, definitions: list[QtlDefinition], *, study_id: str,
                 cut_date: date, limits: Mapping[str, Mapping[str, float | str | None]] | None = None
                 ) -> pl.DataFrame:
    """Compute every QTL of ``definitions`` for one study at one data cut: one row per QTL.

    Parameters
    ----------
    analysis
        The analysis tables of ``rbqm.derive.derive_tables``.
    definitions
        From :func:`rbqm.qtl.load_qtl_definitions`.
    study_id, cut_date
        Stamped on every row, so results from several studies and cuts can be stacked.
    limits
        The study's own limits overriding the definitions' (see :func:`with_limits`), e.g. from
        ``rbqm.store.qtl.stored_limits``; ``None`` uses the library's.

    Returns
    -------
    polars.DataFrame
        The columns of ``QTL_RESULT_COLUMNS``: ``numerator`` and ``denominator`` (study totals),
        ``estimate`` of the study rate with its 95% interval ``lower``-``upper`` (Clopper-Pearson for
        proportion_exact and one_sided_proportion, posterior credible interval of the study rate for
        beta_binomial and gamma_poisson), the tolerance ``limit`` and ``secondary_limit`` in effect,
        ``status`` (``QTL_STATUSES``: the estimate against the limits, each limit closed), the posterior
        ``probability_exceed`` that the true study rate exceeds the tolerance limit, ``method`` and
        ``note``. A QTL whose tables or columns the study lacks has the note "not computable: needs ..."
        and no numbers, never zeros.

    Examples
    --------
    >>> from rbqm.derive import derive_tables
    >>> from rbqm.qtl import load_qtl_definitions
    >>> from synthetic import SynthConfig, build_trial, tables_at
    >>> cfg = SynthConfig(sites=8, subjects=400, countries=2, seed=1, months=12)
    >>> analysis = derive_tables({n: f.collect() for n, f in tables_at(build_trial(cfg), cfg.end_day).items()})
    >>> results = compute_qtls(analysis, load_qtl_definitions(), study_id="S1", cut_date=analysis.as_of)
    >>> results.columns == list(QTL_RESULT_COLUMNS)
    True
    >>> results.filter(pl.col("qtl_id") == "qtl0002").select("numerator", "denominator", "status").row(0)
    (8.0, 400.0, 'within limits')
    """
    definitions = with_limits(definitions, limits)
    present = set(analysis.sources)
    missing: dict[str, list[str]] = {d.id: sorted(d.needs - present) for d in definitions}
    lacking = _missing_columns(analysis, [d for d in definitions if not missing[d.id]])
    for d_id, columns in lacking.items():
        missing[d_id] += columns
    computable = [d for d in definitions if not missing[d.id]]
    counts = dict(zip((d.id for d in computable),
                      pl.collect_all([site_counts(analysis, d).sort("SITEID") for d in computable])))
    rows = []
    for d in definitions:
        row: dict[str, object] = ({"note": f"not computable: needs {', '.join(missing[d.id])}"} if missing[d.id]
                                  else _judge(d, counts[d.id]))
        rows.append({"study_id": study_id, "cut_date": cut_date, "qtl_id": d.id, **row, "method": d.method})
    frame = pl.DataFrame(rows, schema_overrides=QTL_RESULT_COLUMNS, infer_schema_length=None)
    return frame.select(pl.col(c).cast(t) if c in frame.columns else pl.lit(None, t).alias(c)
                        for c, t in QTL_RESULT_COLUMNS.items())
