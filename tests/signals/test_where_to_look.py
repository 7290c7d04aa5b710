"""Where to look names the right subjects, records and readings for each anomaly type.

Each anomaly of tests/conftest.py's trial is injected at its own site; its clean twin (same seed) differs
only there, so the twin tells which records the anomaly made (a dropped AE, a downgraded SAE, an
added deviation, a late page, a visit moved to a weekend). Each anomaly gets the signal that detects
it, and the suggestion's ``where_to_look`` must name what the anomaly did, in the documented order.
The date tests' other problems are injected into the trial's tables here: visits kept exactly to the
schedule, visits before consent, AEs ending before they start, visits swapped out of order.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import holidays
import numpy as np
import polars as pl
import pytest
from scipy.stats import poisson

from rbqm.actions import suggest_actions
from rbqm.analysis import Analysis
from rbqm.csm import CSM_COLUMNS, date_order, event_counts, visit_regularity
from rbqm.derive import derive_tables
from rbqm.signals import SIGNAL_COLUMNS
from rbqm.where_to_look import LOOKS, where_to_look
from synthetic import SynthConfig, tables_at
from tests.conftest import ALL_ANOMALIES, PAIR
from tests.csm.conftest import hand_study
from tests.csm.test_dates import _visit_study

CFG = SynthConfig(**PAIR, anomalies=ALL_ANOMALIES)
SITE = {a.type: a.sites[0] for a in ALL_ANOMALIES}
# anomaly type -> the signal that detects it (kind, indicator)
DETECTED_BY = {
    "ae_under_reporting": ("csm", "ae_under_reporting:AE"),
    "sae_under_reporting": ("kri", "kri0002"),
    "excess_important_deviations": ("kri", "kri0004"),
    "late_data_entry": ("kri", "kri0010"),
    "query_backlog": ("kri", "kri0009"),
    "high_screen_failure": ("kri", "kri0012"),
    "high_discontinuation": ("kri", "kri0006"),
    "fabricated_subjects": ("csm", "low_variability:LB+VS"),
    "digit_preference": ("csm", "digit_preference:SYSBP"),
    "lab_calibration_shift": ("csm", "mean_shift:CREAT"),
    "excess_eligibility_violations": ("kri", "kri0014"),
    "implausible_visit_dates": ("csm", "visit_dates:SVSTDTC"),
}
SUBJECT = re.compile(r"RBQM-SYN-01-\d{4}-\d{4}")


def _signal_id(anomaly: str) -> str:
    kind, indicator = DETECTED_BY[anomaly]
    return f"{'csm:' if kind == 'csm' else ''}{indicator}@{SITE[anomaly]}"


def _suggested(tables, signals: dict[str, str]) -> dict[str, str]:
    """where_to_look of the suggestions for red CSM signals {signal_id: site}, by signal id."""
    frame = pl.DataFrame([{"signal_id": sid, "study_id": "S", "cut_date": CFG.end, "kind": "csm",
                           "indicator": sid[4:].split("@")[0], "site_id": site, "severity": "red", "state": "new",
                           "first_cut": CFG.end, "consecutive_cuts": 1, "summary": "Flagged."}
                          for sid, site in signals.items()], schema=SIGNAL_COLUMNS)
    analysis = Analysis("S", [CFG.end], pl.DataFrame(), pl.DataFrame(),
                        pl.DataFrame(schema={"site_id": pl.String, "risk_score": pl.Float64, "cut_date": pl.Date}),
                        pl.DataFrame(), pl.DataFrame(schema=CSM_COLUMNS))
    actions = suggest_actions(analysis, frame, tables=tables)
    return dict(actions.unique("signal_id").select("signal_id", "where_to_look").rows())


@pytest.fixture(scope="module")
def raw(injected_records, clean_records):
    """The injected and the clean trial's tables at the end of the study."""
    return ({k: v.collect() for k, v in tables_at(injected_records, CFG.end_day).items()},
            {k: v.collect() for k, v in tables_at(clean_records, CFG.end_day).items()})


@pytest.fixture(scope="module")
def tables(raw):
    return derive_tables(raw[0], as_of=CFG.end)


