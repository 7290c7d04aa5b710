"""Date checks, site against the rest of the study: visits on weekends and public holidays, visit
schedules kept too regularly (or too loosely), and dates in an impossible order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import holidays
import polars as pl
from holidays import registry
from scipy.special import ndtri

from rbqm.csm._contract import (
    check_analysis, check_integer, empty_findings, excess_versus_rest, finish, median_versus_rest,
    scores_versus_rest, study_stamp,
)
from rbqm.csm._variability import _strata
from rbqm.derive import AnalysisTables, to_date
from rbqm.stats import tie_safe

__all__ = ["DATE_CHECKS", "date_order", "holiday_calendar", "impossible_dates", "scheduled_visits",
           "subject_regularity", "visit_calendar", "visit_dates", "visit_regularity"]

#: ISO 3166-1 alpha-3 -> alpha-2 for every country the ``holidays`` package has a calendar for.
_ALPHA2: dict[str, str] = {entry[2]: entry[1] for entry in registry.COUNTRIES.values()}
_SATURDAY_SUNDAY = [6, 7]  # polars weekdays: Monday = 1
#: A visit number is on a fixed schedule when its robust SD of study days (1.4826 MAD) is at most this.
_MAX_SCHEDULE_SD = 7.0
#: ... and when at least this many subjects had it.
_MIN_SCHEDULE_SUBJECTS = 10
#: A visit further than both of these from its visit number's usual day is off schedule and left out (an
#: early-termination follow-up recorded under the scheduled visit number, a visit number reused).
_OFF_SCHEDULE_SPREADS = 6.0
_OFF_SCHEDULE_DAYS = 28.0
#: Floor of a median SD in days for the log ratio (a site whose visits all fall on the usual day).
_SD_FLOOR = 0.1


def _full_date(column: str) -> pl.Expr:
    """The date of a complete ISO 8601 date (a partial date is null: its day is unknown)."""
    return pl.when(pl.col(column).str.len_chars() >= 10).then(to_date(column))


def holiday_calendar(countries: list[str], years: range) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Public holidays and weekend days of ``countries`` (ISO 3166-1 alpha-3, or alpha-2) in ``years``.

    Returns (holidays: COUNTRY, date), one row per public holiday, and (weekends: COUNTRY, weekend
    as a list of polars weekdays, Monday = 1, and calendar: whether the ``holidays`` package knows
    the country). A country it does not know gets Saturday and Sunday and no holidays.
    """
    dates: list[tuple[str, date]] = []
    weekends = []
    for country in countries:
        code = _ALPHA2.get(country, country)
        try:
            calendar = holidays.country_holidays(code, years=years)
        except NotImplementedError:
            weekends.append((country, _SATURDAY_SUNDAY, False))
            continue
        dates.extend((country, day) for day in calendar)
        weekends.append((country, sorted(day + 1 for day in calendar.weekend), True))
    return (pl.DataFrame(dates, schema={"COUNTRY": pl.String, "date": pl.Date}, orient="row").unique(),
            pl.DataFrame(weekends, schema={"COUNTRY": pl.String, "weekend": pl.List(pl.Int8),
                                           "calendar": pl.Boolean}, orient="row"))


