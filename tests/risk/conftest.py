"""Risk fixtures: a small synthetic study with AE under-reporting injected at sites 1001 and 1002
(from the study start) and two monthly data cuts (the review rule wants evidence at two cuts), the
same study without it as one cut, and their analyses (with CSM); the store fixtures of tests/store
(SQLite and PostgreSQL) are reused."""

from __future__ import annotations

import pytest

from rbqm.analysis import analyze_study
from synthetic import AnomalySpec, SynthConfig, generate_study
from tests.store.conftest import (  # noqa: F401  (fixtures)
    _cheap_password_hashing,
    backend,
    people,
    postgres_base_url,
    store,
    store_url,
)

UNDER_REPORTING = ("1001", "1002")
DESIGN = dict(sites=16, subjects=1600, countries=3, seed=5, months=18)


@pytest.fixture(scope="session")
def ae_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("risk") / "study"
    generate_study(SynthConfig(**DESIGN, cuts=2, anomalies=(
        AnomalySpec(type="ae_under_reporting", magnitude=0.8, sites=UNDER_REPORTING, start=0.0),)), folder)
    return folder


@pytest.fixture(scope="session")
def ae_analysis(ae_study):
    return analyze_study(ae_study, csm=True)


@pytest.fixture(scope="session")
def clean_analysis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("risk_clean") / "study"
    generate_study(SynthConfig(**DESIGN, cuts=2, anomalies=()), folder)
    return analyze_study(folder, csm=True)
