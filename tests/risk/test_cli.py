"""rbqm risk show / export on the command line: JSON equals the engine; CSV and Markdown exports."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from rbqm.analysis import analyze_study
from rbqm.cli import app
from rbqm.risk import assess_risks, load_risk_register

runner = CliRunner()


def test_show_json_equals_engine(ae_study):
    out = runner.invoke(app, ["risk", "show", str(ae_study), "--json"])
    assert out.exit_code == 0, out.output
    engine = assess_risks(load_risk_register(), analyze_study(ae_study)).to_dict()
    assert json.loads(out.output) == json.loads(json.dumps(engine, default=str))


def test_show_text_lists_scores_status_proposals_and_gaps(ae_study):
    out = runner.invoke(app, ["risk", "show", str(ae_study)])
    assert out.exit_code == 0, out.output
    assert "overall study risk medium" in out.output
    assert "risk0001  high    18 = I3 x L2 x D3  Adverse event under-reporting" in out.output
    assert "risk0001: likelihood 2 -> 3" in out.output
    assert "risk without indicator: risk0004" in out.output
    assert "indicator without risk: kri0011 (Data change rate)" in out.output


def test_export_csv_and_markdown(ae_study, tmp_path):
    csv = tmp_path / "register.csv"
    out = runner.invoke(app, ["risk", "export", str(ae_study), "--format", "csv", "--out", str(csv)])
    assert out.exit_code == 0, out.output
    frame = pl.read_csv(csv)
    assert frame.height == 10 and frame["indicators"][0] == "kri0001, kri0021, ae_under_reporting"
    assert {"score", "level", "status", "flagged_sites"} <= set(frame.columns)
    md = tmp_path / "risk.md"
    out = runner.invoke(app, ["risk", "export", str(ae_study), "--format", "md", "--out", str(md)])
    assert out.exit_code == 0, out.output
    text = md.read_text()
    assert text.startswith("## Risk assessment: ") and "### Review proposals" in text and "| risk0004 |" in text


def test_a_bad_library_exits_2(ae_study, tmp_path):
    out = runner.invoke(app, ["risk", "show", str(ae_study), "--library", str(tmp_path)])
    assert out.exit_code == 2 and "Error:" in out.output


def _db(tmp_path) -> str:
    from rbqm.store import open_store, users
    from tests.store.conftest import password_of

    url = f"sqlite:///{tmp_path / 'rbqm.db'}"
    store = open_store(url)
    with store.write() as session:
        users.add_user(session, "root", "ada", role="admin", password=password_of("ada"))
        users.add_user(session, "ada", "quinn", role="quality_lead", password=password_of("quinn"))
        users.add_user(session, "ada", "monty", role="central_monitor", password=password_of("monty"))
    store.close()
    return url


def test_store_register_import_update_decide_and_show(ae_study, ae_analysis, tmp_path):
    db = _db(tmp_path)
    study = ae_analysis.study_id
    out = runner.invoke(app, ["risk", "import-template", study, "--db", db, "--actor", "quinn"])
    assert out.exit_code == 0 and "Added 10 risks" in out.output, out.output
    out = runner.invoke(app, ["risk", "update", study, "risk0004", "--indicator", "kri0004", "--reason", "consent",
                              "--db", db, "--actor", "monty"])
    assert out.exit_code == 2 and "may not risk.edit" in out.output
    out = runner.invoke(app, ["risk", "update", study, "risk0004", "--indicator", "kri0004", "--owner", "quinn",
                              "--reason", "consent deviations are important deviations", "--expect-version", "1",
                              "--db", db, "--actor", "quinn"])
    assert out.exit_code == 0 and "risk0004: score 9 (medium), version 2." in out.output, out.output
    out = runner.invoke(app, ["risk", "decide", str(ae_study), "risk0001", "--accept", "--reason", "confirmed",
                              "--db", db, "--actor", "quinn"])
    assert out.exit_code == 0 and "likelihood 3, score 27, version 2" in out.output, out.output
    out = runner.invoke(app, ["risk", "decide", str(ae_study), "risk0001", "--reject", "--reason", "x",
                              "--db", db, "--actor", "quinn"])
    assert out.exit_code == 2 and "no review proposal for risk0001" in out.output
    out = runner.invoke(app, ["risk", "show", str(ae_study), "--json", "--db", db, "--actor", "monty"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    rows = {r["risk_id"]: r for r in shown["register"]}
    assert rows["risk0001"]["likelihood"] == 3 and rows["risk0001"]["level"] == "high"
    assert rows["risk0004"]["indicators"] == ["kri0004"] and rows["risk0004"]["owner"] == "quinn"
    assert "risk0004" not in {g["id"] for g in shown["gaps"]}
    assert "risk0001" not in {p["risk_id"] for p in shown["proposals"]}
