"""Shared fixtures: small synthetic studies generated once per test session (per worker)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The dashboard's analyses (and the app the browser tests start) use 2 site-label permutations for
# the data inconsistency score instead of "auto" (up to 20 reruns of the CSM battery): the score
# still shows, at a tenth of the cost.
os.environ.setdefault("RBQM_PERMUTATIONS", "2")

from synthetic import AnomalySpec, SynthConfig, build_trial, generate_study

# Every anomaly type at its own site, strong enough to measure on ~100 subjects a site.
ALL_ANOMALIES = (
    AnomalySpec(type="ae_under_reporting", magnitude=0.5, sites=("1001",), start=0.3),
    AnomalySpec(type="sae_under_reporting", magnitude=0.8, sites=("1002",), start=0.3),
    AnomalySpec(type="excess_important_deviations", magnitude=5.0, sites=("1003",), start=0.3),
    AnomalySpec(type="late_data_entry", magnitude=5.0, sites=("1004",), start=0.3),
    AnomalySpec(type="query_backlog", magnitude=6.0, sites=("1005",), start=0.3),
    AnomalySpec(type="high_screen_failure", magnitude=0.6, sites=("1006",), start=0.0),
    AnomalySpec(type="high_discontinuation", magnitude=4.0, sites=("1007",), start=0.3),
    AnomalySpec(type="fabricated_subjects", magnitude=0.5, sites=("1008",), start=0.3),
    AnomalySpec(type="digit_preference", magnitude=0.7, sites=("1009",), start=0.3),
    AnomalySpec(type="implausible_visit_dates", magnitude=0.3, sites=("1010",), start=0.3),
    AnomalySpec(type="lab_calibration_shift", magnitude=0.25, sites=("1011",), start=0.3, analytes=("CREAT",)),
    AnomalySpec(type="excess_eligibility_violations", magnitude=0.25, sites=("1012",), start=0.0),
)
# 16 sites in 4 countries, ~150 enrolled subjects a site: each anomaly is measurable at its site.
PAIR = dict(sites=16, subjects=2400, countries=4, seed=11, months=30)


@pytest.fixture(scope="session")
def injected_records():
    """The internal records of a trial with every anomaly type at its own site."""
    return build_trial(SynthConfig(**PAIR, anomalies=ALL_ANOMALIES))


@pytest.fixture(scope="session")
def clean_records():
    """The same trial (same seed and design) with no anomalies."""
    return build_trial(SynthConfig(**PAIR))


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory) -> Path:
    """A small study folder (Parquet) with the default anomalies and 3 monthly data cuts."""
    out = tmp_path_factory.mktemp("synth") / "study"
    from synthetic import load_anomalies

    generate_study(SynthConfig(sites=30, subjects=900, countries=5, seed=3, months=18, cuts=3,
                               anomalies=load_anomalies("default")), out)
    return out
