"""The region of each site: the study's own (``sites.REGION``), else its country's region in
``rbqm/regions.yaml`` (a country -> region map kept as data), for grouping and filtering sites."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import polars as pl
import yaml

from rbqm.errors import DefinitionError
from rbqm.io import find_tables, scan_study
from rbqm.study import list_cuts

__all__ = ["REGIONS_FILE", "load_regions", "study_site_regions", "with_regions"]

REGIONS_FILE = Path(__file__).with_name("regions.yaml")
_COUNTRY = re.compile(r"[A-Z]{3}")


def load_regions(path: Path | None = None) -> dict[str, str]:
    """The country -> region map (default: the shipped ``rbqm/regions.yaml``: region -> list of countries).

    Raises
    ------
    DefinitionError
        Naming the file and the problem: not YAML, not a mapping of region to a list of ISO 3166-1
        alpha-3 codes, or a country listed under two regions.

    Examples
    --------
    >>> regions = load_regions()
    >>> regions["FRA"], regions["JPN"], regions["USA"]
    ('Western Europe', 'Asia-Pacific', 'North America')
    """
    path = Path(path) if path else REGIONS_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or not raw:
        raise DefinitionError(f"{path}: expected a mapping of region name to a list of country codes")
    out: dict[str, str] = {}
    for region, countries in raw.items():
        if not isinstance(region, str) or not isinstance(countries, list):
            raise DefinitionError(f"{path}: {region!r}: expected a region name and a list of country codes")
        for country in countries:
            if not isinstance(country, str) or not _COUNTRY.fullmatch(country):
                raise DefinitionError(f"{path}: {region}: {country!r} is not an ISO 3166-1 alpha-3 code "
                                      "(e.g. FRA)")
            if country in out:
                raise DefinitionError(f"{path}: {country} is listed under both {out[country]} and {region}")
            out[country] = region
    return out


def study_site_regions(study_dir: Path) -> pl.DataFrame:
    """The regions a study's sites table gives (``site_id``, ``region``; nulls dropped), read from the
    study folder or, when it holds only data cuts, from its newest cut. Empty without a REGION column."""
    study_dir = Path(study_dir)
    cuts = list_cuts(study_dir)
    folder = cuts[-1] if cuts and "dm" not in find_tables(study_dir) else study_dir
    tables = scan_study(folder)
    empty = pl.DataFrame(schema={"site_id": pl.String, "region": pl.String})
    if "sites" not in tables or "REGION" not in tables["sites"].collect_schema().names():
        return empty
    return (tables["sites"].select(site_id=pl.col("SITEID").cast(pl.String), region=pl.col("REGION"))
            .filter(pl.col("region").is_not_null() & (pl.col("region").str.strip_chars() != ""))
            .unique("site_id", keep="first").collect())


def with_regions(frame: pl.DataFrame, *, site_regions: pl.DataFrame | None = None,
                 regions: Mapping[str, str] | None = None, site: str = "site_id",
                 country: str = "country") -> pl.DataFrame:
    """``frame`` with a ``region`` column: the study's region of the site (``site_regions``, from
    :func:`study_site_regions`) when it gives one, else the region of the site's country in
    ``regions`` (default :func:`load_regions`), else null.

    Examples
    --------
    >>> sites = pl.DataFrame({"site_id": ["1", "2", "3"], "country": ["FRA", "usa", "XXX"]})
    >>> own = pl.DataFrame({"site_id": ["1"], "region": ["EMEA"]})
    >>> with_regions(sites, site_regions=own)["region"].to_list()
    ['EMEA', 'North America', None]
    """
    regions = load_regions() if regions is None else regions
    own = site_regions if site_regions is not None else pl.DataFrame(
        schema={"site_id": pl.String, "region": pl.String})
    mapped = pl.col(country).str.to_uppercase().replace_strict(dict(regions), default=None,
                                                               return_dtype=pl.String)
    return (frame.join(own.select(pl.col("site_id").alias(site), pl.col("region").alias("_own")), on=site,
                       how="left")
            .with_columns(region=pl.coalesce("_own", mapped))
            .drop("_own"))
