"""rbqm.study.cut_folder: which folder holds a study at a data cut, and a clear error for a cut it lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from rbqm.errors import StudyFormatError
from rbqm.study import cut_folder

DM = "STUDYID,USUBJID,SITEID,COUNTRY,RFICDTC,ARMCD\nS,S-1,1,FRA,2024-01-02,A\n"


def _study(root: Path, *, tables: bool, cuts: tuple[str, ...]) -> Path:
    root.mkdir()
    if tables:
        (root / "dm.csv").write_text(DM)
    for cut in cuts:
        (root / "cuts" / cut).mkdir(parents=True)
        (root / "cuts" / cut / "dm.csv").write_text(DM)
    return root


def test_a_named_cut_is_its_folder_and_none_the_study_folder(tmp_path: Path) -> None:
    study = _study(tmp_path / "s", tables=True, cuts=("2024-01-31", "2024-02-29"))
    assert cut_folder(study, "2024-01-31") == study / "cuts" / "2024-01-31"
    assert cut_folder(study, None) == study


def test_a_study_of_cuts_only_is_read_at_its_latest(tmp_path: Path) -> None:
    study = _study(tmp_path / "s", tables=False, cuts=("2024-02-29", "2024-01-31"))
    assert cut_folder(study, None) == study / "cuts" / "2024-02-29"


def test_a_cut_the_study_lacks_names_those_it_has(tmp_path: Path) -> None:
    study = _study(tmp_path / "s", tables=True, cuts=("2024-01-31",))
    with pytest.raises(StudyFormatError, match=r"no data cut '2024-03-31'; choose one of 2024-01-31"):
        cut_folder(study, "2024-03-31")
