"""Data: validate a study export (a folder under the data directory, or an uploaded zip), choose a data cut
and ingest it as a new snapshot."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import streamlit as st

from rbqm.analysis import study_id_of
from rbqm.errors import RbqmError
from rbqm.ingest import list_snapshots
from rbqm.permissions import Action
from rbqm.sources import MAX_UNZIPPED_BYTES, source_cuts, source_folders
from rbqm.store.snapshots import ingest_snapshot

from auth import current_user, may, require_sign_in, store  # dashboard/auth.py
from data import clear_caches, data_dir, unpack_upload, validate_source  # dashboard/data.py

SOURCES = {"folder": "A folder in the data directory", "upload": "Upload a zip"}
SEVERITY_SHOWN = {"error": "✖ error", "warning": "▲ warning"}
WHOLE_FOLDER = "the folder itself (latest date in the data)"
FORM_KEYS = ("data_study_id", "data_reason")


def reset_form() -> None:
    """Forget the ingest form's entries when another export or cut is chosen (their defaults follow it)."""
    for key in FORM_KEYS:
        st.session_state.pop(key, None)

require_sign_in()
st.title("Data")
st.caption(
    "Bring a study export in: choose a study folder under the data directory, or upload a zip of one "
    "(one file per table, Parquet, CSV or SAS XPORT: dm.parquet, ae.csv, lb.xpt, …; data cuts in "
    "cuts/YYYY-MM-DD/). Every table is validated: errors (missing tables or columns, wrong types, bad dates, "
    "unknown subjects) must be fixed before ingesting; warnings are kept with the snapshot. Ingesting stores "
    "the chosen data cut as a read-only snapshot in the data directory, recorded in the audit trail; the "
    "analysis pages then show it as a study."
)

root = data_dir()
if saved := st.session_state.pop("data_ingested", None):
    st.success(saved, icon=":material/task_alt:")

source = st.radio("Study export", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="data_source",
                  on_change=reset_form)
if source == "folder":
    folders = source_folders(root)
    if not folders:
        st.info(f"No study export in the data directory `{root}`: copy a study folder into it (one file per "
                "table, e.g. dm.parquet, ae.csv), run `rbqm synth data/demo` for a demo, or choose "
                "*Upload a zip*.")
        st.stop()
    folder = st.selectbox("Folder", folders, format_func=lambda p: str(p.relative_to(root)),
                          key="data_folder", on_change=reset_form)
else:
    upload = st.file_uploader(
        "Zip of a study folder", type=["zip"], key="data_upload", on_change=reset_form,
        help=f"The tables at the top of the zip or in its one top folder; at most "
             f"{MAX_UNZIPPED_BYTES // 1024**3} GiB unpacked. Other files are ignored.")
    if upload is None:
        st.info("Upload a zip of a study folder (its table files, and cuts/YYYY-MM-DD/ folders if it has "
                "data cuts) to validate it.")
        st.stop()
    try:
        folder = Path(unpack_upload(str(root), upload.file_id, upload.getvalue(), upload.name))
    except RbqmError as exc:
        st.error(str(exc))
        st.stop()

cuts = source_cuts(folder)
has_tables = any(p.is_file() and p.stem.lower() == "dm" for p in folder.iterdir())
options = ([None] if has_tables or not cuts else []) + cuts
cut = st.selectbox(
    "Data cut", options, key="data_cut", on_change=reset_form,
    format_func=lambda c: WHOLE_FOLDER if c is None else f"{c} (cuts/{c})",
    help="The study as it was on that date (a cuts/YYYY-MM-DD folder), or the folder's own tables.")
st.caption(f"Data cuts in this folder, newest first: {', '.join(str(c) for c in cuts)}." if cuts
           else "This folder has no data cuts (cuts/YYYY-MM-DD/); its own tables are validated.")
target = folder if cut is None else folder / "cuts" / cut.isoformat()

# --- Validation -----------------------------------------------------------------------------------
try:
    issues, latest = validate_source(str(target), cut)
except RbqmError as exc:
    st.error(str(exc))
    st.stop()
errors = int((issues["severity"] == "error").sum())
warnings = issues.height - errors
st.subheader("Validation")
summary = st.columns(3)
summary[0].metric("Errors", errors)
summary[1].metric("Warnings", warnings)
summary[2].metric("Data cut", str(cut or latest or "–"),
                  help="The cut chosen, else the latest date in the data.")
if issues.is_empty():
    st.success("No problems found: every table reads with the documented columns and types.")
else:
    report = issues.sort(pl.col("severity") != "error", "file", "row", nulls_last=True)
    st.dataframe(
        report.select(pl.col("severity").replace_strict(SEVERITY_SHOWN, default=pl.col("severity")),
                      "file", "column", "row", "key", "count", "message"),
        hide_index=True, key="data_issues",
        column_config={"severity": "Severity", "file": "File", "column": "Column",
                       "row": st.column_config.NumberColumn("Row", format="%d",
                                                            help="The first affected data row (1-based)."),
                       "key": "Key", "count": st.column_config.NumberColumn("Rows", format="%d"),
                       "message": st.column_config.TextColumn("Problem", width="large")},
    )
    st.download_button("Download the report (CSV)", report.write_csv(), file_name="validation.csv",
                       mime="text/csv", key="data_report_csv", icon=":material/download:")

# --- Ingest -------------------------------------------------------------------------------------
st.subheader("Ingest as a snapshot")
if not may(Action.DATA_INGEST):
    st.info(f"Your role ({st.session_state['role']}) may validate data but not ingest it.",
            icon=":material/lock:")
    st.stop()
if errors:
    st.warning("Fix the errors above in the export, then come back: an export with errors cannot be "
               "ingested.")
    st.stop()
when = cut or latest
if when is None:
    st.error("The data holds no dates, so the data cut is unknown: ingest it with "
             "`rbqm ingest --as-of DATE`.")
    st.stop()
with st.form("data_ingest"):
    left, right = st.columns(2)
    study_id = left.text_input("Study id", value=study_id_of(target), key="data_study_id",
                               help=f"The snapshot is stored as `{root}/STUDY_ID/cuts/{when}/`.")
    reason = right.text_input("Reason (kept in the audit trail)", value=f"data cut {when}", key="data_reason")
    submitted = st.form_submit_button(f"Ingest the data cut of {when}", type="primary",
                                      key="data_ingest_submit")
if submitted:
    try:
        with st.spinner("Validating and writing the snapshot…"):
            snapshot = ingest_snapshot(store(), current_user(), target, study_id.strip(), reason=reason,
                                       root=root, as_of=when)
    except RbqmError as exc:
        st.error(str(exc))
    else:
        clear_caches()  # the study list and its analysis must see the new cut
        st.session_state["data_ingested"] = (
            f"Ingested {snapshot.study_id} at {snapshot.cut}: {sum(snapshot.rows.values()):,} rows in "
            f"{len(snapshot.rows)} tables, into `{snapshot.path}`. Choose study {snapshot.study_id} on the "
            "analysis pages to see it.")
        st.rerun()
try:
    stored = list_snapshots(root, study_id.strip())
except RbqmError:
    stored = None
if stored is not None and stored.height:
    st.caption(f"Snapshots of {study_id.strip()} already in the data directory:")
    st.dataframe(stored.select("cut_date", "subjects", "tables", "rows", "ingested_at"), hide_index=True,
                 key="data_snapshots")
