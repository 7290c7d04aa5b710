"""rbqm.io: reading and writing study tables in Parquet, CSV and XPT, and the errors users see."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from rbqm.errors import RbqmError, SchemaError, StudyFormatError
from rbqm.io import FORMATS, read_study, read_table, write_table
from rbqm.schema import polars_schema

AE = pl.DataFrame(
    {
        "USUBJID": ["S-1001-001", "S-1001-001", "S-1002-007"],
        "AESEQ": [1, 2, None],
        "AEDECOD": ["Headache", "Nausea, \"mild\"", "Rash"],
        "AESTDTC": ["2024-01-01", "2024-01-02", "2024-02-03T10:30"],
        "AEENDTC": [None, "2024-01-09", None],
        "AESER": ["N", "Y", "N"],
        "AETOXGR": ["1", None, "3"],
        "AESEV": ["MILD", "SEVERE", None],
    },
    schema=polars_schema("ae"),
)
LB = pl.DataFrame(
    {
        "USUBJID": ["S-1", "S-2", "S-3"],
        "LBTESTCD": ["ALT", "HGB", "CREAT"],
        "LBSTRESN": [0.1, None, 1 / 3],
        "LBSTRESU": ["U/L", None, "umol/L"],
        "LBSTNRLO": [-2.5e-7, 12345.6789, 1e20],
        "LBSTNRHI": [None, None, None],
        "LBNRIND": ["LOW", None, "HIGH"],
        "LBTOXGR": ["0", "1", None],
        "VISITNUM": [1.0, 2.5, 3.0],
        "LBDTC": ["2024-01-02", "2024-02-03", "2024-03-04"],
    },
    schema=polars_schema("lb"),
)
DM_HEADER = "STUDYID,USUBJID,SITEID,COUNTRY,RFICDTC,ARMCD,AGE\n"


def _dm_csv(path: Path, ages: list[str]) -> Path:
    rows = [f"S,S-{i},1001,DEU,2024-01-0{i},A,{age}\n" for i, age in enumerate(ages, start=1)]
    path.write_text(DM_HEADER + "".join(rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("name", "frame"), [("ae", AE), ("lb", LB)], ids=["ae", "lb"])
def test_round_trip_is_identical(tmp_path, fmt, name, frame):
    path = write_table(frame, tmp_path, name, fmt)
    assert path == tmp_path / f"{name}.{fmt}"
    assert_frame_equal(read_table(path), frame, check_exact=True)


def test_write_accepts_a_lazy_frame(tmp_path):
    assert_frame_equal(read_table(write_table(AE.lazy(), tmp_path, "ae", "parquet")), AE, check_exact=True)


def test_non_numeric_integer_names_file_column_and_row(tmp_path):
    path = _dm_csv(tmp_path / "dm.csv", ["30", "41", "abc", "52"])
    with pytest.raises(SchemaError) as info:
        read_table(path)
    message = str(info.value)
    assert str(path) in message
    assert "column AGE must be integer" in message
    assert "row 3" in message
    assert "'abc'" in message


def test_fractional_value_in_integer_column_raises(tmp_path):
    with pytest.raises(SchemaError, match=r"column AGE must be integer, but row 2 has '2\.5'"):
        read_table(_dm_csv(tmp_path / "dm.csv", ["30", "2.5"]))


def test_fractional_float_in_integer_parquet_column_raises(tmp_path):
    frame = pl.DataFrame({"STUDYID": ["S"], "USUBJID": ["S-1"], "AGE": [44.5]})
    frame.write_parquet(tmp_path / "dm.parquet")
    with pytest.raises(SchemaError, match=r"dm\.parquet: column AGE must be integer, but row 1 has 44\.5"):
        read_table(tmp_path / "dm.parquet")


def test_whole_float_in_integer_column_is_read_as_integer(tmp_path):
    """XPT stores every number as a float: 30.0 in an integer column is the integer 30."""
    back = read_table(_dm_csv(tmp_path / "dm.csv", ["30.0", "41"]))
    assert back["AGE"].dtype == pl.Int64
    assert back["AGE"].to_list() == [30, 41]


def test_empty_strings_and_blank_cells_become_null(tmp_path):
    path = tmp_path / "dm.csv"
    path.write_text(DM_HEADER.rstrip("\n") + ",INVNAM\n"
                    'S,S-1,1001,DEU,2024-01-01,A,,""\n'
                    "S,S-2,1001,DEU,2024-01-02,A,  ,   \n"
                    "S,S-3,1001,DEU,2024-01-03,A,50, Dr Who \n", encoding="utf-8")
    back = read_table(path)
    assert back["AGE"].to_list() == [None, None, 50]
    assert back["INVNAM"].to_list() == [None, None, "Dr Who"]


def test_empty_strings_become_null_in_parquet(tmp_path):
    pl.DataFrame({"SITEID": ["1001", ""], "COUNTRY": ["DEU", "FRA"], "REGION": ["", "Europe"]}).write_parquet(
        tmp_path / "sites.parquet")
    back = read_table(tmp_path / "sites.parquet")
    assert back["SITEID"].to_list() == ["1001", None]
    assert back["REGION"].to_list() == [None, "Europe"]


def test_unknown_columns_are_kept_after_documented_ones(tmp_path):
    frame = pl.DataFrame({"MYNOTE": ["x"], "COUNTRY": ["DEU"], "SITEID": ["1001"]})
    frame.write_parquet(tmp_path / "sites.parquet")
    assert read_table(tmp_path / "sites.parquet").columns == ["SITEID", "COUNTRY", "MYNOTE"]


def test_unknown_extension_raises(tmp_path):
    path = tmp_path / "dm.txt"
    path.write_text(DM_HEADER, encoding="utf-8")
    with pytest.raises(StudyFormatError, match=r"dm\.txt: unknown file type; use one of parquet, csv, xpt"):
        read_table(path)


def test_write_unknown_format_raises(tmp_path):
    with pytest.raises(StudyFormatError, match="unknown format 'sas7bdat'; choose one of parquet, csv, xpt, json,"):
        write_table(AE, tmp_path, "ae", "sas7bdat")


@pytest.mark.parametrize("content", [b"", b"PAR1 not really parquet", "truncated"])
def test_corrupt_parquet_raises_study_format_error(tmp_path, content):
    """A broken file is a user error (StudyFormatError), not a polars exception."""
    path = tmp_path / "dm.parquet"
    if content == "truncated":
        AE.write_parquet(path)
        content = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(content)
    with pytest.raises(StudyFormatError, match=r"dm\.parquet: cannot be read"):
        read_table(path)


def test_corrupt_xpt_raises_study_format_error(tmp_path):
    path = tmp_path / "ae.xpt"
    path.write_bytes(b"HEADER RECORD" * 100)
    with pytest.raises(StudyFormatError, match=r"ae\.xpt: cannot be read"):
        read_table(path)


def test_study_without_dm_names_dm(tmp_path):
    write_table(AE, tmp_path, "ae", "csv")
    missing = r"required table dm \(dm\.parquet, dm\.csv or dm\.xpt\) is missing"
    with pytest.raises(StudyFormatError, match=missing):
        read_study(tmp_path)


def test_missing_folder_raises(tmp_path):
    with pytest.raises(StudyFormatError, match="not a study folder"):
        read_study(tmp_path / "nowhere")


def test_same_table_twice_raises(tmp_path):
    _dm_csv(tmp_path / "dm.csv", ["30"])
    read_table(tmp_path / "dm.csv").write_parquet(tmp_path / "dm.parquet")
    with pytest.raises(StudyFormatError, match=r"table dm is present twice \(dm\.csv, dm\.parquet\)"):
        read_study(tmp_path)


def test_file_names_match_case_insensitively(tmp_path):
    _dm_csv(tmp_path / "DM.CSV", ["30", "41"])
    write_table(AE, tmp_path, "ae", "csv").rename(tmp_path / "Ae.Csv")
    (tmp_path / "notes.csv").write_text("a\n1\n", encoding="utf-8")  # not a table: ignored
    study = read_study(tmp_path)
    assert sorted(study) == ["ae", "dm"]
    assert study["dm"]["AGE"].to_list() == [30, 41]
    assert_frame_equal(study["ae"], AE, check_exact=True)


@pytest.mark.parametrize("value", [2**53 + 1, 2**63 - 1])
def test_csv_reads_large_integers_exactly(tmp_path, value):
    (tmp_path / "sites.csv").write_text(f"SITEID,COUNTRY,PLANNEDENR\n1001,DEU,{value}\n", encoding="utf-8")
    assert read_table(tmp_path / "sites.csv")["PLANNEDENR"].to_list() == [value]


def test_csv_integer_out_of_range_raises_schema_error(tmp_path):
    text = "SITEID,COUNTRY,PLANNEDENR\n1001,DEU,5\n1002,DEU,1e30\n"
    (tmp_path / "sites.csv").write_text(text, encoding="utf-8")
    with pytest.raises(SchemaError, match="column PLANNEDENR must be integer, but row 2"):
        read_table(tmp_path / "sites.csv")


@pytest.mark.parametrize("value", [float("nan"), 1e100], ids=["nan", "1e100"])
def test_xpt_never_turns_a_float_into_inf(tmp_path, value):
    frame = LB.with_columns(LBSTRESN=pl.lit(value, dtype=pl.Float64))
    try:
        back = read_table(write_table(frame, tmp_path, "lb", "xpt"))
    except RbqmError:
        return  # refusing to write is fine
    assert not back["LBSTRESN"].is_infinite().any()


# ---- property: CSV and Parquet agree on any frame of the sites table's shape ----

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=12)
INTS = st.integers(min_value=-(2**53), max_value=2**53)
SITE_ROWS = st.lists(
    st.fixed_dictionaries({
        "SITEID": TEXT,
        "COUNTRY": TEXT,
        "REGION": st.none() | TEXT,
        "INVNAM": st.none() | TEXT,
        "ACTIVATIONDTC": st.none() | st.dates().map(lambda d: d.isoformat()) | TEXT,
        "PLANNEDENR": st.none() | INTS,
    }),
    min_size=1,
    max_size=20,
)


def _expected(rows: list[dict]) -> pl.DataFrame:
    """What the format promises, computed without rbqm: strings stripped, empty as null."""
    def text(value):
        return (value.strip() or None) if isinstance(value, str) else value

    return pl.DataFrame([{k: text(v) for k, v in row.items()} for row in rows], schema=polars_schema("sites"))


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=SITE_ROWS)
def test_csv_and_parquet_round_trips_agree(rows):
    frame = pl.DataFrame(rows, schema=polars_schema("sites"))
    with tempfile.TemporaryDirectory() as tmp:
        via_parquet = read_table(write_table(frame, Path(tmp), "sites", "parquet"))
        via_csv = read_table(write_table(frame, Path(tmp), "sites", "csv"))
    assert_frame_equal(via_csv, via_parquet, check_exact=True)
    assert_frame_equal(via_parquet, _expected(rows), check_exact=True)
