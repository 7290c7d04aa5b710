"""Synthetic multinational clinical trials with known, labelled quality problems.

``generate_study(SynthConfig(...), out_dir)`` writes a study folder in the format of
``docs/data-format.md`` plus ``truth.csv`` (the injected anomalies) and, optionally,
monthly data cuts. ``rbqm synth`` is the command-line front end.
"""

from synthetic.anomalies import ANOMALY_TYPES, AnomalySpec, load_anomalies
from synthetic.cuts import TrialRecords, tables_at
from synthetic.design import SynthConfig
from synthetic.generator import GeneratedStudy, build_trial, generate_study

__all__ = ["ANOMALY_TYPES", "AnomalySpec", "GeneratedStudy", "SynthConfig", "TrialRecords", "build_trial",
           "generate_study", "load_anomalies", "tables_at"]
