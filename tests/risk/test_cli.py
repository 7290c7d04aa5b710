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
    assert "risk0001 (raise): likelihood 2 -> 3 (score 18 -> 27, high)" in out.output
    assert "risk without indicator: risk0004" in out.output
    assert "indicator without risk: kri0011 (Data change rate)" in out.output


def test_export_csv_and_markdown(ae_study, tmp_path):
    csv = tmp_path / "register.csv"
    out = runner.invoke(app, ["risk", "export", str(ae_study), "--format", "csv", "--out", str(csv)])
    assert out.exit_code == 0, out.output
    frame = pl.read_csv(csv)
    assert frame.height == 12 and frame["indicators"][0] == "kri0001, kri0021, ae_under_reporting"
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
    assert out.exit_code == 0 and "Added 12 risks" in out.output, out.output
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


def _sheets(path) -> list[str]:
    import re
    import zipfile

    with zipfile.ZipFile(path) as book:
        return re.findall(r'<sheet name="([^"]+)"', book.read("xl/workbook.xml").decode())


def _strings(path) -> str:
    import zipfile

    with zipfile.ZipFile(path) as book:
        return book.read("xl/sharedStrings.xml").decode()


def test_export_xlsx_has_the_study_register_gaps_and_proposals_sheets(ae_study, tmp_path):
    book = tmp_path / "risk.xlsx"
    out = runner.invoke(app, ["risk", "export", str(ae_study), "--format", "xlsx", "--out", str(book)])
    assert out.exit_code == 0, out.output
    assert _sheets(book) == ["Study risk", "Register", "Gaps", "Review proposals"]
    strings = _strings(book)
    # a register row, its controls, a gap and a proposal's evidence (the sheets' cells, as shared strings)
    assert "Adverse event under-reporting" in strings and "AE reconciliation against source" in strings
    assert "indicator without risk" in strings and "Overall study risk" in strings
    assert "judged likelihood 2, but its indicators give evidence at" in strings
    out = runner.invoke(app, ["risk", "export", str(ae_study), "--format", "xlsx", "--out",
                              str(tmp_path / "no-such-folder" / "risk.xlsx")])
    assert out.exit_code == 2 and "does not exist" in out.output


def _quiet_analysis(study_id: str):
    """Three cuts at which kri0008 (risk0010) and kri0006 (risk0009) are computed at two sites without a
    flag: proposals to lower both."""
    from datetime import date

    from rbqm.analysis import Analysis
    from rbqm.csm import CSM_COLUMNS

    cuts = [date(2025, 4, 1), date(2025, 5, 1), date(2025, 6, 1)]
    results = pl.DataFrame({"cut_date": [c for c in cuts for _ in range(4)], "level": "site",
                            "group_id": ["1001", "1002"] * 6, "kri_id": ["kri0008", "kri0008", "kri0006", "kri0006"] * 3,
                            "flag": 0},
                           schema_overrides={"flag": pl.Int8})
    return Analysis(study_id, cuts, results, pl.DataFrame(), pl.DataFrame(), pl.DataFrame(),
                    pl.DataFrame(schema=CSM_COLUMNS))


def test_decide_a_proposal_to_lower_and_export_the_decision(tmp_path, monkeypatch):
    import rbqm.analysis

    monkeypatch.setattr(rbqm.analysis, "analyze_study", lambda study_dir, **_: _quiet_analysis("Q1"))
    db, study = _db(tmp_path), tmp_path  # any folder: the analysis is the one above
    assert runner.invoke(app, ["risk", "import-template", "Q1", "--db", db, "--actor", "quinn"]).exit_code == 0
    out = runner.invoke(app, ["risk", "show", str(study), "--db", db, "--actor", "monty"])
    assert out.exit_code == 0 and "risk0010 (lower): likelihood 2 -> 1 (score 4 -> 2, low)" in out.output, out.output
    out = runner.invoke(app, ["risk", "decide", str(study), "risk0010", "--accept", "--reason", "x",
                              "--db", db, "--actor", "monty"])
    assert out.exit_code == 2 and "may not risk.review" in out.output
    out = runner.invoke(app, ["risk", "decide", str(study), "risk0010", "--accept", "--db", db, "--actor", "quinn",
                              "--reason", "queries answered promptly for three months"])
    assert out.exit_code == 0, out.output
    assert "risk0010: proposal to lower the likelihood accepted; likelihood 1, score 2, version 2." in out.output
    out = runner.invoke(app, ["risk", "decide", str(study), "risk0009", "--reject", "--db", db, "--actor", "quinn",
                              "--reason", "dropout follows the protocol expectation"])
    assert out.exit_code == 0 and "proposal to lower the likelihood rejected; likelihood 2" in out.output, out.output
    book = tmp_path / "risk.xlsx"
    out = runner.invoke(app, ["risk", "export", str(study), "--format", "xlsx", "--out", str(book), "--db", db,
                              "--actor", "monty"])
    assert out.exit_code == 0, out.output
    # the rejected proposal stays, with the decision; the accepted one is gone (risk0010 is at likelihood 1)
    strings = _strings(book)
    assert "dropout follows the protocol expectation" in strings and "rejected" in strings
    assert "queries answered promptly" not in strings
    shown = json.loads(runner.invoke(app, ["risk", "show", str(study), "--json", "--db", db, "--actor", "monty"]).output)
    assert {r["risk_id"]: r["likelihood"] for r in shown["register"]}["risk0010"] == 1
    assert "risk0010" not in {p["risk_id"] for p in shown["proposals"]}
    assert shown["review_rule"]["quiet_cuts"] == 3