@pytest.fixture(scope="module")
def where(tables) -> dict[str, str]:
    """The suggestions' where_to_look for one red signal per anomaly type, by signal id."""
    signals = pl.DataFrame([{"signal_id": _signal_id(a), "study_id": "S", "cut_date": CFG.end, "kind": kind,
                             "indicator": indicator, "site_id": SITE[a], "severity": "red", "state": "new",
                             "first_cut": CFG.end, "consecutive_cuts": 1, "summary": "Flagged."}
                            for a, (kind, indicator) in DETECTED_BY.items()], schema=SIGNAL_COLUMNS)
    analysis = Analysis("S", [CFG.end], pl.DataFrame(), pl.DataFrame(),
                        pl.DataFrame(schema={"site_id": pl.String, "risk_score": pl.Float64, "cut_date": pl.Date}),
                        pl.DataFrame(), pl.DataFrame(schema=CSM_COLUMNS))
    actions = suggest_actions(analysis, signals, tables=tables)
    assert set(actions["signal_id"]) == set(signals["signal_id"])
    return dict(actions.unique("signal_id").select("signal_id", "where_to_look").rows())


def _subjects(text: str) -> list[str]:
    return SUBJECT.findall(text)


def test_every_look_is_used_by_the_shipped_rules():
    from rbqm.actions import load_actions

    assert {rule.look_at for rule in load_actions().rules} - {"none"} == set(LOOKS)


def test_ae_under_reporting_names_the_subjects_with_fewest_aes_for_their_time(where, tables, raw):
    """Double programmed: Poisson probability of at most the subject's AEs at the study's AE rate."""
    subjects = tables["subjects"].filter(pl.col("enrolled"), pl.col("days_on_study") > 0).collect()
    counts = raw[0]["ae"].group_by("USUBJID").agg(n=pl.len())
    subjects = subjects.join(counts, on="USUBJID", how="left").with_columns(pl.col("n").fill_null(0))
    rate = subjects["n"].sum() / subjects["days_on_study"].sum()
    p = poisson.cdf(subjects["n"].to_numpy(), rate * subjects["days_on_study"].to_numpy())
    site = SITE["ae_under_reporting"]
    ranked = (subjects.with_columns(p=pl.Series(p)).filter(pl.col("SITEID") == site)
              .sort(["p", "days_on_study", "USUBJID"], descending=[False, True, False]))
    text = where[_signal_id("ae_under_reporting")]
    assert _subjects(text) == ranked["USUBJID"].head(5).to_list()
    none = int((ranked["n"] == 0).sum())
    assert text.startswith(f"Subjects with the fewest AEs for their time on study ({none} of {ranked.height} "
                           "enrolled have none)")
    first = ranked.row(0, named=True)
    assert f"{first['USUBJID']} ({first['n']} AEs in {first['days_on_study']} days, " \
           f"{round(rate * first['days_on_study'], 1)} expected)" in text
    # the clean twin's site has fewer subjects without any AE
    clean = where_to_look(derive_tables(raw[1], as_of=CFG.end), pl.DataFrame({
        "signal_id": ["x"], "site_id": [site], "indicator": ["ae_under_reporting:AE"], "variable": ["AE"],
        "look_at": ["subjects_fewest_ae"]}))
    clean_none = int(re.search(r"\((\d+) of", clean["where_to_look"][0]).group(1))
    assert none > clean_none


def test_sae_under_reporting_names_downgraded_serious_events(where, raw):
    injected, clean = raw
    text = where[_signal_id("sae_under_reporting")]
    assert text.startswith("Non-serious AEs of grade 3 or higher")
    named = re.findall(rf"({SUBJECT.pattern}) (.+?) grade (\d) \((\d{{4}}-\d{{2}}-\d{{2}}); serious at other "
                       r"sites (\d+)%\)", text)
    assert len(named) == 5
    assert min(int(g) for _, _, g, _, _ in named) >= 3
    shares = [int(share) for *_, share in named]
    assert shares == sorted(shares, reverse=True)  # most often serious elsewhere first
    keys = pl.DataFrame([n[:4] for n in named], schema=["USUBJID", "AEDECOD", "grade", "AESTDTC"],
                        orient="row").drop("grade")
    assert set(keys.join(injected["ae"], on=["USUBJID", "AEDECOD", "AESTDTC"])["AESER"]) == {"N"}
    serious_in_twin = keys.join(clean["ae"], on=["USUBJID", "AEDECOD", "AESTDTC"])["AESER"]
    assert (serious_in_twin == "Y").sum() >= 4  # most were serious before the injection downgraded them