def visit_calendar(analysis: AnalysisTables) -> pl.DataFrame:
    """Every visit with a complete date, and whether it fell on a weekend day or a public holiday of the
    site's country: the visits :func:`visit_dates` counts per site.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; needs ``sv``.

    Returns
    -------
    polars.DataFrame
        One row per visit of a subject with a site and a complete SVSTDTC (partial dates are left out):
        ``site_id``, ``USUBJID``, ``VISITNUM``, ``VISIT``, ``COUNTRY`` (empty when unknown), ``date``,
        ``weekend`` (a weekend day of the country's calendar; Saturday or Sunday without one),
        ``holiday`` (a public holiday of the country), ``off`` (either) and ``calendar`` (whether the
        ``holidays`` package knows the country). Row-free without ``sv``.

    Examples
    --------
    >>> from rbqm.derive import derive_tables
    >>> dm = pl.DataFrame({"STUDYID": "S", "USUBJID": ["S-1"], "SITEID": ["1"], "COUNTRY": ["FRA"],
    ...                    "RFSTDTC": ["2024-04-29"], "ARMCD": ["A"]})
    >>> sv = pl.DataFrame({"USUBJID": "S-1", "VISITNUM": [1.0, 2.0, 3.0], "VISIT": ["V1", "V2", "V3"],
    ...                    "SVSTDTC": ["2024-04-30", "2024-05-01", "2024-05-04"]})
    >>> visits = visit_calendar(derive_tables({"dm": dm, "sv": sv}, as_of=date(2024, 6, 1)))
    >>> visits.sort("VISITNUM").select("VISIT", "weekend", "holiday", "off").rows()
    [('V1', False, False, False), ('V2', False, True, True), ('V3', True, False, True)]
    """
    empty = pl.DataFrame(schema={"site_id": pl.String, "USUBJID": pl.String, "VISITNUM": pl.Float64,
                                 "VISIT": pl.String, "COUNTRY": pl.String, "date": pl.Date,
                                 "weekend": pl.Boolean, "holiday": pl.Boolean, "off": pl.Boolean,
                                 "calendar": pl.Boolean})
    if "sv" not in analysis:
        return empty
    visits = (analysis.with_sites("sv")
              .select(site_id=pl.col("SITEID").cast(pl.String), USUBJID=pl.col("USUBJID"),
                      VISITNUM=pl.col("VISITNUM").cast(pl.Float64), VISIT=pl.col("VISIT").cast(pl.String),
                      COUNTRY=pl.col("COUNTRY").cast(pl.String), date=_full_date("SVSTDTC"))
              .filter(pl.col("date").is_not_null() & pl.col("site_id").is_not_null())
              .with_columns(pl.col("COUNTRY").fill_null(""))
              .collect())
    if visits.height == 0:
        return empty
    low, high = visits["date"].min().year, visits["date"].max().year
    holiday, weekend = holiday_calendar(sorted(visits["COUNTRY"].unique()), range(low, high + 1))
    return (visits.join(holiday.with_columns(holiday=pl.lit(True)), on=["COUNTRY", "date"], how="left")
            .join(weekend, on="COUNTRY", how="left")
            .with_columns(holiday=pl.col("holiday").fill_null(False),
                          weekend=pl.col("weekend").list.contains(pl.col("date").dt.weekday().cast(pl.Int8)))
            .with_columns(off=pl.col("weekend") | pl.col("holiday"))
            .select(empty.columns))


