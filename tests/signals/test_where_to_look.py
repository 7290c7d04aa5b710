"""Where to look names the right subjects, records and readings for each anomaly type.

Each anomaly of tests/conftest.py's trial is injected at its own site; its clean twin (same seed) differs
only there, so the twin tells which records the anomaly made (a dropped AE, a downgraded SAE, an
added deviation, a late page). Each anomaly gets the signal that detects it, and the suggestion's
``where_to_look`` must name what the anomaly did, in the documented order. Implausible visit dates
have no detecting indicator yet (so no signal and nothing to name).
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from scipy.stats import poisson

from rbqm.actions import suggest_actions
from rbqm.analysis import Analysis
from rbqm.csm import CSM_COLUMNS
from rbqm.derive import derive_tables
from rbqm.signals import SIGNAL_COLUMNS
from rbqm.where_to_look import LOOKS, where_to_look
from synthetic import SynthConfig, tables_at
from tests.conftest import ALL_ANOMALIES, PAIR

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
}
SUBJECT = re.compile(r"RBQM-SYN-01-\d{4}-\d{4}")


def _signal_id(anomaly: str) -> str:
    kind, indicator = DETECTED_BY[anomaly]
    return f"{'csm:' if kind == 'csm' else ''}{indicator}@{SITE[anomaly]}"


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