def test_excess_deviations_names_the_added_important_deviations_latest_first(where, raw):
    injected, clean = raw
    text = where[_signal_id("excess_important_deviations")]
    named = pl.DataFrame(re.findall(rf"({SUBJECT.pattern}) ([A-Z0-9 ,/()-]+?) \((\d{{4}}-\d{{2}}-\d{{2}})\)", text),
                         schema=["USUBJID", "DVTERM", "DVSTDTC"], orient="row")
    assert named.height == 5 and named["DVSTDTC"].is_sorted(descending=True)
    site = injected["dv"].join(injected["dm"].select("USUBJID", "SITEID"), on="USUBJID").filter(
        pl.col("SITEID") == SITE["excess_important_deviations"], pl.col("DVIMPFL") == "Y")
    assert named["DVSTDTC"][0] == site["DVSTDTC"].max()
    assert text.startswith(f"Records behind Important protocol deviation rate ({site.height} at the site)")
    assert named.join(site, on=["USUBJID", "DVTERM", "DVSTDTC"]).height == 5
    assert named.join(clean["dv"], on=["USUBJID", "DVTERM", "DVSTDTC"], how="anti").height >= 3


def test_late_entry_names_the_oldest_unentered_pages_entered_in_the_twin(where, tables, raw):
    text = where[_signal_id("late_data_entry")]
    pages = re.findall(rf"({SUBJECT.pattern}) (\w+) visit (\d+) \((\d+) days, not entered\)", text)
    oldest = (tables.with_sites("pages").filter(pl.col("SITEID") == SITE["late_data_entry"], ~pl.col("entered"))
              .sort(["days_to_entry", "USUBJID", "FORM"], descending=[True, False, False]).head(5).collect())
    assert [(u, f, int(v), int(d)) for u, f, v, d in pages] == [
        (r["USUBJID"], r["FORM"], int(r["VISITNUM"]), r["days_to_entry"]) for r in oldest.iter_rows(named=True)]
    twin = pl.DataFrame([(u, f, float(v)) for u, f, v, _ in pages], schema=["USUBJID", "FORM", "VISITNUM"],
                        orient="row").join(raw[1]["pages"], on=["USUBJID", "FORM", "VISITNUM"])
    assert twin["ENTRYDTC"].is_not_null().all() and twin.height == 5


def test_query_backlog_names_the_oldest_open_queries_closed_in_the_twin(where, tables, raw):
    text = where[_signal_id("query_backlog")]
    named = re.findall(r"(Q\d{4}-\d{5}) on", text)
    oldest = (tables.with_sites("queries").filter(pl.col("SITEID") == SITE["query_backlog"], pl.col("open_at_cut"))
              .sort(["days_open", "QRYID"], descending=[True, False]).head(5).collect())
    assert named == oldest["QRYID"].to_list()
    assert set(raw[1]["queries"].filter(pl.col("QRYID").is_in(named))["QRYSTATUS"]) == {"CLOSED"}


def _screen_failures(tables: dict, named: list[str]) -> pl.DataFrame:
    return tables["dm"].filter(pl.col("USUBJID").is_in(named), pl.col("ARMCD") == "SCRNFAIL")


def _discontinued(tables: dict, named: list[str]) -> pl.DataFrame:
    """Subjects with a study disposition other than completion (kri0006's numerator, written out)."""
    return tables["ds"].filter(pl.col("USUBJID").is_in(named), pl.col("DSCAT") == "DISPOSITION EVENT",
                               ~pl.col("DSSCAT").fill_null("").is_in(["STUDY TREATMENT", "SCREENING"]),
                               ~pl.col("DSDECOD").is_in(["COMPLETED", "SCREEN FAILURE"])).unique("USUBJID")


@pytest.mark.parametrize("anomaly, which", [("high_screen_failure", _screen_failures),
                                            ("high_discontinuation", _discontinued)])
def test_subject_anomalies_name_subjects_the_twin_does_not_have(where, raw, anomaly, which):
    named = _subjects(where[_signal_id(anomaly)])
    assert len(named) == 5 and len(set(named)) == 5
    assert which(raw[0], named).height == 5
    assert which(raw[1], named).height <= 2


def test_eligibility_names_subjects_eligible_in_the_twin(where, injected_records, clean_records):
    named = _subjects(where[_signal_id("excess_eligibility_violations")])
    violation = lambda records: records.subjects.filter(pl.col("USUBJID").is_in(named))["elig_violation"]  # noqa: E731
    assert len(named) == 5 and violation(injected_records).all() and not violation(clean_records).any()


def test_fabrication_names_fabricated_subjects(where, injected_records):
    named = _subjects(where[_signal_id("fabricated_subjects")])
    fabricated = injected_records.subjects.filter(pl.col("USUBJID").is_in(named))["fabricated"]
    assert len(named) == 5 and fabricated.all()


