"""Signal fixtures: a synthetic study with late data entry at site 1003 (4 cuts), its analysis and
signals; a smaller one for the command line (2 cuts); the store fixtures of tests/store (SQLite and
PostgreSQL) are reused."""

from __future__ import annotations

import polars as pl
import pytest

from synthetic import AnomalySpec, SynthConfig, generate_study
from rbqm.analysis import analyze_study
from rbqm.signals import SIGNAL_COLUMNS, derive_signals
from tests.store.conftest import (  # noqa: F401  (fixtures)
    _cheap_password_hashing,
    backend,
    people,
    postgres_base_url,
    store,
    store_url,
)

LATE_SITE = "1003"
LATE = AnomalySpec(type="late_data_entry", magnitude=6.0, sites=(LATE_SITE,), start=0.4)


@pytest.fixture(scope="session")
def late_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("late") / "study"
    generate_study(SynthConfig(sites=12, subjects=720, countries=3, seed=5, months=14, cuts=4, anomalies=(LATE,)),
                   folder)
    return folder


@pytest.fixture(scope="session")
def late_analysis(late_study):
    return analyze_study(late_study)


@pytest.fixture(scope="session")
def late_signals(late_analysis):
    return derive_signals(late_analysis)


@pytest.fixture(scope="session")
def cli_study(tmp_path_factory):
    """A small study (2 cuts) for the command line, which analyses the study at every call."""
    folder = tmp_path_factory.mktemp("cli") / "study"
    generate_study(SynthConfig(sites=8, subjects=320, countries=2, seed=5, months=12, cuts=2, anomalies=(LATE,)),
                   folder)
    return folder


def derived_signals(rows: list[tuple[str, object, str, str]], study: str = "S") -> pl.DataFrame:
    """Derived signals (``rbqm.signals.SIGNAL_COLUMNS``) from (signal_id, cut, severity, state) of one
    KRI study: the indicator and site come from the id."""
    return pl.DataFrame([{"signal_id": sid, "study_id": study, "cut_date": cut, "kind": "kri",
                          "indicator": sid.split("@")[0], "site_id": sid.split("@")[1], "severity": severity,
                          "state": state, "first_cut": cut, "consecutive_cuts": 0 if state == "resolved" else 1,
                          "summary": f"{sid} {state}."} for sid, cut, severity, state in rows],
                        schema=SIGNAL_COLUMNS)
