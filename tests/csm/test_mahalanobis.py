"""Multivariate inliers and outliers (Mahalanobis distance of visit vectors), and the site-vs-rest
helpers it shares with the visit regularity test (scores, exact rest medians, between-site SD)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis

from rbqm.csm import mahalanobis
from rbqm.csm._contract import between_site_sd, median_versus_rest, scores_versus_rest
from rbqm.csm._mahalanobis import robust_centre, subject_distances, visit_distances
from synthetic import AnomalySpec, SynthConfig

from .conftest import analysis_of, hand_study

CODES = ["SYSBP", "DIABP", "HR", "TEMP", "WEIGHT"]
MEANS = np.array([128.0, 79.0, 72.0, 36.7, 80.0])
BETWEEN = np.array([14.0, 9.0, 9.0, 0.2, 15.0])
WITHIN = np.array([9.0, 6.0, 7.0, 0.25, 0.9])


def _study(*, shrink: dict[str, float] | None = None, sites="ABCDEFGH", per_site=15, visits=6, seed=3):
    """Vital signs: subject level + visit noise; at a site of ``shrink`` both are scaled by its factor
    (below 1: results crowd the centre, above 1: they scatter)."""
    rng = np.random.default_rng(seed)
    subjects, rows = {}, []
    for site in sites:
        factor = (shrink or {}).get(site, 1.0)
        for k in range(per_site):
            subject = f"{site}-{k}"
            subjects[subject] = (site, ["2024-01-01"], [])
            level = MEANS + factor * BETWEEN * rng.standard_normal(5)
            for v in range(visits):
                value = level + factor * WITHIN * rng.standard_normal(5)
                rows += [{"USUBJID": subject, "VSTESTCD": c, "VISITNUM": float(v + 1), "VSDTC": "2024-01-01",
                          "VSSTRESN": round(float(value[j]), 1)} for j, c in enumerate(CODES)]
    return hand_study(subjects, extra={"vs": pl.DataFrame(rows)})


def _vital_values(study):
    return study.with_sites("vs").select(site_id="SITEID", USUBJID="USUBJID",
                                         variable=pl.lit("VS:") + pl.col("VSTESTCD"), VISITNUM="VISITNUM",
                                         value="VSSTRESN")


# --- robust centre --------------------------------------------------------------------------------

def test_robust_centre_resists_contamination_where_the_mean_does_not():
    rng = np.random.default_rng(1)
    cov = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 1.0]])
    clean = rng.multivariate_normal([0, 0, 0], cov, 4000)
    far = rng.multivariate_normal([8, -8, 8], 0.1 * np.eye(3), 600)       # 13% gross outliers
    x = np.vstack([clean, far])
    location, precision = robust_centre(x)
    assert np.abs(location).max() < 0.1
    assert np.abs(x.mean(axis=0)).max() > 0.9                            # the plain mean is dragged away
    assert np.allclose(np.linalg.inv(precision), cov, atol=0.12)
    d2 = ((clean - location) @ precision * (clean - location)).sum(axis=1)
    assert np.median(d2) == pytest.approx(stats.chi2.median(3), rel=0.06)  # consistent under normality


# --- site vs rest helpers (exact values by hand) ------------------------------------------------

def test_scores_versus_rest_by_hand():
    scores = pl.DataFrame({"site_id": ["A", "A", "B", "B", "B", "C", "C", "D"],
                           "s": [1.0, 2.0, 0.0, -1.0, 0.5, 0.2, 0.1, 3.0]})
    out = scores_versus_rest(scores, "s", min_units=2).sort("site_id")
    assert out["site_id"].to_list() == ["A", "B", "C"]                   # D has one unit
    s2 = np.var(scores["s"].to_numpy(), ddof=1)
    rest_mean = (0.0 - 1.0 + 0.5 + 0.2 + 0.1 + 3.0) / 6
    d, v = 1.5 - rest_mean, s2 * (1 / 2 + 1 / 6)
    a = out.row(0, named=True)
    assert a["tau"] == 0.0                                               # fewer than 10 sites
    assert a["rest_mean"] == pytest.approx(rest_mean)
    assert a["z"] == pytest.approx(d / np.sqrt(v))
    assert a["p_lower"] == pytest.approx(stats.norm.cdf(d / np.sqrt(v)))
    assert a["p_greater"] == pytest.approx(stats.norm.sf(d / np.sqrt(v)))


def test_between_site_sd_is_the_median_paule_mandel_estimate():
    rng = np.random.default_rng(4)
    v = rng.uniform(0.01, 0.05, 3000)
    d = rng.normal(0, np.sqrt(v + 0.3**2))
    tau = between_site_sd(d, v)
    assert tau == pytest.approx(0.3, abs=0.03)
    criterion = lambda t: np.median(d**2 / (v + t**2))  # noqa: E731
    assert criterion(tau) <= stats.chi2.median(1) < criterion(tau - 0.005)
    assert between_site_sd(d[:9], v[:9]) == 0.0                          # too few sites
    assert between_site_sd(np.zeros(20), np.full(20, 0.1)) == 0.0


def test_scores_are_compared_within_the_country_when_it_has_enough_sites():
    rng = np.random.default_rng(2)
    sites = [f"F{k}" for k in range(6)] + [f"D{k}" for k in range(6)] + ["X0"]
    shift = np.repeat([1.0 if s[0] == "F" else 0.0 for s in sites], 10)     # French subjects score higher
    scores = pl.DataFrame({"site_id": np.repeat(sites, 10), "s": rng.normal(0, 1, 130) + shift})
    country = {"F": "FRA", "D": "DEU"}
    countries = pl.DataFrame({"site_id": sites, "country": [country.get(s[0]) for s in sites]})
    within = scores_versus_rest(scores, "s", min_units=5, countries=countries).sort("site_id")
    whole = scores_versus_rest(scores, "s", min_units=5).sort("site_id")
    f0 = within.filter(site_id="F0").row(0, named=True)
    others = scores.filter(pl.col("site_id").is_in(sites[1:6]))["s"]
    assert f0["reference"] == "FRA" and f0["rest"] == 50 and f0["rest_mean"] == pytest.approx(others.mean())
    assert within.filter(site_id="X0")["reference"].item() is None           # no country: the whole study
    assert whole["reference"].is_null().all()
    f_sites = pl.col("site_id").str.starts_with("F")
    assert whole.filter(f_sites)["z"].min() > within.filter(f_sites)["z"].max() - 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ABCDE"), st.integers(-5, 5)), min_size=2, max_size=40),
       st.booleans())
def test_rest_median_equals_numpy(pairs, grouped):
    group = {"A": "X", "B": "X", "C": "Y", "D": "Y", "E": None}
    frame = pl.DataFrame({"site_id": [s for s, _ in pairs], "x": [float(x) for _, x in pairs],
                          "g": [group[s] for s, _ in pairs]})
    out = median_versus_rest(frame, "x", group="g" if grouped else None)
    site, x = frame["site_id"].to_numpy(), frame["x"].to_numpy()
    for row in out.iter_rows(named=True):
        assert row["median"] == np.median(x[site == row["site_id"]])
        same = np.array([group[s] == group[row["site_id"]] for s in site]) if grouped else True
        rest = x[(site != row["site_id"]) & same]
        assert row["rest_median"] == (np.median(rest) if rest.size else None)


# --- distances ------------------------------------------------------------------------------------

def test_visit_distances_are_squared_mahalanobis_distances_of_log_values():
    study = _study()
    visits = visit_distances(_vital_values(study))
    wide = (study["vs"].collect().pivot(on="VSTESTCD", index=["USUBJID", "VISITNUM"], values="VSSTRESN")
            .sort("USUBJID", "VISITNUM"))
    x = np.log(wide.select(CODES).to_numpy())                           # every vital sign is positive
    location, precision = robust_centre(x)
    expected = [scipy_mahalanobis(row, location, precision) ** 2 / 5 for row in x]
    assert visits.height == wide.height and set(visits["domain"]) == {"VS"}
    got = visits.sort("USUBJID").group_by("USUBJID", maintain_order=True).agg("distance")
    assert np.allclose(np.concatenate(got["distance"].to_list()), expected)
    # normal scores of the mid-rank percentiles: symmetric around 0, ordered as the distances
    assert visits["score"].mean() == pytest.approx(0.0, abs=1e-12)
    assert visits.select(pl.corr("distance", "score", method="spearman")).item() == pytest.approx(1.0)


def test_incomplete_vectors_are_left_out_and_subjects_need_enough_of_them():
    values = _vital_values(_study(per_site=4, sites="ABCDEF", visits=3)).collect()
    drop_one = values.filter(~((pl.col("USUBJID") == "A-0") & (pl.col("variable") == "VS:HR")
                               & (pl.col("VISITNUM") < 3)))
    visits = visit_distances(drop_one.lazy())
    assert visits.filter(pl.col("USUBJID") == "A-0").height == 1         # only visit 3 is complete
    subjects = subject_distances(visits, min_vectors=2)
    assert "A-0" not in subjects["USUBJID"].to_list() and subjects.height == 23


# --- the test -------------------------------------------------------------------------------------

def test_crowded_site_is_an_inlier_and_scattered_site_an_outlier():
    out = mahalanobis(_study(shrink={"C": 0.4, "F": 1.8})).sort("statistic")
    low, high = out.row(0, named=True), out.row(-1, named=True)
    assert low["site_id"] == "C" and low["statistic"] < -3 and low["p_value"] < 0.01 and low["effect"] < 0
    assert high["site_id"] == "F" and high["statistic"] > 3 and high["p_value"] < 0.01 and high["effect"] > 0
    assert set(out["variable"]) == {"VS"}
    # every site is in France, which has enough sites to be the comparison group
    assert low["description"].startswith("Subjects at site C have vital-sign results closer to the study's "
                                         "centre than at other sites in FRA, as invented data tend to be: "
                                         "median squared distance ")
    assert high["description"].startswith("Subjects at site F have vital-sign results further from the "
                                          "study's centre than at other sites in FRA: median squared "
                                          "distance ")
    assert high["description"].endswith("per variable (15 subjects)")


def test_tiny_sites_are_not_tested():
    study = _study(sites="ABCDEF", per_site=6)
    assert mahalanobis(study).height == 6
    assert mahalanobis(study, min_subjects=7).height == 0


@pytest.fixture(scope="module")
def fabricated():
    """12 sites; half of site 1002's subjects (171 enrolled) copy a real subject with damped visit noise."""
    return analysis_of(SynthConfig(sites=12, subjects=1200, countries=3, seed=5, months=18, anomalies=(
        AnomalySpec(type="fabricated_subjects", magnitude=0.5, sites=("1002",), start=0.0),)))


def test_detects_fabricated_subjects_as_inliers(fabricated):
    out = mahalanobis(fabricated).sort("p_value")
    top = out.row(0, named=True)
    assert top["site_id"] == "1002" and top["statistic"] < 0 and top["effect"] < 0
    assert top["p_value"] < 1e-3 and top["q_value"] < 0.01          # against the other sites in USA
    assert out["q_value"][1] > 0.05                                     # no other site follows


def test_clean_study_is_not_inflated(clean):
    p = mahalanobis(clean)["p_value"].to_numpy()
    assert len(p) == 40
    assert (p < 0.01).mean() <= 0.05 and (p < 0.05).mean() <= 0.12
    assert stats.kstest(p, "uniform").pvalue > 0.01
