"""KRIs on synthetic studies: a clean study flags no more sites than the thresholds imply, and each
KRI-type anomaly raises its KRI's flag at the injected site."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rbqm.derive import derive_tables
from rbqm.kri import compute_kris, load_definitions
from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at

DESIGN = dict(sites=40, subjects=4000, countries=5, seed=8, months=24)

# anomaly -> (site, magnitude, KRI, sign of the expected flag)
EXPECTED = {
    "ae_under_reporting": ("1001", 0.7, "kri0001", -1),
    "sae_under_reporting": ("1002", 0.9, "kri0002", -1),
    "excess_important_deviations": ("1003", 6.0, "kri0004", 1),
    "late_data_entry": ("1004", 5.0, "kri0010", 1),
    "query_backlog": ("1005", 8.0, "kri0009", 1),
    "high_screen_failure": ("1006", 0.6, "kri0012", 1),
    "high_discontinuation": ("1007", 5.0, "kri0006", 1),
    "excess_eligibility_violations": ("1008", 0.3, "kri0014", 1),
}


def _results(cfg: SynthConfig) -> pl.DataFrame:
    records = build_trial(cfg)
    tables = {name: lf.collect() for name, lf in tables_at(records, cfg.end_day).items()}
    return compute_kris(derive_tables(tables, as_of=cfg.end), load_definitions(), study_id="S",
                        cut_date=cfg.end).results.filter(pl.col("level") == "site")


@pytest.fixture(scope="module")
def injected() -> pl.DataFrame:
    anomalies = tuple(AnomalySpec(type=kind, magnitude=mag, sites=(site,), start=0.0)
                      for kind, (site, mag, _, _) in EXPECTED.items())
    return _results(SynthConfig(**DESIGN, anomalies=anomalies))


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    return _results(SynthConfig(**DESIGN))


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_anomaly_raises_its_kri_flag(injected, clean, kind):
    site, _, kri, sign = EXPECTED[kind]
    pick = (pl.col("kri_id") == kri) & (pl.col("group_id") == site)
    flag = injected.filter(pick)["flag"].item()
    assert flag is not None and flag * sign >= 1, f"{kind}: {kri} flag at {site} is {flag}"
    clean_flag = clean.filter(pick)["flag"].item()
    assert (clean_flag or 0) * sign <= 0, f"{kind}: {kri} already flagged at {site} without the anomaly"


def test_clean_study_flags_no_more_than_the_thresholds_imply(clean):
    """Under N(0, 1) scores a KRI flags a site with probability Phi(a) + 1 - Phi(b), [a, b) being its flag-0 bin;
    the clean study's flagged site-KRIs must not exceed that expectation by more than 3 binomial sds."""
    library = {d.id: d for d in load_definitions()}
    normal = clean.filter(pl.col("method").str.starts_with("normal_approx") & pl.col("flag").is_not_null())
    expected = 0.0
    variance = 0.0
    for kri_id, count in normal.group_by("kri_id").len().iter_rows():
        d = library[kri_id]
        zero = d.flags.index(0)
        low = d.thresholds[zero - 1] if zero > 0 else -np.inf
        high = d.thresholds[zero] if zero < len(d.thresholds) else np.inf
        p = stats.norm.cdf(low) + stats.norm.sf(high)
        expected += count * p
        variance += count * p * (1 - p)
    observed = (normal["flag"] != 0).sum()
    assert normal.height > 300
    assert observed <= expected + 3 * np.sqrt(variance), (observed, expected)
    red = (normal["flag"].abs() == 2).sum()
    assert red <= 0.02 * normal.height


def test_mean_squared_score_is_one_per_normal_kri(clean):
    """The over-dispersion factor is estimated from all sites, so mean(z^2) over scored sites is 1 (reference 3)."""
    per_kri = (clean.filter(pl.col("method").str.starts_with("normal_approx") & (pl.col("denominator") > 0))
               .group_by("kri_id").agg((pl.col("score") ** 2).mean().alias("ms"), pl.col("score").null_count()))
    exact = per_kri.filter(pl.col("score") == 0)          # no site blanked for low counts
    assert exact.height >= 3
    assert exact["ms"].to_list() == pytest.approx([1.0] * exact.height, abs=1e-9)
