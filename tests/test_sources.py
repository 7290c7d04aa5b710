"""rbqm.sources: study exports under the data directory, and zips of study folders unpacked safely."""

from __future__ import annotations

import io
import os
import stat
import zipfile
from datetime import date
from pathlib import Path

import pytest

from rbqm.errors import StudyFormatError
from rbqm.sources import KEEP_UPLOADS, extract_study_zip, fingerprint, prune_uploads, source_cuts, source_folders

DM = b"STUDYID,USUBJID,SITEID,COUNTRY,RFICDTC,RFSTDTC,ARMCD\nS,S-1,1,FRA,2024-01-02,2024-01-09,A\n"


def _folder(path: Path, *files: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name in files:
        (path / name).write_bytes(DM if name.startswith("dm") else b"x\n")
    return path


def _zip(files: dict[str, bytes], *, links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_source_folders_two_levels_down_with_tables_or_cuts(tmp_path: Path) -> None:
    _folder(tmp_path / "a", "dm.csv")
    _folder(tmp_path / "exports" / "b", "dm.parquet", "ae.xpt")
    _folder(tmp_path / "only-cuts" / "cuts" / "2024-03-31", "dm.csv")
    _folder(tmp_path / "notes", "readme.txt")
    _folder(tmp_path / ".uploads" / "hidden", "dm.csv")
    _folder(tmp_path / "x" / "y" / "too-deep", "dm.csv")
    (tmp_path / "rbqm.db").write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in source_folders(tmp_path)] == [
        "a", "exports/b", "only-cuts"]
    assert source_folders(tmp_path / "missing") == []


def test_source_cuts_newest_first_only_folders_with_dm(tmp_path: Path) -> None:
    study = _folder(tmp_path / "s", "dm.csv")
    _folder(study / "cuts" / "2024-01-31", "dm.csv")
    _folder(study / "cuts" / "2024-03-31", "dm.csv")
    _folder(study / "cuts" / "2024-02-29", "ae.csv")  # no dm: not a cut
    assert source_cuts(study) == [date(2024, 3, 31), date(2024, 1, 31)]
    assert source_cuts(_folder(tmp_path / "t", "dm.csv")) == []


def test_fingerprint_changes_when_a_file_changes(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "s", "dm.csv", "ae.csv")
    before = fingerprint(folder)
    assert fingerprint(folder) == before and len(before) == 16
    (folder / "ae.csv").write_bytes(b"changed, longer\n")
    assert fingerprint(folder) != before
    changed = fingerprint(folder)
    os.utime(folder / "ae.csv", ns=(1, 1))
    assert fingerprint(folder) != changed


def test_a_zip_with_the_tables_at_its_top(tmp_path: Path) -> None:
    folder = extract_study_zip(_zip({"dm.csv": DM, "ae.csv": b"USUBJID\n", "notes.txt": b"-"}), tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["ae.csv", "dm.csv"]  # only table files
    assert folder.parent == tmp_path and (folder / "dm.csv").read_bytes() == DM


def test_a_zip_of_one_study_folder_with_cuts(tmp_path: Path) -> None:
    data = _zip({"STUDY-1/dm.csv": DM, "STUDY-1/cuts/2024-03-31/dm.csv": DM,
                 "__MACOSX/STUDY-1/._dm.csv": b"junk", ".DS_Store": b"junk"})
    folder = extract_study_zip(data, tmp_path)
    assert folder.name == "STUDY-1"
    assert source_cuts(folder) == [date(2024, 3, 31)]
    assert extract_study_zip(data, tmp_path) == folder  # the same bytes: the same folder, unpacked once


def test_a_zip_of_cuts_only_is_a_study(tmp_path: Path) -> None:
    folder = extract_study_zip(_zip({"S/cuts/2024-01-31/dm.csv": DM}), tmp_path)
    assert folder.name == "S" and source_cuts(folder) == [date(2024, 1, 31)]


@pytest.mark.parametrize("member", ["../evil.csv", "/etc/evil.csv", "a/../../evil.csv", "C:/evil.csv"])
def test_a_member_outside_the_folder_is_refused(tmp_path: Path, member: str) -> None:
    with pytest.raises(StudyFormatError, match="refusing .* a path outside the study folder"):
        extract_study_zip(_zip({"dm.csv": DM, member: b"x"}), tmp_path / "up", name="study.zip")
    assert not (tmp_path / "evil.csv").exists() and not (tmp_path / "up").exists()


def test_links_are_skipped(tmp_path: Path) -> None:
    folder = extract_study_zip(_zip({"dm.csv": DM}, links=("ae.csv",)), tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["dm.csv"]


def test_limits_and_bad_archives(tmp_path: Path) -> None:
    with pytest.raises(StudyFormatError, match=r"study.zip: not a zip file"):
        extract_study_zip(b"not a zip", tmp_path, name="study.zip")
    with pytest.raises(StudyFormatError, match=r"unpacks to 2,000 bytes; at most 1,000"):
        extract_study_zip(_zip({"dm.csv": b"x" * 1000, "ae.csv": b"y" * 1000}), tmp_path, max_bytes=1000)
    with pytest.raises(StudyFormatError, match="3 table files; at most 2"):
        extract_study_zip(_zip({"dm.csv": DM, "ae.csv": b"x", "lb.csv": b"x"}), tmp_path, max_files=2)
    with pytest.raises(StudyFormatError, match="holds no study folder"):
        extract_study_zip(_zip({"a/dm.csv": DM, "b/dm.csv": DM}), tmp_path)
    with pytest.raises(StudyFormatError, match="holds no study folder"):
        extract_study_zip(_zip({"readme.txt": b"-"}), tmp_path)


def test_only_the_most_recently_used_uploads_are_kept(tmp_path: Path) -> None:
    uploads = [_zip({"dm.csv": DM + f"S,S-{i},1,FRA,2024-01-02,2024-01-09,A\n".encode()})
               for i in range(KEEP_UPLOADS + 2)]
    folders = []
    for i, data in enumerate(uploads[:KEEP_UPLOADS]):
        folders.append(extract_study_zip(data, tmp_path))
        os.utime(folders[-1], (1_000 + i, 1_000 + i))  # in upload order, a second apart
    assert extract_study_zip(uploads[0], tmp_path) == folders[0]  # used again: now the most recent
    for data in uploads[KEEP_UPLOADS:]:  # two more: the two least recently used go
        extract_study_zip(data, tmp_path)
    kept = {p for p in tmp_path.iterdir()}
    assert len(kept) == KEEP_UPLOADS
    assert folders[0] in kept and folders[1] not in kept and folders[2] not in kept
    assert extract_study_zip(uploads[1], tmp_path).is_dir()  # a pruned upload unpacks again


def test_prune_removes_stale_half_unpacked_folders_only(tmp_path: Path) -> None:
    stale, fresh = tmp_path / ".abc.partial", tmp_path / ".def.partial"
    stale.mkdir(), fresh.mkdir()
    os.utime(stale, (0, 0))
    assert prune_uploads(tmp_path) == [stale]
    assert fresh.is_dir() and prune_uploads(tmp_path / "missing") == []
