"""``rbqm validate``: every problem with its file, column and row; errors exit 2, warnings do not."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
from typer.testing import CliRunner

import rbqm.cli  # noqa: F401  (registers the commands)
from rbqm.cli._app import app
from rbqm.io import read_table, write_table
from rbqm.validate import validate_study
from synthetic import SynthConfig, generate_study

runner = CliRunner()


@pytest.fixture(scope="module")
def clean_csv(tmp_path_factory):
    out = tmp_path_factory.mktemp("val") / "study"
    generate_study(SynthConfig(sites=4, subjects=40, countries=2, seed=2, months=8, fmt="csv"), out)
    return out


@pytest.fixture
def study(clean_csv, tmp_path):
    target = tmp_path / "study"
    shutil.copytree(clean_csv, target)
    return target


def _edit(study, name, change):
    path = study / f"{name}.csv"
    write_table(change(read_table(path)), study, name, "csv")


def _issues(study, **kw) -> list[dict]:
    return validate_study(study, **kw).issues.to_dicts()


def test_clean_generated_study_has_no_issue(study):
    report = validate_study(study)
    assert report.ok and report.errors == 0 and report.warnings == 0


@pytest.mark.parametrize(("name", "change", "severity", "column", "message"), [
    ("dm", lambda f: f.drop("SITEID"), "error", "SITEID", "required column is missing"),
    ("dm", lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 2).then(None).otherwise("COUNTRY").alias("COUNTRY")),
     "error", "COUNTRY", "required value is empty in 1 row(s)"),
    ("ae", lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("2024-13-45")).otherwise("AESTDTC").alias("AESTDTC")),
     "error", "AESTDTC", "1 value(s) are not ISO 8601 dates, e.g. '2024-13-45'"),
    ("ae", lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("Yes")).otherwise("AESER").alias("AESER")),
     "warning", "AESER", "1 value(s) outside the codelist (Y, N), e.g. 'Yes'"),
    ("ae", lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("NOBODY")).otherwise("USUBJID").alias("USUBJID")),
     "error", "USUBJID", "1 row(s) belong to subjects not in dm, e.g. 'NOBODY'"),
    ("ae", lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("2000-01-01")).otherwise("AEENDTC").alias("AEENDTC")),
     "warning", "AEENDTC", "AEENDTC before AESTDTC in 1 row(s)"),
])
def test_each_problem_names_file_column_and_row(study, name, change, severity, column, message):
    _edit(study, name, change)
    found = [i for i in _issues(study) if i["column"] == column]
    assert len(found) == 1, found
    issue = found[0]
    assert (issue["severity"], issue["file"], issue["message"]) == (severity, f"{name}.csv", message)
    assert issue["row"] == (None if "missing" in message else (3 if name == "dm" else 1))


def test_duplicate_subject_is_an_error_with_its_key(study):
    _edit(study, "dm", lambda f: pl.concat([f, f.head(1)]))
    issue = next(i for i in _issues(study) if "share their key" in i["message"])
    assert issue["severity"] == "error" and issue["key"] and issue["count"] == 2


def test_repeated_records_are_a_warning(study):
    _edit(study, "sv", lambda f: pl.concat([f, f.head(1)]))
    issue = next(i for i in _issues(study) if "share their key" in i["message"])
    assert issue["severity"] == "warning" and issue["file"] == "sv.csv"


def test_wrong_type_names_the_row(study):
    _edit(study, "dm", lambda f: f.with_columns(pl.col("AGE").cast(pl.String))
          .with_columns(pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("old")).otherwise("AGE").alias("AGE")))
    issue = next(i for i in _issues(study) if i["file"] == "dm.csv")
    assert issue["severity"] == "error" and "column AGE must be integer, but row 5 has 'old'" in issue["message"]


def test_records_after_the_cut_and_unknown_sites_warn(study):
    _edit(study, "sites", lambda f: f.head(2))
    issues = _issues(study, as_of=pl.Series(["2024-05-01"]).str.to_date()[0])
    messages = {i["message"].split(" (")[0] if "after the cut" in i["message"] else i["message"] for i in issues}
    assert any("subject(s) at sites not in the sites table" in m for m in messages)
    assert any(i["severity"] == "warning" and "dated after the cut (2024-05-01) are left out" in i["message"]
               for i in issues)


def test_truncated_and_empty_files_are_errors(study):
    text = (study / "ae.csv").read_bytes()
    (study / "ae.csv").write_bytes(text[: len(text) // 2 + 7].rstrip(b"\n")[:-3])
    (study / "dv.csv").write_bytes(b"")
    issues = _issues(study)
    assert any(i["file"] == "ae.csv" and i["severity"] == "error" and "looks truncated" in i["message"] for i in issues)
    assert any(i["file"] == "dv.csv" and i["severity"] == "error" for i in issues)


def test_non_utf8_text_is_an_error_naming_the_file(study):
    raw = (study / "dm.csv").read_bytes().replace(b"USA", b"\xff\xfeUSA", 1)
    (study / "dm.csv").write_bytes(raw)
    issue = next(i for i in _issues(study) if i["severity"] == "error")
    assert issue["file"] == "dm.csv"


def test_cli_exit_codes_and_json(study):
    ok = runner.invoke(app, ["validate", str(study), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    _edit(study, "dm", lambda f: f.drop("SITEID"))
    bad = runner.invoke(app, ["validate", str(study)])
    assert bad.exit_code == 2
    assert "ERROR   dm.csv, column SITEID: required column is missing" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr
