"""rbqm.io on SDTM packages as distributed: SAS7BDAT and Dataset-JSON, mixed-case names,
split domains, supplemental qualifiers (SUPP--), and the errors users see for broken files.

Every input is built here, in tmp_path. pyreadstat cannot write SAS7BDAT and no .sas7bdat
file ships with the installed packages, so the SAS7BDAT reader is tested through a
stand-in for ``pyreadstat.read_sas7bdat`` (plus one real garbage file).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import polars as pl
import pyreadstat
import pytest
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal

from rbqm._dataset_json import read_dataset_json
from rbqm.errors import SchemaError, StudyFormatError
from rbqm.io import (
    READ_FORMATS,
    WRITE_FORMATS,
    find_table_files,
    find_tables,
    read_study,
    read_table,
    scan_study,
    scan_table,
    write_table,
)
from rbqm.schema import polars_schema
from tests.test_io import AE, LB, SITE_ROWS, _expected

DM = pl.DataFrame(
    {
        "STUDYID": ["S", "S", "S"],
        "USUBJID": ["S-1001-001", "S-1002-007", "S-1003-001"],
        "SITEID": ["1001", "1002", "1003"],
        "COUNTRY": ["DEU", "FRA", "ITA"],
        "RFICDTC": ["2024-01-01", "2024-01-02", "2024-01-03"],
        "ARMCD": ["A", "B", "SCRNFAIL"],
        "AGE": [30, 41, None],
    }
)


def _xpt(frame: pl.DataFrame, path: Path) -> Path:
    pyreadstat.write_xport(frame, str(path), table_name=path.stem.upper()[:8], file_format_version=5)
    return path


def _dataset_json(columns: list[tuple[str, str]], rows: list[list], **meta) -> dict:
    return {"datasetJSONCreationDateTime": "2025-01-01T00:00:00", "datasetJSONVersion": "1.1.0",
            "itemGroupOID": "IG.X", "name": "X", "label": "X", "records": len(rows), **meta,
            "columns": [{"itemOID": f"IT.{n}", "name": n, "label": n, "dataType": t} for n, t in columns],
            "rows": rows}


def _ndjson(doc: dict, path: Path) -> Path:
    meta = {k: v for k, v in doc.items() if k != "rows"}
    path.write_text("\n".join(json.dumps(x) for x in [meta, *doc["rows"]]) + "\n", encoding="utf-8")
    return path


def _study(folder: Path) -> Path:
    """A study folder holding dm only (CSV)."""
    write_table(DM, folder, "dm", "csv")
    return folder


# ---- formats: every one reads to the documented dtypes ----

@pytest.fixture
def fake_sas7bdat(monkeypatch):
    """pyreadstat.read_sas7bdat replaced by one that returns what it would for a file holding
    ``frames[file name]``: numbers as floats, as SAS stores them."""
    frames: dict[str, pl.DataFrame] = {}
    calls: list[dict] = []

    def read_sas7bdat(path, **options):
        calls.append(options)
        frame = frames[Path(path).name]
        if options.get("row_limit"):
            frame = frame.head(options["row_limit"])
        return frame.with_columns(pl.col(pl.Int64).cast(pl.Float64)), None

    monkeypatch.setattr(pyreadstat, "read_sas7bdat", read_sas7bdat)
    return frames, calls


@pytest.mark.parametrize("fmt", READ_FORMATS)
@pytest.mark.parametrize(("name", "frame"), [("ae", AE), ("lb", LB)], ids=["ae", "lb"])
def test_every_format_reads_to_the_documented_dtypes(tmp_path, fake_sas7bdat, fmt, name, frame):
    if fmt == "sas7bdat":
        frames, calls = fake_sas7bdat
        frames[f"{name}.sas7bdat"] = frame
        path = tmp_path / f"{name}.sas7bdat"
        path.write_bytes(b"stand-in")
    else:
        path = write_table(frame, tmp_path, name, fmt)
    back = read_table(path)
    assert back.schema == polars_schema(name)
    assert_frame_equal(back, frame, check_exact=True)
    if fmt == "sas7bdat":
        assert calls[0]["output_format"] == "polars"


def test_sas7bdat_dates_and_lower_case_names(tmp_path, fake_sas7bdat):
    """SAS date and datetime formats come back from pyreadstat as dates: they become ISO strings."""
    frames, _ = fake_sas7bdat
    frames["dm.sas7bdat"] = pl.DataFrame({
        "studyid": ["S"], "usubjid": ["S-1"], "siteid": ["1001"], "country": ["DEU"],
        "rficdtc": [dt.date(2024, 3, 7)], "rfstdtc": [dt.datetime(2024, 3, 8, 10, 30)],
        "armcd": ["A"], "age": [44.0], "bmi": [22.5],
    })
    (tmp_path / "dm.sas7bdat").write_bytes(b"stand-in")
    back = read_table(tmp_path / "dm.sas7bdat")
    assert back.row(0, named=True) == {
        "STUDYID": "S", "USUBJID": "S-1", "SITEID": "1001", "COUNTRY": "DEU", "RFICDTC": "2024-03-07",
        "RFSTDTC": "2024-03-08T10:30:00", "ARMCD": "A", "AGE": 44, "bmi": 22.5}


def test_sas_text_that_is_not_utf8_is_read_as_windows_1252(tmp_path, monkeypatch):
    calls = []

    def read_sas7bdat(path, **options):
        calls.append(options.get("encoding"))
        if options.get("encoding") is None:
            raise UnicodeDecodeError("utf-8", b"\xfc", 0, 1, "invalid start byte")
        return pl.DataFrame({"SITEID": ["1001"], "COUNTRY": ["DEU"], "INVNAM": ["Dr Müller"]}), None

    monkeypatch.setattr(pyreadstat, "read_sas7bdat", read_sas7bdat)
    (tmp_path / "sites.sas7bdat").write_bytes(b"stand-in")
    assert read_table(tmp_path / "sites.sas7bdat")["INVNAM"].to_list() == ["Dr Müller"]
    assert calls == [None, "WINDOWS-1252"]


def test_latin1_xpt_is_read(tmp_path):
    """A real XPT file whose text is Latin-1, not UTF-8 (SAS's WLATIN1)."""
    path = _xpt(pl.DataFrame({"SITEID": ["1001"], "COUNTRY": ["DEU"], "INVNAM": ["Dr Mxller"]}),
                tmp_path / "sites.xpt")
    path.write_bytes(path.read_bytes().replace(b"Dr Mxller", "Dr Müller".encode("latin-1") + b" "))
    assert read_table(path)["INVNAM"].to_list() == ["Dr Müller"]


def test_dataset_json_matches_a_hand_built_frame(tmp_path):
    """dataType -> dtype; decimals written as strings (as in Dataset-JSON 1.1) are parsed;
    dates stay ISO strings."""
    doc = _dataset_json(
        [("STUDYID", "string"), ("DOMAIN", "string"), ("USUBJID", "string"), ("LBSEQ", "integer"),
         ("LBTESTCD", "string"), ("LBSTRESN", "decimal"), ("LBSTNRLO", "double"), ("LBSTNRHI", "float"),
         ("VISITNUM", "integer"), ("LBDTC", "datetime"), ("LBFAST", "boolean"), ("LBTM", "time"),
         ("LBREF", "URI")],
        [["S", "LB", "S-1", 1, "ALT", "0.1", 5, 40.5, 1, "2024-01-02T08:00", True, "08:00", "http://x/1"],
         ["S", "LB", "S-2", 2, "HGB", None, None, None, 2, "2024-02", False, None, None]],
    )
    path = tmp_path / "lb.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    expected = pl.DataFrame(
        {"USUBJID": ["S-1", "S-2"], "LBTESTCD": ["ALT", "HGB"], "LBSTRESN": [0.1, None],
         "LBSTNRLO": [5.0, None], "LBSTNRHI": [40.5, None], "VISITNUM": [1.0, 2.0],
         "LBDTC": ["2024-01-02T08:00", "2024-02"], "STUDYID": ["S", "S"], "DOMAIN": ["LB", "LB"],
         "LBSEQ": [1, 2], "LBFAST": [True, False], "LBTM": ["08:00", None], "LBREF": ["http://x/1", None]},
    )
    assert_frame_equal(read_table(path), expected, check_exact=True)
    assert_frame_equal(read_table(_ndjson(doc, tmp_path / "LB.NDJSON")), expected, check_exact=True)


