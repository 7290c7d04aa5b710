"""Proportions of categorical values: chi-square against scipy, the Fisher fallback for small tables,
disposition reasons, and detection of serious AEs reported as non-serious on a synthetic study."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rbqm.csm import proportions
from rbqm.derive import derive_tables

from .battery_studies import SHIFTED, p_below, shifted_study

SEVERITY = ["MILD", "MODERATE", "SEVERE"]


def _ae_study(counts: dict[str, list[int]], *, ds: pl.DataFrame | None = None):
    """Per site, how many AEs of each severity (one subject per site); AESER = Y for SEVERE ones."""
    dm = pl.DataFrame({"STUDYID": "HAND", "USUBJID": [f"{s}-1" for s in counts], "SITEID": list(counts),
                       "COUNTRY": "FRA", "ARMCD": "A", "RFSTDTC": "2024-01-01"})
    rows = [{"USUBJID": f"{site}-1", "AEDECOD": "HEADACHE", "AESTDTC": "2024-02-01", "AESEV": severity,
             "AESER": "Y" if severity == "SEVERE" else "N"}
            for site, n in counts.items() for severity, k in zip(SEVERITY, n, strict=True) for _ in range(k)]
    ae = pl.DataFrame(rows).with_columns(AESEQ=pl.int_range(1, pl.len() + 1).over("USUBJID"))
    return derive_tables({"dm": dm, "ae": ae} | ({"ds": ds} if ds is not None else {}), as_of=date(2025, 1, 1))


def test_chi_square_and_the_category_that_differs_most():
    counts = {"A": [60, 30, 10], "B": [55, 35, 10], "C": [65, 25, 10], "D": [30, 28, 42]}
    out = proportions(_ae_study(counts)).filter(pl.col("variable") == "AE:AESEV")
    d = out.filter(pl.col("site_id") == "D").row(0, named=True)
    rest = np.sum([counts[s] for s in "ABC"], axis=0)
    chi2, p, dof, _ = stats.chi2_contingency(np.vstack([counts["D"], rest]), correction=False)
    assert (d["statistic"], d["p_value"]) == (pytest.approx(chi2, rel=1e-9), pytest.approx(p, rel=1e-9))
    assert dof == 2
    assert d["effect"] == pytest.approx(42 / 100 - 30 / 300)       # SEVERE differs most (MILD: -0.30)
    assert d["description"] == (f"AE severity at site D: SEVERE in 42% of 100 AEs vs 10% elsewhere "
                                f"(chi-square {round(chi2, 1)}; 3 categories)")


def test_small_tables_use_fisher_per_category_with_bonferroni():
    counts = {"A": [60, 30, 10], "B": [55, 35, 10], "C": [65, 25, 10], "E": [2, 3, 7]}
    out = proportions(_ae_study(counts))
    rest = np.sum([counts[s] for s in "ABC"], axis=0)
    e = out.filter((pl.col("site_id") == "E") & (pl.col("variable") == "AE:AESEV")).row(0, named=True)
    tables = [[[counts["E"][j], 12 - counts["E"][j]], [rest[j], 300 - rest[j]]] for j in range(3)]
    fisher = [stats.fisher_exact(t).pvalue for t in tables]
    assert min(stats.contingency.expected_freq(tables[2]).ravel()) < 5       # SEVERE: Fisher
    assert min(stats.contingency.expected_freq(tables[0]).ravel()) >= 5      # MILD: chi-square
    per_category = [stats.chi2_contingency(tables[0], correction=False)[1], fisher[1], fisher[2]]
    assert min(stats.contingency.expected_freq(tables[1]).ravel()) < 5
    assert e["p_value"] == pytest.approx(min(1.0, 3 * min(per_category)), rel=1e-9)   # Bonferroni
    # two categories (AESER): one Fisher test, no Bonferroni factor
    ser = out.filter((pl.col("site_id") == "E") & (pl.col("variable") == "AE:AESER")).row(0, named=True)
    assert ser["p_value"] == pytest.approx(fisher[2], rel=1e-9)
    # with two categories both differ as much: the description names the first one
    assert ser["description"].startswith("AE seriousness at site E: AESER = N in 42% of 12 AEs vs 90% elsewhere")


def test_categories_a_site_never_uses_count_as_zeros():
    counts = {"A": [60, 30, 10], "B": [55, 35, 10], "C": [65, 25, 10], "D": [70, 30, 0]}
    out = proportions(_ae_study(counts)).filter(pl.col("variable") == "AE:AESEV")
    d = out.filter(pl.col("site_id") == "D").row(0, named=True)
    rest = np.sum([counts[s] for s in "ABC"], axis=0)
    chi2, _, _, _ = stats.chi2_contingency(np.vstack([counts["D"], rest]), correction=False)
    assert d["statistic"] == pytest.approx(chi2, rel=1e-9)


def test_disposition_reasons_per_subcategory_without_completions():
    reasons = {"A": ["ADVERSE EVENT"] * 2 + ["WITHDRAWAL BY SUBJECT"] * 10 + ["COMPLETED"] * 30,
               "B": ["ADVERSE EVENT"] * 3 + ["WITHDRAWAL BY SUBJECT"] * 9,
               "C": ["ADVERSE EVENT"] * 10 + ["WITHDRAWAL BY SUBJECT"] * 2}
    ds = pl.DataFrame([{"USUBJID": f"{site}-1", "DSCAT": "DISPOSITION EVENT", "DSSCAT": "STUDY PARTICIPATION",
                        "DSDECOD": r, "DSSTDTC": "2024-06-01"} for site, rs in reasons.items() for r in rs]
                      + [{"USUBJID": "A-1", "DSCAT": "DISPOSITION EVENT", "DSSCAT": "SCREENING",
                          "DSDECOD": "SCREEN FAILURE", "DSSTDTC": "2024-01-01"}] * 12
                      + [{"USUBJID": "A-1", "DSCAT": "PROTOCOL MILESTONE", "DSSCAT": "STUDY PARTICIPATION",
                          "DSDECOD": "RANDOMIZED", "DSSTDTC": "2024-01-01"}] * 12)
    out = proportions(_ae_study({s: [5, 5, 5] for s in "ABC"}, ds=ds))
    disposition = out.filter(pl.col("variable").str.starts_with("DS:"))
    assert set(disposition["variable"]) == {"DS:DSDECOD (STUDY PARTICIPATION)"}  # SCREENING: one category
    c = disposition.filter(pl.col("site_id") == "C").row(0, named=True)
    chi2, p, _, expected = stats.chi2_contingency([[10, 2], [5, 19]], correction=False)
    assert expected.min() == pytest.approx(5.0)                              # large enough for chi-square
    assert (c["statistic"], c["p_value"]) == (pytest.approx(chi2, rel=1e-9), pytest.approx(p, rel=1e-9))
    assert c["description"].startswith("Disposition (study participation) at site C: ")
    assert "of 12 disposition events" in c["description"]                    # COMPLETED left out


def test_minimum_records():
    out = proportions(_ae_study({"A": [6, 2, 1], "B": [30, 20, 10], "C": [30, 20, 10]}))
    assert "A" not in set(out["site_id"])                                    # 9 AEs < 10
    assert "A" in set(proportions(_ae_study({"A": [6, 2, 1], "B": [30, 20, 10], "C": [30, 20, 10]}),
                                  min_records=9)["site_id"])


def test_detects_serious_aes_reported_as_non_serious():
    site, _ = SHIFTED["sae_under_reporting"]
    out = proportions(shifted_study()).filter(pl.col("variable") == "AE:AESER").sort("p_value")
    top = out.row(0, named=True)
    assert top["site_id"] == site and top["q_value"] < 0.01 and top["effect"] > 0
    assert top["description"].startswith(f"AE seriousness at site {site}: AESER = N in ")


def test_clean_study_is_not_inflated(clean):
    out = proportions(clean)
    assert out.height > 150
    assert p_below(out, 0.01) < 0.03 and p_below(out, 0.05) < 0.1
    assert (out["q_value"] > 0.05).all()
