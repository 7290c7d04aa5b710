"""The same seed gives the same files; KeyedRandom draws are pure functions of (seed, stream, key)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rbqm.io import read_table
from rbqm.schema import TABLE_NAMES
from synthetic import SynthConfig, generate_study, load_anomalies
from synthetic.random import KeyedRandom

CONFIG = dict(sites=6, subjects=90, countries=2, months=8, cuts=2)


def _generate(folder: Path, *, seed: int, fmt: str) -> Path:
    generate_study(SynthConfig(**CONFIG, seed=seed, fmt=fmt, anomalies=load_anomalies("default")), folder)
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def csv_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    return _generate(root / "a", seed=21, fmt="csv"), _generate(root / "b", seed=21, fmt="csv")


def test_same_seed_gives_byte_identical_csv_files(csv_runs):
    first, second = (_files(f) for f in csv_runs)
    assert "truth.csv" in first and "dm.csv" in first
    assert sum(name.startswith("cuts/") for name in first) == 2 * (len(TABLE_NAMES) + 1)  # tables + truth.csv
    assert sorted(first) == sorted(second)
    differing = [name for name in first if first[name] != second[name]]
    assert differing == []


def test_same_seed_gives_identical_parquet_tables(tmp_path):
    first = _generate(tmp_path / "a", seed=21, fmt="parquet")
    second = _generate(tmp_path / "b", seed=21, fmt="parquet")
    paths = sorted(p.relative_to(first) for p in first.rglob("*.parquet"))
    assert len(paths) == 3 * len(TABLE_NAMES)
    assert paths == sorted(p.relative_to(second) for p in second.rglob("*.parquet"))
    for rel in paths:
        assert read_table(first / rel).equals(read_table(second / rel)), rel


def test_different_seed_gives_different_data(tmp_path, csv_runs):
    other = _files(_generate(tmp_path / "c", seed=22, fmt="csv"))
    same = _files(csv_runs[0])
    for name in ["dm.csv", "ae.csv", "lb.csv", "queries.csv"]:
        assert other[name] != same[name], name
    assert not read_table(tmp_path / "c" / "dm.csv").equals(read_table(csv_runs[0] / "dm.csv"))


# ---- KeyedRandom ----

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)
STREAMS = st.text(max_size=20)
KEYS = arrays(np.int64, st.integers(1, 50), elements=st.integers(-(2**63), 2**63 - 1))


@settings(max_examples=100, database=None)
@given(seed=SEEDS, stream=STREAMS, keys=KEYS)
def test_uniforms_are_strictly_inside_zero_one(seed, stream, keys):
    u = KeyedRandom(seed).uniform(stream, keys)
    assert u.shape == keys.shape
    assert np.all((u > 0.0) & (u < 1.0))


def test_uniform_maps_the_extreme_bits_strictly_inside_zero_one(monkeypatch):
    """The smallest and largest possible bits still give a uniform in the open interval (0, 1)."""
    extremes = np.array([0, 2**64 - 1], dtype=np.uint64)
    monkeypatch.setattr(KeyedRandom, "bits", lambda self, stream, *keys: extremes)
    rng = KeyedRandom(0)
    u = rng.uniform("x", np.arange(2))
    assert u[0] > 0.0
    assert u[1] < 1.0
    assert np.all(np.isfinite(rng.normal("x", np.arange(2))))


@settings(max_examples=100, database=None)
@given(seed=SEEDS, stream=STREAMS, keys=KEYS, data=st.data())
def test_a_key_gives_the_same_value_whatever_is_drawn_with_it(seed, stream, keys, data):
    """Order and batch independence: draws depend on the key only, not its neighbours."""
    rng = KeyedRandom(seed)
    batch = rng.uniform(stream, keys)
    i = data.draw(st.integers(0, len(keys) - 1))
    assert rng.uniform(stream, keys[i : i + 1])[0] == batch[i]
    assert rng.uniform(stream, int(keys[i])) == batch[i]
    order = data.draw(st.permutations(range(len(keys))))
    assert np.array_equal(rng.uniform(stream, keys[list(order)]), batch[list(order)])
    assert KeyedRandom(seed).normal(stream, keys)[i] == rng.normal(stream, keys[i : i + 1])[0]


@settings(max_examples=100, database=None)
@given(seed=SEEDS, streams=st.lists(STREAMS, min_size=2, max_size=2, unique=True), keys=KEYS)
def test_different_streams_give_different_values(seed, streams, keys):
    rng = KeyedRandom(seed)
    a, b = (rng.uniform(s, keys) for s in streams)
    assert np.all(a != b)


@settings(max_examples=50, database=None)
@given(seeds=st.lists(SEEDS, min_size=2, max_size=2, unique=True), stream=STREAMS, keys=KEYS)
def test_different_seeds_give_different_values(seeds, stream, keys):
    a, b = (KeyedRandom(s).uniform(stream, keys) for s in seeds)
    assert np.all(a != b)


def test_multi_key_draws_depend_on_every_key():
    rng = KeyedRandom(3)
    grid = rng.uniform("visit", np.arange(100)[:, None], np.arange(20)[None, :])
    assert grid.shape == (100, 20)
    assert np.unique(grid).size == grid.size
    assert grid[7, 3] == rng.uniform("visit", 7, 3)
    assert rng.uniform("visit", 7, 3) != rng.uniform("visit", 3, 7)


N = 200_000


def test_uniform_mean_is_one_half():
    u = KeyedRandom(2024).uniform("moments", np.arange(N))
    assert abs(u.mean() - 0.5) < 0.005  # ~8 standard errors
    assert abs(u.var() - 1 / 12) < 0.002
    counts = np.bincount((u * 10).astype(int), minlength=10)
    assert np.all(np.abs(counts - N / 10) < 0.05 * N / 10)


def test_normal_mean_is_zero_and_sd_is_one():
    z = KeyedRandom(2024).normal("moments", np.arange(N))
    assert abs(z.mean()) < 0.02
    assert abs(z.std() - 1.0) < 0.02
    assert abs(np.mean(np.abs(z) < 1.96) - 0.95) < 0.01
