"""``rbqm ingest`` and ``rbqm cuts``: immutable snapshots, mappings, and nothing half-written on bad input."""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import rbqm.cli  # noqa: F401  (registers the commands)
from rbqm.analysis import analyze_study
from rbqm.cli._app import app
from rbqm.ingest import ingest_study, list_snapshots
from rbqm.io import read_study, read_table, write_table
from synthetic import SynthConfig, generate_study

runner = CliRunner()


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """A small study export in CSV, as a sponsor would send it."""
    out = tmp_path_factory.mktemp("ingest") / "export"
    generate_study(SynthConfig(sites=4, subjects=40, countries=2, seed=4, months=8, fmt="csv"), out)
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else {}


def test_ingest_writes_an_immutable_snapshot_that_analyze_reads(export, tmp_path):
    result = runner.invoke(app, ["ingest", str(export), "--study", "S1", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    cut = read_study(export)["dm"]["RFICDTC"].max()
    snapshots = list(Path(tmp_path, "S1", "cuts").iterdir())
    assert len(snapshots) == 1
    snap = snapshots[0]
    manifest = json.loads((snap / "manifest.json").read_text())
    assert manifest["study_id"] == "S1" and manifest["rows"]["dm"] == read_table(export / "dm.csv").height
    assert len(manifest["files"]["dm"][0]["sha256"]) == 64
    assert all(not (p.stat().st_mode & 0o222) for p in snap.iterdir())          # read-only
    assert read_study(snap)["ae"].equals(read_study(export)["ae"])               # same data, as Parquet
    assert str(cut) <= snap.name
    again = runner.invoke(app, ["ingest", str(export), "--study", "S1", "--data-dir", str(tmp_path)])
    assert again.exit_code == 2 and "snapshots are immutable" in again.stderr
    analysis = analyze_study(tmp_path / "S1")
    assert [str(d) for d in analysis.cut_dates] == [snap.name]


def test_a_cut_date_leaves_later_records_out(export, tmp_path):
    snapshot = ingest_study(export, "S2", root=tmp_path, as_of=date(2024, 6, 30))
    ae = read_study(snapshot.path)["ae"]
    assert ae["AESTDTC"].max() <= "2024-06-30"
    assert read_study(snapshot.path)["dm"]["RFICDTC"].max() <= "2024-06-30"
    assert snapshot.report.warnings >= 1                                          # "records after the cut"
    listed = list_snapshots(tmp_path, "S2")
    assert listed["cut_date"].to_list() == ["2024-06-30"]


def test_cuts_list_show_delete(export, tmp_path):
    ingest_study(export, "S3", root=tmp_path, as_of=date(2024, 5, 31))
    ingest_study(export, "S3", root=tmp_path, as_of=date(2024, 6, 30))
    listed = runner.invoke(app, ["cuts", "list", "S3", "--data-dir", str(tmp_path)])
    assert listed.exit_code == 0 and listed.stdout.index("2024-05-31") < listed.stdout.index("2024-06-30")
    shown = runner.invoke(app, ["cuts", "show", "S3", "2024-05-31", "--data-dir", str(tmp_path)])
    assert json.loads(shown.stdout)["cut_date"] == "2024-05-31"
    refused = runner.invoke(app, ["cuts", "delete", "S3", "2024-05-31", "--data-dir", str(tmp_path)], input="n\n")
    assert refused.exit_code == 2 and (tmp_path / "S3" / "cuts" / "2024-05-31").is_dir()
    gone = runner.invoke(app, ["cuts", "delete", "S3", "2024-05-31", "--yes", "--data-dir", str(tmp_path)])
    assert gone.exit_code == 0 and not (tmp_path / "S3" / "cuts" / "2024-05-31").exists()
    missing = runner.invoke(app, ["cuts", "list", "NOPE", "--data-dir", str(tmp_path)])
    assert missing.exit_code == 2 and "no snapshots" in missing.stderr


def test_mapping_adapts_a_non_standard_export(export, tmp_path):
    """Renamed site column, seriousness coded 1/0, importance in DVCAT as MAJOR/MINOR."""
    raw = tmp_path / "raw"
    shutil.copytree(export, raw)
    write_table(read_table(raw / "dm.csv").rename({"SITEID": "CENTRE"}), raw, "dm", "csv")
    ae = read_table(raw / "ae.csv")
    write_table(ae.with_columns(pl.col("AESER").replace({"Y": "1", "N": "0"})), raw, "ae", "csv")
    dv = read_table(raw / "dv.csv")
    write_table(dv.with_columns(DVCAT=pl.col("DVIMPFL").replace({"Y": "MAJOR", "N": "MINOR"})).drop("DVIMPFL"),
                raw, "dv", "csv")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("""tables:
  dm: {rename: {CENTRE: SITEID}}
  ae: {recode: {AESER: {"1": "Y", "0": "N"}}}
  dv: {derive: {DVIMPFL: {from: DVCAT, map: {MAJOR: "Y", MINOR: "N"}}}}
""")
    unmapped = runner.invoke(app, ["validate", str(raw)])
    assert unmapped.exit_code == 2
    snapshot = ingest_study(raw, "S4", root=tmp_path / "data", mapping_file=mapping)
    ingested = read_study(snapshot.path)
    original = read_study(export)
    assert ingested["ae"]["AESER"].to_list() == original["ae"]["AESER"].to_list()
    assert ingested["dv"]["DVIMPFL"].to_list() == original["dv"]["DVIMPFL"].to_list()
    assert ingested["dm"]["SITEID"].to_list() == original["dm"]["SITEID"].to_list()


def test_bad_mapping_names_file_and_key(export, tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("tables:\n  dm: {renam: {A: B}}\n")
    result = runner.invoke(app, ["ingest", str(export), "--study", "S5", "--mapping", str(mapping),
                                 "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2 and str(mapping) in result.stderr and "renam" in result.stderr
    assert not (tmp_path / "d").exists()


def _corrupt(folder: Path, kind: str, where: float) -> None:
    """One kind of damage, at a position chosen by ``where`` in [0, 1)."""
    dm = folder / "dm.csv"
    if kind == "truncated":  # cut off just before a delimiter: the last line loses at least one field
        data = (folder / "ae.csv").read_bytes()
        body = data.index(b"\n") + 1
        cut = data.rfind(b",", body, body + max(1, int((len(data) - body) * where)))
        (folder / "ae.csv").write_bytes(data[:cut])
    elif kind == "garbage_date":
        frame = read_table(dm)
        row = int(where * frame.height)
        write_table(frame.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit("31/02/2024"))
                                       .otherwise("RFICDTC").alias("RFICDTC")), folder, "dm", "csv")
    elif kind == "wrong_type":
        frame = read_table(dm).with_columns(pl.col("AGE").cast(pl.String))
        row = int(where * frame.height)
        write_table(frame.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit("forty"))
                                       .otherwise("AGE").alias("AGE")), folder, "dm", "csv")
    elif kind == "empty_table":
        dm.write_text(dm.read_text().splitlines()[0] + "\n")
    elif kind == "empty_file":
        dm.write_bytes(b"")
    elif kind == "duplicate_subject":
        frame = read_table(dm)
        write_table(pl.concat([frame, frame.slice(int(where * frame.height), 1)]), folder, "dm", "csv")
    elif kind == "non_utf8":
        data = dm.read_bytes()
        at = data.index(b"\n") + 1 + int(where * (len(data) - data.index(b"\n") - 2))
        dm.write_bytes(data[:at] + b"\xff\xfe\xfa" + data[at:])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["truncated", "garbage_date", "wrong_type", "empty_table", "empty_file",
                             "duplicate_subject", "non_utf8"]),
       where=st.floats(0.05, 0.95))
