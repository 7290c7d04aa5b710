"""rbqm.signal_workflow: the shipped workflow file matches the store, has no dead ends, and a
mistake in a workflow file names the file and the key."""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path

import pytest
import yaml

from rbqm.errors import DefinitionError
from rbqm.permissions import Action
from rbqm.signal_workflow import WORKFLOW_FILE, load_workflow
from rbqm.store.models import ACTION_STATUSES, SIGNAL_STATUSES

CLOSED = {"resolved", "closed_no_action"}


def _reachable(graph: dict[str, list[str]], start: str) -> set[str]:
    seen, todo = {start}, deque([start])
    while todo:
        for following in graph[todo.popleft()]:
            if following not in seen:
                seen.add(following)
                todo.append(following)
    return seen


@pytest.fixture(scope="module")
def flow():
    return load_workflow()


def test_statuses_are_the_stores(flow):
    """The database's check constraints allow exactly the statuses the workflow names, in order."""
    assert tuple(flow.signal.statuses) == SIGNAL_STATUSES
    assert tuple(flow.actions.statuses) == ACTION_STATUSES


def test_every_status_is_reachable_and_none_is_a_dead_end(flow):
    signal = {name: list(rule.next) for name, rule in flow.signal.statuses.items()}
    assert _reachable(signal, "new") == set(SIGNAL_STATUSES)
    for status in SIGNAL_STATUSES:
        assert _reachable(signal, status) & CLOSED, f"{status} can never be closed"
        assert status not in signal[status], f"{status} may follow itself"
    action = {name: list(rule.next) for name, rule in flow.actions.statuses.items()}
    for status in ACTION_STATUSES:
        assert _reachable(action, status) == set(ACTION_STATUSES)


def test_the_issue_s_path_and_the_rules_on_it(flow):
    """new -> action_planned -> resolved is allowed; closing needs a justification and signal.close;
    reopening a closed signal by hand needs a comment; a reappearance reopens a resolved signal."""
    assert flow.transition_problem("signal", "new", "action_planned", given=set()) is None
    assert flow.transition_problem("signal", "action_planned", "resolved", given=set()) is None
    assert flow.signal.statuses["closed_no_action"].permission is Action.SIGNAL_CLOSE
    assert {s for s, r in flow.signal.statuses.items() if r.permission is not Action.SIGNAL_UPDATE} == {
        "closed_no_action"}
    for status, rule in flow.signal.statuses.items():
        if "closed_no_action" in rule.next:
            assert rule.next["closed_no_action"] == ("justification",), status
    for closed in CLOSED:
        assert all("comment" in needs for needs in flow.signal.statuses[closed].next.values())
    assert (flow.signal.reappearance.from_, flow.signal.reappearance.to) == (("resolved",), "new")
    assert flow.transition_problem("action", "planned", "done", given=set()) == "planned -> done needs an outcome note"
    assert flow.transition_problem("action", "done", "cancelled", given={"outcome"}) == (
        "it is done: it may go to in_progress, not cancelled")


def test_moves_follow_the_signal_transitions(flow):
    """Every move an action makes its signal do is also a transition a person may make."""
    for move in flow.actions.moves_signal:
        for status in move.from_:
            assert move.to in flow.signal.statuses[status].next, (status, move.to)


def _write(tmp_path, edit) -> str:
    raw = yaml.safe_load(WORKFLOW_FILE.read_text())
    edit(raw)
    path = tmp_path / "workflow.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda raw: raw["signal"]["statuses"]["new"]["next"].update(done=[]),
     "signal.statuses.new.next: unknown status 'done'"),
    (lambda raw: raw["signal"]["statuses"]["new"].update(permission="signal.destroy"),
     "signal.statuses.new.permission"),
    (lambda raw: raw["signal"]["statuses"]["new"]["next"].update(under_review=["signature"]),
     "signal.statuses.new.next.under_review.0"),
    (lambda raw: raw["actions"]["moves_signal"][0].update(to="finished"),
     "actions.moves_signal.0: unknown status 'finished'"),
    (lambda raw: raw["actions"]["moves_signal"][1]["from"].append("new"),
     "actions.moves_signal.1: new -> in_progress is not a transition of signal.statuses"),
    (lambda raw: raw["outcomes"]["margins"].pop("qtl"), "margins needs kri, csm and qtl; missing qtl"),
    (lambda raw: raw["outcomes"].update(benchmark=83), "outcomes.benchmark"),
    (lambda raw: raw["signal"].update(typo=1), "signal.typo"),
])
def test_a_mistake_names_the_file_and_the_key(tmp_path, edit, message):
    path = _write(tmp_path, edit)
    with pytest.raises(DefinitionError, match=message) as caught:
        load_workflow(path)
    assert str(path) in str(caught.value)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "signals.md"
_NEED_WORDS = {"justification": "justification", "comment": "comment", "outcome note": "outcome"}


def _documented(heading: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """A table of docs/signals.md after ``heading``: status -> {next status: needs}."""
    text = DOCS.read_text().split(heading, 1)[1]
    rows = {}
    for line in text.splitlines():
        if match := re.match(r"\| `(\w+)` \| ([^|]*) \|", line):
            rows[match.group(1)] = {to: tuple(_NEED_WORDS[n] for n in needs.split(", ") if n)
                                    for to, needs in re.findall(r"`(\w+)`(?: \(([^)]*)\))?", match.group(2))}
        elif rows and not line.startswith("|"):
            break
    return rows


def test_docs_tables_are_the_workflow_file(flow):
    assert _documented("| Status | May go to") == {
        name: dict(rule.next) for name, rule in flow.signal.statuses.items()}
    assert _documented("| Action status | May go to") == {
        name: dict(rule.next) for name, rule in flow.actions.statuses.items()}