def test_digit_preference_names_readings_ending_in_zero(where, raw):
    text = where[_signal_id("digit_preference")]
    match = re.match(r"SYSBP readings ending in 0: (\d+) of (\d+) at the site", text)
    assert match
    vs = raw[0]["vs"].join(raw[0]["dm"].select("USUBJID", "SITEID"), on="USUBJID").filter(
        pl.col("SITEID") == SITE["digit_preference"], pl.col("VSTESTCD") == "SYSBP", pl.col("VSSTRESN").is_not_null())
    zero = vs.filter(pl.col("VSSTRESN").round(0).cast(pl.Int64) % 10 == 0)
    assert (int(match.group(1)), int(match.group(2))) == (zero.height, vs.height)
    per_subject = dict(zero.group_by("USUBJID").len().rows())
    for subject, n, visits in re.findall(rf"({SUBJECT.pattern}) \((\d+) readings, visits ([\d, ]+)\)", text):
        assert per_subject[subject] == int(n)
        assert [int(v) for v in visits.split(", ")] == sorted(
            zero.filter(pl.col("USUBJID") == subject)["VISITNUM"].cast(pl.Int64).unique().to_list())
    assert len(re.findall(SUBJECT, text)) == 5


def test_lab_shift_names_subjects_whose_results_the_shift_moved(where, raw):
    named = _subjects(where[_signal_id("lab_calibration_shift")])
    means = [raw[i]["lb"].filter(pl.col("USUBJID").is_in(named), pl.col("LBTESTCD") == "CREAT")
             .group_by("USUBJID").agg(pl.col("LBSTRESN").mean()).sort("USUBJID")["LBSTRESN"].to_numpy()
             for i in (0, 1)]
    assert len(named) == 5 and np.all(means[0] > means[1] * 1.1)


# --- dates ------------------------------------------------------------------------------------

ALPHA2 = {"FRA": "FR", "GBR": "GB", "USA": "US", "DEU": "DE"}


def test_visit_dates_names_the_weekend_and_holiday_visits_latest_first(where, raw):
    """Double programmed with the holidays package: the site's visits on a Saturday, a Sunday or a
    national holiday of its country, latest first, each with why; the twin had them on working days."""
    injected, clean = raw
    site = SITE["implausible_visit_dates"]
    visits = (injected["sv"].join(injected["dm"].select("USUBJID", "SITEID", "COUNTRY"), on="USUBJID")
              .filter(pl.col("SITEID") == site).with_columns(date=pl.col("SVSTDTC").str.to_date()))
    country = visits["COUNTRY"][0]
    assert visits["COUNTRY"].n_unique() == 1 and country in ALPHA2
    calendar = holidays.country_holidays(ALPHA2[country], years=range(2023, 2028))
    why = {row["date"]: ", ".join(([row["date"].strftime("%A")] if row["date"].weekday() >= 5 else [])
                                  + ([f"national holiday in {country}"] if row["date"] in calendar else []))
           for row in visits.iter_rows(named=True)}
    off = (visits.with_columns(why=pl.col("date").replace_strict(why, return_dtype=pl.String))
           .filter(pl.col("why") != "")
           .sort(["date", "USUBJID", "VISITNUM"], descending=[True, False, False]))
    items = [f"{r['USUBJID']} {r['VISIT']} on {r['date']} ({r['why']})"
             for r in off.head(5).iter_rows(named=True)]
    assert where[_signal_id("implausible_visit_dates")] == (
        f"Visits on a weekend or public holiday ({off.height} of {visits.height} dated visits at the site), "
        f"latest first: {'; '.join(items)}.")
    twin = off.head(5).select("USUBJID", "VISITNUM").join(clean["sv"], on=["USUBJID", "VISITNUM"])
    assert twin.height == 5
    assert all(d.weekday() < 5 and d not in calendar for d in twin["SVSTDTC"].str.to_date())


def test_off_day_visits_say_why_each_visit_is_off():
    study = _visit_study({
        # May Day (a Wednesday), a Saturday, a Tuesday, Bastille Day 2024 (a Sunday)
        "A": ("FRA", ["2024-05-01", "2024-05-04", "2024-05-07", "2024-07-14"]),
        # no calendar for Kosovo: Christmas is a working day, the Saturday is not
        "X": ("XKX", ["2024-12-25", "2024-12-28"]),
        "N": ("FRA", ["2024-05-07"]),                                   # nothing off: no sentence
    })
    wanted = pl.DataFrame({"signal_id": ["a", "x", "n"], "site_id": ["A", "X", "N"],
                           "indicator": "visit_dates:SVSTDTC", "variable": "SVSTDTC",
                           "look_at": "off_day_visits"})
    assert dict(where_to_look(study, wanted).rows()) == {
        "a": "Visits on a weekend or public holiday (3 of 4 dated visits at the site), latest first: "
             "A-1 V4 on 2024-07-14 (Sunday, national holiday in FRA); A-1 V2 on 2024-05-04 (Saturday); "
             "A-1 V1 on 2024-05-01 (national holiday in FRA).",
        "x": "Visits on a weekend or public holiday (1 of 2 dated visits at the site; no public holiday "
             "calendar for country 'XKX': weekends only), latest first: X-1 V2 on 2024-12-28 (Saturday).",
    }


