"""Helpers of the end-to-end tests: a study whose cuts switch between an injected trial and its clean
twin, what an analysis knew at a cut, refused changes and a signal's audit trail."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from rbqm.analysis import Analysis
from rbqm.permissions import PermissionDenied
from rbqm.store import audit
from rbqm.store.audit import check_chain
from synthetic import AnomalySpec, SynthConfig, generate_study
from tests.store.conftest import ADMIN

# The problem appears at cut 2, persists at cut 3, is gone at cut 4 (the fix, simulated by the clean
# twin's history) and comes back at cut 5.
TIMELINE = ("clean", "injected", "injected", "clean", "injected")


def twin_study(root: Path, design: dict, anomaly: AnomalySpec, timeline: Sequence[str] = TIMELINE) -> Path:
    """A study folder whose cuts come from the trial with ``anomaly`` or its clean twin (same seed: they
    differ only where the anomaly acts), one cut per entry of ``timeline``."""
    twins = {"injected": generate_study(SynthConfig(**design, cuts=len(timeline), anomalies=(anomaly,)),
                                        root / "injected"),
             "clean": generate_study(SynthConfig(**design, cuts=len(timeline)), root / "clean")}
    folder = root / "study"
    for source, cut in zip(timeline, twins["injected"].cuts, strict=True):
        shutil.copytree(twins[source].folder / "cuts" / cut.name, folder / "cuts" / cut.name)
    return folder


def upto(analysis: Analysis, cut: date) -> Analysis:
    """What the analysis knew at ``cut``."""
    known = lambda frame: frame.filter(pl.col("cut_date") <= cut) if frame.height else frame
    return replace(analysis, cut_dates=[c for c in analysis.cut_dates if c <= cut], results=known(analysis.results),
                   bounds=known(analysis.bounds), site_risk=known(analysis.site_risk), qtl=known(analysis.qtl),
                   csm=known(analysis.csm))


def refused(store, change: Callable[[], object]) -> None:
    """``change`` raises PermissionDenied and writes nothing."""
    with store.read() as session:
        before = check_chain(session)
    with pytest.raises(PermissionDenied):
        change()
    with store.read() as session:
        assert check_chain(session) == before


def records_of(store, signal_id: str) -> list:
    """The audit records of a signal and its linked actions, oldest first."""
    with store.read() as session:
        return [r for r in audit.list_records(session, ADMIN) if signal_id in r.object_id]


def trail(store, signal_id: str) -> list[tuple[str, str, str | None, str | None]]:
    """(action, actor, old status, new status) of every audit record of a signal and its actions."""
    status = lambda value: value and value.get("status")
    return [(r.action, r.actor, status(r.old_value), status(r.new_value)) for r in records_of(store, signal_id)]


def chain_is_whole(store) -> bool:
    """Every audit record is on the hash chain."""
    with store.read() as session:
        return check_chain(session).records == len(audit.list_records(session, ADMIN))
