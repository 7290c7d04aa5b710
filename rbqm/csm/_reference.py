"""The comparison group of a site: the other sites of its country when there are enough of them, else
every other site of the study; its aggregates are derived by subtraction, never by re-grouping."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from rbqm.derive import AnalysisTables

__all__ = ["MIN_COUNTRY_SITES", "MIN_COUNTRY_SUBJECTS", "reference_phrase", "site_countries",
           "versus_rest"]

#: A site is compared within its country when the country has at least this many other sites with
#: data on the variable ...
MIN_COUNTRY_SITES = 5
#: ... holding at least this many subjects between them; otherwise with the whole study.
MIN_COUNTRY_SUBJECTS = 50


def site_countries(analysis: AnalysisTables) -> pl.LazyFrame:
    """One row per site: site_id (String) and country (its COUNTRY, null when unknown)."""
    return (analysis["sites"].select(site_id=pl.col("SITEID").cast(pl.String),
                                     country=pl.col("COUNTRY").cast(pl.String))
            .unique("site_id", keep="first"))


def versus_rest(per_site: pl.LazyFrame, *, count: str, sums: Sequence[str],
                min_country_sites: int = MIN_COUNTRY_SITES,
                min_country_subjects: int = MIN_COUNTRY_SUBJECTS) -> pl.LazyFrame:
    """Add each site's comparison group and that group's aggregates.

    ``per_site`` has one row per (variable, site_id) with ``country``, the subject count ``count``
    and additive aggregates ``sums`` (sums, sums of squares, ...). The comparison group is the other
    sites of the site's country when the country has at least ``min_country_sites`` other sites and
    ``min_country_subjects`` other subjects with the variable, else every other site. Country and
    study totals are computed once (window sums) and the site's own share subtracted.

    Returns the input with ``reference`` (the country code, or null for the whole study) and
    ``rest_<column>`` for ``count`` and every one of ``sums``.
    """
    in_country = ["variable", "country"]
    other_sites = pl.len().over(in_country) - 1
    other_subjects = pl.col(count).sum().over(in_country) - pl.col(count)
    use_country = (pl.col("country").is_not_null() & (other_sites >= min_country_sites)
                   & (other_subjects >= min_country_subjects))

    def rest(column: str) -> pl.Expr:
        country_total = pl.col(column).sum().over(in_country)
        study_total = pl.col(column).sum().over("variable")
        return (pl.when(use_country).then(country_total).otherwise(study_total) - pl.col(column)).alias(
            f"rest_{column}")

    return per_site.with_columns(
        *(rest(column) for column in (count, *sums)),
        reference=pl.when(use_country).then(pl.col("country")),
    )


def reference_phrase() -> pl.Expr:
    """Where the comparison values come from, for descriptions: "at other sites in DEU" or "elsewhere"."""
    return (pl.when(pl.col("reference").is_not_null())
            .then(pl.format("at other sites in {}", pl.col("reference")))
            .otherwise(pl.lit("elsewhere")))