EXACT, BEFORE_CONSENT, AE_ORDER = "1013", "1015", "1016"


@pytest.fixture(scope="module")
def dated(raw):
    """The trial's tables with three date problems injected: at 1013 every visit after day 1 within two
    weeks of the study's median day for its visit number (and before the subject's last contact) moved
    onto it; at 1015 six subjects' screening visit 3 days before their consent; at 1016 six AEs ending
    2 days before they start."""
    injected = raw[0]
    dm = injected["dm"].select("USUBJID", "SITEID", "RFICDTC", start=pl.col("RFSTDTC").str.to_date(),
                               end=pl.col("RFENDTC").str.to_date())
    sv = injected["sv"].join(dm, on="USUBJID", how="left").with_columns(
        day=(pl.col("SVSTDTC").str.to_date() - pl.col("start")).dt.total_days())
    usual = pl.col("day").median().over("VISITNUM").cast(pl.Int64)
    moved = pl.col("start") + pl.duration(days=usual)
    on_schedule = ((pl.col("SITEID") == EXACT) & (pl.col("VISITNUM") > 2)
                   & ((pl.col("day") - usual).abs() <= 14) & (pl.col("end").is_null() | (moved <= pl.col("end"))))
    consent = pl.col("RFICDTC").str.to_date()
    early = (sv.filter(pl.col("SITEID") == BEFORE_CONSENT, pl.col("VISIT") == "SCREENING")
             .sort("USUBJID").head(6)["USUBJID"])
    sv = sv.with_columns(SVSTDTC=pl.when(on_schedule).then(moved.dt.to_string())
                         .when(pl.col("USUBJID").is_in(early.implode()) & (pl.col("VISIT") == "SCREENING"))
                         .then((consent - pl.duration(days=3)).dt.to_string())
                         .otherwise("SVSTDTC")).select(injected["sv"].columns)
    ae = (injected["ae"].join(dm.select("USUBJID", "SITEID"), on="USUBJID")
          .filter(pl.col("SITEID") == AE_ORDER))
    backwards = ae.sort("USUBJID", "AESEQ").head(6).select("USUBJID", "AESEQ", wrong=(
        pl.col("AESTDTC").str.to_date() - pl.duration(days=2)).dt.to_string())
    ae = (injected["ae"].join(backwards, on=["USUBJID", "AESEQ"], how="left")
          .with_columns(AEENDTC=pl.coalesce("wrong", "AEENDTC")).select(injected["ae"].columns))
    return derive_tables({**injected, "sv": sv, "ae": ae}, as_of=CFG.end), early, backwards.lazy()


@pytest.fixture(scope="module")
def dated_where(dated) -> dict[str, str]:
    return _suggested(dated[0], {f"csm:visit_regularity:SV:SVSTDTC@{EXACT}": EXACT,
                                 f"csm:date_order:SV:BEFORE_CONSENT@{BEFORE_CONSENT}": BEFORE_CONSENT,
                                 f"csm:date_order:AE:END_BEFORE_START@{AE_ORDER}": AE_ORDER})


def test_the_injected_date_problems_are_csm_findings(dated):
    tables = dated[0]
    regular = visit_regularity(tables).filter(pl.col("site_id") == EXACT).row(0, named=True)
    assert regular["statistic"] < 0 and regular["q_value"] < 0.01
    order = date_order(tables).filter(pl.col("statistic") > 0)
    assert {(r["variable"], r["site_id"]): r["statistic"] for r in order.iter_rows(named=True)} == {
        ("SV:BEFORE_CONSENT", BEFORE_CONSENT): 6, ("AE:END_BEFORE_START", AE_ORDER): 6}
    assert order["q_value"].max() < 0.05