def test_dataset_json_1_0_is_read(tmp_path):
    doc = {"creationDateTime": "2023-01-01T00:00:00", "datasetJSONVersion": "1.0.0", "clinicalData": {
        "studyOID": "S", "itemGroupData": {"IG.DM": {
            "records": 1, "name": "DM", "label": "Demographics",
            "items": [{"OID": "ITEMGROUPDATASEQ", "name": "ITEMGROUPDATASEQ", "type": "integer"},
                      {"OID": "IT.DM.USUBJID", "name": "USUBJID", "type": "string"},
                      {"OID": "IT.DM.AGE", "name": "AGE", "type": "integer"}],
            "itemData": [[1, "S-1", 61]]}}}}
    path = tmp_path / "dm.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert read_table(path).rows(named=True) == [{"USUBJID": "S-1", "AGE": 61}]


@pytest.mark.parametrize("fmt", ["json", "ndjson"])
def test_dataset_json_round_trips_every_dtype(tmp_path, fmt):
    frame = pl.DataFrame({
        "S": ["a\"b,\n", None, "ü ∑ 😀"], "I": [2**62, None, -1], "F": [1 / 3, None, 1e300],
        "B": [True, None, False], "D": [dt.date(2024, 1, 2), None, dt.date(1960, 1, 1)],
    })
    path = write_table(frame, tmp_path, "extra", fmt)
    assert path == tmp_path / f"extra.{fmt}"
    back = read_table(path)
    assert_frame_equal(back, frame.with_columns(pl.col("D").cast(pl.String)), check_exact=True)
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0] if fmt == "ndjson"
                      else path.read_text(encoding="utf-8"))["records"] == 3


