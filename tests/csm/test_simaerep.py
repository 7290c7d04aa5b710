"""AE under-reporting (simaerep, reference section 6): hand-derivable nulls, a double-programmed loop
implementation, the published simulation figures, and detection on synthetic studies."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

import rbqm.csm._simaerep as simaerep
from rbqm.csm import ae_under_reporting
from rbqm.csm._simaerep import (
    SubjectVisits, event_probabilities, simulate_sites, site_variation, subject_visits,
)
from rbqm.derive import to_date

from .conftest import hand_study

WEEKLY = ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"]


def _row(out: pl.DataFrame, site: str) -> dict:
    return out.filter(pl.col("site_id") == site).row(0, named=True)


def test_ae_is_counted_at_the_first_visit_on_or_after_onset():
    study = hand_study({
        # before the first visit -> visit 1; on a visit date -> that visit; between two -> the next one;
        # after the last -> not counted
        "S-1": ("A", WEEKLY, ["2023-12-30", "2024-01-08", "2024-01-09", "2024-01-10", "2024-02-01"]),
        "S-2": ("A", WEEKLY[:2], []),
        "S-3": ("B", WEEKLY[:3], ["2024-01", None]),  # partial -> 2024-01-01 -> visit 1; no onset: dropped
    })
    data = subject_visits(study)
    assert data.site_id == ["A", "B"]
    assert data.site.tolist() == [0, 0, 1]
    assert data.visits.tolist() == [4, 2, 3]
    assert data.cumulative.tolist() == [[1, 2, 4, 4], [0, 0, 0, 0], [1, 1, 1, 0]]


def test_visits_are_ordered_by_date_and_screen_failures_left_out():
    study = hand_study({"S-1": ("A", ["2024-01-15", "2024-01-01", "2024-01-08"], ["2024-01-05"]),
                        "S-2": ("A", ["2024-01-01"], [])})
    dm = study["subjects"].with_columns(ARMCD=pl.when(pl.col("USUBJID") == "S-2").then(pl.lit("SCRNFAIL"))
                                        .otherwise(pl.col("ARMCD")))
    # visit numbers given in another order than dates: the date decides (the AE of 01-05 is at the 2nd visit)
    data = subject_visits(type(study)({**study.tables, "subjects": dm.with_columns(
        enrolled=pl.col("ARMCD") != "SCRNFAIL")}, study.sources, study.as_of))
    assert data.visits.tolist() == [3]
    assert data.cumulative.tolist() == [[0, 1, 1]]


def test_null_takes_the_donor_at_the_same_visit_not_its_last():
    """Site A's subject has 2 visits and no AE; everyone else reports AEs only from visit 3 on, so at
    visit 2 every donor has 0 AEs: no evidence of under-reporting (event_prob 0, p-value 1)."""
    subjects = {"A-1": ("A", WEEKLY[:2], [])}
    subjects |= {f"B-{i}": ("B", WEEKLY, ["2024-01-12", "2024-01-20"]) for i in range(9)}
    out = ae_under_reporting(hand_study(subjects), r=500, seed=3)
    a = _row(out, "A")
    assert a["statistic"] == 0.0 and a["effect"] == 0.0 and a["p_value"] == 1.0
    # B's subjects (4 visits) can only be replaced by B's subjects: the null is the observation itself
    assert _row(out, "B")["effect"] == 0.0


def test_probabilities_match_the_hand_derived_null():
    """A: 1 subject, 0 AEs; B: 9 subjects with 1 AE each; all 3 visits. A's replacement is A itself
    with probability 1/10, so p_under(A) = 0.1 and P(under) = 0.9, expected 0.9 AEs / 3 visits; B's
    total is Binomial(9, 0.9), p_over(B) = 0.9^9. BH over the 2 sites: q_under(A) = 0.2, q_over(B) =
    2 x 0.9^9, so event_prob(A) = -0.8 and event_prob(B) = 1 - 2 x 0.9^9."""
    visits = WEEKLY[:3]
    subjects = {"A-1": ("A", visits, [])} | {f"B-{i}": ("B", visits, ["2024-01-03"]) for i in range(9)}
    out = ae_under_reporting(hand_study(subjects), r=40_000, seed=11)
    a, b = _row(out, "A"), _row(out, "B")
    assert a["statistic"] == 0.0 and b["statistic"] == pytest.approx(1 / 3)
    assert a["effect"] == pytest.approx(-0.8, abs=0.006)
    assert a["p_value"] == pytest.approx(0.2, abs=0.006)          # two-sided: 2 x p_under
    assert b["effect"] == pytest.approx(1 - 2 * 0.9**9, abs=0.01)
    assert b["p_value"] == pytest.approx(2 * 0.9**9, abs=0.01)
    assert "Site A reported 0.0 AEs per visit vs 0.3 expected" in a["description"]
    assert "P(under-reporting) = 0.8" in a["description"]


def test_subjects_with_more_visits_than_anyone_are_compared_with_themselves():
    subjects = {"A-1": ("A", WEEKLY + ["2024-01-29"], [])}
    subjects |= {f"B-{i}": ("B", WEEKLY, ["2024-01-03"] * 3) for i in range(5)}
    out = ae_under_reporting(hand_study(subjects), r=300)
    assert _row(out, "A")["effect"] == 0.0


def _bh(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    q = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = running
    return q


def _slow_reference(analysis, *, r: int, seed: int, overdispersion: bool) -> dict[str, tuple]:
    """simaerep with plain loops, from the raw tables: {site: (AEs per visit, two-sided p, event_prob)}."""
    subjects = analysis["subjects"].select("USUBJID", "SITEID", "enrolled").collect()
    enrolled = {u: s for u, s, e in subjects.iter_rows() if e}
    visits: dict[str, list] = {}
    sv = analysis["sv"].select("USUBJID", "VISITNUM", to_date("SVSTDTC").alias("d")).collect()
    for u, num, d in sv.iter_rows():
        if u in enrolled and d is not None:
            visits.setdefault(u, []).append((d, num))
    onsets: dict[str, list] = {}
    for u, d in analysis["ae"].select("USUBJID", to_date("AESTDTC").alias("d")).collect().iter_rows():
        if d is not None:
            onsets.setdefault(u, []).append(d)
    order = sorted(visits, key=lambda u: (enrolled[u], u))
    cum, n_visits = {}, {}
    for u in order:
        dates = [d for d, _ in sorted(visits[u])]
        per = [0] * len(dates)
        for onset in onsets.get(u, []):
            later = [k for k, d in enumerate(dates) if d >= onset]
            if later:
                per[later[0]] += 1
        running, cum[u] = 0, []
        for k in range(len(dates)):
            running += per[k]
            cum[u].append(running)
        n_visits[u] = len(dates)
    pool = sorted(order, key=lambda u: -n_visits[u])  # stable: ties keep (site, USUBJID) order
    u_draws = np.random.default_rng(seed).random((len(order), r))
    sites = sorted(set(enrolled[u] for u in order))
    observed, totals, visit_sum = {}, {}, {}
    for site in sites:
        members = [i for i, u in enumerate(order) if enrolled[u] == site]
        observed[site] = sum(cum[order[i]][-1] for i in members)
        visit_sum[site] = sum(n_visits[order[i]] for i in members)
        totals[site] = []
        for rep in range(r):
            total = 0
            for i in members:
                v = n_visits[order[i]]
                candidates = [w for w in pool if n_visits[w] >= v]
                donor = candidates[int(u_draws[i, rep] * len(candidates))]
                total += cum[donor][v - 1]
            totals[site].append(total)
    tau = 0.0
    if overdispersion:
        ys, vs = [], []
        for site in sites:
            e, var = np.mean(totals[site]), np.var(totals[site])
            if var > 0:
                ys.append(np.log((observed[site] + 0.5) / (e + 0.5)))
                vs.append(var / (e + 0.5) ** 2)
        if len(ys) >= 10:
            for step in range(601):
                t = step * 0.005
                if np.median([y * y / (v + t * t) for y, v in zip(ys, vs)]) <= stats.chi2.median(1):
                    tau = t
                    break
    noise = np.random.default_rng((seed, 1)).standard_normal((len(sites), r))
    p_under, p_over = [], []
    for k, site in enumerate(sites):
        sims = [t * np.exp(tau * noise[k, j]) if tau else t for j, t in enumerate(totals[site])]
        p_under.append(sum(s <= observed[site] for s in sims) / r)
        p_over.append(sum(s >= observed[site] for s in sims) / r)
    q_under, q_over = _bh(p_under), _bh(p_over)
    out = {}
    for k, site in enumerate(sites):
        under, over = 1 - q_under[k], 1 - q_over[k]
        event = -under if under > over else over if over > under else 0.0
        out[site] = (observed[site] / visit_sum[site], min(1.0, 2 * min(p_under[k], p_over[k])), event)
    return out


@pytest.mark.parametrize("overdispersion", [False, True])
def test_vectorised_equals_slow_reference(small, monkeypatch, overdispersion):
    monkeypatch.setattr(simaerep, "_BLOCK", 300)  # many blocks of whole sites: the stream must not change
    out = ae_under_reporting(small, r=40, seed=7, overdispersion=overdispersion)
    reference = _slow_reference(small, r=40, seed=7, overdispersion=overdispersion)
    assert sorted(reference) == out["site_id"].to_list()
    for site, rate, p, event in out.select("site_id", "statistic", "p_value", "effect").iter_rows():
        assert (rate, p, event) == pytest.approx(reference[site], abs=1e-12), site
    if overdispersion:
        data = subject_visits(small)
        totals = simulate_sites(data, r=40, seed=7)
        last = data.cumulative[np.arange(len(data.visits)), data.visits - 1]
        assert site_variation(np.bincount(data.site, weights=last), totals) > 0  # the noise branch ran


def _published_study(rng: np.random.Generator, under: float) -> SubjectVisits:
    """The published simulation: 20 sites x 10 subjects, 20 +- 2 visits, Poisson 0.5 AEs per visit;
    site 0 reports ``1 - under`` of its AEs."""
    site = np.repeat(np.arange(20), 10)
    visits = np.maximum(1, np.round(rng.normal(20, 2, 200))).astype(np.int64)
    rate = np.where(site == 0, 0.5 * (1 - under), 0.5)
    per_visit = rng.poisson(rate[:, None], (200, visits.max())) * (np.arange(visits.max()) < visits[:, None])
    return SubjectVisits([str(s) for s in range(20)], site, visits, per_visit.cumsum(axis=1))


@pytest.mark.parametrize("overdispersion", [False, True])
@pytest.mark.parametrize(("under", "low", "high"), [(0.5, 0.93, 1.0), (0.25, 0.12, 0.50)])
def test_published_true_and_false_positive_rates(overdispersion, under, low, high):
    """Reference 6: at threshold 0.95 after BH, TPR 0.976 at 50% and 0.272 at 25% under-reporting,
    FPR 0.0014-0.0023 (100 studies here: a binomial sd of 0.015 and 0.045)."""
    rng = np.random.default_rng(2024)
    hits, false = 0, 0
    for s in range(100):
        data = _published_study(rng, under)
        totals = simulate_sites(data, r=1000, seed=s)
        observed = np.bincount(data.site, weights=data.cumulative[np.arange(200), data.visits - 1])
        tau = site_variation(observed, totals) if overdispersion else 0.0
        event = event_probabilities(observed, totals, tau=tau, seed=s).event_prob
        hits += event[0] <= -0.95
        false += (event[1:] <= -0.95).sum()
    assert low <= hits / 100 <= high
    assert false / 1900 <= 0.006


def test_detects_injected_under_reporting(injected, clean):
    out, before = ae_under_reporting(injected), ae_under_reporting(clean)
    assert _row(out, "1003")["effect"] <= -0.95                   # 80% of AEs missing
    assert _row(before, "1003")["effect"] > -0.5
    # 50% missing is about 2 sds of the trial's natural between-site variation of AE rates (site and
    # country effects, log sd ~0.3 here): the site moves among the most suspicious, but not beyond them
    half, half_before = _row(out, "1005"), _row(before, "1005")
    assert half["p_value"] < half_before["p_value"] / 5 and half["effect"] < half_before["effect"] - 0.3
    under = out.filter(pl.col("effect") < 0).sort("p_value")["site_id"].to_list()
    assert under[0] == "1003" and "1005" in under[:5]


def test_clean_study_flags_no_site_and_p_values_are_uniform(clean):
    out = ae_under_reporting(clean)
    assert out.height == 40
    assert (out["effect"].abs() >= 0.95).sum() == 0
    p = out["p_value"].to_numpy()
    assert stats.kstest(p, "uniform").pvalue > 0.01 and (p < 0.05).mean() < 0.12


def test_published_method_flags_natural_site_variation(injected, clean):
    """Without the allowance for between-site variation (overdispersion=False) the 50% site is found,
    but the synthetic trial's natural site effects on AE rates (log sd ~0.25) light up many clean sites:
    why the allowance is the default."""
    assert _row(ae_under_reporting(injected, overdispersion=False), "1005")["effect"] <= -0.95
    plain = ae_under_reporting(clean, overdispersion=False)
    assert (plain["effect"].abs() >= 0.95).sum() >= 5


def test_serious_counts_only_serious_events(clean):
    all_ae, serious = ae_under_reporting(clean, r=200), ae_under_reporting(clean, r=200, serious=True)
    assert set(serious["test"]) == {"sae_under_reporting"} and set(serious["variable"]) == {"AE:SERIOUS"}
    assert (serious["statistic"] < 0.2 * all_ae["statistic"]).all()
    assert serious["description"][0].split(" per visit")[0].endswith("serious AEs")


def test_same_seed_same_result_other_seed_differs(small):
    one, again = ae_under_reporting(small, r=100, seed=4), ae_under_reporting(small, r=100, seed=4)
    assert one.equals(again)
    assert not one["p_value"].equals(ae_under_reporting(small, r=100, seed=5)["p_value"])
