"""``rbqm report``: HTML and PDF from one command, atomic writes, and clean exit-2 errors for bad input."""

from __future__ import annotations


import pytest
from typer.testing import CliRunner

import rbqm.cli  # noqa: F401  (registers the commands)
from rbqm.cli._app import app

from .conftest import make_store

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["report", *map(str, args)])


def test_writes_html_and_pdf_from_one_command(study, tmp_path):
    html, pdf = tmp_path / "oversight.html", tmp_path / "oversight.pdf"
    result = run(study, "--out", html, "--out", pdf, "--top", 5, "--no-csm")
    assert result.exit_code == 0, result.output
    assert f"Wrote {html}." in result.output and f"Wrote {pdf}." in result.output
    assert "without the store" in result.output
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["oversight.html", "oversight.pdf"]  # no temporary left


def test_an_earlier_cut_and_the_store(study, tmp_path):
    url = make_store(tmp_path / "rbqm.db")
    out = tmp_path / "first.html"
    result = run(study, "--out", out, "--cut", "2024-12-08", "--no-csm", "--db", url, "--actor", "sam")
    assert result.exit_code == 0, result.output
    assert "at the data cut of 2024-12-08 (first cut); with the store's records." in result.output
    page = out.read_text(encoding="utf-8")
    assert "Data cut 2024-12-08; first data cut." in page and "not recorded" in page


def test_replaces_an_existing_report(study, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("old", encoding="utf-8")
    assert run(study, "--out", out, "--no-csm").exit_code == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(("args", "message"), [
    (["{missing}", "--out", "{out}/r.html"], "not a study folder"),
    (["{study}", "--out", "{out}/r.html", "--cut", "2024-13-01"], "--cut must be an ISO 8601 date"),
    (["{study}", "--out", "{out}/r.html", "--cut", "2024-11-30"], "has no data cut 2024-11-30; its cuts are 2024-12-08"),
    (["{study}", "--out", "{out}/no/such/folder/r.pdf"], "cannot write the report: folder"),
    (["{study}", "--out", "{out}"], "the report's file name must end in .html or .pdf"),
    (["{study}", "--out", "{out}/r.docx"], "must end in .html or .pdf (got '.docx')"),
    (["{study}", "--out", "{out}/dir.html"], "cannot write the report: it is a folder"),
    (["{study}", "--out", "{out}/r.html", "--db", "sqlite:///{out}/rbqm.db", "--actor", "nobody"], "nobody"),
])
def test_bad_input_exits_2_without_traceback(study, tmp_path, args, message):
    (tmp_path / "dir.html").mkdir()
    if "--db" in args:
        make_store(tmp_path / "rbqm.db")
    filled = [a.format(missing=tmp_path / "missing", out=tmp_path, study=study) for a in args]
    result = run(*filled, "--no-csm")
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("r.*"))


def test_a_failed_write_keeps_the_old_report(study, tmp_path, monkeypatch):
    import os

    from rbqm.errors import RbqmError
    from rbqm.report import build_report, write_report
    from rbqm.analysis import analyze_study

    out = tmp_path / "r.html"
    out.write_text("the previous report", encoding="utf-8")
    report = build_report(analyze_study(study, csm=False), study_dir=study)

    def refuse(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(RbqmError, match="No space left on device"):
        write_report(report, out)
    assert out.read_text(encoding="utf-8") == "the previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_help_names_the_options():
    result = runner.invoke(app, ["report", "--help"])
    assert result.exit_code == 0
    for option in ("--out", "--cut", "--top", "--db", "--actor"):
        assert option in result.output
