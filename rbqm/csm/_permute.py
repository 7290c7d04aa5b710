"""Site-label permutation: the same study with its subjects shuffled between sites (the null of the
data inconsistency score)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from rbqm.csm._contract import check_analysis, check_integer
from rbqm.derive import AnalysisTables
from rbqm.errors import RbqmError

__all__ = ["MIN_COUNTRY_SITES", "permute_sites", "permutation_strata"]

#: A country's subjects are shuffled among its own sites when it has at least this many sites (the
#: site and 5 others: what the CSM tests need to compare a site within its country); the subjects of
#: smaller countries are shuffled among all the sites of such countries.
MIN_COUNTRY_SITES = 6
_KEYS = ("SITEID", "COUNTRY", "REGION")


def permutation_strata(subjects: pl.DataFrame, *, within: Literal["country"] | None = "country",
                       min_country_sites: int = MIN_COUNTRY_SITES) -> pl.Series:
    """The stratum of each subject within which site labels are shuffled (one value per row).

    ``within=None``: one stratum (the whole study). ``"country"``: the subject's COUNTRY when that
    country has at least ``min_country_sites`` sites, else one shared stratum for every smaller
    country (so a country with a single site still has its subjects shuffled).
    """
    if within is None:
        return pl.Series("stratum", [""] * subjects.height, pl.String)
    sites = pl.col("SITEID").n_unique().over("COUNTRY")
    return subjects.select(stratum=pl.when(pl.col("COUNTRY").is_not_null() & (sites >= min_country_sites))
                           .then(pl.col("COUNTRY").cast(pl.String)).otherwise(pl.lit(""))).to_series()


def _shuffled_keys(subjects: pl.DataFrame, strata: pl.Series, rng: np.random.Generator) -> pl.DataFrame:
    """Row by row, USUBJID with the site columns of another subject of its stratum (a uniform random
    permutation within each stratum, so every site keeps its number of subjects)."""
    codes = strata.rank("dense").to_numpy()
    position = np.arange(subjects.height)
    by_stratum = np.lexsort((position, codes))              # each stratum's subjects, in table order
    shuffled = np.lexsort((rng.random(subjects.height), codes))  # the same blocks, in random order
    donor = np.empty(subjects.height, np.int64)
    donor[shuffled] = by_stratum
    keys = subjects.select(_KEYS)[donor]
    return pl.concat([subjects.select("USUBJID"), keys], how="horizontal")


def permute_sites(analysis: AnalysisTables, *, seed: int, within: Literal["country"] | None = "country",
                  min_country_sites: int = MIN_COUNTRY_SITES) -> AnalysisTables:
    """The analysis tables with every subject moved to a random site: the site-label permutation null.

    The site columns (SITEID, COUNTRY, REGION) of the ``subjects`` table are permuted among subjects,
    within strata (:func:`permutation_strata`); every site keeps its number of subjects and, with
    ``within="country"``, its subjects come from its own country. Tables that carry SITEID (``visits``)
    get the new labels by subject; record tables (ae, lb, vs, ...) get them through
    ``AnalysisTables.with_sites``; the ``sites`` table is unchanged. A subject's records all move with
    it, so everything within a subject (visit-to-visit variation, its AEs) is kept.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``.
    seed : int
        Seed of ``numpy.random.default_rng``: the same seed gives the same permutation.
    within : {"country", None}, default "country"
        Shuffle within countries (countries with fewer than ``min_country_sites`` sites pooled), or
        across the whole study.
    min_country_sites : int, default 6
        See :func:`permutation_strata`.

    Returns
    -------
    AnalysisTables
        Same tables, sources and as-of date; ``subjects`` is materialised (one row per subject).

    Examples
    --------
    >>> from datetime import date
    >>> from rbqm.derive import derive_tables
    >>> dm = pl.DataFrame({"STUDYID": "S", "USUBJID": ["1", "2", "3", "4"], "SITEID": ["A", "A", "B", "C"],
    ...                    "COUNTRY": "FRA", "RFSTDTC": "2024-01-02", "ARMCD": "X"})
    >>> analysis = derive_tables({"dm": dm}, as_of=date(2024, 6, 1))
    >>> shuffled = permute_sites(analysis, seed=1)["subjects"].collect()
    >>> sorted(shuffled["SITEID"].to_list())   # every site keeps its number of subjects
    ['A', 'A', 'B', 'C']
    """
    check_analysis(analysis, "permute_sites")
    check_integer(seed, "seed", "permute_sites", low=0)
    check_integer(min_country_sites, "min_country_sites", "permute_sites", low=1)
    if within not in ("country", None):
        raise RbqmError(f"The 'within' parameter of permute_sites must be 'country' or None; got {within!r} instead.")
    subjects = analysis["subjects"].collect().sort("USUBJID")  # a fixed order: the same seed, the same labels
    keys = _shuffled_keys(subjects, permutation_strata(subjects, within=within, min_country_sites=min_country_sites),
                          np.random.default_rng(seed))
    tables = {"subjects": subjects.with_columns(keys.drop("USUBJID")).lazy()}  # keys are row-aligned
    for name, frame in analysis.tables.items():
        columns = frame.collect_schema().names()
        if name in {"subjects", "sites"} or "SITEID" not in columns or "USUBJID" not in columns:
            continue
        tables[name] = (frame.drop([k for k in _KEYS if k in columns])
                        .join(keys.lazy().select("USUBJID", *(k for k in _KEYS if k in columns)),
                              on="USUBJID", how="left")
                        .select(columns))
    return AnalysisTables({**analysis.tables, **tables}, analysis.sources, analysis.as_of)
