"""The same study written as Parquet, CSV and XPT reads back to the same tables."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from rbqm.io import FORMATS, read_study
from rbqm.schema import TABLE_NAMES
from synthetic import SynthConfig, generate_study, load_anomalies

CONFIG = dict(sites=8, subjects=160, countries=3, seed=5, months=12, cuts=0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The small study generated once in each format: {fmt: folder}."""
    root = tmp_path_factory.mktemp("formats")
    anomalies = load_anomalies("default")
    for fmt in FORMATS:
        generate_study(SynthConfig(**CONFIG, anomalies=anomalies, fmt=fmt), root / fmt)
    return {fmt: root / fmt for fmt in FORMATS}


@pytest.fixture(scope="module")
def studies(folders):
    return {fmt: read_study(folder) for fmt, folder in folders.items()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_folder_holds_one_file_per_table_in_its_format(folders, fmt):
    names = sorted(p.name for p in folders[fmt].iterdir())
    assert names == sorted([f"{t}.{fmt}" for t in TABLE_NAMES] + ["truth.csv"])


@pytest.mark.parametrize("fmt", ["csv", "xpt"])
def test_truth_is_the_same_file(folders, fmt):
    assert (folders[fmt] / "truth.csv").read_bytes() == (folders["parquet"] / "truth.csv").read_bytes()


@pytest.mark.parametrize("fmt", ["csv", "xpt"])
@pytest.mark.parametrize("name", TABLE_NAMES)
def test_tables_read_back_identically(studies, fmt, name):
    """Strings, integers and dates exactly; floats to 1e-12 relative (XPT stores IBM floats)."""
    expected, actual = studies["parquet"][name], studies[fmt][name]
    assert expected.height > 0
    assert actual.schema == expected.schema
    exact = [c for c, dtype in expected.schema.items() if dtype != pl.Float64]
    assert_frame_equal(actual.select(exact), expected.select(exact), check_exact=True)
    assert_frame_equal(actual, expected, check_exact=False, rel_tol=1e-12, abs_tol=0.0)
