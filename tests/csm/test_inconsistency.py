"""Data inconsistency score: the statistic on hand-made p-values, its reference tail, the permutation
calibration, the site-label permutation itself, and detection on a synthetic study."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import combine_pvalues, hypergeom

from rbqm.csm import CSM_COLUMNS, data_inconsistency, permute_sites, run_csm
from rbqm.csm._inconsistency import DIS_COLUMNS, calibrate, dis_statistic, reference_log_p
from rbqm.csm._permute import permutation_strata
from rbqm.derive import AnalysisTables, derive_tables
from rbqm.errors import RbqmError
from synthetic import AnomalySpec, SynthConfig

from .conftest import analysis_of


def findings(rows: dict[str, list[float]], test: str = "t") -> pl.DataFrame:
    """A csm table from {site: [p-values]}."""
    frame = pl.DataFrame([{"site_id": s, "p_value": p} for s, ps in rows.items() for p in ps],
                         schema={"site_id": pl.String, "p_value": pl.Float64})
    return frame.with_columns(study_id=pl.lit("S"), cut_date=pl.lit(date(2025, 1, 1)), test=pl.lit(test),
                              variable=pl.lit("V"), statistic=pl.lit(0.0), q_value=pl.col("p_value"),
                              effect=pl.lit(0.0), description=pl.lit("x")).select(list(CSM_COLUMNS))


def study(sites: dict[str, tuple[str, int]]) -> AnalysisTables:
    """A study with {SITEID: (COUNTRY, subjects)}, subjects numbered per site, and one visit each."""
    rows = [{"USUBJID": f"{site}-{i:02d}", "SITEID": site, "COUNTRY": country}
            for site, (country, n) in sites.items() for i in range(n)]
    dm = pl.DataFrame(rows).with_columns(STUDYID=pl.lit("S"), RFSTDTC=pl.lit("2024-01-02"), ARMCD=pl.lit("A"))
    sv = dm.select("USUBJID", VISITNUM=pl.lit(1.0), VISIT=pl.lit("V1"), SVSTDTC=pl.lit("2024-01-02"))
    tv = pl.DataFrame({"VISITNUM": [1.0], "VISIT": ["V1"], "VISITDY": [1], "TVWINLO": [0], "TVWINHI": [0]})
    return derive_tables({"dm": dm, "sv": sv, "tv": tv}, as_of=date(2024, 6, 1))


# --- the statistic ------------------------------------------------------------------------------


def test_statistic_is_the_geometric_mean_of_the_smallest_fifth():
    out = dis_statistic(findings({
        "A": [0.5, 0.01, 0.04, 0.9, 0.3, 0.2, 0.7, 0.05, 0.6, 0.8],    # n 10 -> k 2: 0.01, 0.04
        "B": [0.3] * 14 + [0.001],                                      # n 15 -> k 3 (0.2 x 15 = 3.0000000000000004)
        "C": [0.0, 0.5, 0.5, 0.5, 0.5],                                 # p = 0 counts as 1e-16; k 1
        "D": [0.01, 0.02, 0.03, 0.04],                                  # fewer than 5: no statistic
    })).sort("site_id")
    assert out["p_values"].to_list() == [10, 15, 5, 4]
    assert out["used"].to_list() == [2, 3, 1, None]
    expected = [np.sqrt(0.01 * 0.04), (0.001 * 0.3 * 0.3) ** (1 / 3), 1e-16, None]
    assert out["statistic"].to_list()[:3] == pytest.approx(expected[:3], rel=1e-12)
    assert out["statistic"][3] is None and out["reference_log_p"][3] is None


def test_rows_without_a_p_value_in_0_1_do_not_count():
    frame = findings({"A": [0.2, 0.3, 0.4, 0.5, 0.6]})
    frame = pl.concat([frame, frame.head(2).with_columns(p_value=pl.Series([None, float("nan")]))])
    assert dis_statistic(frame)["p_values"].to_list() == [5]


def test_reference_tail_is_fisher_for_all_and_sidak_for_one():
    p = np.array([0.01, 0.2, 0.5, 0.03])
    fisher = combine_pvalues(p, method="fisher").pvalue
    assert np.exp(reference_log_p(np.array([-np.log(p).sum()]), np.array([4]), np.array([4])))[0] == pytest.approx(
        fisher, rel=1e-10)
    sidak = 1 - (1 - 0.01) ** 7
    assert np.exp(reference_log_p(np.array([-np.log(0.01)]), np.array([7]), np.array([1])))[0] == pytest.approx(
        sidak, rel=1e-10)


def test_reference_tail_matches_the_moments_and_is_uniform_under_independence():
    """Monte Carlo of T = -sum log of the k smallest of n uniforms: the gamma matches its mean and
    variance (Renyi), and the reference p-value is close to uniform."""
    rng = np.random.default_rng(3)
    for n in (5, 20, 100):
        k = max(1, int(np.ceil(0.2 * n - 1e-9)))
        t = -np.log(np.sort(rng.random((40_000, n)), axis=1)[:, :k]).sum(axis=1)
        i = np.arange(k + 1, n + 1)
        assert t.mean() == pytest.approx(k + k * (1 / i).sum(), rel=0.01)
        assert t.var() == pytest.approx(k + k**2 * (1 / i**2).sum(), rel=0.03)
        p = np.exp(reference_log_p(t, np.full(t.size, n), np.full(t.size, k)))
        for level in (0.01, 0.05, 0.2, 0.5):
            assert (p < level).mean() == pytest.approx(level, abs=0.15 * level + 0.002)


# --- calibration --------------------------------------------------------------------------------


def test_calibration_counts_null_values_at_least_as_extreme():
    observed = pl.DataFrame({"site_id": ["A", "B", "C", "D"], "p_values": [9, 9, 9, 2], "used": [2, 2, 2, None],
                             "statistic": [0.01, 0.2, 0.3, None], "reference_log_p": [-6.0, -1.0, -1.0, None]})
    out = calibrate(observed, np.array([-0.5, -2.0, -1.0, -0.1, -7.0]))
    assert out.columns == list(DIS_COLUMNS)
    # A: -7 <= -6 -> (1 + 1) / 6; B and C: -7, -2, -1 -> 4 / 6 (a tie counts); D: none
    assert out["p_value"].to_list()[:3] == pytest.approx([2 / 6, 4 / 6, 4 / 6], rel=1e-12)
    assert out["p_value"][3] is None
    assert out["dis"][0] == pytest.approx(-np.log10(2 / 6))
    assert out["dis_rank"].to_list() == [1, 2, 3, None]          # B before C: tie broken by site_id


def test_permutation_p_value_with_a_constant_battery_is_known_exactly():
    """A battery that ignores the permutation returns the observed statistics every time: with B
    permutations of m sites the i-th most extreme site gets (1 + i B) / (1 + m B)."""
    observed = findings({"A": [0.001] * 5, "B": [0.01] * 5, "C": [0.5] * 5})
    out = data_inconsistency(study({"A": ("FRA", 3), "B": ("FRA", 3), "C": ("FRA", 3)}), observed,
                             permutations=4, battery=lambda permuted: observed).sort("site_id")
    assert out["p_value"].to_list() == pytest.approx([5 / 13, 9 / 13, 13 / 13], rel=1e-12)
    assert out["dis_rank"].to_list() == [1, 2, 3]


def test_permutation_p_value_on_a_tiny_study_converges_to_the_exact_tail():
    """12 subjects at 3 sites of 4; the 3 marked subjects are all at site A. The battery's p-value is
    the hypergeometric tail of the marked subjects a site holds, so under uniform relabelling the
    permutation p-value of A tends to (1 + 900 x 9/495) / 901 = 0.0193 (900 null values, P(X >= 3) =
    9/495; SD about 0.0045); B and C (none marked) get 1."""
    tiny = study({"A": ("FRA", 4), "B": ("FRA", 4), "C": ("FRA", 4)})
    marked = ["A-00", "A-01", "A-02"]

    def battery(analysis: AnalysisTables) -> pl.DataFrame:
        held = analysis["subjects"].group_by(site_id="SITEID").agg(
            x=pl.col("USUBJID").is_in(marked).sum()).collect()
        p = hypergeom.sf(held["x"].cast(pl.Int64).to_numpy() - 1, 12, 3, 4)
        return findings({s: [v] for s, v in zip(held["site_id"], p)})

    out = data_inconsistency(tiny, battery(tiny), permutations=300, seed=1, min_p_values=1,
                             battery=battery).sort("site_id")
    assert out["p_value"][0] == pytest.approx((1 + 900 * 9 / 495) / 901, abs=0.0135)
    assert out["p_value"].to_list()[1:] == [1.0, 1.0]
    again = data_inconsistency(tiny, battery(tiny), permutations=300, seed=1, min_p_values=1, battery=battery)
    assert again.sort("site_id").equals(out)                            # the same seed, the same result


def test_uniform_simulations_replace_the_ae_p_values_of_the_null():
    """The AE rows always say p = 1e-12. Rerun, the null is the observed: p = 1. Replaced by uniform
    draws, no null statistic is as small: p = 1 / (1 + B x sites)."""
    observed = pl.concat([findings({"A": [1e-12], "B": [1e-12]}, test="ae_under_reporting"),
                          findings({"A": [0.5] * 4, "B": [0.5] * 4}, test="digit_preference")])
    tiny = study({"A": ("FRA", 2), "B": ("FRA", 2)})
    rerun = data_inconsistency(tiny, observed, permutations=3, simulations="rerun", battery=lambda a: observed)
    uniform = data_inconsistency(tiny, observed, permutations=3, simulations="uniform", battery=lambda a: observed)
    assert rerun["p_value"].to_list() == [1.0, 1.0]
    assert uniform["p_value"].to_list() == pytest.approx([1 / 7, 1 / 7])


def test_only_tests_the_battery_reruns_count():
    """kri_profile rows (computed from KRIs, not rerun) are left out of the observed statistic."""
    battery_rows = findings({"A": [0.5] * 5, "B": [0.5] * 5}, test="digit_preference")
    observed = pl.concat([battery_rows, findings({"A": [1e-10]}, test="kri_profile")])
    out = data_inconsistency(study({"A": ("FRA", 2), "B": ("FRA", 2)}), observed, permutations=2,
                             battery=lambda a: battery_rows)
    assert out["p_values"].to_list() == [5, 5] and out["p_value"].to_list() == [1.0, 1.0]


@settings(max_examples=25, deadline=None, database=None)
@given(sites=st.integers(30, 70), seed=st.integers(0, 2**16), fraction=st.sampled_from([0.1, 0.2, 0.5]))
def test_dis_p_value_is_a_p_value_and_uniform_under_exchangeable_sites(sites, seed, fraction):
    """When the observed and the permuted batteries come from the same distribution (independent
    uniform p-values, 3 to 60 per site), the DIS p-values lie in (0, 1] and are about uniform, for
    sites with few and many p-values alike."""
    rng = np.random.default_rng(seed)
    counts = {f"S{i:02d}": int(n) for i, n in enumerate(rng.integers(3, 61, sites))}

    def battery(analysis: AnalysisTables | None = None) -> pl.DataFrame:
        return findings({s: list(rng.random(n)) for s, n in counts.items()})

    tiny = study({"A": ("FRA", 2), "B": ("FRA", 2)})
    out = data_inconsistency(tiny, battery(), permutations=10, seed=seed, fraction=fraction, battery=battery)
    p = out["p_value"].drop_nulls()
    assert ((p > 0) & (p <= 1)).all()
    assert out["dis"].drop_nulls().min() >= 0
    assert sorted(out["dis_rank"].drop_nulls()) == list(range(1, p.len() + 1))
    assert out.filter(pl.col("p_values") < 5)["p_value"].null_count() == (out["p_values"] < 5).sum()
    assert (p < 0.1).mean() <= 0.3
    assert 0.2 <= (p < 0.5).mean() <= 0.8


# --- the permutation ----------------------------------------------------------------------------


def test_permutation_keeps_site_sizes_and_countries_and_moves_whole_subjects():
    sizes = {"F1": ("FRA", 3), "F2": ("FRA", 5), "F3": ("FRA", 4), "F4": ("FRA", 2), "F5": ("FRA", 3),
             "F6": ("FRA", 6), "D1": ("DEU", 4), "I1": ("ITA", 3)}
    base = study(sizes)
    before = base["subjects"].collect().select("USUBJID", old_site="SITEID", old_country="COUNTRY")
    shuffled = permute_sites(base, seed=7)
    subjects = shuffled["subjects"].collect().join(before, on="USUBJID")
    assert dict(subjects.group_by("SITEID").len().iter_rows()) == {s: n for s, (_, n) in sizes.items()}
    assert (subjects["SITEID"] != subjects["old_site"]).any()
    # France has 6 sites: its subjects stay in France; DEU and ITA (1 site each) are shuffled together
    france = subjects.filter(pl.col("old_country") == "FRA")
    assert (france["COUNTRY"] == "FRA").all()
    assert set(subjects.filter(pl.col("old_country") != "FRA")["COUNTRY"]) <= {"DEU", "ITA"}
    # visits (a table with SITEID) follow their subject; record tables get the labels through with_sites
    visits = shuffled["visits"].collect().join(subjects.select("USUBJID", new="SITEID"), on="USUBJID")
    assert (visits["SITEID"] == visits["new"]).all()
    sv = shuffled.with_sites("sv").collect().join(subjects.select("USUBJID", new="SITEID"), on="USUBJID")
    assert (sv["SITEID"] == sv["new"]).all()
    assert shuffled["sites"].collect().equals(base["sites"].collect())
    assert shuffled.as_of == base.as_of and shuffled.sources == base.sources


def test_permutation_is_seeded_and_within_none_crosses_countries():
    base = study({"F1": ("FRA", 10), "F2": ("FRA", 10), "D1": ("DEU", 10), "D2": ("DEU", 10)})
    one = permute_sites(base, seed=1)["subjects"].collect().sort("USUBJID")
    assert one.equals(permute_sites(base, seed=1)["subjects"].collect().sort("USUBJID"))
    assert not one.equals(permute_sites(base, seed=2)["subjects"].collect().sort("USUBJID"))
    # countries of 2 sites: one pooled stratum, so subjects can change country (with their new site)
    crossed = one.with_columns(home=pl.col("USUBJID").str.slice(0, 1))
    assert (crossed["COUNTRY"].str.slice(0, 1) != crossed["home"]).any()
    assert set(permutation_strata(base["subjects"].collect(), within=None)) == {""}
    strict = permute_sites(base, seed=1, min_country_sites=2)["subjects"].collect()
    assert (strict["COUNTRY"].str.slice(0, 1) == strict["USUBJID"].str.slice(0, 1)).all()


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"permutations": 0}, "'permutations' parameter of data_inconsistency must be an integer >= 1"),
    ({"fraction": 0.0}, "'fraction' parameter of data_inconsistency must be a number in (0, 1]"),
    ({"simulations": "skip"}, "'simulations' parameter of data_inconsistency must be 'uniform' or 'rerun'"),
    ({"within": "region"}, "'within' parameter of data_inconsistency must be 'country' or None"),
])
def test_bad_parameters_name_themselves(kwargs, message):
    observed = findings({"A": [0.5] * 5})
    with pytest.raises(RbqmError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        data_inconsistency(study({"A": ("FRA", 2)}), observed, battery=lambda a: observed, **kwargs)


# --- on a synthetic study -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fabricated():
    """20 sites, ~40 enrolled subjects each; fabricated subjects at 1003, rounded blood pressure at 1008."""
    analysis = analysis_of(SynthConfig(sites=20, subjects=800, countries=3, seed=1, months=18, anomalies=(
        AnomalySpec(type="fabricated_subjects", magnitude=0.5, sites=("1003",), start=0.0),
        AnomalySpec(type="digit_preference", magnitude=0.5, sites=("1008",), start=0.0))))
    return analysis, run_csm(analysis, study_id="S", cut_date=analysis.as_of)


def test_fabrication_and_digit_preference_rank_in_the_top_3(fabricated):
    analysis, found = fabricated
    out = data_inconsistency(analysis, found, permutations=5)
    assert out.schema == pl.Schema(DIS_COLUMNS)
    top = out.sort("dis_rank", nulls_last=True)["site_id"].head(3).to_list()
    assert {"1003", "1008"} <= set(top), out.sort("dis_rank")
    # about the smallest p-value 5 permutations of ~19 scored sites allow (1 / 96)
    assert (out.filter(pl.col("site_id").is_in(["1003", "1008"]))["p_value"] < 0.02).all()


def test_dis_is_about_uniform_on_a_clean_study():
    """No anomaly: about a tenth of the sites below p = 0.1 (the generator's benign site differences,
    such as one site's natural rounding, allow a few more; measured 0.10-0.30 on four studies)."""
    analysis = analysis_of(SynthConfig(sites=20, subjects=800, countries=3, seed=1, months=18))
    found = run_csm(analysis, study_id="S", cut_date=analysis.as_of)
    p = data_inconsistency(analysis, found, permutations=5)["p_value"].drop_nulls()
    assert p.len() >= 18 and ((p > 0) & (p <= 1)).all()
    assert (p < 0.1).mean() <= 0.3
    assert 0.25 <= (p < 0.5).mean() <= 0.8


def test_a_site_at_the_top_of_the_null_scores_zero_not_minus_zero():
    observed = pl.DataFrame({"site_id": ["A"], "p_values": [9], "used": [2], "statistic": [0.9],
                             "reference_log_p": [0.0]})
    out = calibrate(observed, np.array([-1.0, -2.0]))
    assert out["p_value"].item() == 1.0
    assert str(out["dis"].item()) == "0.0"  # not "-0.0", which the heatmap showed
