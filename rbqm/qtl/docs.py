"""The QTL library as a Markdown table (the "QTL library" section of docs/qtl.md).

``python -m rbqm.qtl.docs`` prints it; a test checks that docs/qtl.md holds it verbatim.
"""

from __future__ import annotations

from rbqm.kri.docs import _count
from rbqm.qtl.definition import QtlDefinition, load_qtl_definitions

__all__ = ["render_library_table"]


def _limits(d: QtlDefinition) -> tuple[str, str]:
    if d.method == "one_sided_proportion":
        return "expected rate", "expected + 3 sqrt(expected (1 - expected) / n)"
    return f"{d.secondary_limit:g}", f"{d.tolerance_limit:g}"


def render_library_table(definitions: list[QtlDefinition] | None = None) -> str:
    """One Markdown row per QTL: what it counts, the method, the expected rate and limits, the actions.

    Examples
    --------
    >>> render_library_table().splitlines()[0]
    '| id | QTL | numerator | denominator | method | expected | secondary limit | tolerance limit | actions |'
    """
    rows = ["| id | QTL | numerator | denominator | method | expected | secondary limit | tolerance limit "
            "| actions |", "|---|---|---|---|---|---|---|---|---|"]
    for d in definitions if definitions is not None else load_qtl_definitions():
        secondary, tolerance = _limits(d)
        unit = "" if d.kind == "binary" else f" ({d.metric_unit})"
        rows.append(f"| {d.id} | {d.name} | {_count(d.numerator)} | {_count(d.denominator)} | {d.method} | "
                    f"{d.expected_rate:g}{unit} | {secondary} | {tolerance} | {', '.join(d.actions)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render_library_table(), end="")
