"""The ``rbqm`` command line: synth and info, their output, and how they report user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import rbqm.cli  # noqa: F401  (importing the package registers every command on the app)
from rbqm.cli._app import app
from rbqm.schema import TABLE_NAMES
from rbqm.study import list_cuts, summarize_study

SMALL = ["--sites", "6", "--subjects", "60", "--countries", "2", "--months", "6"]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def synth_out(tmp_path_factory):
    """A study written by ``rbqm synth`` with 2 data cuts, and the command's result."""
    out = tmp_path_factory.mktemp("cli") / "study"
    result = invoke("synth", out, *SMALL, "--cuts", "2")
    return out, result


def test_synth_writes_study_truth_and_cuts(synth_out):
    out, result = synth_out
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert (out / "dm.parquet").is_file()
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(f"{t}.parquet" for t in TABLE_NAMES)
    assert (out / "truth.csv").is_file()
    assert sorted(p.name for p in (out / "cuts").iterdir()) == ["2024-06-08", "2024-07-08"]
    for cut in (out / "cuts").iterdir():
        assert (cut / "dm.parquet").is_file() and (cut / "truth.csv").is_file()
    assert f"Wrote study RBQM-SYN-01 to {out} (2024-01-08 to 2024-07-08, parquet)." in result.stdout
    assert "Data cuts: 2024-06-08, 2024-07-08." in result.stdout


def test_synth_leaves_no_staging_folder(synth_out):
    out, _ = synth_out
    assert [p.name for p in out.parent.iterdir()] == ["study"]


def test_synth_format_csv_writes_csv(tmp_path):
    out = tmp_path / "csv"
    result = invoke("synth", out, *SMALL, "--format", "csv", "--seed", "4")
    assert f"Wrote study RBQM-SYN-01 to {out} (2024-01-08 to 2024-07-08, csv)." in result.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{t}.csv" for t in TABLE_NAMES] + ["truth.csv"])


@pytest.mark.parametrize("fmt", ["csv", "xpt"])
def test_synth_non_parquet_formats_exit_0(tmp_path, fmt):
    result = invoke("synth", tmp_path / fmt, *SMALL, "--format", fmt, "--anomalies", "none")
    assert result.exception is None, repr(result.exception)
    assert result.exit_code == 0
    assert "Injected anomalies: 0" in result.stdout


def test_info_prints_the_enrolled_count(synth_out):
    out, _ = synth_out
    result = invoke("info", out)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "subjects enrolled  60" in lines
    assert "data cuts          2024-06-08, 2024-07-08" in lines
    assert "sites              6" in lines


def test_info_json_equals_summarize_study(synth_out):
    """Parity: ``rbqm info --json`` reports exactly what rbqm.study.summarize_study returns."""
    out, _ = synth_out
    result = invoke("info", out, "--json")
    assert result.exit_code == 0, result.output
    summary = summarize_study(out)
    assert json.loads(result.stdout) == {
        "study_id": summary.study_id,
        "screened": summary.screened,
        "enrolled": summary.enrolled,
        "sites": summary.sites,
        "countries": summary.countries,
        "first_consent": summary.first_consent,
        "last_date": summary.last_date,
        "tables": summary.tables,
        "cuts": [p.name for p in list_cuts(out)],
    }
    assert summary.enrolled == 60 and summary.sites == 6 and summary.countries == 2


def _assert_user_error(result, *fragments):
    """Exit 2, one line on stderr starting with Error:, naming every fragment, and no traceback."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    message = result.stderr
    assert message.startswith("Error: ") and message.endswith("\n")
    assert message.count("\n") == 1, message
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in message


def test_synth_refuses_a_non_empty_folder_and_leaves_it_untouched(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious", encoding="utf-8")
    (out / "dm.csv").write_text("USUBJID\nX\n", encoding="utf-8")
    result = invoke("synth", out, *SMALL)
    _assert_user_error(result, str(out), "already exists and is not empty", "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["dm.csv", "keep.txt"]
    assert (out / "keep.txt").read_text(encoding="utf-8") == "precious"
    assert (out / "dm.csv").read_text(encoding="utf-8") == "USUBJID\nX\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_synth_overwrite_replaces_the_folder(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("old", encoding="utf-8")
    result = invoke("synth", out, *SMALL, "--overwrite", "--anomalies", "none")
    assert result.exit_code == 0, result.output
    assert not (out / "keep.txt").exists()
    assert (out / "dm.parquet").is_file()


BAD_YAML = {
    "magnitude.yaml": "anomalies:\n  - {type: ae_under_reporting, magnitude: 7, sites: 1}\n",
    "site.yaml": "anomalies:\n  - {type: query_backlog, magnitude: 3, sites: ['9999']}\n",
}


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--countries", "99"], ["--countries must be between 1 and", "got 99"]),
        (["--format", "foo"], ["--format must be one of parquet, csv, xpt", "'foo'"]),
        (["--start", "notadate"], ["--start must be an ISO 8601 date", "'notadate'"]),
        (["--anomalies", "/nonexistent.yaml"], ["/nonexistent.yaml", "cannot read the anomaly file"]),
        (["--anomalies", "{tmp}/magnitude.yaml"], ["{tmp}/magnitude.yaml", "anomaly 1", "magnitude",
                                                    "between 0.0 and 1.0", "got 7.0"]),
        (["--anomalies", "{tmp}/site.yaml"], ["query_backlog", "unknown site(s) 9999", "1001 to 1006"]),
    ],
    ids=["countries", "format", "start", "missing-anomalies", "bad-magnitude", "unknown-site"],
)
def test_synth_bad_input_exits_2_with_one_line(tmp_path, args, fragments):
    for name, text in BAD_YAML.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    args = [a.format(tmp=tmp_path) for a in args]
    result = invoke("synth", out, *SMALL, *[a for a in args])
    _assert_user_error(result, *[f.format(tmp=tmp_path) for f in fragments])
    assert not out.exists()


def test_info_without_dm_exits_2(tmp_path):
    (tmp_path / "ae.csv").write_text("USUBJID,AESEQ\nX,1\n", encoding="utf-8")
    _assert_user_error(invoke("info", tmp_path), str(tmp_path), "required table dm", "missing")


def test_info_on_a_missing_folder_exits_2(tmp_path):
    _assert_user_error(invoke("info", tmp_path / "nowhere"), "not a study folder")


def test_python_m_rbqm_help():
    result = subprocess.run([sys.executable, "-m", "rbqm", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "synth" in result.stdout and "info" in result.stdout
    assert "Risk-based quality management" in result.stdout


def test_python_m_rbqm_user_error_has_no_traceback(tmp_path):
    """A real process: the error is one line on stderr, exit status 2."""
    result = subprocess.run([sys.executable, "-m", "rbqm", "info", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"Error: {tmp_path}: the required table dm "
                                          "(dm.parquet, dm.csv or dm.xpt) is missing"]