def test_visit_schedule_names_the_subjects_kept_exactly_to_it(dated, dated_where):
    """At 1013 every scheduled visit is on its usual day: the subjects with the most visits come first."""
    tables = dated[0]
    text = dated_where[f"csm:visit_regularity:SV:SVSTDTC@{EXACT}"]
    assert text.startswith("Subjects whose visits keep to the usual study days most tightly (")
    assert "typical SD 0.0 days from the usual day" in text
    enrolled = (tables["subjects"].filter(pl.col("enrolled"), pl.col("SITEID") == EXACT)
                .select("USUBJID", "RFSTDTC"))
    day = (pl.col("SVSTDTC").str.to_date() - pl.col("RFSTDTC").str.to_date()).dt.total_days()
    counts = (tables["sv"].join(enrolled, on="USUBJID").filter(pl.col("VISITNUM") > 2)
              .join(tables["sv"].join(tables["subjects"].filter("enrolled"), on="USUBJID")
                    .group_by("VISITNUM").agg(usual=day.median()), on="VISITNUM")
              .group_by("USUBJID").agg(n=pl.len(), exact=(day == pl.col("usual")).all())
              .filter(pl.col("exact"), pl.col("n") >= 4)            # those with a far follow-up are not exact
              .sort(["n", "USUBJID"], descending=[True, False]).head(5).collect())
    assert counts.height == 5
    named = re.findall(rf"({SUBJECT.pattern}) \((\d+) scheduled visits, SD ([\d.]+) days; ([^)]+)\)", text)
    assert named == [(u, str(n), "0.0", "every visit on its usual study day") for u, n, _ in counts.rows()]


def _schedule(*, exact: str, swapped: dict[str, tuple[int, int]]):
    """Sites A-H, 8 subjects each: day 1, six visits at days 15, 29, 57, 85, 113, 141 with +-2 days of
    noise (none at ``exact``) and a follow-up at a day that varies by months; ``swapped`` subjects have
    two visits' dates exchanged (visit indices into the list)."""
    rng = np.random.default_rng(6)
    start, planned = date(2024, 1, 2), [15, 29, 57, 85, 113, 141]
    subjects = {}
    for site in "ABCDEFGH":
        for k in range(8):
            noise = np.zeros(6, int) if site == exact else np.round(rng.normal(0, 2, 6)).astype(int)
            follow_up = int(rng.integers(170, 330))
            days = [1] + [p + int(n) for p, n in zip(planned, noise, strict=True)] + [follow_up]
            if (i_j := swapped.get(f"{site}-{k}")) is not None:
                days[i_j[0]], days[i_j[1]] = days[i_j[1]], days[i_j[0]]
            subjects[f"{site}-{k}"] = (site, [(start + timedelta(days=d - 1)).isoformat() for d in days], [])
    return hand_study(subjects)


def test_visit_schedule_names_the_loosest_subjects_and_visits_out_of_order():
    """Site C's two subjects with visits 4 and 5 (days 57 and 85) swapped come first, each with the
    visit dated before the one scheduled before it; site E (exact) is named the other way round."""
    study = _schedule(exact="E", swapped={"C-3": (3, 4), "C-6": (3, 4)})
    wanted = pl.DataFrame({"signal_id": ["c", "e"], "site_id": ["C", "E"], "variable": "SVSTDTC",
                           "indicator": "visit_regularity:SVSTDTC", "look_at": "visit_schedule"})
    texts = dict(where_to_look(study, wanted).rows())
    assert texts["e"].startswith("Subjects whose visits keep to the usual study days most tightly (8 scored "
                                 "at the site; typical SD 0.0 days")
    exact = "every visit on its usual study day"
    assert _items(texts["e"]) == [(f"E-{k}", "6", "0.0", exact) for k in range(5)]
    # double programmed: deviations from each visit's median day across the study; SD per subject
    sv = study["sv"].join(study["subjects"].select("USUBJID", "RFSTDTC"), on="USUBJID").filter(
        pl.col("VISITNUM").is_between(2, 7)).with_columns(
        day=(pl.col("SVSTDTC").str.to_date() - pl.col("RFSTDTC").str.to_date()).dt.total_days() + 1).collect()
    sv = sv.with_columns(deviation=pl.col("day") - pl.col("day").median().over("VISITNUM"))
    sd = (sv.filter(pl.col("USUBJID").str.starts_with("C")).group_by("USUBJID")
          .agg(pl.col("deviation").std()).sort(["deviation", "USUBJID"], descending=[True, False]).head(5))
    items = _items(texts["c"])
    assert texts["c"].startswith("Subjects whose visits keep to the usual study days most loosely (8 scored")
    assert [(u, v, s) for u, v, s, _ in items] == [(u, "6", f"{d:.1f}") for u, d in sd.rows()]
    assert {u for u, *_ in items[:2]} == {"C-3", "C-6"}
    for subject in ("C-3", "C-6"):
        visit = dict(sv.filter(pl.col("USUBJID") == subject).select("VISIT", "SVSTDTC").rows())
        assert f"; V5 on {visit['V5']} is dated before V4 on {visit['V4']})" in texts["c"]
    assert texts["c"].count("is dated before") == 2  # the others are in order