def test_dataset_json_writes_nan_as_missing_and_refuses_infinity(tmp_path):
    back = read_table(write_table(LB.with_columns(LBSTRESN=pl.Series([float("nan"), 1.0, None])), tmp_path,
                                  "lb", "json"))
    assert back["LBSTRESN"].to_list() == [None, 1.0, None]
    with pytest.raises(StudyFormatError, match=r"lb\.ndjson: column LBSTRESN row 2 holds inf"):
        write_table(LB.with_columns(LBSTRESN=pl.Series([1.0, float("inf"), None])), tmp_path, "lb", "ndjson")


def test_empty_dataset_json_reads_as_an_empty_table(tmp_path):
    doc = _dataset_json([("USUBJID", "string"), ("AESEQ", "integer")], [])
    (tmp_path / "ae.json").write_text(json.dumps(doc), encoding="utf-8")
    back = read_table(tmp_path / "ae.json")
    assert back.height == 0
    assert back.schema == {"USUBJID": pl.String, "AESEQ": pl.Int64}
    assert read_table(_ndjson(doc, tmp_path / "ae.ndjson")).height == 0


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=SITE_ROWS)
def test_dataset_json_agrees_with_parquet_on_any_sites_frame(rows):
    frame = pl.DataFrame(rows, schema=polars_schema("sites"))
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("json", "ndjson"):
            assert_frame_equal(read_table(write_table(frame, Path(tmp), "sites", fmt)), _expected(rows),
                               check_exact=True)


# ---- column names match case-insensitively ----

@pytest.mark.parametrize("fmt", ["csv", "xpt", "parquet", "json"])
def test_documented_columns_match_case_insensitively(tmp_path, fmt):
    frame = DM.rename({"USUBJID": "usubjid", "SITEID": "Siteid", "AGE": "age"}).with_columns(
        myNote=pl.lit("x"))
    path = write_table(frame, tmp_path, "dm", fmt)
    back = read_table(path)
    assert back.columns == [*DM.columns, "myNote"]
    assert_frame_equal(back.drop("myNote"), DM, check_exact=True)
    assert_frame_equal(scan_table(path).collect(), back, check_exact=True)


def test_columns_that_differ_only_in_case_raise(tmp_path):
    (tmp_path / "dm.csv").write_text("USUBJID,usubjid\nS-1,S-1\n", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"dm\.csv: columns USUBJID and usubjid both name USUBJID"):
        read_table(tmp_path / "dm.csv")


# ---- split domains ----

LBCH = LB.head(2).with_columns(DOMAIN=pl.lit("LB"), LBSEQ=pl.Series([1.0, 2.0]), LBCAT=pl.lit("CHEMISTRY"))
LBHE = LB.tail(1).drop("LBSTNRHI").with_columns(DOMAIN=pl.lit("lb"), LBSEQ=pl.Series([3.0]))


