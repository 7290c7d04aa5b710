"""Cached loaders for the dashboard pages: every call into rbqm goes through here.

Pages import these as ``from data import ...`` because Streamlit puts the folder of
``app.py`` on ``sys.path``. Results are cached with ``st.cache_data`` (pickled, so each
caller gets its own copy); the data directory is an argument, so it is part of the
cache key and a changed ``RBQM_DATA_DIR`` never returns another folder's studies.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from rbqm.errors import RbqmError, StudyFormatError
from rbqm.io import find_tables
from rbqm.study import StudySummary, list_cuts, summarize_study

__all__ = ["data_dir", "list_studies", "list_cut_dates", "load_summary"]

_RELOAD_SECONDS = 60
"""How long a folder listing is reused before new studies or cuts show up."""


def data_dir() -> Path:
    """The folder that holds the studies: ``$RBQM_DATA_DIR``, else ``data`` (relative to the cwd)."""
    return Path(os.environ.get("RBQM_DATA_DIR") or "data")


@st.cache_data(ttl=_RELOAD_SECONDS, show_spinner=False)
def list_studies(root: str) -> list[str]:
    """The study folders directly under ``root`` (sub-folders with a dm table), sorted by name.

    A folder whose tables cannot even be listed (for example ``dm.csv`` beside
    ``dm.parquet``) is kept, so that choosing it shows rbqm's message instead of
    the study silently missing. A missing ``root`` has no studies.
    """
    base = Path(root)
    if not base.is_dir():
        return []
    studies = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        try:
            is_study = "dm" in find_tables(folder) or bool(list_cuts(folder))  # a folder, or ingested snapshots
        except RbqmError:
            is_study = True
        if is_study:
            studies.append(str(folder))
    return studies


@st.cache_data(ttl=_RELOAD_SECONDS, show_spinner=False)
def list_cut_dates(folder: str) -> list[str]:
    """The data cuts of a study (``cuts/YYYY-MM-DD`` folder names), newest first."""
    return [cut.name for cut in reversed(list_cuts(Path(folder)))]


@st.cache_data(show_spinner="Reading the study…")
def load_summary(folder: str, cut: str | None) -> StudySummary:
    """The summary of a study folder, or of one of its data cuts when ``cut`` is a cut date.

    Raises
    ------
    RbqmError
        When the study cannot be read, or ``cut`` is not one of its data cuts.
    """
    cuts = {path.name: path for path in list_cuts(Path(folder))}
    if cut is None:
        has_tables = "dm" in find_tables(Path(folder))
        return summarize_study(Path(folder) if has_tables or not cuts else cuts[max(cuts)])
    if cut not in cuts:
        raise StudyFormatError(
            f"{folder}: no data cut {cut!r}; choose one of {', '.join(sorted(cuts)) or '(none)'}"
        )
    return summarize_study(cuts[cut])
