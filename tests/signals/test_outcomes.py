"""rbqm.outcomes: each actioned signal's indicator at its action's cut against the latest later cut, by
hand-computed cases of every kind, the documented margins, and a property check against a plain
re-implementation."""

from __future__ import annotations

import math
from datetime import date

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbqm.analysis import Analysis
from rbqm.csm import CSM_COLUMNS
from rbqm.outcomes import OUTCOME_COLUMNS, OUTCOMES, signal_outcomes, summarize_outcomes
from rbqm.signal_workflow import load_workflow

CUTS = [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]


def _analysis(kri: dict[str, list[tuple[float | None, int | None]]] | None = None,
              csm: dict[str, list[float]] | None = None, qtl: list[tuple[float, str]] | None = None,
              cuts: list[date] = CUTS) -> Analysis:
    """KRI kri0010 per site: (score, flag) per cut; CSM digit preference per site: q per cut; QTL qtl0001:
    (estimate, status) per cut with a tolerance limit of 0.2."""
    kri, csm, qtl = kri or {}, csm or {}, qtl or []
    results = pl.DataFrame([{"study_id": "S", "cut_date": cut, "level": "site", "group_id": site, "kri_id": "kri0010",
                             "score": score, "flag": flag}
                            for site, values in kri.items() for cut, (score, flag) in zip(cuts, values)],
                           schema={"study_id": pl.String, "cut_date": pl.Date, "level": pl.String,
                                   "group_id": pl.String, "kri_id": pl.String, "score": pl.Float64, "flag": pl.Int8})
    findings = pl.DataFrame([{"study_id": "S", "cut_date": cut, "site_id": site, "test": "digit_preference",
                              "variable": "VS:SYSBP", "statistic": 1.0, "p_value": q, "q_value": q, "effect": 0.1,
                              "description": "Systolic BP ends in 0 too often."}
                             for site, values in csm.items() for cut, q in zip(cuts, values)], schema=CSM_COLUMNS)
    qtls = pl.DataFrame([{"study_id": "S", "cut_date": cut, "qtl_id": "qtl0001", "estimate": estimate, "limit": 0.2,
                          "secondary_limit": 0.15, "status": status} for cut, (estimate, status) in zip(cuts, qtl)],
                        schema={"study_id": pl.String, "cut_date": pl.Date, "qtl_id": pl.String,
                                "estimate": pl.Float64, "limit": pl.Float64, "secondary_limit": pl.Float64,
                                "status": pl.String})
    return Analysis("S", cuts, results if kri else pl.DataFrame(), pl.DataFrame(), pl.DataFrame(), qtls, findings)


def _baselines(*rows: tuple[str, date]) -> pl.DataFrame:
    return pl.DataFrame({"study_id": "S", "signal_id": [r[0] for r in rows], "planned_cut": [r[1] for r in rows]})


def test_kri_cases_by_hand():
    analysis = _analysis(kri={
        "1": [(3.5, 2), (2.4, 1), (0.5, 0)],    # red -> not flagged: improved
        "2": [(2.5, 1), (2.9, 1), (3.2, 2)],    # amber -> red: worsened
        "3": [(2.9, 1), (2.1, 1), (2.05, 1)],   # amber, |z| 2.9 -> 2.05: moved 0.85 < 1: unchanged
        "4": [(-3.9, 2), (-3.5, 2), (-3.1, 2)],  # red, |z| 3.9 -> 3.1: unchanged; from cut 2: 3.5 -> 3.1 too
        "5": [(-4.6, 2), (-3.6, 2), (-3.2, 2)],  # red, |z| 4.6 -> 3.2: moved 1.4 toward 0: improved
        "6": [(2.1, 1), (2.2, 1), (None, None)],  # amber -> too few to score (flag empty = level 0): improved
    })
    ids = [f"kri0010@{i}" for i in range(1, 7)]
    out = signal_outcomes(analysis, _baselines(*((i, CUTS[0]) for i in ids)))
    assert out.schema == pl.Schema(OUTCOME_COLUMNS)
    assert out.select("signal_id", "outcome").rows() == list(zip(ids, [
        "improved", "worsened", "unchanged", "unchanged", "improved", "improved"]))
    five = out.row(4, named=True)
    assert (five["baseline_level"], five["baseline_strength"], five["compared_cut"], five["level"],
            five["strength"]) == (2, 4.6, CUTS[2], 2, 3.2)
    assert five["note"] == ("red at 2025-01-01 (strength 4.6); red at 2025-03-01 (strength 3.2): strength moved "
                            "-1.4 (margin 1.0).")
    assert out.row(0, named=True)["note"] == ("red at 2025-01-01 (strength 3.5); not flagged at 2025-03-01 "
                                              "(strength 0.5).")