def _split_lb(folder: Path, *, hema_fmt: str = "xpt") -> None:
    _study(folder)
    _xpt(LBCH, folder / "lbch.xpt")
    if hema_fmt == "xpt":
        _xpt(LBHE, folder / "LBHE.XPT")
    else:
        write_table(LBHE, folder, "lbhe", hema_fmt)


@pytest.mark.parametrize("hema_fmt", ["xpt", "csv", "json", "ndjson"])
def test_split_domain_parts_are_stacked(tmp_path, hema_fmt):
    _split_lb(tmp_path, hema_fmt=hema_fmt)
    hema = tmp_path / ("LBHE.XPT" if hema_fmt == "xpt" else f"lbhe.{hema_fmt}")
    assert find_table_files(tmp_path) == {"dm": [tmp_path / "dm.csv"], "lb": [tmp_path / "lbch.xpt", hema]}
    lb = read_study(tmp_path)["lb"]
    assert lb.height == 3
    assert lb.columns == [*LB.columns, "DOMAIN", "LBSEQ", "LBCAT"]
    # undocumented columns keep their type, relaxed to a common one: CSV has text only
    assert lb.schema["LBSEQ"] == (pl.String if hema_fmt == "csv" else pl.Float64)
    assert sorted(lb["LBTESTCD"].to_list()) == ["ALT", "CREAT", "HGB"]
    assert lb.filter(pl.col("LBTESTCD") == "CREAT")["LBCAT"].to_list() == [None]  # absent from its part
    assert_frame_equal(lb.select(LB.columns).sort("LBTESTCD"), LB.sort("LBTESTCD"), check_exact=False,
                       rel_tol=1e-12)
    assert_frame_equal(scan_study(tmp_path)["lb"].collect(), lb, check_exact=True)


def test_find_tables_gives_one_file_per_table(tmp_path):
    _split_lb(tmp_path)
    assert find_tables(tmp_path) == {"dm": tmp_path / "dm.csv", "lb": tmp_path / "lbch.xpt"}


def test_whole_file_and_parts_together_raise_naming_both(tmp_path):
    _split_lb(tmp_path)
    write_table(LB, tmp_path, "lb", "parquet")
    with pytest.raises(StudyFormatError, match=r"table lb is given both whole \(lb\.parquet\) and split into "
                                               r"parts \(lbch\.xpt, LBHE\.XPT\)"):
        read_study(tmp_path)


def test_same_part_twice_raises(tmp_path):
    _split_lb(tmp_path)
    write_table(LBCH, tmp_path, "lbch", "csv")
    twice = r"file lbch \(of table lb\) is present twice \(lbch\.csv, lbch\.xpt\)"
    with pytest.raises(StudyFormatError, match=twice):
        find_table_files(tmp_path)


def test_a_file_whose_domain_is_another_is_not_a_part(tmp_path):
    """aeqs.csv whose DOMAIN is QS is not part of ae; aexx.csv without DOMAIN is;
    lb_chem.csv and lbchemistry.csv are not part names."""
    _study(tmp_path)
    (tmp_path / "aeqs.csv").write_text("DOMAIN,USUBJID\nQS,S-1\n", encoding="utf-8")
    write_table(AE, tmp_path, "aexx", "csv")
    write_table(LB, tmp_path, "lb_chem", "csv")
    write_table(LB, tmp_path, "lbchemistry", "csv")
    assert find_table_files(tmp_path) == {"ae": [tmp_path / "aexx.csv"], "dm": [tmp_path / "dm.csv"]}
    assert_frame_equal(read_study(tmp_path)["ae"], AE, check_exact=True)


def test_split_dm_still_counts_as_a_study(tmp_path):
    """rbqm.study.list_cuts and the dashboard test find_tables(folder) for dm."""
    write_table(DM.head(2), tmp_path, "dm01", "csv")
    write_table(DM.tail(1), tmp_path, "dm02", "csv")
    assert "dm" in find_tables(tmp_path)
    assert_frame_equal(read_study(tmp_path)["dm"], DM, check_exact=True)


# ---- supplemental qualifiers ----