def test_malformed_input_is_a_clean_error_and_leaves_the_data_directory_untouched(export, tmp_path, kind, where):
    case = Path(tempfile.mkdtemp(dir=tmp_path))  # hypothesis may replay an example
    shutil.copytree(export, case / "export")
    data = case / "data"
    ingest_study(export, "OTHER", root=data)          # the data directory already holds something
    before = _tree(data)
    _corrupt(case / "export", kind, where)
    result = runner.invoke(app, ["ingest", str(case / "export"), "--study", "S", "--data-dir", str(data)])
    assert result.exit_code == 2, (kind, result.output)
    assert "Traceback" not in result.stdout + result.stderr
    assert ("ae.csv" if kind == "truncated" else "dm.csv") in result.stderr
    assert _tree(data) == before


def test_parquet_csv_and_xpt_exports_ingest_to_identical_tables(tmp_path):
    """The same study written in each format ingests to the same snapshot tables."""
    snapshots = {}
    for fmt in ("parquet", "csv", "xpt"):
        export = tmp_path / f"export-{fmt}"
        generate_study(SynthConfig(sites=4, subjects=40, countries=2, seed=6, months=8, fmt=fmt), export)
        snapshots[fmt] = read_study(ingest_study(export, f"S-{fmt}", root=tmp_path / "data").path)
    for fmt in ("csv", "xpt"):
        assert snapshots[fmt].keys() == snapshots["parquet"].keys()
        for name, frame in snapshots["parquet"].items():
            assert frame.equals(snapshots[fmt][name]), (fmt, name)
