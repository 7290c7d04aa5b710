"""rbqm.regions: the country -> region map (rbqm/regions.yaml) and each site's region."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from rbqm.errors import DefinitionError
from rbqm.io import write_table
from rbqm.regions import REGIONS_FILE, load_regions, study_site_regions, with_regions
from rbqm.schema import polars_schema


def test_the_shipped_map_covers_the_synthetic_countries_with_the_same_regions() -> None:
    catalogue = yaml.safe_load((Path(__file__).parents[1] / "synthetic" / "catalogue.yaml").read_text())
    regions = load_regions()
    assert {c["code"]: regions.get(c["code"]) for c in catalogue["countries"]} == \
        {c["code"]: c["region"] for c in catalogue["countries"]}
    assert len(regions) > 100 and REGIONS_FILE.name == "regions.yaml"


@pytest.mark.parametrize(("text", "message"), [
    ("Europe: [FRA]\nAsia: [JPN, FRA]\n", "FRA is listed under both Europe and Asia"),
    ("Europe: [FR]\n", r"Europe: 'FR' is not an ISO 3166-1 alpha-3 code"),
    ("Europe: FRA\n", "'Europe': expected a region name and a list of country codes"),
    ("- FRA\n", "expected a mapping of region name to a list of country codes"),
    ("Europe: [FRA\n", "not valid YAML"),
])
def test_a_bad_map_names_the_file_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "regions.yaml"
    path.write_text(text)
    with pytest.raises(DefinitionError, match=message) as caught:
        load_regions(path)
    assert str(path) in str(caught.value)


def test_a_missing_map_is_a_definition_error(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot be read"):
        load_regions(tmp_path / "nowhere.yaml")


def test_the_study_region_wins_then_the_country_map_then_nothing() -> None:
    sites = pl.DataFrame({"site_id": ["1", "2", "3", "4"], "country": ["FRA", "fra", "XXX", None]})
    own = pl.DataFrame({"site_id": ["1", "3"], "region": ["EMEA", "Other"]})
    out = with_regions(sites, site_regions=own, regions={"FRA": "Western Europe"})
    assert out["region"].to_list() == ["EMEA", "Western Europe", "Other", None]
    assert out.columns == ["site_id", "country", "region"]


def _study(folder: Path, regions: list[str | None] | None) -> Path:
    dm = pl.DataFrame({"STUDYID": ["S"] * 2, "USUBJID": ["S-1", "S-2"], "SITEID": ["1", "2"],
                       "COUNTRY": ["FRA", "JPN"], "RFICDTC": ["2024-01-01"] * 2})
    write_table(dm, folder, "dm", fmt="csv")
    sites = {"SITEID": ["1", "2"], "COUNTRY": ["FRA", "JPN"]}
    if regions is not None:
        sites["REGION"] = regions
    write_table(pl.DataFrame(sites).cast({k: v for k, v in polars_schema("sites").items() if k in sites}),
                folder, "sites", fmt="csv")
    return folder


def test_study_site_regions_reads_the_sites_table(tmp_path: Path) -> None:
    folder = _study(tmp_path / "s", ["EMEA", None])
    assert study_site_regions(folder).rows() == [("1", "EMEA")]


def test_study_site_regions_reads_the_newest_cut_of_a_study_of_cuts(tmp_path: Path) -> None:
    _study(tmp_path / "s" / "cuts" / "2024-01-31", ["Old name", "Old name"])
    _study(tmp_path / "s" / "cuts" / "2024-02-29", ["EMEA", "APAC"])
    assert sorted(study_site_regions(tmp_path / "s").rows()) == [("1", "EMEA"), ("2", "APAC")]


def test_study_site_regions_without_a_region_column_is_empty(tmp_path: Path) -> None:
    assert study_site_regions(_study(tmp_path / "s", None)).is_empty()
