"""Data cuts: monthly snapshots of the same study, each showing only what was known on its date.

Run on the session study (``study_dir``: 3 cuts near the end, enrolment complete) and on a
small study cut every month from its start (enrolment in progress, anomalies not yet begun).
"""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from rbqm.io import read_study
from rbqm.schema import TABLE_NAMES, table
from rbqm.study import list_cuts
from synthetic import AnomalySpec, SynthConfig, generate_study

# Anomalies starting before the first cut, a quarter of the way in, and on a given date.
EARLY_ANOMALIES = (
    AnomalySpec(type="high_screen_failure", magnitude=0.5, sites=1, start=0.0),
    AnomalySpec(type="query_backlog", magnitude=5.0, sites=1, start=0.25),
    AnomalySpec(type="late_data_entry", magnitude=4.0, sites=2, start=date(2024, 9, 1)),
)
EARLY = SynthConfig(sites=6, subjects=120, countries=2, seed=9, months=12, cuts=12, anomalies=EARLY_ANOMALIES)
NESTED_KEYS = {
    "dm": ["USUBJID"],
    "ae": ["USUBJID", "AESEQ"],
    "queries": ["QRYID"],
    "lb": ["USUBJID", "LBTESTCD", "VISITNUM"],
    "datapoints": ["USUBJID", "FORM", "FIELD", "VISITNUM"],
}


@pytest.fixture(scope="module")
def early_study(tmp_path_factory):
    """A small study with a data cut at the end of every month from its start."""
    out = tmp_path_factory.mktemp("cuts") / "early"
    generate_study(EARLY, out)
    return out


def _read(folder):
    cuts = list_cuts(folder)
    return {
        "folder": folder,
        "cuts": cuts,
        "dates": [date.fromisoformat(p.name) for p in cuts],
        "data": [read_study(p) for p in cuts],
        "truth": [pl.read_csv(p / "truth.csv", infer_schema=False) for p in cuts],
        "top": read_study(folder),
        "top_truth": pl.read_csv(folder / "truth.csv", infer_schema=False),
    }


@pytest.fixture(scope="module")
def session_cuts(study_dir):
    return _read(study_dir)


@pytest.fixture(scope="module")
def early_cuts(early_study):
    return _read(early_study)


@pytest.fixture(params=["session", "early"])
def study(request):
    return request.getfixturevalue(f"{request.param}_cuts")


def _pairs(study):
    """(earlier, later) snapshots: consecutive cuts, then the last cut and the top-level study."""
    snaps = list(zip(study["dates"], study["data"])) + [(None, study["top"])]
    return list(zip(snaps, snaps[1:]))


def test_session_cuts_are_the_last_three_months(session_cuts):
    assert [p.name for p in session_cuts["cuts"]] == ["2025-05-08", "2025-06-08", "2025-07-08"]
    assert sorted(p.name for p in (session_cuts["folder"] / "cuts").iterdir()) == \
        [p.name for p in session_cuts["cuts"]]


def test_early_cuts_are_every_month_from_the_start(early_cuts):
    assert [p.name for p in early_cuts["cuts"]] == [d.isoformat() for d in EARLY.cut_dates()]
    assert early_cuts["dates"][0] == date(2024, 2, 8)
    assert early_cuts["dates"][-1] == EARLY.end == date(2025, 1, 8)


def test_early_cuts_see_enrolment_and_anomalies_begin(early_cuts):
    """Guard: the early study exercises screening in progress and anomalies starting between cuts."""
    notassgn = [d["dm"].filter(pl.col("ARMCD") == "NOTASSGN").height for d in early_cuts["data"]]
    truth = [t.height for t in early_cuts["truth"]]
    assert max(notassgn) > 0
    assert early_cuts["data"][0]["dm"].height < early_cuts["data"][-1]["dm"].height
    assert truth == [1, 1, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4]
    starts = sorted(early_cuts["top_truth"]["STARTDTC"])
    assert starts == ["2024-01-08", "2024-04-08", "2024-09-01", "2024-09-01"]


