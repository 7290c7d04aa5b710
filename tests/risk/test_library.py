"""The risk library: every file loads; mistakes name the file and the key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from rbqm.csm import ALL_TESTS
from rbqm.errors import DefinitionError
from rbqm.kri import load_definitions
from rbqm.qtl import load_qtl_definitions
from rbqm.risk import load_risk_register

LIBRARY = Path(__file__).resolve().parents[2] / "key_risk_indicators"


def _copy(tmp_path: Path) -> Path:
    for path in LIBRARY.glob("*.yaml"):
        shutil.copy(path, tmp_path)
    return tmp_path


def _edit(folder: Path, risk_id: str, **changes) -> Path:
    path = folder / f"{risk_id}.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text()) | changes))
    return path


def test_every_library_risk_loads():
    register = load_risk_register()
    files = sorted(p.stem for p in LIBRARY.glob("risk[0-9]*.yaml"))
    assert [r.id for r in register.risks] == files and len(files) == 12
    known = {d.id for d in load_definitions()} | {d.id for d in load_qtl_definitions()} | set(ALL_TESTS)
    for risk in register.risks:
        assert risk.category in register.categories
        assert set(risk.indicators) <= known
        assert risk.controls and risk.rationale
    assert {r.category for r in register.risks} == set(register.categories)


def test_the_kri_and_qtl_loaders_ignore_risk_files():
    assert not any(d.id.startswith("risk") for d in load_definitions())
    assert not any(d.id.startswith("risk") for d in load_qtl_definitions())


def test_unknown_indicator_names_file_and_key(tmp_path):
    path = _edit(_copy(tmp_path), "risk0001", indicators=["kri0001", "kri0999"])
    with pytest.raises(DefinitionError) as info:
        load_risk_register(tmp_path)
    assert str(path) in str(info.value) and "indicators: unknown indicator 'kri0999'" in str(info.value)


def test_unknown_category_names_file_and_choices(tmp_path):
    path = _edit(_copy(tmp_path), "risk0002", category="safety")
    with pytest.raises(DefinitionError, match="category: unknown category 'safety'") as info:
        load_risk_register(tmp_path)
    assert str(path) in str(info.value) and "participant_safety" in str(info.value)


@pytest.mark.parametrize(("change", "key"), [({"likelihood": 4}, "likelihood"), ({"impcat": 2}, "impcat"),
                                             ({"controls": []}, "controls")])
def test_bad_values_and_unknown_keys_are_rejected(tmp_path, change, key):
    path = _edit(_copy(tmp_path), "risk0003", **change)
    with pytest.raises(DefinitionError) as info:
        load_risk_register(tmp_path)
    assert str(path) in str(info.value) and f"{key}:" in str(info.value)


def test_bad_category_weight_names_the_category(tmp_path):
    folder = _copy(tmp_path)
    raw = yaml.safe_load((folder / "risk_categories.yaml").read_text())
    raw["categories"]["eligibility"]["weight"] = 0
    (folder / "risk_categories.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(DefinitionError, match=r"risk_categories.yaml: categories.eligibility: weight"):
        load_risk_register(folder)


def test_a_dropped_in_risk_is_used(tmp_path):
    folder = _copy(tmp_path)
    raw = yaml.safe_load((folder / "risk0001.yaml").read_text()) | {"id": "risk0100", "indicators": ["kri0011"]}
    (folder / "risk0100.yaml").write_text(yaml.safe_dump(raw))
    assert load_risk_register(folder).risks[-1].id == "risk0100"