def _items(text: str) -> list[tuple[str, str, str, str]]:
    """(subject, visits, SD, the rest) of each subject a visit_schedule sentence names."""
    return re.findall(r"([A-Z]-\d|RBQM-SYN-01-\d{4}-\d{4}) \((\d+) scheduled visits, SD ([\d.]+) days; "
                      r"([^;)]+)", text)


def test_date_order_names_the_records_and_what_their_dates_contradict(dated, dated_where):
    tables, early, backwards = dated
    text = dated_where[f"csm:date_order:SV:BEFORE_CONSENT@{BEFORE_CONSENT}"]
    visits = (tables["sv"].filter(pl.col("USUBJID").is_in(early.implode()), pl.col("VISIT") == "SCREENING")
              .join(tables["subjects"].select("USUBJID", "RFICDTC"), on="USUBJID")
              .sort(["SVSTDTC", "USUBJID"], descending=[True, False]).head(5).collect())
    assert text == ("Records whose dates cannot be right (6 at the site), latest first: " + "; ".join(
        f"{r['USUBJID']} visit SCREENING on {r['SVSTDTC']} (before informed consent on {r['RFICDTC']})"
        for r in visits.iter_rows(named=True)) + ".")
    text = dated_where[f"csm:date_order:AE:END_BEFORE_START@{AE_ORDER}"]
    aes = (tables["ae"].join(backwards.select("USUBJID", "AESEQ"), on=["USUBJID", "AESEQ"])
           .sort(["AESTDTC", "USUBJID"], descending=[True, False]).head(5).collect())
    assert text == ("Records whose dates cannot be right (6 at the site), latest first: " + "; ".join(
        f"{r['USUBJID']} AE {r['AEDECOD']} starting {r['AESTDTC']} (ends {r['AEENDTC']})"
        for r in aes.iter_rows(named=True)) + ".")


# --- Events per subject (event_counts) ------------------------------------------------------------

AS_OF = date(2025, 1, 1)
# subject -> (site, days on study, AE study days, DV study days, MH entries). Sites B, C, D: a 100-day
# subject with AEs on days 10 and 50, a 200-day one with AEs on days 10 and 150. For site A the other
# sites' mean cumulative AE count is 6/6 = 1 from day 10, + 3/6 from day 50, + 3/3 from day 150 (only
# the 200-day subjects still on study): 1.0 at 40 days, 1.5 at 100, 2.5 at 200, so A expects 7.5 AEs
# and records 3. For site C the others' deviations are 1/8 on day 5 and 3/4 on day 150 (A-1, A-4, B-2
# of the 4 subjects on study that long): 0.125 at 100 days, 0.875 at 200; C records 5 vs 1.0. Medical
# history (at screening): one entry per subject elsewhere, so A's subjects expect 1.0 each; A has 9.
EVENTS = {
    "A-1": ("A", 200, [], [150], 5), "A-2": ("A", 100, [], [], 3), "A-3": ("A", 40, [], [], 1),
    "A-4": ("A", 200, [10, 20, 160], [150], 0),
    "B-1": ("B", 100, [10, 50], [], 1), "B-2": ("B", 200, [10, 150], [150], 1),
    "C-1": ("C", 100, [10, 50], [20, 60], 1), "C-2": ("C", 200, [10, 150], [30, 90, 180], 1),
    "D-1": ("D", 100, [10, 50], [5], 1), "D-2": ("D", 200, [10, 150], [], 1),
}


def _study_day(days_on_study: int, day: int) -> str:
    """The date of a study day of a subject on study ``days_on_study`` days up to AS_OF."""
    return (AS_OF - timedelta(days=days_on_study - day)).isoformat()


@pytest.fixture(scope="module")
def events_study():
    dv = pl.DataFrame([{"USUBJID": u, "DVSEQ": i + 1, "DVTERM": "X", "DVSTDTC": _study_day(n, d)}
                       for u, (_, n, _, dvs, _) in EVENTS.items() for i, d in enumerate(dvs)])
    mh = pl.DataFrame({"USUBJID": [u for u, v in EVENTS.items() for _ in range(v[4])], "MHTERM": "Y"})
    return hand_study({u: (site, [_study_day(n, 1)], [_study_day(n, d) for d in aes])
                       for u, (site, n, aes, _, _) in EVENTS.items()},
                      as_of=AS_OF, extra={"dv": dv, "mh": mh})


