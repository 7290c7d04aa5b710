"""Report fixtures: a small synthetic study with the default anomalies and two data cuts, in a data
directory (as ``demo``), its analysis (with central monitoring) and its report; a store with accounts."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from rbqm.analysis import analyze_study
from rbqm.report import build_report
from rbqm.store import open_store, users
from synthetic import SynthConfig, generate_study, load_anomalies

DESIGN = dict(sites=16, subjects=640, countries=3, seed=4, months=12, cuts=2)
GENERATED = datetime(2025, 2, 1, 9, 30, tzinfo=timezone.utc)
TODAY = date(2025, 2, 1)
PASSWORD = "a long test passphrase"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("report") / "data"
    generate_study(SynthConfig(**DESIGN, anomalies=load_anomalies("default")), data / "demo")
    return data


@pytest.fixture(scope="session")
def study(data_dir) -> Path:
    return data_dir / "demo"


@pytest.fixture(scope="session")
def truth(study) -> pl.DataFrame:
    return pl.read_csv(study / "truth.csv", schema_overrides={"SITEID": pl.String})


@pytest.fixture(scope="session")
def analysis(study):
    return analyze_study(study, csm=True)


@pytest.fixture(scope="session")
def report(analysis, study):
    return build_report(analysis, study_dir=study, top=10, today=TODAY, generated_at=GENERATED)


def make_store(path: Path) -> str:
    """An SQLite store with an admin (ada) and a sponsor viewer (sam); returns its URL."""
    url = f"sqlite:///{path}"
    store = open_store(url)
    with store.write() as session:
        users.add_user(session, "ada", "ada", role="admin", password=PASSWORD, reason="test account")
        users.add_user(session, "ada", "sam", role="sponsor_viewer", password=PASSWORD, reason="test account")
    store.close()
    return url
