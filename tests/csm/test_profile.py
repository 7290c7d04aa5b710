"""KRI profile outliers: the sites x KRIs matrix, the robust distance against numpy, the simulated
calibration, the finding rows, and detection of an odd operational profile on a synthetic study."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import polars as pl
import pytest
from sklearn.covariance import LedoitWolf, MinCovDet

from rbqm.csm import CSM_COLUMNS, kri_profile
from rbqm.csm._profile import _phrase, fit_profile, profile_matrix, profile_null, upper_tail
from rbqm.errors import RbqmError
from rbqm.kri import compute_kris, load_definitions
from synthetic import AnomalySpec, SynthConfig

from .conftest import analysis_of

CUT = date(2025, 1, 1)


def results(values: dict[str, dict[str, float | None]], *, method: str = "normal_approx_rate",
            methods: dict[str, str] | None = None, cut: date = CUT) -> pl.DataFrame:
    """KRI results from {kri_id: {site: score}} (metric = score; None = not scored)."""
    rows = [{"study_id": "S", "cut_date": cut, "level": "site", "group_id": site, "kri_id": kri,
             "metric": value, "score": value, "method": (methods or {}).get(kri, method)}
            for kri, per_site in values.items() for site, value in per_site.items()]
    return pl.DataFrame(rows, schema={"study_id": pl.String, "cut_date": pl.Date, "level": pl.String,
                                      "group_id": pl.String, "kri_id": pl.String, "metric": pl.Float64,
                                      "score": pl.Float64, "method": pl.String})


def gaussian_results(sites: int, kris: int, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(sites, kris))
    names = [f"{1001 + i}" for i in range(sites)]
    return results({f"kri{j:04d}": dict(zip(names, scores[:, j])) for j in range(kris)}), scores


# --- the matrix ---------------------------------------------------------------------------------


def test_matrix_uses_scores_robust_metrics_and_imputes_the_typical_value():
    sites = ["A", "B", "C", "D", "E"]
    table = results({
        "k1": dict(zip(sites, [1.0, -1.0, 0.5, None, 2.0])),          # z-like: scores as they are
        "k2": dict(zip(sites, [10.0, 12.0, 14.0, 20.0, 11.0])),       # identity: (x - 12) / (1.4826 x 2)
        "k3": dict(zip(sites, [1.0, None, None, None, 2.0])),          # scored at 2 of 5 sites: left out
        "k4": dict(zip(sites, [0.0, 0.0, 0.0, 1.0, 0.0])),             # identity with MAD 0: left out
    }, methods={"k2": "identity", "k4": "identity_count"})
    matrix, names, kris = profile_matrix(table)
    assert names == sites and kris == ["k1", "k2"]
    mad = 1.4826 * 2.0                                                 # |x - 12| = 2, 0, 2, 8, 1 -> median 2
    expected = np.array([[1.0, -2 / mad], [-1.0, 0.0], [0.5, 2 / mad], [0.0, 8 / mad], [2.0, -1 / mad]])
    np.testing.assert_allclose(matrix, expected, rtol=1e-12)


def test_matrix_reads_site_rows_of_the_latest_cut_and_drops_thin_sites_and_duplicate_kris():
    sites = [f"S{i}" for i in range(6)]
    base = {"k1": [0.1, 0.9, -1.2, 0.4, -0.3, 1.5], "k2": [1.0, -0.5, 0.3, -1.1, 0.8, -0.2],
            "k3": [0.2, 1.8, -2.4, 0.8, -0.6, 3.0]}                      # k3 = 2 x k1: left out
    latest = results({k: dict(zip(sites, v)) for k, v in base.items()})
    thin = results({"k1": {"S6": 1.0}, "k2": {"S6": None}, "k3": {"S6": None}})   # scored on 1 of 3: left out
    older = results({"k1": {"S0": 99.0}}, cut=date(2024, 1, 1))
    country = latest.with_columns(level=pl.lit("country"), group_id=pl.lit("FRA") + pl.col("group_id"))
    matrix, names, kris = profile_matrix(pl.concat([latest, thin, older, country]))
    assert names == sites and kris == ["k1", "k2"]
    np.testing.assert_allclose(matrix, np.array([base["k1"], base["k2"]]).T)


# --- the distance -------------------------------------------------------------------------------


def test_mcd_distance_equals_numpy_and_sklearn():
    x = np.random.default_rng(2).normal(size=(50, 4))
    x[3] = [5.0, -4.0, 0.0, 1.0]
    fit = fit_profile(x, seed=3)
    assert fit.method == "mcd"
    mcd = MinCovDet(random_state=3).fit(x)
    centred = x - mcd.location_
    by_hand = np.einsum("ij,jk,ik->i", centred, np.linalg.inv(mcd.covariance_), centred)
    np.testing.assert_allclose(fit.distance2, by_hand, rtol=1e-8)
    np.testing.assert_allclose(fit.distance2, mcd.mahalanobis(x), rtol=1e-8)
    np.testing.assert_allclose(fit.contributions.sum(axis=1), fit.distance2, rtol=1e-10)
    assert int(np.argmax(fit.distance2)) == 3


def test_fewer_than_two_sites_per_kri_use_winsorised_shrinkage():
    x = np.random.default_rng(4).normal(size=(12, 8))
    x[0, 0] = 30.0
    fit = fit_profile(x)
    assert fit.method == "shrinkage"
    centre = np.median(x, axis=0)
    scale = 1.4826 * np.median(np.abs(x - centre), axis=0)
    clipped = np.clip(x - centre, -3 * scale, 3 * scale)
    covariance = LedoitWolf(assume_centered=True).fit(clipped).covariance_
    by_hand = np.einsum("ij,jk,ik->i", x - centre, np.linalg.inv(covariance), x - centre)
    np.testing.assert_allclose(fit.distance2, by_hand, rtol=1e-8)
    assert int(np.argmax(fit.distance2)) == 0
    assert fit.contributions[0].argmax() == 0


def test_simulated_null_calibrates_where_the_chi_square_does_not():
    """On multivariate normal sites the simulated p-values are about uniform; the chi-square with
    as many df as KRIs would call a large share of them significant (MCD at 2 sites per KRI)."""
    shares = []
    for seed in range(4):
        table, _ = gaussian_results(40, 12, seed)
        shares.append((kri_profile(table)["p_value"] < 0.05).mean())
    assert 0.0 <= np.mean(shares) <= 0.12
    fit = fit_profile(gaussian_results(40, 12, 0)[1], seed=1)
    from scipy.stats import chi2
    assert (chi2.sf(fit.distance2, 12) < 0.05).mean() > 0.15
    null = profile_null(fit, seed=1)
    assert null.size == 40 * 10 and np.all(np.diff(null) >= 0)


# --- the findings -------------------------------------------------------------------------------


def test_rows_follow_the_csm_contract_and_name_the_drivers():
    table, scores = gaussian_results(40, 3, 1)
    table = table.with_columns(score=pl.when((pl.col("group_id") == "1005") & (pl.col("kri_id") == "kri0000"))
                               .then(-6.0).when((pl.col("group_id") == "1005") & (pl.col("kri_id") == "kri0001"))
                               .then(6.0).otherwise("score"))
    out = kri_profile(table, names={"kri0000": "Adverse event rate", "kri0001": "Query rate"})
    assert out.schema == pl.Schema(CSM_COLUMNS)
    assert set(out["test"]) == {"kri_profile"} and set(out["variable"]) == {"KRIs"}
    assert out["study_id"].unique().to_list() == ["S"] and out["cut_date"].unique().to_list() == [CUT]
    assert out.height == 40 and out.equals(out.sort(["variable", "site_id"]))
    assert out["p_value"].is_between(0, 1).all() and (out["q_value"] >= out["p_value"]).all()
    np.testing.assert_allclose(out["effect"] ** 2, out["statistic"], rtol=1e-12)
    top = out.sort("p_value").row(0, named=True)
    assert top["site_id"] == "1005" and top["q_value"] < 0.05
    assert re.fullmatch(r"Site 1005's KRI profile is unusual \(squared distance [\d.]+ where about [\d.]+ is "
                        r"typical, p < 0\.001\), mostly from adverse event rate \(low\) and query rate \(high\)",
                        top["description"]), top["description"]
    quiet = out.filter(pl.col("q_value") >= 0.05)["description"][0]
    assert "is within the usual range" in quiet and "its largest departures:" in quiet


def test_kri_names_read_inside_a_sentence():
    assert _phrase("Adverse event rate") == "adverse event rate"
    assert _phrase("PK sample compliance") == "PK sample compliance"


def test_too_few_sites_or_kris_give_no_rows():
    assert kri_profile(gaussian_results(9, 3, 0)[0]).height == 0
    assert kri_profile(gaussian_results(30, 1, 0)[0]).height == 0
    assert kri_profile(results({})).schema == pl.Schema(CSM_COLUMNS)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"seed": -1}, "'seed' parameter of kri_profile"),
    ({"min_scored_share": 0}, "'min_scored_share' parameter of kri_profile must be a number in"),
    ({"min_sites": 2}, "'min_sites' parameter of kri_profile"),
])
def test_bad_parameters_name_themselves(kwargs, message):
    with pytest.raises(RbqmError, match=message):
        kri_profile(gaussian_results(20, 3, 0)[0], **kwargs)


def test_a_table_that_is_not_kri_results_is_refused():
    with pytest.raises(RbqmError, match="lacks kri_id, method"):
        kri_profile(pl.DataFrame({"level": ["site"], "group_id": ["1"], "metric": [1.0], "score": [1.0],
                                  "cut_date": [CUT]}))


# --- on a synthetic study -----------------------------------------------------------------------


def test_slow_queries_and_late_entry_at_one_site_make_an_unusual_profile():
    """30 sites, ~30 subjects each; at 1007 queries are answered 5 times slower and pages entered 5
    times later. No single z-like KRI need flag it; the profile does, naming the two."""
    analysis = analysis_of(SynthConfig(sites=30, subjects=900, countries=3, seed=1, months=18, anomalies=(
        AnomalySpec(type="query_backlog", magnitude=5.0, sites=("1007",), start=0.0),
        AnomalySpec(type="late_data_entry", magnitude=5.0, sites=("1007",), start=0.0))))
    definitions = load_definitions()
    kri = compute_kris(analysis, definitions, study_id="S", cut_date=analysis.as_of)
    out = kri_profile(kri.results, names={d.id: d.name for d in definitions}).sort("p_value")
    assert out["site_id"][0] == "1007" and out["q_value"][0] < 0.05, out.head(3)
    assert "query response time (high)" in out["description"][0]
    assert "mean data-entry lag (high)" in out["description"][0]


def test_p_values_are_empirical_then_follow_the_fitted_tail():
    null = np.sort(np.random.default_rng(5).chisquare(4, 400))
    values = np.array([np.median(null), null[-10], null[-10] * (1 + 1e-9), null[-1] * 2, null[-1] * 4])
    p = upper_tail(null, values, kris=4)
    assert p[0] == pytest.approx(201 / 401)                      # 200 null values >= the median, + 1
    assert p[1] == pytest.approx(11 / 401)                       # the 10th largest: still empirical
    assert p[2] == pytest.approx(11 / 401, rel=1e-6)            # just beyond: the tail starts there
    assert np.all(np.diff(p) < 0) and p[-1] > 0
    assert p[3] < 1 / 401                                        # past the simulation's resolution
