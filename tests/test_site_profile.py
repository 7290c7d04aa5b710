"""rbqm.site_profile: one site's selections of an analysis, on small hand-made frames with the expected
values written down."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from rbqm.analysis import Analysis
from rbqm.csm import CSM_COLUMNS
from rbqm.errors import RbqmError
from rbqm.kri import load_definitions
from rbqm.kri.definition import Count
from rbqm.site_profile import (
    SITE_SORTS,
    describe_count,
    open_site_signals,
    risk_table,
    site_actions,
    site_findings,
    site_header,
    site_kris,
    subject_listing,
)

C1, C2, C3 = date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31)
DEFINITIONS = {d.id: d for d in load_definitions()}


def _risk(**extra: list) -> pl.DataFrame:
    """Site risk at C3 (and one row at C2 that must never leak into C3's answers)."""
    frame = pl.DataFrame({
        "site_id": ["1", "2", "3", "4", "1"], "country": ["FRA", "DEU", "FRA", "USA", "FRA"],
        "risk_score": [40.0, 75.0, None, 10.0, 99.0], "red": [1, 2, 0, 0, 3], "amber": [1, 0, 0, 1, 0],
        "kris_scored": [20, 21, 0, 19, 20], "rank": [2, 1, None, 3, 1], "cut_date": [C3, C3, C3, C3, C2],
        **extra,
    })
    return frame


def _analysis(site_risk: pl.DataFrame | None = None, results: pl.DataFrame | None = None,
              csm: pl.DataFrame | None = None) -> Analysis:
    return Analysis("S", [C1, C2, C3], pl.DataFrame() if results is None else results, pl.DataFrame(),
                    _risk() if site_risk is None else site_risk, pl.DataFrame(),
                    pl.DataFrame(schema=CSM_COLUMNS) if csm is None else csm)


REGION_OF = pl.DataFrame({"site_id": ["1", "2", "3", "4"],
                          "region": ["Western Europe", "Western Europe", "EMEA", "North America"]})


# --- risk_table ------------------------------------------------------------------------------------

def test_risk_table_is_the_cut_by_rank_with_unranked_sites_last() -> None:
    table = risk_table(_analysis(), C3)
    assert table["site_id"].to_list() == ["2", "1", "4", "3"]
    assert table["region"].null_count() == 4  # no regions given
    assert table["risk_score"].to_list() == [75.0, 40.0, 10.0, None]


def test_risk_table_filters_countries_and_regions_together() -> None:
    analysis = _analysis()
    assert risk_table(analysis, C3, region_of=REGION_OF, countries=["FRA"])["site_id"].to_list() == ["1", "3"]
    europe = risk_table(analysis, C3, region_of=REGION_OF, regions=["Western Europe"])
    assert europe["site_id"].to_list() == ["2", "1"]
    both = risk_table(analysis, C3, region_of=REGION_OF, countries=["FRA"], regions=["Western Europe"])
    assert both["site_id"].to_list() == ["1"]
    assert both["region"].to_list() == ["Western Europe"]


@pytest.mark.parametrize(("sort_by", "expected"), [
    ("risk", ["2", "1", "4", "3"]),
    ("site", ["1", "2", "3", "4"]),
    ("country", ["2", "1", "3", "4"]),  # DEU, then FRA by rank (1 ranked, 3 not), then USA
    ("region", ["3", "4", "2", "1"]),  # EMEA, North America, Western Europe by rank
])
def test_risk_table_orders(sort_by: str, expected: list[str]) -> None:
    assert risk_table(_analysis(), C3, region_of=REGION_OF, sort_by=sort_by)["site_id"].to_list() == expected


def test_risk_table_by_data_inconsistency_highest_first_missing_last() -> None:
    risk = _risk(dis=[0.5, 2.5, None, 2.5, 9.0], dis_rank=[3, 1, None, 1, 1])
    table = risk_table(_analysis(risk), C3, sort_by="dis")
    assert table["site_id"].to_list() == ["2", "4", "1", "3"]  # 2.5 (rank 1), 2.5 (rank 3), 0.5, none


def test_risk_table_dis_order_without_dis_falls_back_to_rank() -> None:
    assert risk_table(_analysis(), C3, sort_by="dis")["site_id"].to_list() == ["2", "1", "4", "3"]


def test_risk_table_refuses_an_unknown_order() -> None:
    with pytest.raises(RbqmError, match="unknown site order 'size'; choose one of risk, dis, site"):
        risk_table(_analysis(), C3, sort_by="size")
    assert set(SITE_SORTS) == {"risk", "dis", "site", "country", "region"}


# --- site_header -----------------------------------------------------------------------------------

SUBJECTS = pl.DataFrame({"USUBJID": ["a", "b", "c", "d"], "SITEID": ["1", "1", "1", "2"],
                         "enrolled": [True, False, True, True], "days_on_study": [30, None, 12, 5]})


def test_site_header_counts_and_ranks() -> None:
    header = site_header(_analysis(), "1", C3, subjects=SUBJECTS, region="Western Europe")
    assert (header.site_id, header.country, header.region) == ("1", "FRA", "Western Europe")
    assert (header.screened, header.enrolled) == (3, 2)
    assert (header.rank, header.ranked_sites, header.risk_score) == (2, 3, 40.0)
    assert (header.red, header.amber, header.kris_scored) == (1, 1, 20)
    assert header.dis is None and header.dis_rank is None


def test_site_header_takes_the_data_inconsistency_score_when_there_is_one() -> None:
    risk = _risk(dis=[0.5, 2.5, None, 1.0, 9.0], dis_rank=[3, 1, None, 2, 1])
    header = site_header(_analysis(risk), "1", C3, subjects=SUBJECTS)
    assert (header.dis, header.dis_rank) == (0.5, 3)


def test_site_header_of_an_unranked_site() -> None:
    header = site_header(_analysis(), "3", C3, subjects=SUBJECTS)
    assert (header.rank, header.risk_score, header.screened, header.enrolled) == (None, None, 0, 0)


def test_site_header_of_an_unknown_site_names_the_sites() -> None:
    with pytest.raises(RbqmError, match=r"site '9' has no results at 2025-03-31; the sites are 1, 2, 3, 4"):
        site_header(_analysis(), "9", C3, subjects=SUBJECTS)


# --- site_kris ---------------------------------------------------------------------------------------

def _results() -> pl.DataFrame:
    rows = []
    for cut, score, flag in ((C1, -0.5, 0), (C2, None, None), (C3, -2.4, -2)):
        rows.append({"cut_date": cut, "level": "site", "group_id": "1", "kri_id": "kri0001", "numerator": 3.0,
                     "denominator": 1000.0, "metric": 0.003, "score": score, "flag": flag, "note": None,
                     "flag_change": "new" if flag else "none", "flagged_cuts": 1 if flag else 0})
    rows.append({"cut_date": C3, "level": "site", "group_id": "1", "kri_id": "kri0006", "numerator": 1.0,
                 "denominator": 4.0, "metric": 0.25, "score": 2.2, "flag": 1, "note": None,
                 "flag_change": "persisting", "flagged_cuts": 3})
    rows.append({"cut_date": C3, "level": "site", "group_id": "2", "kri_id": "kri0001", "numerator": 9.0,
                 "denominator": 1000.0, "metric": 0.009, "score": 1.0, "flag": 0, "note": None,
                 "flag_change": "none", "flagged_cuts": 0})
    rows.append({"cut_date": C3, "level": "country", "group_id": "1", "kri_id": "kri0001", "numerator": 0.0,
                 "denominator": 1.0, "metric": 0.0, "score": 0.0, "flag": 0, "note": None,
                 "flag_change": "none", "flagged_cuts": 0})
    return pl.DataFrame(rows, schema_overrides={"flag": pl.Int8})


def test_site_kris_at_a_cut_with_the_history_up_to_it() -> None:
    kris = site_kris(_analysis(results=_results()), "1", C3, list(DEFINITIONS.values()))
    assert kris["kri_id"].to_list() == ["kri0001", "kri0006"]
    ae = kris.row(0, named=True)
    assert ae["name"] == "Adverse event rate" and ae["metric_unit"] == "AEs per 1,000 days"
    assert ae["metric_shown"] == pytest.approx(3.0)  # 0.003 x 1000
    assert (ae["score"], ae["flag"], ae["flag_change"]) == (-2.4, -2, "new")
    assert ae["scores"] == [-0.5, None, -2.4] and ae["flags"] == [0, None, -2]
    assert kris.row(1, named=True)["scores"] == [2.2] and kris.row(1, named=True)["metric_shown"] == 0.25


def test_site_kris_at_an_earlier_cut_ignore_later_cuts() -> None:
    kris = site_kris(_analysis(results=_results()), "1", C2, list(DEFINITIONS.values()))
    assert kris["kri_id"].to_list() == ["kri0001"]
    assert kris["scores"].to_list() == [[-0.5, None]]


# --- site_findings, signals, actions ------------------------------------------------------------------

def test_site_findings_mark_signals_by_q_value() -> None:
    csm = pl.DataFrame({
        "study_id": ["S"] * 5, "cut_date": [C3, C3, C3, C2, C3], "site_id": ["1", "1", "1", "1", "2"],
        "test": ["digit_preference", "ae_under_reporting", "low_variability", "ae_under_reporting",
                 "ae_under_reporting"],
        "variable": ["VS:SYSBP", "AE", "VS", "AE", "AE"], "statistic": [1.0] * 5,
        "p_value": [0.0001, 0.003, 0.5, 0.0, 0.0], "q_value": [0.002, 0.03, 0.6, 0.0, 0.0],
        "effect": [0.1] * 5, "description": ["d1", "d2", "d3", "old", "other site"],
    }, schema=CSM_COLUMNS)
    findings = site_findings(_analysis(csm=csm), "1", C3)
    assert findings["description"].to_list() == ["d1", "d2", "d3"]
    assert findings["signal"].to_list() == ["red", "amber", None]  # q < 0.01, q < 0.05, neither


def test_open_site_signals_leave_out_resolved_and_closed() -> None:
    work = pl.DataFrame({
        "signal_id": ["kri0001@1", "kri0002@1", "kri0003@1", "kri0004@1", "kri0005@1", "kri0001@2"],
        "site_id": ["1", "1", "1", "1", "1", "2"],
        "state": ["new", "persisting", "resolved", "escalated", "new", "new"],
        "status": ["new", "closed_no_action", "new", "resolved", None, "new"],
    })
    assert open_site_signals(work, "1")["signal_id"].to_list() == ["kri0001@1", "kri0005@1"]
    assert open_site_signals(work.drop("status"), "1")["signal_id"].to_list() == [
        "kri0001@1", "kri0002@1", "kri0004@1", "kri0005@1"]
    assert open_site_signals(work, "1", closed=())["signal_id"].to_list() == [
        "kri0001@1", "kri0002@1", "kri0004@1", "kri0005@1"]


def test_site_actions_highest_priority_first() -> None:
    actions = pl.DataFrame({"signal_id": ["a@1", "b@1", "a@2", "a@1"], "site_id": ["1", "1", "2", "1"],
                            "action": ["remote_review", "targeted_sdv", "capa", "investigator_call"],
                            "priority": [2.0, 6.0, 9.0, 2.0]})
    assert site_actions(actions, "1")["action"].to_list() == [
        "targeted_sdv", "investigator_call", "remote_review"]


# --- subject_listing, describe_count -------------------------------------------------------------------

COUNTS = pl.DataFrame({
    "kri_id": ["kri0001"] * 4 + ["kri0002"], "USUBJID": ["a", "b", "c", "d", "a"],
    "SITEID": ["1", "1", "1", "2", "1"], "COUNTRY": ["FRA"] * 5,
    "numerator": [1.0, 3.0, 0.0, 7.0, 5.0], "denominator": [250.0, 600.0, 0.0, 10.0, 1.0],
})


def test_subject_listing_in_the_kri_unit_lowest_first_for_a_low_concern() -> None:
    listing = subject_listing(COUNTS, SUBJECTS, DEFINITIONS["kri0001"], "1")  # AE rate: concern low
    assert listing.columns == ["USUBJID", "enrolled", "days_on_study", "numerator", "denominator", "metric"]
    assert listing.rows() == [
        ("a", True, 30, 1.0, 250.0, 4.0),  # 1 / 250 x 1000 AEs per 1,000 days
        ("b", False, None, 3.0, 600.0, 5.0),
        ("c", True, 12, 0.0, 0.0, None),  # no days on study: no metric, last
    ]
    assert listing["numerator"].sum() == 4.0 and listing["denominator"].sum() == 850.0


def test_subject_listing_highest_first_when_the_site_is_flagged_high() -> None:
    listing = subject_listing(COUNTS, SUBJECTS, DEFINITIONS["kri0001"], "1", flag=2)
    assert listing["USUBJID"].to_list() == ["b", "a", "c"]
    high_concern = DEFINITIONS["kri0004"]  # important deviations: concern high
    counts = COUNTS.filter(pl.col("kri_id") == "kri0001").with_columns(kri_id=pl.lit("kri0004"))
    assert subject_listing(counts, SUBJECTS, high_concern, "1")["USUBJID"].to_list() == ["b", "a", "c"]
    low_flag = subject_listing(counts, SUBJECTS, high_concern, "1", flag=-1)
    assert low_flag["USUBJID"].to_list() == ["a", "b", "c"]


@pytest.mark.parametrize(("count", "words"), [
    ({"table": "ae", "count": "records", "where": [{"column": "AESER", "equals": "Y"}]},
     "ae records where AESER = Y"),
    ({"table": "subjects", "count": "subjects", "where": [{"column": "enrolled", "equals": True}]},
     "subjects where enrolled = true"),
    ({"table": "lb", "count": "records",
      "where": [{"column": "grade", "in": [3, 4]}, {"column": "LBSTRESN", "is_null": False}]},
     "lb records where grade in 3, 4; LBSTRESN given"),
    ({"table": "pages", "sum": "days_to_entry", "where": [{"column": "days_to_entry", "ge": 0}]},
     "sum of days_to_entry (pages where days_to_entry ≥ 0)"),
    ({"table": "sites", "sum": "PLANNEDENR"}, "sum of PLANNEDENR (sites)"),
])
def test_describe_count_says_what_is_counted(count: dict, words: str) -> None:
    assert describe_count(Count.model_validate(count)) == words