def test_cuts_are_monthly_and_oldest_first(study):
    dates = study["dates"]
    assert dates == sorted(dates) and len(set(dates)) == len(dates)
    months = [d.year * 12 + d.month for d in dates]
    assert all(b - a == 1 for a, b in zip(months, months[1:]))
    assert len({d.day for d in dates}) == 1


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_last_cut_equals_the_study(study, name):
    assert study["data"][-1][name].equals(study["top"][name])


def test_last_cut_truth_equals_the_study_truth(study):
    assert (study["cuts"][-1] / "truth.csv").read_bytes() == (study["folder"] / "truth.csv").read_bytes()


def test_no_date_after_the_cut(study):
    for when, data in zip(study["dates"], study["data"]):
        cut = when.isoformat()
        for name, frame in data.items():
            for col in (c.name for c in table(name).columns if c.type == "datetime"):
                late = frame.filter(pl.col(col).str.slice(0, 10) > cut)
                assert late.is_empty(), f"cut {cut}: {name}.{col} after it: {late[col].head(3).to_list()}"


@pytest.mark.parametrize("name", sorted(NESTED_KEYS))
def test_cuts_are_nested(study, name):
    """Every record of an earlier cut is still there in the later cut."""
    key = NESTED_KEYS[name]
    for (when, earlier), (_, later) in _pairs(study):
        lost = earlier[name].select(key).join(later[name].select(key), on=key, how="anti", nulls_equal=True)
        assert lost.is_empty(), f"{name}: {lost.height} keys of cut {when} are gone later: {lost.head(3)}"


def test_closed_queries_stay_closed(study):
    checked = 0
    for (when, earlier), (_, later) in _pairs(study):
        closed = earlier["queries"].filter(pl.col("QRYSTATUS") == "CLOSED").select("QRYID", "QRYCLOSEDTC")
        after = closed.join(later["queries"], on="QRYID", how="left", suffix="_later")
        assert after["QRYSTATUS"].to_list() == ["CLOSED"] * closed.height, f"reopened after cut {when}"
        assert after["QRYCLOSEDTC"].equals(after["QRYCLOSEDTC_later"])
        checked += closed.height
    assert checked > 0


def test_change_counts_never_decrease(study):
    key = NESTED_KEYS["datapoints"]
    grew = 0
    for (when, earlier), (_, later) in _pairs(study):
        both = earlier["datapoints"].join(later["datapoints"], on=key, how="inner", suffix="_later")
        assert both.height == earlier["datapoints"].height
        fell = both.filter(pl.col("NCHANGES_later") < pl.col("NCHANGES"))
        assert fell.is_empty(), f"NCHANGES decreased after cut {when}: {fell.head(3)}"
        grew += both.filter(pl.col("NCHANGES_later") > pl.col("NCHANGES")).height
    assert grew > 0


def test_arm_is_notassgn_exactly_when_not_yet_randomised(study):
    """NOTASSGN only without RFSTDTC; with RFSTDTC a real arm; screen failures have no RFSTDTC."""
    for when, data in zip(study["dates"] + ["study"], study["data"] + [study["top"]]):
        dm = data["dm"]
        randomised = pl.col("RFSTDTC").is_not_null()
        pending = pl.col("ARMCD").is_in(["NOTASSGN", "SCRNFAIL"])
        assert dm.filter(pending & randomised).is_empty(), when
        assert dm.filter(~pending & ~randomised).is_empty(), when


def test_arms_and_screen_failures_do_not_change(study):
    """Once a subject is randomised or a screen failure, the arm stays the same in later cuts."""
    for (when, earlier), (_, later) in _pairs(study):
        decided = earlier["dm"].filter(pl.col("ARMCD") != "NOTASSGN").select("USUBJID", "ARMCD", "RFSTDTC")
        after = decided.join(later["dm"], on="USUBJID", how="left", suffix="_later")
        assert after["ARMCD"].equals(after["ARMCD_later"]), when
        assert after["RFSTDTC"].equals(after["RFSTDTC_later"]), when


def test_truth_lists_only_anomalies_started_by_the_cut(study):
    for when, truth in zip(study["dates"], study["truth"]):
        cut = when.isoformat()
        assert (truth["STARTDTC"] <= cut).all(), cut
        assert truth.equals(study["top_truth"].filter(pl.col("STARTDTC") <= cut)), cut
