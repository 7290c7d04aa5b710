"""Central statistical monitoring (CSM): statistical tests that compare each site with the rest of
the study, all returning one finding table (``CSM_COLUMNS``; docs/csm.md).

* :func:`ae_under_reporting`: AEs per visit against simulated similar subjects (simaerep).
* :func:`digit_preference`: terminal digits of vital signs and lab results, site vs rest.
* :func:`low_variability`: within-subject visit-to-visit variability, site vs rest (fabrication).
* :func:`mean_shift`, :func:`variance`, :func:`distribution`: subject-level means, spread and
  distribution of each vital sign and lab result, site vs its country or the rest of the study.
* :func:`missingness`, :func:`rounding`: shares of empty and of rounded results, site vs rest.
* :func:`proportions`: AE severity, grade, seriousness, causality and disposition reasons, site vs rest.
* :func:`mahalanobis`: subjects whose lab and vital-sign visits lie too close to (or far from) the
  study's robust centre; :func:`duplicates`: copied visit records and repeated readings.
* :func:`visit_dates`, :func:`visit_regularity`, :func:`date_order`: weekend and holiday visits,
  too regular visit schedules, dates in an impossible order; :func:`event_counts`: events per subject.
* :func:`run_csm`: all of them stacked; :func:`skipped_tests` says which could not run and why.
* :func:`kri_profile`: sites whose KRI profile is unusual (robust Mahalanobis distance over the KRIs).
* :func:`data_inconsistency`: each site's p-values combined into one score, calibrated by permuting
  site labels (:func:`permute_sites`).

Building blocks other modules use (``rbqm.where_to_look`` names the subjects and visits behind a
finding with them): :func:`measurements` (the vs and lb results the tests read),
:func:`subject_scores` (each subject's visit-to-visit variability, as ``low_variability`` scores it),
:func:`subject_regularity` (each subject's visit-schedule regularity, as ``visit_regularity`` scores
it) and :func:`scheduled_visits` (each scheduled visit's deviation from the usual study day),
:func:`visit_calendar` (each visit, and whether it fell on a weekend or public holiday, as
``visit_dates`` counts them; :func:`holiday_calendar` gives the calendars) and
:func:`impossible_dates` (the records ``date_order`` counts, each with what its date contradicts).
"""

from __future__ import annotations

from datetime import date

import polars as pl

from rbqm.csm._contract import CSM_COLUMNS, check_analysis, check_integer, measurements
from rbqm.csm._digits import digit_preference
from rbqm.csm._inconsistency import auto_permutations, data_inconsistency
from rbqm.csm._permute import permute_sites
from rbqm.csm._profile import kri_profile
from rbqm.csm._simaerep import ae_under_reporting
from rbqm.csm._variability import low_variability, subject_scores
from rbqm.csm._categorical import proportions
from rbqm.csm._distribution import distribution
from rbqm.csm._means import mean_shift
from rbqm.csm._missingness import missingness
from rbqm.csm._rounding import rounding
from rbqm.csm._spread import variance
from rbqm.csm._dates import (
    date_order, holiday_calendar, impossible_dates, scheduled_visits, subject_regularity, visit_calendar,
    visit_dates, visit_regularity,
)
from rbqm.csm._duplicates import duplicates
from rbqm.csm._events import EVENT_TABLES, SiteEvents, event_counts, site_events
from rbqm.csm._mahalanobis import mahalanobis
from rbqm.derive import AnalysisTables

__all__ = ["ALL_TESTS", "CSM_COLUMNS", "TESTS", "ae_under_reporting", "digit_preference", "low_variability", "run_csm",
           "skipped_tests"]
__all__ += ["auto_permutations", "data_inconsistency", "kri_profile", "permute_sites"]
__all__ += ["distribution", "mean_shift", "missingness", "proportions", "rounding", "variance"]
__all__ += ["date_order", "duplicates", "event_counts", "mahalanobis", "visit_dates", "visit_regularity"]
__all__ += ["EVENT_TABLES", "SiteEvents", "site_events"]
__all__ += ["holiday_calendar", "impossible_dates", "measurements", "scheduled_visits", "subject_regularity",
            "subject_scores", "visit_calendar"]

