"""What the oversight report reads from the store: signal workflow, actioned signals, QTL limits and
breaches, risk register.

Every read goes through the store's own functions, so the acting user's permissions apply
(``signal.view``, ``qtl.view``, ``risk.view``: every role has them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from rbqm.risk import RiskRegister
from rbqm.store import Store
from rbqm.store import qtl as store_qtl
from rbqm.store import risks as store_risks
from rbqm.store import signals as store_signals
from rbqm.store.actions import BASELINE_COLUMNS, action_baselines
from rbqm.store.qtl import BREACH_LOG_COLUMNS

__all__ = ["WORKFLOW_COLUMNS", "LIMIT_HISTORY_COLUMNS", "StoreRecords", "read_store"]

#: One row per signal recorded in the store.
WORKFLOW_COLUMNS: dict[str, pl.DataType] = {
    "signal_id": pl.String(), "status": pl.String(), "owner": pl.String(), "due_date": pl.Date(),
    "justification": pl.String(), "last_comment": pl.String(), "comments": pl.Int64(),
    "last_cut": pl.Date(), "updated_at": pl.Datetime("us", "UTC"),
}
#: One row per change of a study's QTL limits (from the audit trail).
LIMIT_HISTORY_COLUMNS: dict[str, pl.DataType] = {
    "qtl_id": pl.String(), "at": pl.Datetime("us", "UTC"), "by": pl.String(), "old": pl.String(),
    "new": pl.String(), "rationale": pl.String(),
}


def _limits_text(value: dict | None) -> str:
    if value is None:
        return "library"
    return f"secondary {value['secondary_limit']:g}, tolerance {value['limit']:g}"


@dataclass(frozen=True)
class StoreRecords:
    """The store's records of one study (all empty when no store is used: ``used`` is false)."""

    used: bool = False
    workflow: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=WORKFLOW_COLUMNS))
    baselines: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=BASELINE_COLUMNS))
    """The actioned signals and the cut each was first acted on (``rbqm.store.actions.action_baselines``)."""
    breach_log: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=BREACH_LOG_COLUMNS))
    limit_history: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=LIMIT_HISTORY_COLUMNS))
    study_limits: tuple[str, ...] = ()
    """QTL ids whose limits the study set itself (the others use the library's)."""
    register: RiskRegister | None = None


def read_store(store: Store, actor: str, study_id: str, *, library: Path | None = None) -> StoreRecords:
    """The store's records of ``study_id`` as read by ``actor``.

    Raises
    ------
    PermissionDenied
        When ``actor`` may not read signals, QTLs or risks (every active account may).
    """
    infos = store_signals.list_signals(store, actor, study_id=study_id)
    workflow = pl.DataFrame(
        [{"signal_id": s.signal_id, "status": s.status, "owner": s.owner, "due_date": s.due_date,
          "justification": s.justification, "last_comment": s.comments[-1].get("text") if s.comments else None,
          "comments": len(s.comments), "last_cut": s.last_cut, "updated_at": s.updated_at} for s in infos],
        schema=WORKFLOW_COLUMNS)
    limits = store_qtl.stored_limits(store, study_id)
    history = [{"qtl_id": qtl_id, "at": entry.at, "by": entry.actor, "old": _limits_text(entry.old_value),
                "new": _limits_text(entry.new_value), "rationale": entry.reason}
               for qtl_id in sorted(limits) for entry in store_qtl.limit_history(store, actor, study_id, qtl_id)]
    return StoreRecords(
        used=True, workflow=workflow, baselines=action_baselines(store, actor, study_id=study_id),
        breach_log=store_qtl.list_breaches(store, actor, study_id),
        limit_history=pl.DataFrame(history, schema=LIMIT_HISTORY_COLUMNS).sort("at", "qtl_id"),
        study_limits=tuple(sorted(limits)),
        register=store_risks.study_register(store, actor, study_id, library=library))