def _supp(rows: list[tuple], rdomain: str) -> pl.DataFrame:
    """SUPP-- rows (USUBJID, IDVAR, IDVARVAL, QNAM, QVAL) with the other SDTM columns."""
    frame = pl.DataFrame(rows, schema=["USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QVAL"], orient="row")
    return frame.select(STUDYID=pl.lit("S"), RDOMAIN=pl.lit(rdomain), USUBJID="USUBJID", IDVAR="IDVAR",
                        IDVARVAL="IDVARVAL", QNAM="QNAM", QLABEL=pl.lit("label"), QVAL="QVAL",
                        QORIG=pl.lit("CRF"), QEVAL=pl.lit(""))


def _both(folder: Path) -> dict[str, pl.DataFrame]:
    """read_study, after checking scan_study agrees with it."""
    study = read_study(folder)
    scanned = scan_study(folder)
    assert sorted(scanned) == sorted(study)
    for name, frame in study.items():
        assert_frame_equal(scanned[name].collect(), frame, check_exact=True)
    return study


def test_supp_attaches_at_record_level(tmp_path):
    """IDVAR AESEQ: matched on USUBJID and AESEQ (an integer) against IDVARVAL (text, ' 2' or '1.0')."""
    _study(tmp_path)
    write_table(AE, tmp_path, "ae", "parquet")
    _xpt(_supp([("S-1001-001", "AESEQ", " 2", "AETRTEM", "Y"),
                ("S-1001-001", "AESEQ", "1.0", "AETRTEM", "N"),
                ("S-1001-001", "AESEQ", "1", "AEREL2", "POSSIBLE"),
                ("S-1001-001", "AESEQ", "9", "AETRTEM", "Y"),  # matches no event: dropped
                ("S-1001-001", "AESEQ", "x", "AEXTRA", "Y")],  # likewise: a column of nulls
               "AE"), tmp_path / "suppae.xpt")
    ae = _both(tmp_path)["ae"]
    assert ae.columns == [*AE.columns, "AETRTEM", "AEREL2", "AEXTRA"]
    assert ae["AEXTRA"].null_count() == 3
    assert_frame_equal(ae.select(AE.columns), AE, check_exact=True)  # rows and their order kept
    assert ae["AETRTEM"].to_list() == ["N", "Y", None]
    assert ae["AEREL2"].to_list() == ["POSSIBLE", None, None]


def test_supp_attaches_at_subject_level(tmp_path):
    _study(tmp_path)
    write_table(_supp([("S-1002-007", "", "", "ITT", "Y"), ("S-1001-001", None, None, "ITT", "N"),
                       ("S-1001-001", None, None, "COMPLT16", "Y")], "DM"), tmp_path, "suppdm", "csv")
    dm = _both(tmp_path)["dm"]
    assert dm.select("USUBJID", "ITT", "COMPLT16").rows() == [
        ("S-1001-001", "N", "Y"), ("S-1002-007", "Y", None), ("S-1003-001", None, None)]


@pytest.mark.parametrize("hema_fmt", ["xpt", "csv"])
def test_supp_on_a_numeric_column_of_a_split_domain(tmp_path, hema_fmt):
    """LBSEQ is not documented: XPT gives floats (1.0), and beside a CSV part it is text ("3.0").
    supplbch is the SUPP dataset of a part of lb."""
    _split_lb(tmp_path, hema_fmt=hema_fmt)
    _xpt(_supp([("S-1", "LBSEQ", "1", "LBCLSIG", "Y"), ("S-3", "LBSEQ", "3", "LBCLSIG", "N")], "LB"),
         tmp_path / "supplbch.xpt")
    lb = _both(tmp_path)["lb"]
    assert dict(lb.select("USUBJID", "LBCLSIG").rows()) == {"S-1": "Y", "S-2": None, "S-3": "N"}


def test_supp_qnam_that_is_a_parent_column_gets_a_suffix(tmp_path):
    _study(tmp_path)
    write_table(AE, tmp_path, "ae", "csv")
    supp = _supp([("S-1001-001", "AESEQ", "1", "AESER", "Y"), ("S-1001-001", "AESEQ", "1", "aesev", "x")], "AE")
    write_table(supp, tmp_path, "suppae", "parquet")
    ae = _both(tmp_path)["ae"]
    assert ae.columns == [*AE.columns, "AESER_SUPP", "aesev_SUPP"]
    assert ae["AESER"].to_list() == AE["AESER"].to_list()
    assert ae["AESER_SUPP"].to_list() == ["Y", None, None]


