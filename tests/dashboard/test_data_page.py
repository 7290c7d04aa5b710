"""The Data page through AppTest: choose a folder or upload a zip, read the validation report, choose a
cut and ingest it (for the roles that may), on the tiny study."""

from __future__ import annotations

import io
import zipfile
from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rbqm.store import audit, open_store

from .conftest import USER_OF, sign_in
from .study_builder import CUT, STUDY_ID

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
APP = DASHBOARD / "app.py"
PAGE = "pages/data_intake.py"
BAD_DM = ("STUDYID,USUBJID,SITEID,COUNTRY,RFICDTC,RFSTDTC,ARMCD\n"
          "B,B-1,1,FRA,2024-01-02,2024-01-09,A\n"
          "B,B-2,1,FRA,02/01/2024,2024-01-10,A\n")


def open_data(role: str = "admin") -> AppTest:
    at = sign_in(AppTest.from_file(str(APP), default_timeout=60), role).run()
    return at.switch_page(PAGE).run()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def zipped(folder: Path, prefix: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, prefix + path.relative_to(folder).as_posix())
    return buffer.getvalue()


def test_a_clean_folder_validates_and_lists_its_cuts(study_data_dir: Path) -> None:
    at = open_data()
    assert not at.exception and not at.error
    assert at.title[0].value == "Data"
    assert at.selectbox(key="data_folder").options == ["demo"]
    assert at.selectbox(key="data_cut").options == ["the folder itself (latest date in the data)",
                                                    f"{CUT} (cuts/{CUT})"]
    assert metrics(at) == {"Errors": "0", "Warnings": "0", "Data cut": "2024-05-30"}  # RFENDTC of subject 001
    assert "No problems found" in at.success[0].value
    at.selectbox(key="data_cut").set_value(date.fromisoformat(CUT)).run()
    assert metrics(at)["Data cut"] == CUT
    assert at.text_input(key="data_study_id").value == STUDY_ID


def test_errors_are_listed_with_file_column_and_row_and_block_the_ingest(study_data_dir: Path) -> None:
    broken = study_data_dir / "broken"
    broken.mkdir()
    (broken / "dm.csv").write_text(BAD_DM)
    at = open_data()
    at.selectbox(key="data_folder").set_value(broken).run()
    assert not at.exception
    assert metrics(at)["Errors"] == "1"
    report = at.dataframe[0].value
    error = report[report["severity"] == "✖ error"].iloc[0]
    assert (error["file"], error["column"], error["row"]) == ("dm.csv", "RFICDTC", 2)
    assert "not ISO 8601" in error["message"] and "'02/01/2024'" in error["message"]
    assert "Fix the errors" in at.warning[0].value
    assert not [b for b in at.button if b.key == "data_ingest_submit"]


def test_ingest_writes_the_snapshot_and_the_audit_record(study_data_dir: Path, fresh_store_url: str) -> None:
    at = open_data(role="central_monitor")
    at.selectbox(key="data_cut").set_value(date.fromisoformat(CUT)).run()
    at.text_input(key="data_study_id").input("TINY-SNAP")
    at.button(key="data_ingest_submit").click().run()
    assert not at.exception and not at.error
    snapshot = study_data_dir / "TINY-SNAP" / "cuts" / CUT
    assert (snapshot / "dm.parquet").is_file() and (snapshot / "manifest.json").is_file()
    # 4 subjects and 2 sites
    assert "Ingested TINY-SNAP at 2024-03-31: 6 rows in 2 tables" in at.success[0].value
    assert at.dataframe[-1].value["cut_date"].tolist() == [CUT]  # the study's snapshots
    store = open_store(fresh_store_url)
    with store.read() as session:
        (entry,) = audit.list_records(session, USER_OF["admin"], object_type="snapshot")
    store.close()
    assert (entry.actor, entry.object_id, entry.reason) == (USER_OF["central_monitor"], f"TINY-SNAP/{CUT}",
                                                            f"data cut {CUT}")
    at.button(key="data_ingest_submit").click().run()  # the same cut again: snapshots are immutable
    assert "exists already" in at.error[0].value


