"""The report model on a synthetic study with the default anomalies: the anomalous sites come out on
top for the right reasons, and every count equals the analysis tables it comes from."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from rbqm.actions import suggest_actions
from rbqm.errors import RbqmError
from rbqm.report import build_report, restrict_to_cut
from rbqm.report.model import REASONS_SHOWN, cut_tables
from rbqm.signals import derive_signals
from rbqm.study import list_cuts, summarize_study

from .conftest import TODAY

# what each injected anomaly should show up as (a KRI id, or a central-monitoring test)
EXPECTED_REASONS = {
    "ae_under_reporting": ("kri0001", "kri0002", "ae_under_reporting:", "sae_under_reporting:"),
    "late_data_entry": ("kri0010", "kri0019"),
    "excess_important_deviations": ("kri0004",),
    "high_screen_failure": ("kri0012",),
    "fabricated_subjects": ("low_variability:",),
    "digit_preference": ("digit_preference:",),
}


def latest(frame: pl.DataFrame, cut: date) -> pl.DataFrame:
    return frame.filter(pl.col("cut_date") == cut)


def test_every_anomalous_site_is_a_top_site_for_the_right_reason(report, truth):
    top = report.top_sites["site_id"].to_list()
    for row in truth.iter_rows(named=True):
        site, anomaly = row["SITEID"], row["ANOMALY"]
        assert site in top, f"{anomaly} at {site} is not among the top sites {top}"
        given = report.reasons.filter(pl.col("site_id") == site, pl.col("shown"))["indicator"].to_list()
        assert any(i.startswith(EXPECTED_REASONS[anomaly]) for i in given), (site, anomaly, given)
        words = report.top_sites.filter(pl.col("site_id") == site)["reasons"].item()
        assert words and "; " in words  # in words, several of them


def test_reasons_name_kri_flags_first_and_count_the_rest(report):
    for site in report.top_sites["site_id"]:
        mine = report.reasons.filter(pl.col("site_id") == site)
        shown = mine.filter("shown")
        for kind, limit in REASONS_SHOWN.items():
            assert shown.filter(pl.col("kind") == kind).height == min(limit, mine.filter(pl.col("kind") == kind).height)
        assert shown["kind"].to_list() == sorted(shown["kind"].to_list(), reverse=True)  # kri before csm
        kri = shown.filter(pl.col("kind") == "kri")["level"].to_list()
        assert kri == sorted(kri, reverse=True)  # red before amber
        words = report.top_sites.filter(pl.col("site_id") == site)["reasons"].item()
        rest = mine.height - shown.height
        assert words.endswith(f"; and {rest} more") if rest else "more" not in words


def test_a_site_without_anomaly_is_not_given_the_anomaly_reasons(report, truth):
    clean = set(report.site_risk["site_id"]) - set(truth["SITEID"])
    reasons = report.reasons.filter(pl.col("site_id").is_in(list(clean)))
    assert not reasons.filter(pl.col("indicator").str.starts_with("low_variability")).height
    assert not reasons.filter(pl.col("indicator") == "kri0012", pl.col("text").str.contains("red")).height


def test_top_sites_are_the_highest_ranked_with_a_score(report, analysis):
    cut = analysis.cut_dates[-1]
    risk = latest(analysis.site_risk, cut).filter(pl.col("risk_score") > 0).sort("rank", "site_id")
    assert report.top_sites["site_id"].to_list() == risk["site_id"].head(10).to_list()
    assert report.top_sites["risk_score"].to_list() == risk["risk_score"].head(10).to_list()


def test_heatmap_and_site_counts_equal_the_analysis(report, analysis):
    cut = analysis.cut_dates[-1]
    risk = latest(analysis.site_risk, cut)
    results = latest(analysis.results, cut).filter(pl.col("level") == "site")
    assert report.site_risk.height == risk.height == report.heatmap["site_id"].n_unique()
    assert report.heatmap.height == results.height
    flags = report.heatmap["flag"].abs()
    assert int((flags == 2).sum()) == int(risk["red"].sum())
    assert int((flags == 1).sum()) == int(risk["amber"].sum())
    assert report.kris["kri_id"].to_list() == sorted(results["kri_id"].unique().to_list())
    previous = latest(analysis.site_risk, analysis.cut_dates[-2]).select("site_id", "rank")
    joined = report.site_risk.join(previous, on="site_id")
    assert joined["previous_rank"].to_list() == joined["rank_right"].to_list()


def test_signals_actions_and_csm_equal_the_engine(report, analysis, study):
    cut = analysis.cut_dates[-1]
    signals = latest(derive_signals(analysis), cut)
    assert sorted(report.signals["signal_id"]) == sorted(signals["signal_id"])
    counts = signals.group_by("state").agg(n=pl.len())
    for row in counts.iter_rows(named=True):
        assert report.signal_counts.filter(pl.col("state") == row["state"])["total"].item() == row["n"]
    assert int(report.signal_counts["total"].sum()) == signals.height
    actions = suggest_actions(analysis, derive_signals(analysis), tables=cut_tables(study, cut))
    assert sorted(report.actions["signal_id"]) == sorted(actions["signal_id"].unique())
    assert report.actions["priority"].is_sorted(descending=True)
    csm = latest(analysis.csm, cut)
    assert report.csm_tested == csm.height
    assert report.csm.height == csm.filter(pl.col("q_value") < 0.05).height
    assert report.csm["p_value"].is_sorted()
    assert report.signals["status"].is_null().all()  # no store: no workflow
    assert report.outcomes.is_empty() and report.outcome_summary is None  # no store: nothing known to be actioned


def test_qtls_equal_the_analysis(report, analysis):
    cut = analysis.cut_dates[-1]
    qtl = latest(analysis.qtl, cut).sort("qtl_id")
    assert report.qtl["qtl_id"].to_list() == qtl["qtl_id"].to_list()
    assert report.qtl["status"].to_list() == qtl["status"].to_list()
    before = latest(analysis.qtl, analysis.cut_dates[-2]).sort("qtl_id")
    assert report.qtl["previous_status"].to_list() == before["status"].to_list()
    assert set(report.qtl["limits_from"]) == {"library"}


def test_study_status_counts_equal_an_independent_summary(report, study):
    cuts = list_cuts(study)
    now, before = summarize_study(cuts[-1]), summarize_study(cuts[-2])
    status = report.status
    assert (status.screened, status.enrolled) == (now.screened, now.enrolled)
    assert (status.previous_screened, status.previous_enrolled) == (before.screened, before.enrolled)
    assert status.active_sites == now.sites and status.countries == now.countries
    planned = int(pl.read_parquet(cuts[-1] / "sites.parquet")["PLANNEDENR"].sum())
    assert status.planned == planned == int(status.by_country["planned"].sum())
    assert status.share_of_plan == pytest.approx(now.enrolled / planned)
    assert int(status.by_country["enrolled"].sum()) == now.enrolled


def test_an_earlier_cut_is_reported_as_it_was(analysis, study):
    first = analysis.cut_dates[0]
    report = build_report(analysis, study_dir=study, cut=first, today=TODAY)
    assert report.cut_date == first and report.previous_cut is None and report.cut_dates == [first]
    assert report.site_risk["rank"].to_list() == latest(analysis.site_risk, first).sort("rank", "site_id")["rank"].to_list()
    assert report.site_risk["previous_rank"].is_null().all()
    assert set(report.signals["state"]) == {"new"}
    assert report.status.previous_enrolled is None


def test_restrict_to_cut_drops_later_cuts_only(analysis):
    first = analysis.cut_dates[0]
    restricted = restrict_to_cut(analysis, first)
    assert restricted.cut_dates == [first]
    assert restricted.results.equals(latest(analysis.results, first))
    assert restricted.csm["cut_date"].unique().to_list() == [first]
    whole = restrict_to_cut(analysis, analysis.cut_dates[-1])
    assert whole.cut_dates == analysis.cut_dates and whole.results.equals(analysis.results)


@pytest.mark.parametrize(("options", "message"), [
    ({"cut": date(2020, 1, 1)}, "has no data cut 2020-01-01; its cuts are"),
    ({"top": 0}, "--top must be at least 1"),
])
def test_bad_options_are_user_errors(analysis, study, options, message):
    with pytest.raises(RbqmError, match=message):
        build_report(analysis, study_dir=study, **options)


def test_enrolment_against_plan_counts_only_the_sites_with_a_plan():
    """Site 2 has no plan: its subject neither fills another site's plan nor inflates the share."""
    from rbqm.report.model import _study_status

    subjects = pl.DataFrame({"SITEID": ["1", "1", "2", "3", "3"], "enrolled": [True, True, True, True, False],
                             "RFICDTC": ["2024-01-0%d" % d for d in range(1, 6)], "RFSTDTC": None},
                            schema_overrides={"RFSTDTC": pl.String})
    sites = pl.DataFrame({"SITEID": ["1", "2", "3"], "COUNTRY": ["FRA", "FRA", "DEU"], "PLANNEDENR": [4, None, 2]})
    status = _study_status({"subjects": subjects.lazy(), "sites": sites.lazy()}, None)
    assert (status.enrolled, status.planned, status.enrolled_at_planned_sites) == (4, 6, 3)
    assert status.share_of_plan == 0.5 and status.plan_note == "plan for 2 of 3 sites"
    assert status.by_country.select("country", "enrolled", "planned", "share_of_plan", "active_sites").rows() == [
        ("DEU", 1, 2, 0.5, 1), ("FRA", 3, 4, 0.5, 2)]
