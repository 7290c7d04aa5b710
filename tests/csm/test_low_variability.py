"""Low within-subject variability (fabrication): subject scores, the exact test, and detection on
synthetic studies."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rbqm.csm import low_variability
from rbqm.csm._variability import _strata, subject_scores

from .conftest import hand_study

CODES = ["SYSBP", "DIABP", "HR", "TEMP", "WEIGHT"]


def _study(*, steady_site: str | None, visits=8, sites="ABCDEF", per_site=10, seed=1, factor=0.2):
    """Subjects with a level per variable and visit-to-visit noise (times ``factor`` at ``steady_site``)."""
    rng = np.random.default_rng(seed)
    subjects, rows = {}, []
    for site in sites:
        for k in range(per_site):
            subject = f"{site}-{k}"
            n = visits if isinstance(visits, int) else visits[k % len(visits)]
            subjects[subject] = (site, ["2024-01-01"], [])
            level = rng.normal(100, 10, len(CODES))
            noise = rng.normal(0, 5, (n, len(CODES))) * (factor if site == steady_site else 1.0)
            for v in range(n):
                rows += [{"USUBJID": subject, "VSTESTCD": c, "VISITNUM": float(v + 1), "VSDTC": "2024-01-01",
                          "VSSTRESN": round(float(level[j] + noise[v, j]), 1)}
                         for j, c in enumerate(CODES)]
    return hand_study(subjects, extra={"vs": pl.DataFrame(rows)})


def test_steady_site_gets_the_exact_hypergeometric_p_value():
    out = low_variability(_study(steady_site="F"), steady_share=0.2)
    f = out.filter(pl.col("site_id") == "F").row(0, named=True)
    steady_total = int(out["statistic"].sum())
    assert f["statistic"] == 10                                       # all of F's subjects are steady
    assert f["p_value"] == pytest.approx(stats.hypergeom.sf(9, 60, steady_total, 10))
    assert f["effect"] == pytest.approx(1 - (steady_total - 10) / 50)
    assert out.sort("p_value")["site_id"][0] == "F"
    assert f["description"].startswith("At site F, 10 of 10 subjects (100%) have vital-sign results steadier "
                                       "from visit to visit than 80% of subjects in the study (")
    assert "% less than typical" in f["description"]


def test_subject_score_is_low_for_steady_subjects_only():
    study = _study(steady_site="F")
    values = study.with_sites("vs").select(site_id="SITEID", USUBJID="USUBJID",
                                           variable=pl.lit("VS:") + pl.col("VSTESTCD"), VISITNUM="VISITNUM",
                                           value="VSSTRESN")
    scores = subject_scores(values)
    assert scores.height == 60 and (scores["variables"] == 5).all()
    by_site = scores.group_by("site_id").agg(pl.col("score").max()).sort("site_id")
    assert by_site.filter(pl.col("site_id") == "F")["score"].item() < scores.filter(
        pl.col("site_id") != "F")["score"].min()


def test_fewer_visits_do_not_look_steadier():
    """Sample SDs of 3 values are smaller on average than of 12: each subject is ranked against subjects
    with as many results, so a site whose subjects have few visits is not flagged."""
    subjects_visits = {"A": 3, "B": 12, "C": 12, "D": 3, "E": 12, "F": 12}
    rng = np.random.default_rng(5)
    subjects, rows = {}, []
    for site, n in subjects_visits.items():
        for k in range(40):
            subject = f"{site}-{k}"
            subjects[subject] = (site, ["2024-01-01"], [])
            noise = rng.normal(0, 5, (n, len(CODES)))
            rows += [{"USUBJID": subject, "VSTESTCD": c, "VSSTRESN": float(100 + noise[v, j]),
                      "VISITNUM": float(v + 1), "VSDTC": "2024-01-01"}
                     for v in range(n) for j, c in enumerate(CODES)]
    out = low_variability(hand_study(subjects, extra={"vs": pl.DataFrame(rows)}))
    assert out["p_value"].min() > 0.01


def test_strata_pool_small_groups():
    counts = pl.DataFrame({"variable": ["X"] * 5, "n": [12, 11, 10, 4, 3], "subjects": [50, 5, 20, 10, 3]})
    got = _strata(counts, 30).sort("n", descending=True)["stratum"].to_list()
    assert got == [0, 1, 1, 1, 1]      # 50 alone; 5 + 20 + 10 = 35; the last 3 join the stratum before


def test_detects_fabricated_subjects(injected, clean):
    out = low_variability(injected).sort("p_value")
    top = out.row(0, named=True)
    assert top["site_id"] == "1015"
    assert top["p_value"] < 1e-6 and top["q_value"] < 1e-5
    assert out["p_value"][1] > 1e-3                                   # the next site is far behind
    assert low_variability(clean).filter(pl.col("site_id") == "1015")["p_value"].item() > 0.05


def test_clean_study_p_values_are_roughly_uniform(clean):
    p = low_variability(clean)["p_value"].to_numpy()
    assert len(p) >= 38
    assert (p < 0.05).mean() < 0.12 and (out := stats.kstest(p, "uniform")).pvalue > 0.001, out
