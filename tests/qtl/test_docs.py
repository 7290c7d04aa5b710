"""docs/qtl.md: its library table matches the YAML files and its notebook example runs."""

from __future__ import annotations

import doctest
from pathlib import Path

from rbqm.qtl.docs import render_library_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "qtl.md"


def test_library_table_matches_the_yaml_files():
    assert render_library_table() in DOCS.read_text(), "paste `python -m rbqm.qtl.docs` into docs/qtl.md"


def test_notebook_example_runs():
    result = doctest.testfile(str(DOCS), module_relative=False, verbose=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10 and result.failed == 0