def test_too_early_until_a_later_cut_exists():
    analysis = _analysis(kri={"1": [(3.5, 2), (2.4, 1), (0.5, 0)]})
    baselines = _baselines(("kri0010@1", CUTS[1]))
    assert signal_outcomes(analysis, baselines, as_of=CUTS[1])["outcome"].to_list() == ["too_early"]
    assert signal_outcomes(analysis, baselines, as_of=CUTS[1])["note"][0] == (
        "amber at 2025-02-01 (strength 2.4); no later cut yet.")
    assert signal_outcomes(analysis, baselines).row(0, named=True)["outcome"] == "improved"
    # a baseline between cuts takes the last analysed cut before it
    between = signal_outcomes(analysis, _baselines(("kri0010@1", date(2025, 1, 20))))
    assert (between["baseline_level"][0], between["compared_cut"][0]) == (2, CUTS[2])
    assert signal_outcomes(analysis, _baselines(("kri0099@1", CUTS[0]))).is_empty()  # unknown signal


def test_csm_and_qtl_margins():
    analysis = _analysis(csm={"7": [0.004, 0.003, 0.0095], "8": [0.004, 0.0004, 0.0003]},
                         qtl=[(0.21, "tolerance limit breached"), (0.26, "tolerance limit breached"),
                              (0.235, "tolerance limit breached")])
    out = signal_outcomes(analysis, _baselines(("csm:digit_preference:VS:SYSBP@7", CUTS[0]),
                                               ("csm:digit_preference:VS:SYSBP@8", CUTS[0]),
                                               ("qtl0001@study", CUTS[0]), ("qtl0001@study", CUTS[0])))
    rows = {r["signal_id"]: r for r in out.iter_rows(named=True)}
    # q 0.004 -> 0.0095: red both, -log10 q moved 2.398 -> 2.022 (0.38 < 1): unchanged
    assert rows["csm:digit_preference:VS:SYSBP@7"]["outcome"] == "unchanged"
    # q 0.004 -> 0.0003: -log10 q 2.398 -> 3.523, away from normal by 1.12 >= 1: worsened
    eight = rows["csm:digit_preference:VS:SYSBP@8"]
    assert eight["outcome"] == "worsened" and eight["strength"] == pytest.approx(-math.log10(0.0003))
    # estimate / limit 1.05 -> 1.175: moved 0.125 >= 0.1 away: worsened
    assert rows["qtl0001@study"]["outcome"] == "worsened"
    assert rows["qtl0001@study"]["baseline_strength"] == pytest.approx(1.05)


def test_summary_share_against_the_benchmark():
    outcomes = pl.DataFrame({"outcome": ["improved"] * 5 + ["unchanged", "worsened", "too_early", "too_early"]})
    summary = summarize_outcomes(outcomes)
    assert (summary.improved, summary.unchanged, summary.worsened, summary.too_early, summary.assessed) == (
        5, 1, 1, 2, 7)
    assert summary.share_improved == pytest.approx(5 / 7)
    assert (summary.benchmark, summary.benchmark_source.startswith("de Viron")) == (0.83, True)
    assert summarize_outcomes(pl.DataFrame({"outcome": ["too_early"]})).share_improved is None
    assert set(OUTCOMES) == {"improved", "unchanged", "worsened", "too_early"}


flags = st.tuples(st.floats(-6, 6, allow_nan=False).map(lambda x: round(x, 3)), st.integers(0, 2))


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.lists(flags, min_size=3, max_size=3), min_size=1, max_size=6),
       planned=st.integers(0, 2))
def test_outcome_matches_a_plain_reimplementation(values, planned):
    """improved iff the level fell, or at the same level |score| fell by >= the margin; worsened the
    mirror image; too early without a later cut."""
    margin = load_workflow().outcomes.margins["kri"]
    kri = {str(i): [(score, level) for score, level in site] for i, site in enumerate(values)}
    out = signal_outcomes(_analysis(kri=kri), _baselines(*((f"kri0010@{i}", CUTS[planned]) for i in kri)))
    for site, row in zip(kri, out.sort("signal_id").iter_rows(named=True)):
        (b_score, b_level), (score, level) = kri[site][planned], kri[site][-1]
        if planned == 2:
            expected = "too_early"
        elif level != b_level:
            expected = "improved" if level < b_level else "worsened"
        else:
            moved = abs(score) - abs(b_score)
            expected = "improved" if moved <= -margin else "worsened" if moved >= margin else "unchanged"
        assert row["outcome"] == expected, (kri[site], planned)