def test_same_qnam_at_record_and_subject_level_is_one_column(tmp_path):
    _study(tmp_path)
    write_table(AE, tmp_path, "ae", "csv")
    supp = _supp([("S-1001-001", "AESEQ", "2", "AECMT", "event 2"), ("S-1002-007", "", "", "AECMT", "all")], "AE")
    write_table(supp, tmp_path, "suppae", "csv")
    assert _both(tmp_path)["ae"]["AECMT"].to_list() == [None, "event 2", "all"]


def test_orphan_supp_is_ignored(tmp_path):
    """suppvs without vs, even a broken one, is not read."""
    _study(tmp_path)
    write_table(_supp([("S-1001-001", "VSSEQ", "1", "VSPOS", "SITTING")], "VS"), tmp_path, "suppvs", "csv")
    (tmp_path / "suppex.xpt").write_bytes(b"not an xpt file")
    assert sorted(_both(tmp_path)) == ["dm"]


def test_supp_with_mixed_case_columns_and_no_idvar(tmp_path):
    _study(tmp_path)
    (tmp_path / "SuppDm.csv").write_text("usubjid,Qnam,qval\nS-1003-001,ITT,N\n", encoding="utf-8")
    assert read_study(tmp_path)["dm"]["ITT"].to_list() == [None, None, "N"]


@pytest.mark.parametrize(("rows", "message"), [
    ([("S-1001-001", "AESEQ", "1", "AETRTEM", "Y"), ("S-1001-001", "AESEQ", "1", "AETRTEM", "N")],
     r"suppae\.csv: QNAM AETRTEM is given twice for USUBJID S-1001-001, AESEQ 1; keep one record"),
    ([("S-1001-001", "AESPID", "1", "AETRTEM", "Y")],
     r"suppae\.csv: IDVAR AESPID is not a column of the parent table; it has USUBJID, AESEQ"),
    ([("S-1001-001", "AESEQ", "1", "", "Y")], r"suppae\.csv: row 1 has no QNAM"),
])
def test_bad_supp_raises_naming_the_file(tmp_path, rows, message):
    _study(tmp_path)
    write_table(AE, tmp_path, "ae", "csv")
    write_table(_supp(rows, "AE"), tmp_path, "suppae", "csv")
    with pytest.raises(SchemaError, match=message):
        read_study(tmp_path)


def test_supp_without_qnam_column_raises(tmp_path):
    _study(tmp_path)
    (tmp_path / "suppdm.csv").write_text("USUBJID,QVAL\nS-1,Y\n", encoding="utf-8")
    needs = r"suppdm\.csv: a supplemental qualifier dataset needs the column\(s\) QNAM; it has USUBJID, QVAL"
    with pytest.raises(SchemaError, match=needs):
        scan_study(tmp_path)


# ---- broken files: always a StudyFormatError naming the file ----

def _truncated(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


def _broken(tmp_path: Path, kind: str) -> Path:
    """A broken file of each kind, named as a table."""
    doc = _dataset_json([("USUBJID", "string"), ("AGE", "integer")], [["S-1", 30], ["S-2", 41]])
    ok = tmp_path / "ok"
    ok.mkdir()
    if kind.startswith("empty-"):
        path = tmp_path / f"dm.{kind.removeprefix('empty-')}"
        path.write_bytes(b"")
        return path
    match kind:
        case "truncated-xpt":
            path = tmp_path / "dm.xpt"
            path.write_bytes(_truncated(_xpt(DM, ok / "dm.xpt")))
        case "truncated-parquet":
            path = tmp_path / "dm.parquet"
            path.write_bytes(_truncated(write_table(DM, ok, "dm", "parquet")))
        case "garbage-sas7bdat":
            path = tmp_path / "dm.sas7bdat"
            path.write_bytes(b"\x00\x01 not a SAS data set " * 200)
        case "truncated-csv":  # cut inside the last row: a field short, no line end
            path = tmp_path / "dm.csv"
            path.write_bytes(write_table(DM, ok, "dm", "csv").read_bytes()[:-12])
        case "latin1-csv":
            path = tmp_path / "dm.csv"
            path.write_bytes("USUBJID,INVNAM\nS-1,Dr Müller\n".encode("latin-1"))
        case "truncated-json":
            path = tmp_path / "dm.json"
            path.write_text(json.dumps(doc)[:-30], encoding="utf-8")
        case "truncated-ndjson":
            path = _ndjson(doc, tmp_path / "dm.ndjson")
            path.write_text(path.read_text(encoding="utf-8")[:-6], encoding="utf-8")
        case "short-ndjson":  # cut at a line end: only records= tells
            path = _ndjson(doc, tmp_path / "dm.ndjson")
            path.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:-1]), encoding="utf-8")
        case "latin1-json":
            path = tmp_path / "dm.json"
            path.write_bytes(json.dumps(doc).replace("S-1", "Mü").encode("latin-1"))
    return path


