"""Date checks: weekend and holiday visits, visit regularity and impossible date order, with exact
counts and p-values on hand-made studies and detection and calibration on synthetic studies."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from rbqm.csm import date_order, visit_dates, visit_regularity
from rbqm.csm._dates import holiday_calendar, subject_regularity
from rbqm.derive import derive_tables
from synthetic import AnomalySpec, SynthConfig

from .conftest import analysis_of, hand_study

TUESDAYS = [date(2024, 1, 2) + timedelta(weeks=k) for k in range(12)]  # Jan-Mar 2024: no holiday on any


def _visit_study(sites: dict[str, tuple[str, list[str]]]):
    """One subject per site, with its country and visit dates (ISO strings)."""
    dm = pl.DataFrame({"STUDYID": "D", "USUBJID": [f"{s}-1" for s in sites], "SITEID": list(sites),
                       "COUNTRY": [c for c, _ in sites.values()], "ARMCD": "A", "RFSTDTC": "2024-01-02"})
    sv = pl.DataFrame([{"USUBJID": f"{s}-1", "VISITNUM": float(i + 1), "VISIT": f"V{i + 1}", "SVSTDTC": d}
                       for s, (_, days) in sites.items() for i, d in enumerate(days)])
    return derive_tables({"dm": dm, "sv": sv}, as_of=date(2025, 1, 31))


def _iso(days) -> list[str]:
    return [d.isoformat() for d in days]


# --- visit_dates -----------------------------------------------------------------------------------

def test_holiday_calendar_maps_alpha3_and_knows_weekends():
    holidays, weekends = holiday_calendar(["USA", "ISR", "XKX", "FR"], range(2024, 2025))
    assert {("USA", date(2024, 7, 4)), ("FR", date(2024, 7, 14))} <= set(holidays.iter_rows())
    assert holidays.filter(pl.col("COUNTRY") == "XKX").height == 0
    got = {c: (w, known) for c, w, known in weekends.iter_rows()}
    assert got == {"USA": ([6, 7], True), "ISR": ([5, 6], True), "XKX": ([6, 7], False), "FR": ([6, 7], True)}


def test_visit_dates_counts_weekends_and_national_holidays():
    study = _visit_study({
        # 2 Saturdays, Independence Day (a Thursday), Christmas (a Wednesday): 4 of 20 off
        "A": ("USA", _iso(TUESDAYS + TUESDAYS[:4])
              + ["2024-01-13", "2024-01-20", "2024-07-04", "2024-12-25"]),
        # Israel rests on Friday and Saturday: the Sundays count as working days, the Friday does not
        "B": ("ISR", _iso(TUESDAYS + TUESDAYS[:5]) + ["2024-01-07", "2024-01-14", "2024-01-12"]),
        # no calendar for Kosovo: Christmas counts as a working day, the Saturday does not
        "C": ("XKX", _iso(TUESDAYS + TUESDAYS[:6]) + ["2024-12-25", "2024-01-13"]),
        # May Day in France; a partial date is not counted
        "D": ("FRA", _iso(TUESDAYS + TUESDAYS[:7]) + ["2024-05-01", "2024-06"]),
    })
    out = visit_dates(study, min_visits=20).sort("site_id")
    assert out["statistic"].to_list() == [4, 1, 1, 1]
    a = out.row(0, named=True)
    assert a["p_value"] == pytest.approx(stats.fisher_exact([[4, 16], [3, 57]], alternative="greater").pvalue)
    assert a["effect"] == pytest.approx(4 / 20 - 3 / 60)
    assert a["description"] == ("Visits at site A fall on a weekend or public holiday in 20.0% of cases vs "
                                "5.0% elsewhere (4 of 20 visits)")
    assert out.row(2, named=True)["description"] == (
        "Visits at site C fall on a weekend in 5.0% of cases vs 10.0% elsewhere (1 of 20 visits; no public "
        "holiday calendar for country 'XKX')")
    assert visit_dates(study, min_visits=21).height == 0


@pytest.fixture(scope="module")
def odd_dates():
    return analysis_of(SynthConfig(sites=12, subjects=1200, countries=3, seed=5, months=18, anomalies=(
        AnomalySpec(type="implausible_visit_dates", magnitude=0.3, sites=("1003",), start=0.0),)))


def test_detects_implausible_visit_dates(odd_dates, clean):
    out = visit_dates(odd_dates).sort("p_value")
    top = out.row(0, named=True)
    assert top["site_id"] == "1003" and top["q_value"] < 0.01 and top["effect"] > 0.15
    assert out["q_value"][1] > 0.05
    p = visit_dates(clean)["p_value"].to_numpy()
    assert len(p) == 40 and (p < 0.01).mean() <= 0.05


# --- visit_regularity ------------------------------------------------------------------------------

PLANNED = [15, 29, 57, 85, 113, 141]


def _schedule_study(*, exact_site: str | None, sites="ABCDEFGH", per_site=8, seed=6):
    """Day 1, six visits at the planned days with +-2 day noise (none at ``exact_site``), and a
    follow-up visit at a day that varies by months (not on a fixed schedule)."""
    rng = np.random.default_rng(seed)
    start = date(2024, 1, 2)
    subjects, days = {}, {}
    for site in sites:
        for k in range(per_site):
            noise = np.zeros(6, int) if site == exact_site else np.round(rng.normal(0, 2, 6)).astype(int)
            follow_up = int(rng.integers(170, 330))
            study_days = [1] + [p + int(n) for p, n in zip(PLANNED, noise, strict=True)] + [follow_up]
            subject = f"{site}-{k}"
            days[subject] = study_days
            subjects[subject] = (site, [(start + timedelta(days=d - 1)).isoformat() for d in study_days], [])
    return hand_study(subjects), days


def test_subject_regularity_is_the_sd_of_deviations_from_the_usual_day():
    study, days = _schedule_study(exact_site=None)
    got = subject_regularity(study, min_visits=4, min_stratum=5)
    assert got.height == 64 and (got["visits"] == 6).all()              # day 1 and the follow-up left out
    matrix = np.array([days[s][1:7] for s in sorted(days)], float)
    deviations = matrix - np.median(matrix, axis=0)
    expected = dict(zip(sorted(days), deviations.std(axis=1, ddof=1), strict=True))
    for subject, sd in got.select("USUBJID", "sd_days").iter_rows():
        assert sd == pytest.approx(expected[subject])
    assert got["percentile"].is_between(0, 1).all()


def test_exact_schedule_is_flagged_as_too_regular():
    study, _ = _schedule_study(exact_site="E")
    out = visit_regularity(study).sort("statistic")
    e = out.row(0, named=True)
    assert e["site_id"] == "E" and e["statistic"] < -3 and e["p_value"] < 0.01
    assert e["effect"] < np.log(0.1 / 1.0)                       # floored 0.1 day vs ~2 days elsewhere
    assert e["description"].startswith("Visits at site E keep to the schedule more tightly than elsewhere: "
                                       "ranked from most to least regular among subjects with as many visits, "
                                       "its subjects stand at ")
    assert "the typical subject's visits deviate from the usual study day with an SD of 0.0 days vs " in e[
        "description"]
    assert e["description"].endswith("(8 subjects)")
    assert visit_regularity(study, min_subjects=9).height == 0


def test_visit_regularity_clean_study_is_not_inflated(clean):
    p = visit_regularity(clean)["p_value"].to_numpy()
    assert len(p) >= 38 and (p < 0.01).mean() <= 0.05 and (p < 0.05).mean() <= 0.2


# --- date_order ------------------------------------------------------------------------------------

def _order_study():
    subjects = [f"{s}-{k}" for s in "ABC" for k in range(3)]
    dm = pl.DataFrame({
        "STUDYID": "O", "USUBJID": subjects, "SITEID": [u[0] for u in subjects], "COUNTRY": "FRA",
        "ARMCD": "A",
        "RFICDTC": ["2024-01-05" if u == "B-0" else "2024-01-01" for u in subjects],
        "RFSTDTC": "2024-01-10",
        "DTHDTC": [{"C-0": "2024-02-01", "A-0": "2024-04-01"}.get(u) for u in subjects],
    })
    # B-0's first visit precedes consent; C-0 has two visits after death
    visits = ["2024-01-02", "2024-01-10", "2024-02-10", "2024-03-10"]
    sv = pl.DataFrame([{"USUBJID": u, "VISITNUM": float(i + 1), "VISIT": f"V{i}", "SVSTDTC": d}
                       for u in subjects for i, d in enumerate(visits)])
    # AEs start on 15 Jan; at site A one ends the day before; "2024-01" may end on the 31st: possible
    ends = {u: ["2024-01-20", "2024-01-14" if u[0] == "A" else "2024-01-16", "2024-01"] for u in subjects}
    ae = pl.DataFrame([{"USUBJID": u, "AESEQ": i, "AEDECOD": "X", "AESER": "N", "AESTDTC": "2024-01-15",
                        "AEENDTC": end} for u in subjects for i, end in enumerate(ends[u])])
    # A-1 left the study on 29 Feb at the latest
    ds = pl.DataFrame({"USUBJID": ["A-1", "B-1"], "DSCAT": "DISPOSITION EVENT", "DSDECOD": "COMPLETED",
                       "DSSCAT": "STUDY PARTICIPATION", "DSSTDTC": ["2024-02", "2024-05-01"]})
    ex = pl.DataFrame({"USUBJID": subjects, "EXTRT": "T", "EXENDTC": "2024-01-30",
                       "EXSTDTC": ["2024-01-09" if u == "B-1" else "2024-01-10" for u in subjects]})
    return derive_tables({"dm": dm, "sv": sv, "ae": ae, "ds": ds, "ex": ex}, as_of=date(2024, 6, 1))


def test_date_order_counts_impossible_records_per_check():
    out = date_order(_order_study(), min_records=1)
    got = {(r["variable"], r["site_id"]): int(r["statistic"]) for r in out.iter_rows(named=True)}
    assert {k: v for k, v in got.items() if v} == {
        ("AE:END_BEFORE_START", "A"): 3,           # one per A subject; the partial end date is possible
        ("SV:BEFORE_CONSENT", "B"): 1,
        ("EX:BEFORE_RANDOMISATION", "B"): 1,
        ("DM:AFTER_DEATH", "C"): 2,
        ("SV:AFTER_STUDY_END", "A"): 1,
    }
    assert set(out["variable"]) == {"AE:END_BEFORE_START", "SV:BEFORE_CONSENT", "EX:BEFORE_CONSENT",
                                    "EX:BEFORE_RANDOMISATION", "EX:END_BEFORE_START", "DM:AFTER_DEATH",
                                    "SV:AFTER_STUDY_END"}
    # after death is checked on the 4 visits, 3 AEs and 1 dose of A-0 and C-0, who died
    deaths = out.filter(pl.col("variable") == "DM:AFTER_DEATH")
    assert deaths["site_id"].to_list() == ["A", "C"] and deaths["statistic"].to_list() == [0, 2]
    death = deaths.row(1, named=True)
    assert death["description"].startswith("At site C, 2 of 8 visits, AEs and doses of subjects who died "
                                           "(25.0%) are dated after death vs 0.0% elsewhere")
    ae = out.filter(variable="AE:END_BEFORE_START", site_id="A").row(0, named=True)
    assert ae["p_value"] == pytest.approx(stats.fisher_exact([[3, 6], [0, 18]], alternative="greater").pvalue)
    assert ae["description"] == ("At site A, 3 of 9 adverse events (33.3%) end before they start vs 0.0% "
                                 "elsewhere")
    assert date_order(_order_study(), min_records=9).filter(variable="DM:AFTER_DEATH").height == 0


def test_date_order_on_clean_synthetic_data_finds_nothing(clean):
    out = date_order(clean)
    assert out.height > 0 and (out["statistic"] == 0).all() and (out["p_value"] == 1).all()
