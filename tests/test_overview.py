"""rbqm.overview: enrolment against plan, red and amber sites, QTL status and what changed since the
previous cut; on hand-made frames (every number counted by hand) and on a small synthetic study with an
injected anomaly that turns a site red at its third cut."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbqm.analysis import Analysis, analyze_study
from rbqm.csm import CSM_COLUMNS
from rbqm.errors import RbqmError
from rbqm.overview import (
    CutOverview,
    cut_overview,
    describe_changes,
    enrolment_vs_plan,
    previous_cut,
    qtl_changes,
    qtl_status_counts,
    qtls_outside_limits,
    signal_changes,
    site_changes,
    site_flag_counts,
    site_flag_status,
)
from rbqm.qtl import study_qtls
from rbqm.signals import derive_signals
from rbqm.site_profile import tables_at_cut
from synthetic import AnomalySpec, SynthConfig, generate_study

CUTS = [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]
EMPTY = pl.DataFrame()


def analysis_of(*, site_risk: pl.DataFrame = EMPTY, qtl: pl.DataFrame = EMPTY, results: pl.DataFrame = EMPTY,
                cuts: list[date] = CUTS) -> Analysis:
    return Analysis("S", cuts, results, EMPTY, site_risk, qtl, pl.DataFrame(schema=CSM_COLUMNS))


# --- enrolment versus plan, by hand ------------------------------------------------------------------------

SUBJECTS = pl.DataFrame({
    "SITEID": ["1", "1", "1", "2", "2", "3", "4", "4"],
    "enrolled": [True, True, False, True, True, True, False, True],
})
SITES = pl.DataFrame({"SITEID": ["1", "2", "3", "4", "5"], "COUNTRY": ["FRA", "FRA", "DEU", "DEU", "ITA"],
                      "PLANNEDENR": [4, 5, None, 0, None]})


def test_enrolment_per_site_counts_the_subjects_against_the_plan() -> None:
    frame = enrolment_vs_plan({"subjects": SUBJECTS, "sites": SITES})
    assert frame.rows() == [
        ("1", "FRA", 3, 2, 4, 0.5, None),
        ("2", "FRA", 2, 2, 5, 0.4, None),
        ("3", "DEU", 1, 1, None, None, "no plan"),
        ("4", "DEU", 2, 1, 0, None, "planned 0"),
        ("5", "ITA", 0, 0, None, None, "no plan"),  # listed, nobody screened yet
    ]
    assert frame.columns == ["site_id", "country", "screened", "enrolled", "planned", "share_of_plan", "plan_note"]


def test_enrolment_per_country_counts_only_planned_sites_in_the_share() -> None:
    frame = enrolment_vs_plan({"subjects": SUBJECTS.lazy(), "sites": SITES.lazy()}, by="country")
    assert frame.select("country", "sites", "sites_with_plan", "screened", "enrolled", "planned",
                        "enrolled_at_planned_sites", "share_of_plan", "plan_note").rows() == [
        # site 3 (no plan, 1 enrolled) is not held against site 4's plan of 0
        ("DEU", 2, 1, 3, 2, 0, 1, None, "planned 0"),
        ("FRA", 2, 2, 5, 4, 9, 4, pytest.approx(4 / 9), None),
        ("ITA", 1, 0, 0, 0, None, 0, None, "no plan"),
    ]


def test_enrolment_of_the_study_and_a_partial_plan() -> None:
    sites = SITES.with_columns(PLANNEDENR=pl.Series([4, 5, 3, None, None]))
    study = enrolment_vs_plan({"subjects": SUBJECTS, "sites": sites}, by="study")
    assert study.select("sites", "sites_with_plan", "enrolled", "planned", "enrolled_at_planned_sites",
                        "share_of_plan", "plan_note").row(0) == (5, 3, 6, 12, 5, pytest.approx(5 / 12),
                                                                 "plan for 3 of 5 sites")


def test_without_planned_enrolment_nothing_is_invented() -> None:
    tables = {"subjects": SUBJECTS, "sites": SITES.drop("PLANNEDENR")}
    for by in ("site", "country", "study"):
        frame = enrolment_vs_plan(tables, by=by)  # type: ignore[arg-type]
        assert frame["planned"].is_null().all() and frame["share_of_plan"].is_null().all()
        assert set(frame["plan_note"]) == {"no plan"}
    assert enrolment_vs_plan(tables, by="study")["enrolled"].item() == 6


def test_unknown_level_is_refused() -> None:
    with pytest.raises(RbqmError, match="by must be 'site', 'country' or 'study', got 'region'"):
        enrolment_vs_plan({"subjects": SUBJECTS, "sites": SITES}, by="region")  # type: ignore[arg-type]


# --- red and amber sites, by hand -----------------------------------------------------------------------------

RISK = pl.DataFrame({
    "cut_date": [CUTS[0]] * 4 + [CUTS[1]] * 5,
    "site_id": ["A", "B", "C", "D", "A", "B", "C", "D", "E"],
    "country": ["FRA", "FRA", "DEU", "DEU", "FRA", "FRA", "DEU", "DEU", "ITA"],
    # cut 1: A red, B amber, C amber, D none; cut 2: A amber, B red, C none, D none, E (new) amber
    "red": [2, 0, 0, None, 0, 1, 0, 0, 0],
    "amber": [1, 3, 1, None, 1, 0, 0, 0, 2],
})


def test_site_status_and_counts_per_cut() -> None:
    analysis = analysis_of(site_risk=RISK)
    status = site_flag_status(analysis)
    assert status.filter(pl.col("cut_date") == CUTS[1])["status"].to_list() == ["amber", "red", "none", "none", "amber"]
    assert site_flag_counts(analysis).rows() == [
        (CUTS[0], 4, 1, 2, 1), (CUTS[1], 5, 1, 2, 2), (CUTS[2], 0, 0, 0, 0)]  # the third cut has no site
    assert site_flag_counts(analysis, cut=CUTS[1]).rows() == [(CUTS[1], 5, 1, 2, 2)]


def test_site_changes_name_each_kind() -> None:
    analysis = analysis_of(site_risk=RISK)
    assert site_changes(analysis, CUTS[1]).rows() == [
        ("B", "FRA", "amber", "red", "turned red"),
        ("E", "ITA", None, "amber", "turned amber"),
        ("A", "FRA", "red", "amber", "eased to amber"),
        ("C", "DEU", "amber", "none", "cleared"),
    ]
    first = site_changes(analysis, CUTS[0])
    assert first.is_empty() and first.columns == ["site_id", "country", "previous_status", "status", "change"]


def test_unknown_cut_lists_the_cuts() -> None:
    analysis = analysis_of(site_risk=RISK)
    cuts = "2025-01-01, 2025-02-01, 2025-03-01"
    with pytest.raises(RbqmError, match=f"S has no data cut 2025-04-01; its cuts are {cuts}"):
        site_flag_counts(analysis, cut=date(2025, 4, 1))
    with pytest.raises(RbqmError, match="no data cut 2024-12-31"):
        cut_overview(analysis, date(2024, 12, 31))
    assert previous_cut(analysis, CUTS[2]) == CUTS[1]
    assert previous_cut(analysis, CUTS[0]) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(CUTS), st.integers(0, 3) | st.none(), st.integers(0, 3) | st.none()),
                max_size=30))
def test_every_site_is_counted_once(rows: list[tuple[date, int | None, int | None]]) -> None:
    risk = pl.DataFrame({"cut_date": [r[0] for r in rows], "site_id": [str(i) for i in range(len(rows))],
                         "country": ["FRA"] * len(rows), "red": [r[1] for r in rows], "amber": [r[2] for r in rows]},
                        schema={"cut_date": pl.Date, "site_id": pl.String, "country": pl.String, "red": pl.Int64,
                                "amber": pl.Int64})
    counts = site_flag_counts(analysis_of(site_risk=risk))
    for cut, sites, red, amber, none in counts.rows():
        mine = [(r or 0, a or 0) for c, r, a in rows if c == cut]
        assert (sites, red, amber, none) == (len(mine), sum(r > 0 for r, _ in mine),
                                             sum(r == 0 and a > 0 for r, a in mine),
                                             sum(r == 0 and a == 0 for r, a in mine))


# --- QTLs, by hand -----------------------------------------------------------------------------------------------

WITHIN, CROSSED, BREACHED = "within limits", "secondary limit crossed", "tolerance limit breached"


def qtl_frame() -> pl.DataFrame:
    rows = [  # (qtl_id, cut, estimate, status): q1 worsens twice, q2 improves at the last cut, q3 never computed
        ("q1", CUTS[0], 0.01, WITHIN), ("q1", CUTS[1], 0.05, CROSSED), ("q1", CUTS[2], 0.09, BREACHED),
        ("q2", CUTS[0], 0.2, BREACHED), ("q2", CUTS[1], 0.2, BREACHED), ("q2", CUTS[2], 0.1, CROSSED),
        ("q3", CUTS[0], None, None), ("q3", CUTS[1], None, None), ("q3", CUTS[2], None, None),
    ]
    return pl.DataFrame(
        [{"study_id": "S", "qtl_id": q, "cut_date": c, "estimate": e, "lower": None, "upper": None,
          "secondary_limit": 0.04, "limit": 0.08, "probability_exceed": None, "status": s} for q, c, e, s in rows],
        schema_overrides={"lower": pl.Float64, "upper": pl.Float64, "probability_exceed": pl.Float64})


def test_qtl_status_counts_and_those_outside_limits() -> None:
    analysis = analysis_of(qtl=qtl_frame())
    assert qtl_status_counts(analysis, CUTS[1]).rows() == [
        (WITHIN, 0), (CROSSED, 1), (BREACHED, 1), ("not computed", 1)]
    assert qtls_outside_limits(analysis, CUTS[2], names={"q1": "Deaths"}).select("qtl_id", "name", "status").rows() == [
        ("q1", "Deaths", BREACHED), ("q2", "q2", CROSSED)]
    assert qtls_outside_limits(analysis, CUTS[0], names={})["qtl_id"].to_list() == ["q2"]


def test_qtl_changes_compare_with_the_cut_before_only() -> None:
    analysis = analysis_of(qtl=qtl_frame())
    names = {"q1": "Deaths", "q2": "Withdrawals"}
    assert qtl_changes(analysis, CUTS[0], names=names).is_empty()
    assert qtl_changes(analysis, CUTS[1], names=names).rows() == [("q1", "Deaths", WITHIN, CROSSED, "worse")]
    assert qtl_changes(analysis, CUTS[2], names=names).rows() == [
        ("q1", "Deaths", CROSSED, BREACHED, "worse"), ("q2", "Withdrawals", BREACHED, CROSSED, "better")]


# --- signals and the words, by hand -------------------------------------------------------------------------------


def flag_results() -> pl.DataFrame:
    flags = {  # site -> KRI -> flag at the three cuts
        "A": {"kri0001": [1, 2, 2], "kri0002": [1, 1, 0]},
        "B": {"kri0001": [0, 1, 1], "kri0002": [2, 2, 1]},
    }
    rows = [{"study_id": "S", "cut_date": cut, "level": "site", "group_id": site, "kri_id": kri,
             "score": float(flag), "flag": flag}
            for site, kris in flags.items() for kri, values in kris.items()
            for cut, flag in zip(CUTS, values, strict=True)]
    return pl.DataFrame(rows, schema_overrides={"flag": pl.Int8})


def test_signal_changes_from_derived_signals() -> None:
    signals = derive_signals(analysis_of(results=flag_results()))
    names = {"kri0001": "Adverse event rate", "kri0002": "Serious adverse event rate"}
    assert signal_changes(signals, CUTS[0], first_cut=True, names=names).is_empty()
    assert signal_changes(signals, CUTS[1], names=names).select("signal_id", "label", "severity", "state").rows() == [
        ("kri0001@B", "Adverse event rate at site B", "amber", "new"),
        ("kri0001@A", "Adverse event rate at site A", "red", "escalated"),
    ]
    assert signal_changes(signals, CUTS[2], names=names).select("signal_id", "state").rows() == [
        ("kri0002@B", "de-escalated"), ("kri0002@A", "resolved")]


def test_describe_changes_in_words() -> None:
    site_risk = pl.DataFrame({"cut_date": [CUTS[0], CUTS[0], CUTS[1], CUTS[1]], "site_id": ["A", "B", "A", "B"],
                              "country": ["FRA", "DEU", "FRA", "DEU"], "red": [0, 1, 1, 0], "amber": [1, 0, 0, 0]})
    analysis = analysis_of(site_risk=site_risk, qtl=qtl_frame(), results=flag_results(), cuts=CUTS[:2])
    overview = cut_overview(analysis, CUTS[1])
    assert overview.previous_cut == CUTS[0]
    assert overview.changes == [
        "1 site turned red: A (FRA).",
        "1 site cleared: B (DEU).",
        "q1 got worse: within limits → secondary limit crossed.",  # not in the shipped library: no name
        "2 new signals: Adverse event rate at site B (amber), q1 at study level (amber).",
        "1 escalated signal: Adverse event rate at site A (red).",
    ]
    assert overview.site_counts.rows() == [(CUTS[0], 2, 1, 1, 0), (CUTS[1], 2, 1, 0, 1)]
    first = cut_overview(analysis, CUTS[0])
    assert first.changes == ["2025-01-01 is the study's first data cut: there is no previous cut to compare it with."]
    assert first.site_changes.is_empty() and first.qtl_changes.is_empty() and first.signal_changes.is_empty()
    assert first.site_counts.rows() == [(CUTS[0], 2, 1, 1, 0)]


def test_describe_changes_says_when_nothing_changed_and_shortens_long_lists() -> None:
    empty = cut_overview(analysis_of(site_risk=RISK.filter(pl.col("cut_date") == CUTS[0]), qtl=EMPTY,
                                     results=EMPTY, cuts=CUTS[:1]), CUTS[0])
    quiet = replace(empty, cut_date=CUTS[1], previous_cut=CUTS[0])
    assert describe_changes(quiet) == [
        ("Nothing changed since 2025-01-01: the same sites are red and amber, every QTL has the same status, "
         "and no signal is new, escalated, de-escalated or resolved.")]
    many = pl.DataFrame({"site_id": [f"{i:02d}" for i in range(11)], "country": "FRA", "previous_status": "none",
                         "status": "red", "change": "turned red"})
    busy = replace(quiet, site_changes=many)
    assert describe_changes(busy) == [
        ("11 sites turned red: 00 (FRA), 01 (FRA), 02 (FRA), 03 (FRA), 04 (FRA), 05 (FRA), 06 (FRA), 07 (FRA) "
         "and 3 more.")]
    assert isinstance(busy, CutOverview)


# --- a synthetic study: site 1005 violates eligibility from late June, red at the third cut ----------------------

DESIGN = {"sites": 8, "subjects": 240, "countries": 2, "seed": 4, "months": 8, "cuts": 3}
INJECTED = AnomalySpec(type="excess_eligibility_violations", magnitude=1.0, sites=("1005",), start=date(2024, 6, 29))
SYNTH_CUTS = [date(2024, 7, 8), date(2024, 8, 8), date(2024, 9, 8)]
QTL_LIMITS = {"qtl0003": {"expected_rate": 0.04, "secondary_limit": 0.06, "limit": 0.085}}
"""Tight limits for premature treatment discontinuation (estimates 0.051, 0.079, 0.0875 at the cuts):
within, then the secondary limit crossed, then the tolerance limit breached."""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("overview") / "study"
    generate_study(SynthConfig(**DESIGN, anomalies=(INJECTED,)), folder)
    return folder


@pytest.fixture(scope="module")
def analysis(study: Path) -> Analysis:
    analyzed = analyze_study(study, csm=False)
    return replace(analyzed, qtl=study_qtls(study, limits=QTL_LIMITS))  # as the dashboard applies a study's limits


def test_the_injected_site_turns_red_at_the_third_cut(analysis: Analysis) -> None:
    assert analysis.cut_dates == SYNTH_CUTS
    status = site_flag_status(analysis).filter(pl.col("site_id") == "1005")
    assert status["status"].to_list() == ["amber", "amber", "red"]
    assert site_flag_counts(analysis).rows() == [
        (SYNTH_CUTS[0], 8, 0, 6, 2), (SYNTH_CUTS[1], 8, 1, 6, 1), (SYNTH_CUTS[2], 8, 2, 6, 0)]
    assert site_changes(analysis, SYNTH_CUTS[2]).rows() == [
        ("1005", "USA", "amber", "red", "turned red"), ("1007", "DEU", "none", "amber", "turned amber")]
    assert site_changes(analysis, SYNTH_CUTS[1]).rows() == [
        ("1003", "USA", "amber", "red", "turned red"), ("1008", "DEU", "none", "amber", "turned amber")]


def test_counts_agree_with_the_analysis_by_hand(analysis: Analysis) -> None:
    for cut in analysis.cut_dates:  # a red site has a red flag; an amber one an amber flag and no red
        flags = [(r["red"] or 0, r["amber"] or 0)
                 for r in analysis.site_risk.filter(pl.col("cut_date") == cut).iter_rows(named=True)]
        assert site_flag_counts(analysis, cut=cut).row(0)[1:] == (
            len(flags), sum(red > 0 for red, _ in flags), sum(red == 0 and amber > 0 for red, amber in flags),
            sum(red == 0 and amber == 0 for red, amber in flags))


def test_what_changed_at_the_third_cut(analysis: Analysis) -> None:
    overview = cut_overview(analysis, SYNTH_CUTS[2])
    assert overview.signal_changes.select("signal_id", "state").rows() == [
        ("kri0001@1004", "new"), ("kri0002@1007", "new"), ("kri0014@1005", "escalated"),
        ("qtl0003@study", "escalated"), ("kri0001@1006", "resolved"), ("kri0002@1006", "resolved"),
        ("kri0018@1001", "resolved")]
    assert overview.qtl_changes.rows() == [
        ("qtl0003", "Premature treatment discontinuation", "secondary limit crossed", "tolerance limit breached",
         "worse")]
    assert overview.qtl_counts.rows() == [
        ("within limits", 8), ("secondary limit crossed", 0), ("tolerance limit breached", 1), ("not computed", 0)]
    assert overview.qtls_outside_limits.select("qtl_id", "status").rows() == [("qtl0003", "tolerance limit breached")]
    assert overview.site_counts["cut_date"].to_list() == SYNTH_CUTS
    assert cut_overview(analysis, SYNTH_CUTS[1]).site_counts["red_sites"].to_list() == [0, 1]  # later cuts left out
    assert overview.changes == [
        "1 site turned red: 1005 (USA).",
        "1 site turned amber: 1007 (DEU).",
        "qtl0003 Premature treatment discontinuation got worse: secondary limit crossed → tolerance limit breached.",
        "2 new signals: Adverse event rate at site 1004 (amber), Serious adverse event rate at site 1007 (amber).",
        ("2 escalated signals: Ineligible subjects at site 1005 (red), Premature treatment discontinuation "
         "at study level (red)."),
        ("3 resolved signals: Adverse event rate at site 1006 (amber), Serious adverse event rate at site 1006 "
         "(amber), Out-of-window visits at site 1001 (amber)."),
    ]


def test_the_first_cut_has_nothing_to_compare(analysis: Analysis) -> None:
    overview = cut_overview(analysis, SYNTH_CUTS[0], signals=derive_signals(analysis))
    assert overview.previous_cut is None
    assert overview.changes == [
        "2024-07-08 is the study's first data cut: there is no previous cut to compare it with."]
    assert overview.qtl_counts["qtls"].to_list() == [9, 0, 0, 0]


ENROLLED = {"1001": (33, 30), "1002": (17, 28), "1003": (42, 26), "1004": (11, 21), "1005": (24, 28),
            "1006": (22, 39), "1007": (37, 36), "1008": (54, 32)}
"""Enrolled subjects and PLANNEDENR per site at the third cut."""


def test_enrolment_against_plan_at_the_third_cut(study: Path) -> None:
    tables = tables_at_cut(study, SYNTH_CUTS[2])
    sites = enrolment_vs_plan(tables)
    assert {r["site_id"]: (r["enrolled"], r["planned"]) for r in sites.iter_rows(named=True)} == ENROLLED
    assert sites["share_of_plan"].to_list() == pytest.approx([e / p for e, p in ENROLLED.values()])
    # counted again from the raw dm of the cut folder: randomised by the cut, not a screen failure
    dm = pl.read_parquet(study / "cuts" / SYNTH_CUTS[2].isoformat() / "dm.parquet")
    raw = (dm.filter(pl.col("RFSTDTC").is_not_null(), pl.col("RFSTDTC") <= SYNTH_CUTS[2].isoformat(),
                     ~pl.col("ARMCD").is_in(["SCRNFAIL", "NOTASSGN"]))
           .group_by("SITEID").len().sort("SITEID"))
    assert dict(raw.iter_rows()) == {site: enrolled for site, (enrolled, _) in ENROLLED.items()}
    countries = enrolment_vs_plan(tables, by="country")
    assert countries.select("country", "sites", "enrolled", "planned", "plan_note").rows() == [
        ("DEU", 3, 113, 107, None), ("USA", 5, 127, 133, None)]
    study = enrolment_vs_plan(tables, by="study")
    assert study.select("enrolled", "planned", "share_of_plan").row(0) == (240, 240, 1.0)


def test_enrolment_at_each_cut(study: Path) -> None:
    totals = [enrolment_vs_plan(tables_at_cut(study, cut), by="study").select("screened", "enrolled", "planned").row(0)
              for cut in SYNTH_CUTS]
    assert totals == [(311, 236, 240), (316, 240, 240), (316, 240, 240)]
