"""The QTL library (key_risk_indicators/qtl*.yaml) and clear errors for bad definitions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from rbqm.errors import DefinitionError
from rbqm.kri import load_definitions
from rbqm.qtl import QTL_METHODS, load_qtl_definitions

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "key_risk_indicators"

# The parameters the issue asks for (TransCelerate; gsm.qtl defaults where it has them).
EXPECTED = {
    "qtl0001": ("binary", "dv", None),                     # subjects with an important deviation
    "qtl0002": ("binary", "subjects", 0.03),               # eligibility violations, gsm.qtl p0
    "qtl0003": ("binary", "ds", None),                     # premature treatment discontinuation
    "qtl0004": ("binary", "ds", 0.07),                     # withdrawal / loss to follow-up, gsm.qtl p0
    "qtl0005": ("binary", "visits", None),                 # missing primary endpoint (proxy)
    "qtl0006": ("binary", "dv", None),                     # prohibited medication
    "qtl0007": ("binary", "dv", None),                     # randomisation or dosing errors
    "qtl0008": ("binary", "subjects", None),               # early deaths
}


def test_every_file_loads_with_the_expected_parameters():
    library = {d.id: d for d in load_qtl_definitions()}
    assert sorted(library) == sorted(p.stem for p in LIBRARY.glob("qtl*.yaml"))
    assert set(EXPECTED) <= set(library)
    for qtl_id, (kind, table, p0) in EXPECTED.items():
        d = library[qtl_id]
        assert (d.kind, d.numerator.table) == (kind, table), qtl_id
        if p0 is not None:
            assert (d.expected_rate, d.method) == (p0, "one_sided_proportion"), qtl_id
    for d in library.values():
        assert d.name and d.description and d.rationale and d.metric_unit and d.actions, d.id
        assert QTL_METHODS[d.method] == d.kind, d.id
        if d.method != "one_sided_proportion":
            assert d.expected_rate < d.secondary_limit < d.tolerance_limit, d.id
    assert "PROXY" in library["qtl0005"].description
    assert {c.column: c.equals for c in library["qtl0006"].numerator.where} == {
        "DVIMPFL": "Y", "DVCAT": "CONCOMITANT MEDICATION"}
    categories = next(c.in_ for c in library["qtl0007"].numerator.where if c.column == "DVCAT")
    assert {"RANDOMISATION", "INVESTIGATIONAL PRODUCT"} <= set(categories)
    assert any(d.kind == "rate" and d.method == "gamma_poisson" for d in library.values())


def test_counts_reuse_the_kri_blocks():
    """``{block: enrolled_subjects}`` expands to the very count the KRIs use."""
    qtls, kris = {d.id: d for d in load_qtl_definitions()}, {d.id: d for d in load_definitions()}
    assert qtls["qtl0002"].denominator == kris["kri0014"].denominator
    assert qtls["qtl0009"].denominator == kris["kri0004"].denominator     # days on study
    assert qtls["qtl0002"].numerator == kris["kri0014"].numerator


def test_the_kri_loader_ignores_qtl_files():
    assert not any(d.id.startswith("qtl") for d in load_definitions())


def _library_copy(tmp_path: Path) -> Path:
    for path in LIBRARY.glob("*.yaml"):
        shutil.copy(path, tmp_path)
    return tmp_path


def _write(folder: Path, qtl_id: str, base: str = "qtl0003", **changes) -> Path:
    raw = yaml.safe_load((LIBRARY / f"{base}.yaml").read_text()) | {"id": qtl_id} | changes
    raw = {k: v for k, v in raw.items() if v is not None}
    path = folder / f"{qtl_id}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_dropped_in_definition_is_used(tmp_path):
    folder = _library_copy(tmp_path)
    _write(folder, "qtl0100", name="Subjects with a missed visit", numerator={
        "table": "visits", "count": "subjects", "where": [{"column": "done", "equals": False},
                                                          {"column": "expected", "equals": True}]})
    ids = [d.id for d in load_qtl_definitions(folder)]
    assert "qtl0100" in ids and len(ids) == len(load_qtl_definitions()) + 1


@pytest.mark.parametrize(("changes", "message"), [
    ({"tolerance_limt": 0.3}, "tolerance_limt: Extra inputs are not permitted"),
    ({"method": "fisher"}, "method: Input should be"),
    ({"kind": "rate"}, "method proportion_exact does not judge a rate QTL; use one of gamma_poisson"),
    ({"tolerance_limit": 0.25}, "expected_rate < secondary_limit < tolerance_limit"),
    ({"tolerance_limit": None}, "needs secondary_limit and tolerance_limit"),
    ({"method": "one_sided_proportion"}, "one_sided_proportion derives its limits"),
    ({"expected_rate": 1.5, "secondary_limit": 1.6, "tolerance_limit": 1.7}, "strictly between 0 and 1"),
    ({"denominator": {"block": "days_on_study"}}, "must count the same unit"),
    ({"numerator": {"table": "visits", "count": "records"}}, "must count the same unit"),
    ({"numerator": {"table": "subjects", "sum": "days_on_study"}}, "numerator must count records or subjects"),
    ({"numerator": {"table": "ds", "count": "subjects", "where": [{"column": "DSCATT", "equals": "X"}]}},
     "table ds has no column 'DSCATT'"),
    ({"denominator": {"block": "enrolled_subjectz"}}, "unknown block 'enrolled_subjectz'"),
    ({"metric_scale": 100}, "metric_scale must be 1"),
    ({"actions": []}, "actions"),
])
def test_mistakes_name_the_file_and_the_key(tmp_path, changes, message):
    path = _write(tmp_path, "qtl0901", **changes)
    with pytest.raises(DefinitionError) as info:
        load_qtl_definitions(tmp_path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_records_need_one_table(tmp_path):
    path = _write(tmp_path, "qtl0902", base="qtl0005",
                  denominator={"table": "lb", "count": "records"})
    with pytest.raises(DefinitionError, match="same table; got visits and lb") as info:
        load_qtl_definitions(tmp_path)
    assert str(path) in str(info.value)


def test_file_name_duplicates_and_empty_folders(tmp_path):
    path = _write(tmp_path, "qtl0903")
    path.rename(tmp_path / "qtl0904.yaml")
    with pytest.raises(DefinitionError, match=r"the file name must be the id \(qtl0903.yaml\)"):
        load_qtl_definitions(tmp_path)
    (tmp_path / "qtl0904.yaml").unlink()
    with pytest.raises(DefinitionError, match="holds no QTL definitions"):
        load_qtl_definitions(tmp_path)
    with pytest.raises(DefinitionError, match="no such QTL folder"):
        load_qtl_definitions(tmp_path / "nope")
    (tmp_path / "qtl0905.yaml").write_text("id: [unclosed")
    with pytest.raises(DefinitionError, match="not valid YAML"):
        load_qtl_definitions(tmp_path)