@pytest.mark.parametrize(("kind", "message"), [
    *[(f"empty-{fmt}", r"cannot be read \(the file is empty\)") for fmt in READ_FORMATS],
    ("truncated-xpt", "cannot be read"),
    ("truncated-parquet", "cannot be read"),
    ("garbage-sas7bdat", "cannot be read"),
    ("truncated-csv", r"the file looks truncated \(its last line has 5 of 7 fields and no line end\)"),
    ("latin1-csv", "not UTF-8 text .*save it as UTF-8"),
    ("truncated-json", "not valid JSON .*truncated"),
    ("truncated-ndjson", "line 3 is not valid JSON .*truncated"),
    ("short-ndjson", "records=2, but the file holds 1 rows; the file may be truncated"),
    ("latin1-json", "not UTF-8 text"),
])
def test_broken_file_raises_study_format_error_naming_it(tmp_path, kind, message):
    path = _broken(tmp_path, kind)
    with pytest.raises(StudyFormatError, match=message) as info:
        read_table(path)
    assert str(info.value).startswith(str(path))
    with pytest.raises(StudyFormatError, match=message):  # and through the study folder
        read_study(tmp_path)


@pytest.mark.parametrize(("doc", "message"), [
    ([1, 2], "the top level is not a JSON object"),
    ({"rows": []}, r"no 'columns' list in the metadata"),
    ({"columns": [{"name": "USUBJID", "dataType": "string"}]}, r"no 'rows' array"),
    ({"columns": [{"name": "AGE", "dataType": "number"}], "rows": []},
     r"column AGE has dataType 'number'; use one of string, URI, date"),
    ({"columns": [{"dataType": "string"}], "rows": []}, "column 1 of 'columns' has no name"),
    ({"columns": [{"name": "A", "dataType": "string"}] * 2, "rows": []},
     r"column\(s\) A appear more than once"),
    ({"columns": [{"name": "A", "dataType": "string"}, {"name": "B", "dataType": "integer"}],
      "rows": [["x", 1], ["y"]]}, "row 2 has 1 values, but there are 2 columns"),
    ({"columns": [{"name": "A", "dataType": "string"}], "rows": [["x"], "y"]},
     "row 2 is not an array, but there are 1 columns"),
    ({"columns": [{"name": "B", "dataType": "integer"}], "rows": [[1], [2.5]]},
     "column B is integer, but row 2 holds 2.5"),
    ({"columns": [{"name": "B", "dataType": "double"}], "rows": [[1], ["abc"]]},
     "column B is double, but row 2 holds 'abc'"),
])
def test_invalid_dataset_json_raises_saying_what_is_wrong(tmp_path, doc, message):
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(StudyFormatError, match=message):
        read_dataset_json(path)


def test_ndjson_row_errors_name_the_line(tmp_path):
    path = tmp_path / "ae.ndjson"
    meta = {"columns": [{"name": "A", "dataType": "string"}, {"name": "B", "dataType": "integer"}]}
    path.write_text(json.dumps(meta) + '\n["x", 1]\n["y", 2, 3]\n', encoding="utf-8")
    with pytest.raises(StudyFormatError, match=r"ae\.ndjson: line 3 has 3 values, but there are 2 columns"):
        read_table(path)
    path.write_text('["not", "metadata"]\n', encoding="utf-8")
    with pytest.raises(StudyFormatError, match="line 1 is not the metadata object"):
        read_table(path)


def test_csv_without_final_line_end_is_not_truncated(tmp_path):
    (tmp_path / "dm.csv").write_text("USUBJID,SITEID,AGE\nS-1,1001,\nS-2,1002,", encoding="utf-8")
    assert read_table(tmp_path / "dm.csv")["AGE"].to_list() == [None, None]


def test_write_formats_all_read_back(tmp_path):
    for fmt in WRITE_FORMATS:
        assert_frame_equal(read_table(write_table(AE, tmp_path / fmt, "ae", fmt)), AE, check_exact=True)
