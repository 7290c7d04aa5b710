"""The signal workflow as data: which status may follow which, what a change needs, how linked
actions move their signal, and the outcome margins (``key_risk_indicators/signal_workflow.yaml``).

``rbqm.store.signals`` and ``rbqm.store.actions`` enforce it; ``rbqm.outcomes`` reads its
``outcomes`` section. See docs/signals.md.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rbqm.errors import DefinitionError
from rbqm.permissions import Action

__all__ = ["WORKFLOW_FILE", "Workflow", "load_workflow"]

WORKFLOW_FILE = Path(__file__).resolve().parents[1] / "key_risk_indicators" / "signal_workflow.yaml"
"""The shipped workflow, beside the KRI library (kept light to import: the store reads it)."""

_Frozen = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
_NEEDS = {"justification": "a justification", "comment": "a comment", "outcome": "an outcome note"}


class SignalStatus(BaseModel):
    """One status of a signal: what entering it needs and which statuses may follow (with their needs)."""

    model_config = _Frozen
    meaning: str
    permission: Action = Action.SIGNAL_UPDATE
    open_action: str | None = None
    next: dict[str, tuple[Literal["justification", "comment"], ...]]


class Reappearance(BaseModel):
    """A signal flagged again after it stopped being flagged goes from these statuses to ``to``."""

    model_config = _Frozen
    from_: tuple[str, ...] = Field(alias="from")
    to: str


class SignalRules(BaseModel):
    """The ``signal`` section: every status of a signal, and what a reappearance does."""

    model_config = _Frozen
    statuses: dict[str, SignalStatus] = Field(min_length=1)
    reappearance: Reappearance


class ActionStatus(BaseModel):
    """One status of a linked action and the statuses that may follow (with their needs)."""

    model_config = _Frozen
    meaning: str
    next: dict[str, tuple[Literal["outcome"], ...]]


class SignalMove(BaseModel):
    """Adding an action in, or moving one to, status ``action`` moves its signal from ``from`` to ``to``."""

    model_config = _Frozen
    action: str
    from_: tuple[str, ...] = Field(alias="from")
    to: str


class ActionRules(BaseModel):
    """The ``actions`` section: the linked actions' statuses, the open ones, and how they move their signal."""

    model_config = _Frozen
    statuses: dict[str, ActionStatus] = Field(min_length=1)
    open: tuple[str, ...] = Field(min_length=1)
    moves_signal: tuple[SignalMove, ...] = ()


class OutcomeRules(BaseModel):
    """Margins by signal kind (how far the strength must move to count) and the field's benchmark."""

    model_config = _Frozen
    margins: dict[Literal["kri", "csm", "qtl"], float]
    benchmark: float = Field(gt=0, lt=1)
    benchmark_source: str

    @model_validator(mode="after")
    def _every_kind(self) -> OutcomeRules:
        if missing := {"kri", "csm", "qtl"} - set(self.margins):
            raise ValueError(f"margins needs kri, csm and qtl; missing {', '.join(sorted(missing))}")
        if bad := [k for k, v in self.margins.items() if v <= 0]:
            raise ValueError(f"margins must be positive; got {', '.join(f'{k}: {self.margins[k]}' for k in bad)}")
        return self


def _unknown(names: object, known: dict | tuple, where: str) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)  # type: ignore[arg-type]
    return [f"{where}: unknown status {name!r}; choose one of {', '.join(known)}" for name in names
            if name not in known]


class Workflow(BaseModel):
    """The whole workflow file, validated (every status named anywhere exists)."""

    model_config = _Frozen
    signal: SignalRules
    actions: ActionRules
    outcomes: OutcomeRules

    @model_validator(mode="after")
    def _known_statuses(self) -> Workflow:
        signal, action = self.signal.statuses, self.actions.statuses
        problems = []
        for name, rule in signal.items():
            problems += _unknown(rule.next, signal, f"signal.statuses.{name}.next")
            if rule.open_action is not None:
                problems += _unknown(rule.open_action, self.actions.open, f"signal.statuses.{name}.open_action")
        for name, rule in action.items():
            problems += _unknown(rule.next, action, f"actions.statuses.{name}.next")
        problems += _unknown(self.actions.open, action, "actions.open")
        problems += _unknown(self.signal.reappearance.from_, signal, "signal.reappearance.from")
        problems += _unknown(self.signal.reappearance.to, signal, "signal.reappearance.to")
        for i, move in enumerate(self.actions.moves_signal):
            problems += _unknown(move.action, action, f"actions.moves_signal.{i}.action")
            problems += _unknown((*move.from_, move.to), signal, f"actions.moves_signal.{i}")
            problems += [f"actions.moves_signal.{i}: {old} -> {move.to} is not a transition of signal.statuses"
                         for old in move.from_ if old in signal and move.to not in signal[old].next]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def transition_problem(self, kind: Literal["signal", "action"], old: str, new: str, *,
                           given: set[str]) -> str | None:
        """Why ``old`` -> ``new`` is not allowed with the ``given`` fields (None when it is).

        Examples
        --------
        >>> flow = load_workflow()
        >>> flow.transition_problem("signal", "new", "resolved", given=set())
        'it is new: it may go to under_review, action_planned or closed_no_action, not resolved'
        >>> flow.transition_problem("signal", "new", "closed_no_action", given=set())
        'new -> closed_no_action needs a justification'
        >>> print(flow.transition_problem("signal", "new", "under_review", given=set()))
        None
        """
        rules = self.signal.statuses if kind == "signal" else self.actions.statuses
        if new not in rules:
            return f"unknown status {new!r}: choose one of {', '.join(rules)}"
        following = rules[old].next
        if new not in following:
            choices = list(following)
            allowed = (", ".join(choices[:-1]) + " or " + choices[-1]) if len(choices) > 1 else "".join(choices)
            return f"it is {old}: it may go to {allowed or 'no other status'}, not {new}"
        if missing := [need for need in following[new] if need not in given]:
            return f"{old} -> {new} needs " + " and ".join(_NEEDS[need] for need in missing)
        return None

    def signal_move(self, action_status: str, signal_status: str) -> str | None:
        """The status a signal moves to when one of its actions enters ``action_status`` (None: stays).

        Examples
        --------
        >>> load_workflow().signal_move("planned", "new"), load_workflow().signal_move("planned", "resolved")
        ('action_planned', None)
        """
        for move in self.actions.moves_signal:
            if move.action == action_status and signal_status in move.from_:
                return move.to
        return None


@cache
def _load(path: Path) -> Workflow:
    if not path.is_file():
        raise DefinitionError(f"{path}: no such workflow file")
    try:
        return Workflow.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not valid YAML ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors())
        raise DefinitionError(f"{path}: {problems}") from exc


def load_workflow(path: Path | None = None) -> Workflow:
    """The workflow file (default: the shipped ``key_risk_indicators/signal_workflow.yaml``), validated.

    Raises
    ------
    DefinitionError
        Naming the file and the key of each mistake.

    Examples
    --------
    >>> list(load_workflow().signal.statuses)[:3]
    ['new', 'under_review', 'action_planned']
    """
    return _load(Path(path).resolve() if path else WORKFLOW_FILE)