def test_an_export_without_optional_dm_dates_ingests(study_data_dir: Path, fresh_store_url: str) -> None:
    export = study_data_dir / "minimal"
    export.mkdir()
    (export / "dm.csv").write_text("STUDYID,USUBJID,SITEID,COUNTRY,RFICDTC,ARMCD\nM,M-1,1,FRA,2024-01-02,A\n")
    at = open_data()
    at.selectbox(key="data_folder").set_value(export).run()
    assert metrics(at)["Errors"] == "0"
    at.button(key="data_ingest_submit").click().run()
    assert not at.exception and not at.error
    assert (study_data_dir / "M" / "cuts" / "2024-01-02" / "dm.parquet").is_file()


def test_a_sponsor_viewer_may_validate_but_not_ingest(study_data_dir: Path) -> None:
    at = open_data(role="sponsor_viewer")
    assert not at.exception
    assert metrics(at)["Errors"] == "0"
    assert "may validate data but not ingest it" in at.info[0].value
    assert not [b for b in at.button if b.key == "data_ingest_submit"]


def test_an_uploaded_zip_is_unpacked_and_validated(study_data_dir: Path) -> None:
    at = open_data()
    at.radio(key="data_source").set_value("upload").run()
    assert "Upload a zip of a study folder" in at.info[0].value
    at.file_uploader(key="data_upload").upload("tiny.zip", zipped(study_data_dir / "demo", "TINY/"),
                                               "application/zip").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="data_cut").options[-1] == f"{CUT} (cuts/{CUT})"
    assert metrics(at)["Errors"] == "0"
    unpacked = list((study_data_dir / ".uploads").glob("*/TINY/dm.parquet"))
    assert len(unpacked) == 1


def test_an_upload_that_is_not_a_zip_says_so(study_data_dir: Path) -> None:
    at = open_data()
    at.radio(key="data_source").set_value("upload").run()
    at.file_uploader(key="data_upload").upload("study.zip", b"not a zip at all", "application/zip").run()
    assert not at.exception
    assert "study.zip: not a zip file" in at.error[0].value


def test_an_empty_data_dir_says_what_to_do(empty_data_dir: Path) -> None:
    at = open_data()
    assert not at.exception
    assert "No study export in the data directory" in at.info[0].value
    assert "Upload a zip" in at.info[0].value


@pytest.mark.parametrize("page", ["data_intake.py"])
def test_the_page_run_without_app_py_asks_to_sign_in(study_data_dir: Path, page: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DASHBOARD))
    at = AppTest.from_file(str(DASHBOARD / "pages" / page), default_timeout=30).run()
    assert not at.exception
    assert at.text_input(key="login_user") and not at.selectbox


def test_a_second_cut_appears_on_the_analysis_pages_at_once(study_data_dir: Path, fresh_store_url: str) -> None:
    """The analysis is a shared resource (not copied per call): an ingest must clear it as well."""
    at = open_data()
    at.selectbox(key="data_cut").set_value(date.fromisoformat(CUT)).run()
    at.text_input(key="data_study_id").input("TINY-TWO")
    at.button(key="data_ingest_submit").click().run()
    at.switch_page("pages/report.py").run()
    folder = str(study_data_dir / "TINY-TWO")
    at.selectbox(key="study").set_value(folder).run()
    assert not at.exception
    assert at.selectbox(key="report_cut").options == [CUT]  # the analysis of one cut is cached now
    at.switch_page(PAGE).run()
    at.selectbox(key="data_folder").set_value(study_data_dir / "demo").run()
    at.selectbox(key="data_cut").set_value(None).run()  # the folder's latest date: a second cut
    at.text_input(key="data_study_id").input("TINY-TWO")
    at.button(key="data_ingest_submit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.switch_page("pages/report.py").run()
    at.selectbox(key="study").set_value(folder).run()
    assert at.selectbox(key="report_cut").options == ["2024-05-30", CUT]