def _event_wanted(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    """Signals of event_counts for (site, variable) pairs, as rbqm.actions passes them."""
    return pl.DataFrame({"signal_id": [f"csm:event_counts:{v}@{s}" for s, v in pairs],
                         "site_id": [s for s, _ in pairs],
                         "indicator": [f"event_counts:{v}" for _, v in pairs],
                         "variable": [v for _, v in pairs], "look_at": "event_count_subjects"})


def test_event_counts_names_the_subjects_with_fewest_or_most_events_for_their_time(events_study):
    """By hand (see EVENTS): fewer AEs at A, the 0-AE subjects first, the longest on study first (the
    Poisson probability of none is exp(-2.5), exp(-1.5), exp(-1)); more deviations at C, C-1 (2 in 100
    days, P(X >= 2 | 0.125) = 0.007) before C-2 (3 in 200 days, P(X >= 3 | 0.875) = 0.059); more
    medical history at A, most first. No cm table: no sentence."""
    texts = dict(where_to_look(events_study, _event_wanted([("A", "AE"), ("C", "DV"), ("A", "MH"),
                                                            ("A", "CM")])).rows())
    assert texts == {
        "csm:event_counts:AE@A":
            "Subjects with the fewest adverse events for their time on study (3 recorded at the site vs 7.5 "
            "expected from the other sites; 3 of its 4 subjects with none): A-1: 0 AEs in 200 days on study "
            "(2.5 expected); A-2: 0 AEs in 100 days on study (1.5 expected); A-3: 0 AEs in 40 days on study "
            "(1.0 expected); A-4: 3 AEs in 200 days on study (2.5 expected).",
        "csm:event_counts:DV@C":
            "Subjects with the most protocol deviations for their time on study (5 recorded at the site vs "
            "1.0 expected from the other sites; 0 of its 2 subjects with none): C-1: 2 deviations in 100 "
            "days on study (0.1 expected); C-2: 3 deviations in 200 days on study (0.9 expected).",
        "csm:event_counts:MH@A":
            "Subjects with the most medical history entries (9 recorded at the site vs 4.0 expected from the "
            "other sites; 1 of its 4 subjects with none): A-1: 5 medical history entries (1.0 expected); "
            "A-2: 3 medical history entries (1.0 expected); A-3: 1 medical history entry (1.0 expected); "
            "A-4: 0 medical history entries (1.0 expected).",
    }
    assert poisson.sf(1, 0.125) < poisson.sf(2, 0.875)  # the order of C's subjects
    # through the shipped rules: the signal's variable is the part of its indicator after the test
    assert _suggested(events_study, {"csm:event_counts:AE@A": "A"}) == {
        "csm:event_counts:AE@A": texts["csm:event_counts:AE@A"]}


_HEAD = re.compile(r"^Subjects with the (fewest|most) .+? \((\d+) recorded at the site vs ([\d.]+) expected "
                   r"from the other sites; (\d+) of its (\d+) subjects with none\): (.+)\.$")


def _agrees_with_event_counts(study, findings: pl.DataFrame) -> None:
    """Each finding's sentence: fewest when the effect is negative, else most; the site's recorded and
    expected counts are those of the finding's description; min(5, subjects) subjects named."""
    texts = dict(where_to_look(study, _event_wanted(findings.select("site_id", "variable").rows())).rows())
    assert len(texts) == findings.height
    for f in findings.iter_rows(named=True):
        direction, observed, expected, _, subjects, items = _HEAD.match(
            texts[f"csm:event_counts:{f['variable']}@{f['site_id']}"]).groups()
        assert direction == ("fewest" if f["effect"] < 0 else "most")
        assert f" recorded {observed} " in f["description"]
        assert f" vs {expected} expected " in f["description"]
        assert len(items.split("; ")) == min(5, int(subjects))


def test_event_count_subjects_agree_with_the_test_on_every_site(events_study, tables):
    """On the hand-made study and the synthetic trial (AE and DV at 16 sites): the direction, and the
    site's counts (the sum of its subjects' expected counts is the test's E)."""
    _agrees_with_event_counts(events_study, event_counts(events_study, min_subjects=1))
    findings = event_counts(tables)
    assert set(findings["variable"]) == {"AE", "DV"} and findings.height == 32
    _agrees_with_event_counts(tables, findings)
    under = findings.filter(site_id=SITE["ae_under_reporting"], variable="AE")
    assert under["effect"][0] < 0


def test_event_count_subjects_name_the_records_of_every_table_the_test_counts():
    """The look takes its counts from rbqm.csm.site_events; it only adds the nouns, for every events table."""
    from rbqm.csm import EVENT_TABLES
    from rbqm.where_to_look import _EVENT_NOUNS

    assert set(_EVENT_NOUNS) == {table.upper() for table in EVENT_TABLES}
