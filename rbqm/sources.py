"""Where a study export comes from before it is validated and ingested: a folder under the data
directory, or a zip of a study folder (unpacked safely). Used by the dashboard's Data page.

A *source* is a folder of table files (``rbqm.io.READ_FORMATS``); it may hold data cuts in
``cuts/YYYY-MM-DD/`` (as ``rbqm synth --cuts`` writes them), each a source of its own.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import stat
import time
import zipfile
from datetime import date
from pathlib import Path, PurePosixPath

from rbqm.errors import StudyFormatError
from rbqm.io import READ_FORMATS
from rbqm.study import list_cuts

__all__ = ["KEEP_UPLOADS", "MAX_FILES", "MAX_UNZIPPED_BYTES", "extract_study_zip", "fingerprint", "prune_uploads",
           "source_cuts",
           "source_folders"]

MAX_UNZIPPED_BYTES = 4 * 1024**3
"""An upload may unpack to at most this many bytes (4 GiB), so a zip bomb cannot fill the disk."""
MAX_FILES = 5000
#: Unpacked uploads kept by :func:`extract_study_zip` (the most recently used); older ones are removed.
KEEP_UPLOADS = 8
"""... and to at most this many files."""
_DEPTH = 2  # how deep under the data directory source_folders looks


def _holds_tables(folder: Path) -> bool:
    return any(p.is_file() and p.suffix.lower().lstrip(".") in READ_FORMATS for p in folder.iterdir())


def _visible(path: Path) -> bool:
    return not path.name.startswith((".", "_"))


def source_folders(root: Path) -> list[Path]:
    """The folders under ``root`` (up to two levels down) that hold table files or data cuts, by path.

    Hidden folders (``.name``) and the cut folders themselves (``cuts/...``; see :func:`source_cuts`)
    are not listed. A missing ``root`` has none.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found, level = [], [root]
    for _ in range(_DEPTH):
        level = [child for folder in level for child in sorted(folder.iterdir())
                 if child.is_dir() and _visible(child) and child.name != "cuts"]
        found += [folder for folder in level if _holds_tables(folder) or list_cuts(folder)]
    return sorted(found)


def source_cuts(folder: Path) -> list[date]:
    """The data cuts of a source (its ``cuts/YYYY-MM-DD`` folders that hold a dm table), newest first."""
    return [date.fromisoformat(p.name) for p in reversed(list_cuts(Path(folder)))]


def fingerprint(folder: Path) -> str:
    """A short hash of the names, sizes and modification times of a folder's files (not its cuts):
    it changes whenever a file is replaced, so it can key a cached validation."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        info = path.stat()
        digest.update(f"{path.name}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _member_path(name: str, archive: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise StudyFormatError(f"{archive}: refusing {name!r}, a path outside the study folder")
    return path


def _study_root(folder: Path, archive: str) -> Path:
    """The study folder inside an unpacked zip: the top folder, or the first below it that is not a
    folder holding a single folder (``study.zip/STUDY-01/...``)."""
    while not (_holds_tables(folder) or list_cuts(folder)):
        children = [c for c in folder.iterdir() if c.is_dir() and _visible(c)]
        if len(children) != 1:
            raise StudyFormatError(f"{archive}: holds no study folder (no table files such as dm.parquet, "
                                   "dm.csv or dm.xpt at its top or in its one top folder)")
        folder = children[0]
    return folder


def extract_study_zip(data: bytes, dest_root: Path, *, name: str = "upload.zip",
                      max_bytes: int = MAX_UNZIPPED_BYTES, max_files: int = MAX_FILES) -> Path:
    """Unpack a zip of a study folder into ``dest_root/<content hash>/`` and return the study folder in it.

    Only table files (``rbqm.io.READ_FORMATS``) are unpacked, keeping their folders (so ``cuts/DATE/``
    survive); other files, folders named ``.`` or ``__MACOSX`` and links are skipped. The same bytes
    unpack to the same folder, once.

    Raises
    ------
    StudyFormatError
        Naming ``name``: not a zip, a member path outside the folder, more than ``max_files`` files or
        ``max_bytes`` unpacked, or no study folder inside.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise StudyFormatError(f"{name}: not a zip file ({exc})") from exc
    with archive:
        members = []
        for info in archive.infolist():
            path = _member_path(info.filename, name)
            is_link = stat.S_ISLNK(info.external_attr >> 16)
            if info.is_dir() or is_link or not all(_visible(Path(p)) for p in path.parts):
                continue
            if path.suffix.lower().lstrip(".") in READ_FORMATS:
                members.append((info, path))
        if len(members) > max_files:
            raise StudyFormatError(f"{name}: {len(members)} table files; at most {max_files} are accepted")
        total = sum(info.file_size for info, _ in members)
        if total > max_bytes:
            raise StudyFormatError(f"{name}: unpacks to {total:,} bytes; at most {max_bytes:,} are accepted")
        target = Path(dest_root) / hashlib.sha256(data).hexdigest()[:16]
        if not target.is_dir():
            staging = target.with_name(f".{target.name}.partial")
            shutil.rmtree(staging, ignore_errors=True)
            try:
                for info, path in members:
                    out = staging.joinpath(*path.parts)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as source, out.open("wb") as sink:
                        shutil.copyfileobj(source, sink, 1 << 20)  # zipfile stops at the declared size
                staging.mkdir(parents=True, exist_ok=True)
                staging.rename(target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        target.touch()  # used now: pruned last
    prune_uploads(Path(dest_root), keep=KEEP_UPLOADS)
    return _study_root(target, name)


def prune_uploads(root: Path, *, keep: int = KEEP_UPLOADS) -> list[Path]:
    """Remove all but the ``keep`` most recently used unpacked uploads under ``root`` (and unpacking left
    half done by a crash over an hour ago); return what was removed. Snapshots are never here: an ingest copies
    the upload into the study's own ``cuts/`` folder, so an unpacked upload is only a cache."""
    if not root.is_dir():
        return []
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    stale = time.time() - 3600  # a younger partial folder may be another session unpacking right now
    partial = [p for p in folders if p.name.startswith(".") and p.name.endswith(".partial")]
    done = [p for p in folders if p not in partial]
    removed = done[keep:] + [p for p in partial if p.stat().st_mtime < stale]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed
