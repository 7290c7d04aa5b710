"""Saved analyses: read back equal to a fresh analysis, recomputed whenever an input changes."""

from __future__ import annotations

import os
import shutil

import pytest

from rbqm.analysis import analyze_study, write_analysis
from rbqm.errors import RbqmError
from rbqm.kri.definition import DEFAULT_LIBRARY
from rbqm.saved_analysis import KEEP_PER_STUDY, analysis_key, read_analysis, saved_analysis
from synthetic import SynthConfig, generate_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("saved") / "study"
    generate_study(SynthConfig(sites=8, subjects=160, countries=2, seed=5, months=10, cuts=2), out)
    return out


def _same(a, b) -> None:
    assert a.study_id == b.study_id and a.cut_dates == b.cut_dates
    for name in ("results", "bounds", "site_risk", "qtl", "csm"):
        assert getattr(a, name).equals(getattr(b, name)), name


def test_a_saved_analysis_reads_back_equal_to_a_fresh_one(study, tmp_path):
    fresh = analyze_study(study, permutations=2)
    write_analysis(fresh, tmp_path / "out")
    _same(read_analysis(tmp_path / "out"), fresh)


def test_saved_analysis_computes_once_then_reads(study, tmp_path, monkeypatch):
    first = saved_analysis(study, tmp_path, permutations=0)
    entries = list(tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].name == analysis_key(study, permutations=0)

    def refuse(*args, **kwargs):
        raise AssertionError("the saved analysis should have been read, not recomputed")

    monkeypatch.setattr("rbqm.saved_analysis.analyze_study", refuse)
    _same(saved_analysis(study, tmp_path, permutations=0), first)


def test_a_changed_file_or_option_changes_the_key(study, tmp_path):
    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    key = analysis_key(copy)
    assert analysis_key(copy, permutations=3) != key
    ae = next(copy.glob("ae.*"))
    stat = ae.stat()
    os.utime(ae, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert analysis_key(copy) != key
    library = tmp_path / "library"
    shutil.copytree(DEFAULT_LIBRARY, library)
    before = analysis_key(copy, kri_dir=library)
    (library / "kri0002.yaml").write_text((library / "kri0002.yaml").read_text() + "\n")
    assert analysis_key(copy, kri_dir=library) != before


def test_an_unreadable_entry_is_recomputed(study, tmp_path):
    saved_analysis(study, tmp_path, permutations=0)
    entry = tmp_path / analysis_key(study, permutations=0)
    (entry / "csm.parquet").write_bytes(b"not parquet")
    with pytest.raises(RbqmError, match="csm.parquet: cannot read"):
        read_analysis(entry)
    fresh = saved_analysis(study, tmp_path, permutations=0)
    _same(read_analysis(entry), fresh)


def test_only_the_latest_analyses_of_a_study_are_kept(study, tmp_path):
    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    cache = tmp_path / "cache"
    saved_analysis(study, cache, permutations=0)  # another study's entry is never pruned
    keys = []
    for k in range(KEEP_PER_STUDY + 1):  # each change to the data makes a new entry
        ae = next(copy.glob("ae.*"))
        os.utime(ae, (1_000_000 + k, 1_000_000 + k))
        saved_analysis(copy, cache, permutations=0)
        keys.append(analysis_key(copy, permutations=0))
        marker = cache / keys[-1] / "source.txt"
        os.utime(marker, (2_000_000 + k, 2_000_000 + k))  # in order of use
    kept = {p.name for p in cache.iterdir()}
    assert kept == {analysis_key(study, permutations=0), *keys[-KEEP_PER_STUDY:]}