#: Test name (the ``test`` column) -> the study tables it needs (any one of them for vs/lb tests).
TESTS: dict[str, tuple[tuple[str, ...], str]] = {
    "ae_under_reporting": (("ae", "sv"), "all"),
    "sae_under_reporting": (("ae", "sv"), "all"),
    "digit_preference": (("vs", "lb"), "any"),
    "low_variability": (("vs", "lb"), "any"),
    "mean_shift": (("vs", "lb"), "any"),
    "variance": (("vs", "lb"), "any"),
    "distribution": (("vs", "lb"), "any"),
    "missingness": (("vs", "lb"), "any"),
    "rounding": (("vs", "lb"), "any"),
    "proportions": (("ae", "ds"), "any"),
    "mahalanobis": (("vs", "lb"), "any"),
    "duplicates": (("vs", "lb"), "any"),
    "visit_dates": (("sv",), "all"),
    "visit_regularity": (("sv",), "all"),
    "date_order": (("ae", "sv", "ex"), "any"),
    "event_counts": (("ae", "cm", "mh", "dv"), "any"),
}
#: Every test name the ``csm`` table can hold: the tests of ``run_csm`` and ``kri_profile``, which
#: ``rbqm.analysis`` computes from the KRI results.
ALL_TESTS: tuple[str, ...] = (*TESTS, "kri_profile")


def skipped_tests(analysis: AnalysisTables) -> dict[str, str]:
    """The tests ``run_csm`` skips for lack of input, each with the reason (empty when all run).

    Examples
    --------
    >>> import polars as pl
    >>> from rbqm.derive import derive_tables
    >>> dm = pl.DataFrame({"STUDYID": ["S"], "USUBJID": ["S-1"], "SITEID": ["1"], "COUNTRY": ["FRA"],
    ...                    "RFSTDTC": ["2024-01-02"], "ARMCD": ["A"]})
    >>> skipped_tests(derive_tables({"dm": dm}, as_of=date(2024, 6, 1)))["digit_preference"]
    'needs vs or lb (numeric results)'
    """
    check_analysis(analysis, "skipped_tests")
    out = {}
    for test, (tables, need) in TESTS.items():
        missing = [t for t in tables if t not in analysis]
        if (need == "all" and missing) or (need == "any" and len(missing) == len(tables)):
            out[test] = (f"needs {' and '.join(tables)}" if need == "all"
                         else f"needs {' or '.join(tables)}"
                         + (" (numeric results)" if set(tables) <= {"vs", "lb"} else ""))
    return out


def run_csm(analysis: AnalysisTables, *, study_id: str, cut_date: date, seed: int = 1,
            r: int = 1000) -> pl.DataFrame:
    """Run every CSM test with its defaults and stack the findings.

    Tests whose input tables are missing contribute no rows; :func:`skipped_tests` names them and
    says why (nothing is logged). q-values are adjusted within each test (and, for the AE tests,
    within each direction), never across tests.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``.
    study_id, cut_date
        Stamped on every row, so findings from several studies and cuts can be stacked.
    seed : int, default 1
        Seed of the AE simulations (the same seed gives the same result).
    r : int, default 1000
        Replicates of the AE simulations.

    Returns
    -------
    polars.DataFrame
        The ``csm`` table (``CSM_COLUMNS``), sorted by test, variable and site.

    Examples
    --------
    >>> from synthetic import SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=5, subjects=150, countries=2, seed=2)
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> analysis = derive_tables(tables, as_of=cfg.end)
    >>> out = run_csm(analysis, study_id="S1", cut_date=cfg.end, r=200)
    >>> {"ae_under_reporting", "digit_preference", "low_variability", "mean_shift"} <= set(out["test"])
    True
    """
    check_analysis(analysis, "run_csm")
    check_integer(seed, "seed", "run_csm", low=0)
    stamp = {"study_id": study_id, "cut_date": cut_date}
    parts = [
        ae_under_reporting(analysis, r=r, seed=seed, **stamp),
        ae_under_reporting(analysis, r=r, seed=seed, serious=True, **stamp),
        digit_preference(analysis, **stamp),
        low_variability(analysis, **stamp),
        mean_shift(analysis, **stamp),
        variance(analysis, **stamp),
        distribution(analysis, **stamp),
        missingness(analysis, **stamp),
        rounding(analysis, **stamp),
        proportions(analysis, **stamp),
        mahalanobis(analysis, **stamp),
        duplicates(analysis, **stamp),
        visit_dates(analysis, **stamp),
        visit_regularity(analysis, **stamp),
        date_order(analysis, **stamp),
        event_counts(analysis, **stamp),
    ]
    return pl.concat(parts).sort(["test", "variable", "site_id"])
