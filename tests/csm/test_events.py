"""Event counts per subject: expected counts standardised for time on study (double-programmed with
plain loops), over-dispersed tails, and detection and calibration on synthetic studies."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import integrate, stats

from rbqm.csm import event_counts
from rbqm.csm._events import count_tails, site_events
from rbqm.derive import derive_tables

START = date(2024, 1, 1)
# subject -> (site, days on study, AE study days: 0 and below count on day 1, None is undated)
SUBJECTS = {
    "A-1": ("A", 10, [2, 5]), "A-2": ("A", 20, [15]), "A-3": ("A", 25, [1, 1, 24, 30]),
    "B-1": ("B", 10, []), "B-2": ("B", 30, [3, 25, 28]), "B-3": ("B", 5, [4]),
    "C-1": ("C", 20, [12]), "C-2": ("C", 30, [-2, None]), "C-3": ("C", 15, [2, 3, 5, 8, 8, 9, 11, 14]),
    "D-1": ("D", 12, [2]), "D-2": ("D", 28, []), "D-3": ("D", 18, [6, 7, 17]),
}


def _study(*, mh: dict[str, int] | None = None):
    dm = pl.DataFrame({
        "STUDYID": "E", "USUBJID": list(SUBJECTS), "SITEID": [s for s, _, _ in SUBJECTS.values()],
        "COUNTRY": "FRA", "ARMCD": "A", "RFSTDTC": START.isoformat(),
        "RFENDTC": [(START + timedelta(days=d - 1)).isoformat() for _, d, _ in SUBJECTS.values()]})
    ae = pl.DataFrame([{"USUBJID": u, "AESEQ": i, "AEDECOD": "X", "AESER": "N",
                        "AESTDTC": None if d is None else (START + timedelta(days=d - 1)).isoformat()}
                       for u, (_, _, days) in SUBJECTS.items() for i, d in enumerate(days)],
                      schema={"USUBJID": pl.String, "AESEQ": pl.Int64, "AEDECOD": pl.String,
                              "AESER": pl.String, "AESTDTC": pl.String})
    tables = {"dm": dm, "ae": ae}
    if mh:
        tables["mh"] = pl.DataFrame({"USUBJID": [u for u, k in mh.items() for _ in range(k)], "MHTERM": "Y"})
    return derive_tables(tables, as_of=date(2025, 1, 1))


def _by_loops(site: str) -> tuple[int, float]:
    """Observed and expected AEs of ``site`` by plain loops: each subject's expected count is the sum
    over its days on study of (the other sites' events that day / their subjects still on study)."""
    def placed(days: int, events: list) -> list[int]:
        return [min(max(1 if e is None else e, 1), days) for e in events]

    rest = [(d, placed(d, ev)) for s, d, ev in SUBJECTS.values() if s != site]
    expected = 0.0
    for s, days, _ in SUBJECTS.values():
        if s != site:
            continue
        for t in range(1, days + 1):
            at_risk = sum(1 for d, _ in rest if d >= t)
            expected += sum(ev.count(t) for _, ev in rest) / at_risk if at_risk else 0.0
    observed = sum(len(ev) for s, _, ev in SUBJECTS.values() if s == site)
    return observed, expected


def _phi_by_loops() -> float:
    """Pearson dispersion of subjects' counts about the study-wide mean cumulative curve scaled to
    their site."""
    placed = {u: [min(max(1 if e is None else e, 1), d) for e in ev] for u, (_, d, ev) in SUBJECTS.items()}

    def curve(days: int) -> float:
        total = 0.0
        for t in range(1, days + 1):
            at_risk = sum(1 for _, d, _ in SUBJECTS.values() if d >= t)
            total += sum(ev.count(t) for ev in placed.values()) / at_risk
        return total

    pearson, subjects, sites = 0.0, 0, set()
    for site in {s for s, _, _ in SUBJECTS.values()}:
        members = [u for u, (s, _, _) in SUBJECTS.items() if s == site]
        scale = sum(len(placed[u]) for u in members) / sum(curve(SUBJECTS[u][1]) for u in members)
        for u in members:
            fitted = curve(SUBJECTS[u][1]) * scale
            if fitted > 0:
                pearson += (len(placed[u]) - fitted) ** 2 / fitted
                subjects, sites = subjects + 1, sites | {site}
    return max(1.0, pearson / (subjects - len(sites)))


def test_expected_counts_follow_the_rest_of_the_study_by_study_day():
    counts = site_events(_study(), "ae")
    assert counts.site_id == ["A", "B", "C", "D"] and counts.subjects.tolist() == [3, 3, 3, 3]
    for i, site in enumerate(counts.site_id):
        observed, expected = _by_loops(site)
        assert counts.observed[i] == observed
        assert counts.expected[i] == pytest.approx(expected)
    assert counts.exposure[0] == pytest.approx((10 + 20 + 25) / 365.25)
    assert counts.phi == pytest.approx(_phi_by_loops())


def test_each_subjects_share_of_its_sites_counts():
    """Per subject: its records, and the rest of the study's events per subject at risk summed over its
    days on study (by loops); per site they add up to the site's observed and expected counts."""
    counts = site_events(_study(), "ae")
    rows = {r["USUBJID"]: r for r in counts.per_subject.iter_rows(named=True)}
    assert set(rows) == set(SUBJECTS)
    for subject, (site, days, events) in SUBJECTS.items():
        rest = [(d, [min(max(1 if e is None else e, 1), d) for e in ev]) for s, d, ev in SUBJECTS.values() if s != site]
        expected = sum(sum(ev.count(t) for _, ev in rest) / sum(1 for d, _ in rest if d >= t)
                       for t in range(1, days + 1) if any(d >= t for d, _ in rest))
        assert (rows[subject]["site_id"], rows[subject]["days"], rows[subject]["records"]) == (site, days, len(events))
        assert rows[subject]["expected"] == pytest.approx(expected)
    sums = counts.per_subject.group_by("site_id").agg(pl.col("records", "expected").sum()).sort("site_id")
    assert sums["records"].to_list() == counts.observed.tolist()
    assert sums["expected"].to_numpy() == pytest.approx(counts.expected)


def test_count_tails_are_poisson_negative_binomial_and_their_lognormal_mixture():
    observed, expected = np.array([0.0, 3.0, 12.0]), np.array([2.0, 3.0, 4.0])
    lower, upper = count_tails(observed, expected, phi=1.0, tau=0.0)
    assert np.allclose(lower, stats.poisson.cdf(observed, expected))
    assert np.allclose(upper, stats.poisson.sf(observed - 1, expected))
    lower, upper = count_tails(observed, expected, phi=2.5, tau=0.0)
    size = expected / 1.5                           # mean size (1 - p) / p = E and variance E / p = 2.5 E
    assert np.allclose(lower, stats.nbinom.cdf(observed, size, 0.4))
    assert np.allclose(upper, stats.nbinom.sf(observed - 1, size, 0.4))
    lower, upper = count_tails(observed, expected, phi=2.5, tau=0.6)
    for k in range(3):
        def mixed(z, tail):
            mean = expected[k] * np.exp(0.6 * z)
            return tail(observed[k], mean / 1.5) * stats.norm.pdf(z)
        below = integrate.quad(mixed, -10, 10, args=(lambda x, n: stats.nbinom.cdf(x, n, 0.4),))[0]
        above = integrate.quad(mixed, -10, 10, args=(lambda x, n: stats.nbinom.sf(x - 1, n, 0.4),))[0]
        assert lower[k] == pytest.approx(below, rel=1e-6) and upper[k] == pytest.approx(above, rel=1e-6)


def test_event_counts_by_hand():
    out = event_counts(_study(), min_subjects=3).sort("site_id")
    assert out["site_id"].to_list() == ["A", "B", "C", "D"] and set(out["variable"]) == {"AE"}
    observed, expected = _by_loops("A")
    phi = _phi_by_loops()                                    # 4 sites: no between-site allowance (tau = 0)
    assert phi > 2
    size, prob = expected / (phi - 1), 1 / phi
    p = min(1.0, 2 * min(stats.nbinom.cdf(observed, size, prob), stats.nbinom.sf(observed - 1, size, prob)))
    a = out.row(0, named=True)
    assert a["p_value"] == pytest.approx(p)
    assert a["statistic"] == pytest.approx(observed / ((10 + 20 + 25) / 365.25))
    assert a["effect"] == pytest.approx(np.log((observed + 0.5) / (expected + 0.5)))
    assert a["description"].startswith(f"Site A recorded 7 adverse events vs {round(expected, 1)} expected "
                                       "from subjects as long on study elsewhere (")
    assert a["description"].endswith("per subject-year; 3 subjects)")
    assert event_counts(_study(), min_subjects=4).height == 0


def test_medical_history_is_counted_per_subject():
    mh = {u: (6 if u.startswith("B") else 2) for u in SUBJECTS}
    out = event_counts(_study(mh=mh)).filter(variable="MH").sort("site_id")
    b = out.row(1, named=True)
    assert b["statistic"] == 6.0 and b["description"] == (
        "Site B recorded 18 medical history entries vs 6.0 expected from subjects elsewhere (6.0 vs 2.0 per "
        "subject; 3 subjects)")
    assert b["effect"] == pytest.approx(np.log(18.5 / 6.5))
    assert out.sort("p_value")["site_id"][0] == "B"


def test_detects_ae_under_reporting_and_clean_study_is_not_inflated(injected, clean):
    ae = event_counts(injected).filter(variable="AE").sort("p_value")
    top = ae.row(0, named=True)
    assert top["site_id"] == "1003" and top["effect"] < -1 and top["p_value"] < 0.02   # 80% unreported
    assert ae["p_value"][1] > 0.1
    p = event_counts(clean)["p_value"].to_numpy()
    assert len(p) == 80 and (p < 0.01).mean() <= 0.05 and (p < 0.05).mean() <= 0.1


def test_a_table_without_its_date_column_is_counted_per_subject():
    study = _study()
    cm = pl.DataFrame({"USUBJID": ["A-1", "A-1", "B-2", "C-1", "D-3"], "CMTRT": "PARACETAMOL"})
    tables = {"dm": study["subjects"].select("STUDYID", "USUBJID", "SITEID", "COUNTRY", "ARMCD", "RFSTDTC",
                                             "RFENDTC").collect(), "cm": cm}
    out = event_counts(derive_tables(tables, as_of=date(2025, 1, 1))).sort("site_id")
    assert set(out["variable"]) == {"CM"} and out["statistic"].to_list() == [2 / 3, 1 / 3, 1 / 3, 1 / 3]
    assert out["description"][0] == ("Site A recorded 2 concomitant medications vs 1.0 expected from "
                                     "subjects elsewhere (0.67 vs 0.33 per subject; 3 subjects)")
