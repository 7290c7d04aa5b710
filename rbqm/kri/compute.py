"""Compute every KRI of a library on a study's analysis tables, per site and per country.

For each definition and level: count the numerator and denominator per group (every
site of the study, or every country), score them with the definition's method, flag
the scores, and note why a group has no score. Then the site risk score (reference
section 2) combines each site's flags with the definitions' weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import polars as pl

from rbqm import stats
from rbqm.derive import AnalysisTables
from rbqm.kri.definition import Count, KriDefinition
from rbqm.stats import tie_safe

__all__ = ["KriResults", "compute_kris", "site_risk", "subject_counts", "RESULT_COLUMNS", "SCORERS",
           "P_VALUE_METHODS"]

LEVEL_KEY = {"site": "SITEID", "country": "COUNTRY"}

# definition method -> (scoring function, funnel-bounds function or None)
SCORERS: dict[str, tuple[Callable[[pl.DataFrame], pl.DataFrame], Callable[..., pl.DataFrame] | None]] = {
    "normal_approx_rate": (lambda df: stats.normal_approx(df, kind="rate"),
                           lambda df, t: stats.normal_approx_bounds(df, kind="rate", thresholds=t)),
    "normal_approx_binary": (lambda df: stats.normal_approx(df, kind="binary"),
                             lambda df, t: stats.normal_approx_bounds(df, kind="binary", thresholds=t)),
    "negative_binomial": (lambda df: stats.overdispersed_exact(df, kind="rate"),
                          lambda df, t: stats.overdispersed_exact_bounds(df, kind="rate", thresholds=t)),
    "beta_binomial": (lambda df: stats.overdispersed_exact(df, kind="binary"),
                      lambda df, t: stats.overdispersed_exact_bounds(df, kind="binary", thresholds=t)),
    "poisson": (lambda df: stats.poisson(df, offset=True), lambda df, t: stats.poisson_bounds(df, thresholds=t)),
    "poisson_free_slope": (lambda df: stats.poisson(df, offset=False),
                           lambda df, t: stats.poisson_bounds(df, offset=False, thresholds=t)),
    "fisher": (stats.fisher, None),
    "identity": (lambda df: stats.identity(df, on="metric"), None),
    "identity_count": (lambda df: stats.identity(df, on="numerator"), None),
}

P_VALUE_METHODS = {"fisher"}

RESULT_COLUMNS = {
    "study_id": pl.String, "cut_date": pl.Date, "level": pl.String, "group_id": pl.String, "kri_id": pl.String,
    "numerator": pl.Float64, "denominator": pl.Float64, "metric": pl.Float64, "score": pl.Float64,
    "flag": pl.Int8, "method": pl.String, "note": pl.String,
}


@dataclass(frozen=True)
class KriResults:
    """The outputs of ``compute_kris`` (see docs/kri-library.md for every column)."""

    results: pl.DataFrame
    bounds: pl.DataFrame
    site_risk: pl.DataFrame


def _reduction(c: Count) -> pl.Expr:
    """Within one subject's rows: how many match the count's filter, or the filtered sum of its column."""
    value = pl.col(c.sum).cast(pl.Float64) if c.sum else None
    if not c.where:
        return value.sum() if value is not None else pl.len().cast(pl.Float64)
    keep = c.filter_expr().fill_null(False)
    return value.filter(keep).sum() if value is not None else keep.cast(pl.Float64).sum()


def _value_columns(c: Count) -> list[str]:
    """The columns whose values a count needs: summed, or matched by value (``not_in`` and ``is_null``
    also make sense on an empty column, so those are not checked)."""
    return [w.column for w in c.where if w.not_in is None and w.is_null is None] + ([c.sum] if c.sum else [])


def _presence(c: Count) -> list[pl.Expr]:
    """For each value column: how many rows the count's other conditions select, and how many of those
    hold a value in it. Rows selected but none holding a value: the study lacks that column."""
    out = []
    for j, column in enumerate(_value_columns(c)):
        others = pl.lit(True)
        for w in c.where:
            if w.column != column:
                others = others & w.expr().fill_null(False)
        out += [others.cast(pl.Int64).sum().alias(f"_o{j}"),
                (others & pl.col(column).is_not_null()).cast(pl.Int64).sum().alias(f"_v{j}")]
    return out


def _empty_columns(c: Count, frame: pl.DataFrame, prefix: str = "") -> list[str]:
    return [col for j, col in enumerate(_value_columns(c))
            if frame[f"{prefix}_o{j}"].sum() > 0 and frame[f"{prefix}_v{j}"].sum() == 0]


def _per_subject(analysis: AnalysisTables, counts: list[Count],
                 ) -> tuple[dict[Count, pl.DataFrame], dict[Count, list[str]]]:
    """Every count reduced to one row per subject, one pass per table: each count is a column of
    its table's per-subject frame (rows matching its filter, or the filtered sum of its column).

    The same pass finds, per count, the value columns the study leaves empty where it matters
    (``_presence``): a KRI needing those is not computable.
    """
    by_table: dict[str, list[Count]] = {}
    for count in counts:
        by_table.setdefault(count.table, []).append(count)
    names = {count: f"_c{i}" for i, count in enumerate(counts)}
    queries = [
        analysis[table].group_by("USUBJID").agg(
            *(_reduction(c).alias(names[c]) for c in table_counts),
            *(e.name.prefix(names[c]) for c in table_counts for e in _presence(c)))
        for table, table_counts in by_table.items()
    ]
    frames = dict(zip(by_table, pl.collect_all(queries)))
    empty = {c: _empty_columns(c, frames[c.table], names[c]) for c in counts}
    return {c: frames[c.table].select("USUBJID", pl.col(names[c]).alias("_n")) for c in counts}, empty


def subject_counts(analysis: AnalysisTables, definitions: list[KriDefinition]) -> pl.DataFrame:
    """KRIs' numerators and denominators per subject: what :func:`compute_kris` adds up per site and country.

    One row per KRI and subject of ``analysis["subjects"]`` (kri_id, USUBJID, SITEID, COUNTRY, numerator,
    denominator), from the same per-subject reduction (one pass over the tables), so a site's rows sum
    to its result. A subject counts 1 or 0 for a ``count: subjects`` part; a part counted from a table
    without subjects (``sites``) is empty. KRIs the study cannot compute (a table or column missing)
    have no rows.
    """
    present = set(analysis.sources)
    computable = [d for d in definitions if d.needs <= present]
    parts = [(d, name, c) for d in computable for name, c in (("numerator", d.numerator), ("denominator", d.denominator))]
    counts = list(dict.fromkeys(c for _, _, c in parts if "USUBJID" in analysis[c.table].collect_schema().names()))
    cache, empty = _per_subject(analysis, counts)
    subjects = analysis["subjects"].select("USUBJID", "SITEID", "COUNTRY").collect()
    frames = []
    for d in computable:
        if any(empty.get(c) for c in (d.numerator, d.denominator)):
            continue
        out = subjects.with_columns(kri_id=pl.lit(d.id))
        for name, c in (("numerator", d.numerator), ("denominator", d.denominator)):
            if c not in cache:
                out = out.with_columns(pl.lit(None, pl.Float64).alias(name))
                continue
            value = (pl.col("_n") > 0).cast(pl.Float64) if c.count == "subjects" else pl.col("_n")
            out = (out.join(cache[c].select("USUBJID", value.alias(name)), on="USUBJID", how="left")
                   .with_columns(pl.col(name).fill_null(0.0)))
        frames.append(out.select("kri_id", "USUBJID", "SITEID", "COUNTRY", "numerator", "denominator"))
    schema = {"kri_id": pl.String, "USUBJID": pl.String, "SITEID": pl.String, "COUNTRY": pl.String,
              "numerator": pl.Float64, "denominator": pl.Float64}
    return pl.concat(frames).cast(schema) if frames else pl.DataFrame(schema=schema)


def _count(analysis: AnalysisTables, count: Count, key: str, name: str,
           cache: dict[Count, pl.DataFrame]) -> pl.LazyFrame:
    """Numerator or denominator per group: from the per-subject reduction joined to the subjects'
    sites (one row per subject instead of one per record), or directly for tables without subjects."""
    if count not in cache:  # e.g. sites
        rows = analysis[count.table].filter(count.filter_expr())
        return rows.group_by(key).agg(count.agg_expr().cast(pl.Float64).alias(name))
    total = (pl.col("_n") > 0).sum() if count.count == "subjects" else pl.col("_n").sum()
    keys = analysis["subjects"].select("USUBJID", key)
    return (cache[count].lazy().join(keys, on="USUBJID", how="inner")
            .group_by(key).agg(total.cast(pl.Float64).alias(name)))


def _groups(analysis: dict[str, pl.LazyFrame], level: str) -> pl.LazyFrame:
    key = LEVEL_KEY[level]
    return analysis["sites"].select(pl.col(key).alias("group_id")).unique().drop_nulls()


def _one(analysis: AnalysisTables, d: KriDefinition, level: str, tables_present: set[str],
         cache: dict[Count, pl.DataFrame], empty: dict[Count, list[str]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    key = LEVEL_KEY[level]
    groups = _groups(analysis, level)
    missing = sorted(t for t in d.needs if t not in tables_present)
    missing += sorted({f"{c.table}.{col}" for c in (d.numerator, d.denominator) for col in empty.get(c, [])})
    if missing:
        blank = groups.collect().with_columns(
            numerator=pl.lit(None, pl.Float64), denominator=pl.lit(None, pl.Float64), metric=pl.lit(None, pl.Float64),
            score=pl.lit(None, pl.Float64), flag=pl.lit(None, pl.Int8),
            note=pl.lit(f"not computable: needs {', '.join(missing)}"))
        return blank, pl.DataFrame()
    frame = (
        groups.join(_count(analysis, d.numerator, key, "numerator", cache).rename({key: "group_id"}),
                    on="group_id", how="left")
        .join(_count(analysis, d.denominator, key, "denominator", cache).rename({key: "group_id"}),
              on="group_id", how="left")
        .with_columns(pl.col("numerator", "denominator").fill_null(0.0))
        .sort("group_id")
        .collect()
    )
    score, bounds = SCORERS[d.method]
    if d.method in P_VALUE_METHODS:  # thresholds are (red, amber) significance levels; direction gives the sign
        scored = stats.flag_p_value(score(frame), red=d.thresholds[0], amber=d.thresholds[1],
                                    min_count=d.minimum.count, min_on=d.minimum.applies_to)
    else:
        scored = stats.flag(score(frame), thresholds=d.thresholds, flags=d.flags, min_count=d.minimum.count,
                            min_on=d.minimum.applies_to)
    below = {"numerator": pl.col("numerator"), "denominator": pl.col("denominator"),
             "difference": pl.col("denominator") - pl.col("numerator")}[d.minimum.applies_to] < d.minimum.count
    scored = scored.with_columns(  # flag() has already emptied score and flag below the minimum
        note=pl.when(pl.col("denominator") == 0).then(pl.lit("no data"))
        .when(below).then(pl.lit(f"too few to score ({d.minimum.applies_to} below {d.minimum.count:g})")),
    )
    funnel = pl.DataFrame()
    if bounds is not None and scored.filter(pl.col("denominator") > 0).height >= 2:
        funnel = bounds(frame, d.thresholds).with_columns(kri_id=pl.lit(d.id), level=pl.lit(level))
    return scored, funnel


def compute_kris(analysis: AnalysisTables, definitions: list[KriDefinition], *, study_id: str,
                 cut_date: date) -> KriResults:
    """Compute every definition at every one of its levels.

    Parameters
    ----------
    analysis
        The analysis tables of ``rbqm.derive.derive_tables``.
    definitions
        From ``rbqm.kri.load_definitions``.
    study_id, cut_date
        Stamped on every row, so results from several studies and cuts can be stacked.
    """
    results, bounds = [], []
    tables_present = set(analysis.sources)
    # subjects and sites are small and read by every KRI: materialise them once
    small = dict(zip(("subjects", "sites"), pl.collect_all([analysis["subjects"], analysis["sites"]])))
    analysis = AnalysisTables({**analysis.tables, **{k: v.lazy() for k, v in small.items()}},
                              analysis.sources, analysis.as_of)
    # every distinct numerator and denominator reduced per subject in one parallel pass over the tables;
    # each KRI and level then only aggregates these small frames
    counts = {c for d in definitions if d.needs <= tables_present for c in (d.numerator, d.denominator)
              if "USUBJID" in analysis[c.table].collect_schema().names()}
    cache, empty = _per_subject(analysis, sorted(counts, key=repr))
    for c in {c for d in definitions if d.needs <= tables_present for c in (d.numerator, d.denominator)} - counts:
        if _value_columns(c):  # tables without subjects (sites): checked directly
            empty[c] = _empty_columns(c, analysis[c.table].select(_presence(c)).collect())
    for d in definitions:
        for level in d.levels:
            scored, funnel = _one(analysis, d, level, tables_present, cache, empty)
            results.append(scored.select(
                pl.lit(study_id).alias("study_id"), pl.lit(cut_date).alias("cut_date"), pl.lit(level).alias("level"),
                pl.col("group_id").cast(pl.String), pl.lit(d.id).alias("kri_id"), "numerator", "denominator",
                "metric", "score", pl.col("flag").cast(pl.Int8), pl.lit(d.method).alias("method"), "note",
            ))
            if funnel.height:
                bounds.append(funnel)
    table = pl.concat(results).cast(RESULT_COLUMNS)
    funnels = pl.concat(bounds, how="diagonal_relaxed") if bounds else pl.DataFrame()
    sites = analysis["sites"].select(pl.col("SITEID").alias("site_id"), pl.col("COUNTRY").alias("country")).collect()
    return KriResults(results=table, bounds=funnels, site_risk=site_risk(table, definitions, sites))


def site_risk(results: pl.DataFrame, definitions: list[KriDefinition], sites: pl.DataFrame) -> pl.DataFrame:
    """Site risk score, 0-100: 100 x the sum of the weights of the site's flags over the sum of the
    largest weight of each KRI the site has a flag for (reference section 2). Also red and amber counts
    and the rank (1 = highest risk)."""
    weights = pl.DataFrame(
        [{"kri_id": d.id, "flag": sign * f, "weight": w, "max_weight": max(d.weights)} for d in definitions
         for f, w in zip(d.flags, d.weights)
         for sign in ((1, -1) if d.method in P_VALUE_METHODS and f else (1,))],  # p-value flags carry a sign
        schema={"kri_id": pl.String, "flag": pl.Int8, "weight": pl.Float64, "max_weight": pl.Float64},
    )
    flagged = (results.filter((pl.col("level") == "site") & pl.col("flag").is_not_null())
               .join(weights, on=["kri_id", "flag"], how="left"))
    per_site = flagged.group_by(pl.col("group_id").alias("site_id")).agg(
        risk_score=pl.when(pl.col("max_weight").sum() > 0)
        .then(100 * pl.col("weight").sum() / pl.col("max_weight").sum()),
        red=(pl.col("flag").abs() == 2).sum().cast(pl.Int64),
        amber=(pl.col("flag").abs() == 1).sum().cast(pl.Int64),
        kris_scored=pl.len().cast(pl.Int64),
    )
    return (
        sites.join(per_site, on="site_id", how="left")
        .with_columns(pl.col("red", "amber", "kris_scored").fill_null(0))
        .with_columns(rank=tie_safe(pl.col("risk_score")).rank("min", descending=True).cast(pl.Int64))
        .sort(["rank", "site_id"], nulls_last=True)
    )
