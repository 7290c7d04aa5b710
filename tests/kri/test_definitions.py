"""The KRI library: gsm-compatible defaults (reference section 2) and clear errors for bad definitions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rbqm.errors import DefinitionError
from rbqm.kri import load_definitions
from rbqm.kri.docs import render_library

REPO = Path(__file__).resolve().parents[2]

# reference section 2: id -> (type, thresholds, minimum on, minimum count)
REFERENCE = {
    "kri0001": ("normal_approx_rate", (-2, -1, 2, 3), "denominator", 30),
    "kri0002": ("normal_approx_rate", (-2, -1, 2, 3), "denominator", 30),
    "kri0003": ("normal_approx_rate", (-3, -2, 2, 3), "denominator", 30),
    "kri0004": ("normal_approx_rate", (-3, -2, 2, 3), "denominator", 30),
    "kri0005": ("normal_approx_binary", (2, 3), "numerator", 10),
    "kri0006": ("normal_approx_binary", (2, 3), "numerator", 3),
    "kri0007": ("normal_approx_binary", (2, 3), "numerator", 3),
    "kri0008": ("normal_approx_rate", (2, 3), "numerator", 30),
    "kri0009": ("normal_approx_binary", (2, 3), "numerator", 30),
    "kri0010": ("normal_approx_binary", (2, 3), "numerator", 30),
    "kri0011": ("normal_approx_binary", (2, 3), "numerator", 100),
    "kri0012": ("normal_approx_binary", (-3, -2, 2, 3), "denominator", 3),
    "kri0013": ("identity", (0.85, 0.9), "difference", 3),
    "kri0014": ("identity_count", (1.5, 2.5), "denominator", 3),
    "kri0015": ("identity_count", (1, 2), "denominator", 1),
}


def test_library_has_the_reference_kris_with_gsm_defaults():
    library = {d.id: d for d in load_definitions()}
    assert set(REFERENCE) <= set(library)
    for kri_id, (method, thresholds, on, count) in REFERENCE.items():
        d = library[kri_id]
        assert (d.method, d.thresholds, d.minimum.applies_to, d.minimum.count) == (method, thresholds, on, count), kri_id
        assert len(d.weights) == len(d.flags) == len(d.thresholds) + 1
        assert d.description and d.metric_unit and d.actions


def test_flags_are_monotone_in_the_direction_of_concern():
    for d in load_definitions():
        assert list(d.flags) == sorted(d.flags), d.id
        if d.concern == "low":
            assert min(d.flags) < 0 and d.weights[0] == max(d.weights), d.id
        if d.concern == "high":
            assert max(d.flags) > 0 and d.weights[-1] == max(d.weights), d.id


def test_docs_match_the_library():
    assert (REPO / "docs" / "kri-library.md").read_text() == render_library(), "run `make docs`"


def _write(folder: Path, kri_id: str, **changes) -> Path:
    raw = yaml.safe_load((REPO / "key_risk_indicators" / "kri0001.yaml").read_text())
    raw.update(id=kri_id, **changes)
    path = folder / f"{kri_id}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"treshold": [1, 2]}, "treshold: Extra inputs are not permitted"),
    ({"flags": [-1, 0, 1]}, "flags needs one more value than thresholds"),
    ({"thresholds": [3, 2, -1, -2]}, "thresholds must increase strictly"),
    ({"weights": [1, 2]}, "weights needs one value per flag"),
    ({"method": "magic"}, "method: Input should be"),
    ({"numerator": {"table": "ae", "count": "records", "where": [{"column": "AESERIOUS", "equals": "Y"}]}},
     "table ae has no column 'AESERIOUS'"),
    ({"numerator": {"table": "adverse", "count": "records"}}, "table must be one of"),
    ({"numerator": {"table": "ae", "count": "records", "sum": "AESEQ"}}, "exactly one of count"),
    ({"numerator": {"table": "ae", "count": "records", "where": [{"column": "AESER", "equals": "Y", "in": ["Y"]}]}},
     "needs exactly one of equals"),
    ({"minimum": {"applies_to": "both", "count": 3}}, "minimum.applies_to"),
])
def test_bad_definitions_name_the_file_and_key(tmp_path, changes, message):
    path = _write(tmp_path, "kri9001", **changes)
    with pytest.raises(DefinitionError) as info:
        load_definitions(tmp_path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_file_name_must_be_the_id(tmp_path):
    path = _write(tmp_path, "kri9001")
    path.rename(tmp_path / "kri9002.yaml")
    with pytest.raises(DefinitionError, match="the file name must be the id"):
        load_definitions(tmp_path)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(DefinitionError, match="holds no KRI definitions"):
        load_definitions(tmp_path)
    with pytest.raises(DefinitionError, match="no such KRI folder"):
        load_definitions(tmp_path / "nope")


def test_a_dropped_in_definition_is_used(tmp_path):
    """A quality lead adds a KRI by dropping a YAML file into the folder: no code change."""
    import shutil

    for path in (REPO / "key_risk_indicators").glob("*.yaml"):
        shutil.copy(path, tmp_path)
    _write(tmp_path, "kri0100", name="Grade 3+ adverse event rate",
           numerator={"table": "ae", "count": "records", "where": [{"column": "grade", "ge": 3}]})
    ids = [d.id for d in load_definitions(tmp_path)]
    assert "kri0100" in ids and len(ids) == len(load_definitions()) + 1


def test_named_blocks_expand_and_unknown_blocks_name_the_file(tmp_path):
    library = {d.id: d for d in load_definitions()}
    assert library["kri0001"].denominator == library["kri0002"].denominator       # both {block: days_on_study}
    assert library["kri0001"].denominator.sum == "days_on_study"
    path = _write(tmp_path, "kri9001", denominator={"block": "days_on_studdy"})
    with pytest.raises(DefinitionError) as info:
        load_definitions(tmp_path)
    assert str(path) in str(info.value) and "unknown block 'days_on_studdy'" in str(info.value)