def visit_dates(analysis: AnalysisTables, *, min_visits: int = 20, study_id: str | None = None,
                cut_date: date | None = None) -> pl.DataFrame:
    """Sites with more visits on weekends or public holidays than the rest of the study (visit dates
    invented or entered carelessly).

    A visit (sv, a complete SVSTDTC) is "off" when it falls on a weekend day or a public holiday of
    the site's country (COUNTRY of dm, ISO 3166-1 alpha-3, mapped to the ``holidays`` package's
    national calendar; weekend days as that calendar defines them, e.g. Friday and Saturday in
    Israel). A country the package does not know gets Saturday and Sunday only, and its sites'
    descriptions say so. A site's count of off visits is compared with the rest of the study's by
    the one-sided Fisher exact test (excess at the site).

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; needs ``sv``.
    min_visits : int, default 20
        Dated visits a site (and the rest of the study) needs to be tested.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site, test ``visit_dates``, variable ``SV:SVSTDTC``:
        ``statistic`` the number of visits on a weekend or holiday, ``p_value`` the one-sided Fisher
        test, ``q_value`` BH across sites, ``effect`` the share at the site minus that elsewhere.
        Row-free without ``sv``.

    See Also
    --------
    visit_regularity, date_order, run_csm

    Examples
    --------
    >>> from synthetic import AnomalySpec, SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=5, subjects=200, countries=2, seed=2, anomalies=(
    ...     AnomalySpec(type="implausible_visit_dates", magnitude=0.3, sites=("1002",), start=0.0),))
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = visit_dates(derive_tables(tables, as_of=cfg.end)).sort("p_value")
    >>> out["description"][0]  # doctest: +ELLIPSIS
    'Visits at site 1002 fall on a weekend or public holiday in 27.4% of cases vs 0.1% elsewhere (43 of...'
    """
    caller = "visit_dates"
    check_analysis(analysis, caller)
    check_integer(min_visits, "min_visits", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    off = visit_calendar(analysis)
    if off.height == 0:
        return empty_findings()
    found = (off.group_by("site_id")
             .agg(n=pl.len().cast(pl.Int64), x=pl.col("off").sum().cast(pl.Int64),
                  country=pl.col("COUNTRY").first(), calendar=pl.col("calendar").all())
             .with_columns(variable=pl.lit("SV:SVSTDTC")))
    found = excess_versus_rest(found, minimum=min_visits)
    if found.height == 0:
        return empty_findings()
    what = pl.when("calendar").then(pl.lit("a weekend or public holiday")).otherwise(pl.lit("a weekend"))
    caveat = (pl.when("calendar").then(pl.lit(""))
              .when(pl.col("country") == "").then(pl.lit("; country unknown: no public holiday calendar"))
              .otherwise(pl.format("; no public holiday calendar for country '{}'", pl.col("country"))))
    found = found.with_columns(description=pl.format(
        "Visits at site {} fall on {} in {}% of cases vs {}% elsewhere ({} of {} visits{})",
        pl.col("site_id"), what, (100 * pl.col("share")).round(1), (100 * pl.col("rest_share")).round(1),
        pl.col("x"), pl.col("n"), caveat))
    return finish(found, test="visit_dates", study_id=study_id, cut_date=cut_date)


def scheduled_visits(analysis: AnalysisTables) -> pl.LazyFrame:
    """The scheduled visits of the enrolled subjects, each with its deviation from the usual study day
    of its visit number: what :func:`subject_regularity` summarises per subject.

    The study day of a visit is counted from the reference start (RFSTDTC = day 1). A visit number is
    scheduled when at least 10 subjects had it, its median study day is after day 1 and its robust
    SD of study days (1.4826 MAD) is at most 7 days (a follow-up visit timed from the last dose is
    not). A visit number recorded twice counts at its earliest date. A visit further than both 6
    robust SDs and 28 days from its usual day is off schedule (an early-termination follow-up filed
    under the scheduled visit number) and is left out.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; needs ``sv`` (complete visit dates) and dm's RFSTDTC.

    Returns
    -------
    polars.LazyFrame
        ``site_id``, ``USUBJID``, ``VISITNUM``, ``VISIT``, ``date`` (SVSTDTC), ``day`` (study day),
        ``usual`` (the median study day of the visit number), ``deviation`` (day - usual),
        ``spread`` (the visit number's robust SD of study days), ``subjects`` (how many had it) and
        ``scaled`` (deviation / max(spread, 1 day)).

    Examples
    --------
    >>> from datetime import timedelta
    >>> from rbqm.derive import derive_tables
    >>> dm = pl.DataFrame({"STUDYID": "S", "USUBJID": [f"S-{i}" for i in range(10)], "SITEID": "1",
    ...                    "COUNTRY": "FRA", "RFSTDTC": "2024-01-01", "ARMCD": "A"})
    >>> sv = pl.DataFrame([{"USUBJID": f"S-{i}", "VISITNUM": 2.0, "VISIT": "WEEK 2",
    ...                     "SVSTDTC": (date(2024, 1, 15) + timedelta(days=i % 3)).isoformat()}
    ...                    for i in range(10)])
    >>> visits = scheduled_visits(derive_tables({"dm": dm, "sv": sv}, as_of=date(2024, 6, 1))).collect()
    >>> visits.filter(USUBJID="S-2").select("VISIT", "date", "day", "usual", "deviation").rows()
    [('WEEK 2', datetime.date(2024, 1, 17), 17, 16.0, 1.0)]
    """
    subjects = analysis["subjects"].filter(pl.col("enrolled").fill_null(False)).select(
        "USUBJID", site_id=pl.col("SITEID").cast(pl.String), start=to_date("RFSTDTC"))
    days = (analysis["sv"].select("USUBJID", "VISITNUM", "VISIT", visit=_full_date("SVSTDTC"))
            .join(subjects, on="USUBJID")
            .filter(pl.all_horizontal(pl.col("visit", "start", "site_id").is_not_null()))
            .with_columns(day=(pl.col("visit") - pl.col("start")).dt.total_days() + 1)
            # a visit number recorded twice counts at its earliest date (not "the first row": a join's
            # row order is not fixed, and the choice must not change between runs)
            .group_by("site_id", "USUBJID", "VISITNUM")
            .agg(VISIT=pl.col("VISIT").sort_by("day").first(), date=pl.col("visit").min(),
                 day=pl.col("day").min()))
    usual = pl.col("day").median().over("VISITNUM")
    spread = 1.4826 * (pl.col("day") - usual).abs().median().over("VISITNUM")
    return (days.with_columns(deviation=pl.col("day") - usual, spread=spread,
                              subjects=pl.len().over("VISITNUM"), usual=usual)
            .filter((pl.col("subjects") >= _MIN_SCHEDULE_SUBJECTS) & (pl.col("usual") > 1)
                    & (pl.col("spread") <= _MAX_SCHEDULE_SD)
                    & (pl.col("deviation").abs() <= pl.max_horizontal(_OFF_SCHEDULE_SPREADS * pl.col("spread"),
                                                                       pl.lit(_OFF_SCHEDULE_DAYS))))
            .with_columns(scaled=pl.col("deviation") / pl.max_horizontal("spread", pl.lit(1.0)))
            .select("site_id", "USUBJID", "VISITNUM", "VISIT", "date", "day", "usual", "deviation", "spread",
                    "subjects", "scaled"))


def subject_regularity(analysis: AnalysisTables, *, min_visits: int = 4,
                       min_stratum: int = 30) -> pl.DataFrame:
    """One row per enrolled subject with at least ``min_visits`` scheduled visits: site_id, USUBJID,
    visits, sd_days and percentile.

    The study day of a visit is counted from the reference start (RFSTDTC = day 1). A visit number is
    scheduled when at least 10 subjects had it, its median study day is after day 1 and its robust
    SD of study days (1.4826 MAD) is at most 7 days (a follow-up visit timed from the last dose is
    not). A visit's deviation is its study day minus the median for its visit number; ``sd_days`` is
    the SD of the subject's deviations (a visit number recorded twice counts at its earliest date).
    Windows differ between visits, so the test uses deviations divided by each visit number's robust
    SD (at least 1 day), and their SD's mid-rank percentile among
    subjects with as many scheduled visits (strata pooled to ``min_stratum`` subjects, as
    :func:`rbqm.csm.low_variability` does), since a sample SD of few values tends to be smaller.
    """
    per = (scheduled_visits(analysis).group_by("site_id", "USUBJID")
           .agg(visits=pl.len().cast(pl.Int64), sd_days=pl.col("deviation").std(), sd=pl.col("scaled").std())
           .filter(pl.col("visits") >= min_visits)
           .collect())
    empty = pl.DataFrame(schema={"site_id": pl.String, "USUBJID": pl.String, "visits": pl.Int64,
                                 "sd_days": pl.Float64, "percentile": pl.Float64})
    if per.height == 0:
        return empty
    counts = per.group_by("visits").agg(subjects=pl.len()).select(variable=pl.lit("visits"), n="visits",
                                                                   subjects="subjects")
    strata = _strata(counts, min_stratum)
    return (per.join(strata.select(visits="n", stratum="stratum"), on="visits")
            .with_columns(percentile=(tie_safe(pl.col("sd")).rank("average").over("stratum") - 0.5)
                          / pl.len().over("stratum"))
            .select(empty.columns))


def visit_regularity(analysis: AnalysisTables, *, min_visits: int = 4, min_subjects: int = 5,
                     study_id: str | None = None, cut_date: date | None = None) -> pl.DataFrame:
    """Sites whose subjects' visits keep to the schedule suspiciously tightly (dates invented from the
    protocol schedule) or unusually loosely, against the rest of the study.

    Each subject's regularity is the SD of its scheduled visits' deviations from the usual study day
    of each visit (:func:`subject_regularity`: standardised per visit number and ranked among
    subjects with as many visits). A site's mean subject score is compared with every other site's,
    in both directions, allowing for natural variation between sites
    (:func:`rbqm.csm._contract.scores_versus_rest`).

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; needs ``sv`` (visit dates) and dm's RFSTDTC. The planned
        days come from the data (the median study day of each visit number), so ``tv`` is not needed.
    min_visits : int, default 4
        Scheduled visits a subject needs to be scored (an SD of fewer says little).
    min_subjects : int, default 5
        Scored subjects a site (and the rest of the study) needs to be tested.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site, test ``visit_regularity``, variable
        ``SV:SVSTDTC``: ``statistic`` the z of the site's mean score (negative: more regular),
        ``p_value`` two-sided, ``q_value`` BH across sites, ``effect`` log(site median / rest median)
        of the subjects' SDs in days (medians floored at 0.1 day). Row-free without ``sv``.

    See Also
    --------
    visit_dates, date_order, run_csm

    Examples
    --------
    >>> from synthetic import SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=5, subjects=200, countries=2, seed=2)
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = visit_regularity(derive_tables(tables, as_of=cfg.end))
    >>> out["description"][0]  # doctest: +ELLIPSIS
    "Visits at site 1001 keep to the schedule more tightly than elsewhere: ranked from most to least regular..."

    """
    caller = "visit_regularity"
    check_analysis(analysis, caller)
    check_integer(min_visits, "min_visits", caller, low=2)
    check_integer(min_subjects, "min_subjects", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    if "sv" not in analysis:
        return empty_findings()
    subjects = subject_regularity(analysis, min_visits=min_visits)
    if subjects.height == 0:
        return empty_findings()
    floor = pl.lit(_SD_FLOOR)
    scores = subjects.with_columns(score=pl.Series(ndtri(subjects["percentile"].to_numpy())))
    ranks = subjects.group_by("site_id").agg(rank=pl.col("percentile").mean())
    found = (scores_versus_rest(scores, "score", min_units=min_subjects)
             .join(median_versus_rest(subjects, "sd_days"), on="site_id")
             .join(ranks, on="site_id")
             .with_columns(variable=pl.lit("SV:SVSTDTC"), statistic=pl.col("z"),
                           p_value=(2 * pl.min_horizontal("p_lower", "p_greater")).clip(upper_bound=1.0),
                           effect=(pl.max_horizontal("median", floor)
                                   / pl.max_horizontal("rest_median", floor)).log()))
    found = found.with_columns(description=pl.format(
        "Visits at site {} keep to the schedule {} than elsewhere: ranked from most to least regular among "
        "subjects with as many visits, its subjects stand at {}% on average (50% expected); the typical "
        "subject's visits deviate from the usual study day with an SD of {} days vs {} elsewhere ({} subjects)",
        pl.col("site_id"),
        pl.when(pl.col("z") < 0).then(pl.lit("more tightly")).otherwise(pl.lit("more loosely")),
        (100 * pl.col("rank")).round(0).cast(pl.Int64), pl.col("median").round(1), pl.col("rest_median").round(1),
        pl.col("n")))
    return finish(found, test="visit_regularity", study_id=study_id, cut_date=cut_date)


def _subject_dates(analysis: AnalysisTables) -> pl.LazyFrame:
    return analysis["subjects"].select(
        "USUBJID", "RFICDTC", "RFSTDTC", "DTHDTC", site_id=pl.col("SITEID").cast(pl.String),
        consent_first=to_date("RFICDTC"), start_first=to_date("RFSTDTC"),
        death_last=to_date("DTHDTC", impute="last"))


#: Table -> how a record of it is named for a monitor (its name column and date column).
_RECORD_NAMES: dict[str, tuple[str, str, str]] = {
    "sv": ("visit {} on {}", "VISIT", "SVSTDTC"),
    "ae": ("AE {} starting {}", "AEDECOD", "AESTDTC"),
    "ex": ("dose of {} starting {}", "EXTRT", "EXSTDTC"),
}


def _records(analysis: AnalysisTables, table: str, *keep: str) -> pl.LazyFrame:
    """USUBJID, the record's date both ways (earliest and latest day a partial date allows), what the
    record is (``record``: "visit WEEK 4 on 2024-03-01") and the ``keep`` columns."""
    template, name, column = _RECORD_NAMES[table]
    return analysis[table].select("USUBJID", *keep, first=to_date(column),
                                  last=to_date(column, impute="last"),
                                  record=pl.format(template, pl.col(name).cast(pl.String), column))


def _end_before_start(table: str, end: str) -> Callable[[AnalysisTables], pl.LazyFrame]:
    """Records of ``table`` ending (at the latest) before they start (at the earliest)."""
    def check(analysis: AnalysisTables) -> pl.LazyFrame:
        return _records(analysis, table, end).select(
            "USUBJID", "first", "record", why=pl.format("ends {}", end),
            bad=to_date(end, impute="last") < pl.col("first"))
    return check


#: A subject date a record may not precede -> (its column, its name).
_REFERENCES = {"consent_first": ("RFICDTC", "informed consent"), "start_first": ("RFSTDTC", "randomisation")}


def _before(table: str, reference: str) -> Callable[[AnalysisTables], pl.LazyFrame]:
    """Records of ``table`` dated (at the latest) before the subject's ``reference`` (at the earliest)."""
    column, name = _REFERENCES[reference]
    def check(analysis: AnalysisTables) -> pl.LazyFrame:
        return (_records(analysis, table).join(_subject_dates(analysis), on="USUBJID")
                .select("USUBJID", "first", "record", why=pl.format("before {} on {}", pl.lit(name), column),
                        bad=pl.col("last") < pl.col(reference)))
    return check


def _after_death(analysis: AnalysisTables) -> pl.LazyFrame:
    """Visits, AE onsets and doses of subjects with a death date, dated (at the earliest) after it."""
    dead = (_subject_dates(analysis).filter(pl.col("death_last").is_not_null())
            .select("USUBJID", "DTHDTC", "death_last"))
    records = pl.concat([_records(analysis, table) for table in _RECORD_NAMES if table in analysis])
    return records.join(dead, on="USUBJID").select(
        "USUBJID", "first", "record", why=pl.format("after death on {}", "DTHDTC"),
        bad=pl.col("first") > pl.col("death_last"))


def _after_study_end(analysis: AnalysisTables) -> pl.LazyFrame:
    """Visits dated (at the earliest) after the subject's end of study participation (ds)."""
    left = (pl.col("DSCAT") == "DISPOSITION EVENT") & (pl.col("DSSCAT") == "STUDY PARTICIPATION")
    end = (analysis["ds"].filter(left)
           .group_by("USUBJID").agg(end=to_date("DSSTDTC", impute="last").max()))
    return (_records(analysis, "sv").join(end, on="USUBJID")
            .select("USUBJID", "first", "record",
                    why=pl.format("after the subject left the study ({})", "end"),
                    bad=pl.col("first") > pl.col("end")))


#: Check (the ``variable``) -> (tables it needs, the records checked, what is wrong, the check). A check
#: returns one row per record it checks: USUBJID, bad (null when it cannot tell), record (what it is),
#: why (what its date contradicts) and first (its earliest possible date).
DATE_CHECKS: dict[str, tuple[tuple[str, ...], str, str, Callable[[AnalysisTables], pl.LazyFrame]]] = {
    "AE:END_BEFORE_START": (("ae",), "adverse events", "end before they start",
                            _end_before_start("ae", "AEENDTC")),
    "SV:BEFORE_CONSENT": (("sv",), "visits", "are dated before informed consent",
                          _before("sv", "consent_first")),
    "EX:BEFORE_CONSENT": (("ex",), "dosing records", "start before informed consent",
                          _before("ex", "consent_first")),
    "EX:BEFORE_RANDOMISATION": (("ex",), "dosing records", "start before randomisation",
                                _before("ex", "start_first")),
    "EX:END_BEFORE_START": (("ex",), "dosing records", "end before they start",
                            _end_before_start("ex", "EXENDTC")),
    "DM:AFTER_DEATH": ((), "visits, AEs and doses of subjects who died", "are dated after death",
                       _after_death),
    "SV:AFTER_STUDY_END": (("sv", "ds"), "visits", "are dated after the subject left the study",
                           _after_study_end),
}


def _checks(analysis: AnalysisTables) -> dict[str, Callable[[AnalysisTables], pl.LazyFrame]]:
    """The date checks the study's tables allow (none without any of sv, ae and ex)."""
    if not any(table in analysis for table in _RECORD_NAMES):
        return {}
    return {name: check for name, (tables, _, _, check) in DATE_CHECKS.items()
            if all(table in analysis for table in tables)}


def impossible_dates(analysis: AnalysisTables) -> pl.DataFrame:
    """The records whose dates are in an impossible order: the records :func:`date_order` counts.

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; each check of ``DATE_CHECKS`` runs when its tables are present.

    Returns
    -------
    polars.DataFrame
        One row per record and check it fails, latest first (by subject within a day): ``site_id``,
        ``USUBJID``, ``variable`` (the check, e.g. ``SV:BEFORE_CONSENT``), ``record`` (what it is and
        its date: "visit WEEK 4 on 2024-03-01", "AE HEADACHE starting 2024-01-15"), ``why`` (what the
        date contradicts: "before informed consent on 2024-03-05", "ends 2024-01-14") and ``date`` (the
        record's earliest possible date).

    Examples
    --------
    >>> from rbqm.derive import derive_tables
    >>> dm = pl.DataFrame({"STUDYID": "S", "USUBJID": ["S-1"], "SITEID": ["1"], "COUNTRY": ["FRA"],
    ...                    "RFICDTC": ["2024-01-05"], "RFSTDTC": ["2024-01-10"], "ARMCD": ["A"]})
    >>> sv = pl.DataFrame({"USUBJID": "S-1", "VISITNUM": [1.0, 2.0], "VISIT": ["SCREENING", "DAY 1"],
    ...                    "SVSTDTC": ["2024-01-02", "2024-01-10"]})
    >>> out = impossible_dates(derive_tables({"dm": dm, "sv": sv}, as_of=date(2024, 6, 1)))
    >>> out.select("USUBJID", "variable", "record", "why").rows()
    [('S-1', 'SV:BEFORE_CONSENT', 'visit SCREENING on 2024-01-02', 'before informed consent on 2024-01-05')]
    """
    sites = analysis["subjects"].select("USUBJID", site_id=pl.col("SITEID").cast(pl.String))
    schema = {"site_id": pl.String, "USUBJID": pl.String, "variable": pl.String, "record": pl.String,
              "why": pl.String, "date": pl.Date}
    found = pl.collect_all([
        check(analysis).filter(pl.col("bad").fill_null(False)).join(sites, on="USUBJID")
        .filter(pl.col("site_id").is_not_null())
        .select("site_id", "USUBJID", variable=pl.lit(name), record="record", why="why", date="first")
        for name, check in _checks(analysis).items()])
    return (pl.concat([pl.DataFrame(schema=schema), *found], how="vertical_relaxed")
            .sort(["date", "USUBJID", "variable", "record"], descending=[True, False, False, False],
                  nulls_last=True))


def date_order(analysis: AnalysisTables, *, min_records: int = 5, study_id: str | None = None,
               cut_date: date | None = None) -> pl.DataFrame:
    """Sites with more records whose dates are in an impossible order than the rest of the study.

    The checks (``DATE_CHECKS``; each is the ``variable``): AEs ending before they start, visits before
    informed consent (RFICDTC), doses before informed consent or randomisation (RFSTDTC), dosing
    intervals ending before they start, visits, AE onsets and doses after death (DTHDTC), and visits
    after the end of study participation (ds DISPOSITION EVENT / STUDY PARTICIPATION). Partial dates
    count as impossible only when every day they allow is: a record's earliest day against a
    reference's latest, or the reverse. A record whose dates are missing or invalid is not checked.
    A site's count of impossible records is compared with the rest of the study's by the one-sided
    Fisher exact test (excess at the site). On clean data every count is usually 0 (p-value 1).

    Parameters
    ----------
    analysis : AnalysisTables
        From ``rbqm.derive.derive_tables``; each check runs when its tables are present (``ae``,
        ``sv``, ``ex``, ``ds``; dm always).
    min_records : int, default 5
        Checked records a site (and the rest of the study) needs to be tested on a check.
    study_id, cut_date
        Stamped on every row; default the STUDYID of dm and the analysis as-of date.

    Returns
    -------
    polars.DataFrame
        The ``csm`` columns, one row per tested site and check, test ``date_order``: ``statistic``
        the number of impossible records, ``p_value`` the one-sided Fisher test, ``q_value`` BH
        across all rows, ``effect`` the share at the site minus that elsewhere. Row-free without
        ``ae``, ``sv`` and ``ex``.

    See Also
    --------
    visit_dates, visit_regularity, run_csm

    Examples
    --------
    >>> from synthetic import SynthConfig, build_trial, tables_at
    >>> from rbqm.derive import derive_tables
    >>> cfg = SynthConfig(sites=5, subjects=150, countries=2, seed=2)
    >>> tables = {k: v.collect() for k, v in tables_at(build_trial(cfg), cfg.end_day).items()}
    >>> out = date_order(derive_tables(tables, as_of=cfg.end))
    >>> out.filter(variable="AE:END_BEFORE_START")["description"][0]  # doctest: +ELLIPSIS
    'At site 1001, 0 of ... adverse events (0.0%) end before they start vs 0.0% elsewhere'
    """
    caller = "date_order"
    check_analysis(analysis, caller)
    check_integer(min_records, "min_records", caller, low=1)
    study_id, cut_date = study_stamp(analysis, study_id, cut_date)
    sites = analysis["subjects"].select("USUBJID", site_id=pl.col("SITEID").cast(pl.String))
    checks = {name: DATE_CHECKS[name] for name in _checks(analysis)}
    if not checks:
        return empty_findings()
    counted = pl.collect_all([
        check(analysis).filter(pl.col("bad").is_not_null()).join(sites, on="USUBJID")
        .filter(pl.col("site_id").is_not_null())
        .group_by("site_id").agg(n=pl.len().cast(pl.Int64), x=pl.col("bad").sum().cast(pl.Int64))
        .with_columns(variable=pl.lit(name))
        for name, (_, _, _, check) in checks.items()])
    found = excess_versus_rest(pl.concat(counted), minimum=min_records)
    if found.height == 0:
        return empty_findings()
    names = list(checks)
    found = found.with_columns(description=pl.format(
        "At site {}, {} of {} {} ({}%) {} vs {}% elsewhere",
        pl.col("site_id"), pl.col("x"), pl.col("n"),
        pl.col("variable").replace_strict(names, [checks[c][1] for c in names], return_dtype=pl.String),
        (100 * pl.col("share")).round(1),
        pl.col("variable").replace_strict(names, [checks[c][2] for c in names], return_dtype=pl.String),
        (100 * pl.col("rest_share")).round(1)))
    return finish(found, test="date_order", study_id=study_id, cut_date=cut_date)
