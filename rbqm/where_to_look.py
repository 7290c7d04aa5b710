"""Where to look for a signal: the subjects, pages, queries or readings a monitor should open first.

Each entry of :data:`LOOKS` (named by the ``look_at`` of ``key_risk_indicators/actions.yaml``) takes
the analysis tables at the latest cut and the signals that use it (``signal_id``, ``site_id``,
``indicator``, ``variable``) and returns one sentence per signal (``signal_id``, ``where_to_look``)
naming at most :data:`SHOWN` items, most telling first. A signal a look has nothing to say about
gets no row (``rbqm.actions`` then writes a generic sentence). docs/signals.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
from scipy.special import gammainc, gammaincc, ndtri

from rbqm.csm import (
    EVENT_TABLES, impossible_dates, measurements, scheduled_visits, site_events, subject_regularity, subject_scores,
    visit_calendar,
)
from rbqm.derive import AnalysisTables
from rbqm.kri import load_definitions
from rbqm.kri.definition import Count
from rbqm.qtl import load_qtl_definitions

__all__ = ["LOOKS", "SHOWN", "WANTED_COLUMNS", "where_to_look"]

SHOWN = 5
"""How many subjects, pages, queries or records a sentence names."""

WANTED_COLUMNS: dict[str, pl.DataType] = {"signal_id": pl.String(), "site_id": pl.String(),
                                          "indicator": pl.String(), "variable": pl.String()}
_OUT = {"signal_id": pl.String, "where_to_look": pl.String}

Look = Callable[[AnalysisTables, pl.DataFrame, Path | None], pl.DataFrame]


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=_OUT)


def _per_site(wanted: pl.DataFrame, sites: pl.DataFrame) -> pl.DataFrame:
    """Give each wanted signal its site's sentence (``sites``: site_id, where_to_look)."""
    return wanted.join(sites, on="site_id").select(list(_OUT))


def _joined(items: str) -> pl.Expr:
    return pl.col(items).list.join("; ")


# --- Operations: pages and queries -----------------------------------------------------------


def _oldest_unentered_pages(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """Pages not entered yet, oldest first, then pages entered more than 10 days after the visit."""
    if "pages" not in tables:
        return _empty()
    late = (tables.with_sites("pages").filter(pl.col("SITEID").is_in(wanted["site_id"].implode()))
            .filter(~pl.col("entered") | (pl.col("days_to_entry") > 10)))
    item = pl.format("{} {} visit {} ({} days{})", "USUBJID", "FORM", pl.col("VISITNUM").cast(pl.Int64),
                     "days_to_entry", pl.when(pl.col("entered")).then(pl.lit(" to entry"))
                     .otherwise(pl.lit(", not entered")))
    order = ["entered", "days_to_entry", "USUBJID", "FORM"]
    sites = (late.sort(order, descending=[False, True, False, False])
             .group_by("SITEID")
             .agg(open=(~pl.col("entered")).sum(), late=pl.col("entered").sum(), items=item.head(SHOWN))
             .select(site_id="SITEID", where_to_look=pl.format(
                 "Oldest unentered pages ({} not entered, {} entered late): {}.", "open", "late",
                 _joined("items")))
             .collect())
    return _per_site(wanted, sites)


def _oldest_open_queries(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """Open queries, longest open first."""
    if "queries" not in tables:
        return _empty()
    item = pl.format("{} on {} {}.{} ({} days open)", "QRYID", "USUBJID", "FORM", "FIELD", "days_open")
    sites = (tables.with_sites("queries").filter(pl.col("open_at_cut"),
                                                 pl.col("SITEID").is_in(wanted["site_id"].implode()))
             .sort(["days_open", "QRYID"], descending=[True, False])
             .group_by("SITEID").agg(n=pl.len(), items=item.head(SHOWN))
             .select(site_id="SITEID", where_to_look=pl.format("Oldest open queries ({} open): {}.", "n",
                                                               _joined("items")))
             .collect())
    return _per_site(wanted, sites)


# --- Safety: adverse events ------------------------------------------------------------------


def _subjects_fewest_ae(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """Enrolled subjects whose AE count is least likely for their time on study.

    With the study's AE rate r (AEs per day on study), a subject with d days on study expects
    r d AEs; subjects are ranked by the Poisson probability of seeing at most as many AEs as they
    have (lowest first), so subjects with no AE and the longest time on study come first.
    """
    if "ae" not in tables:
        return _empty()
    counts = tables["ae"].group_by("USUBJID").agg(aes=pl.len())
    subjects = (tables["subjects"].filter(pl.col("enrolled"), pl.col("days_on_study") > 0)
                .join(counts, on="USUBJID", how="left").with_columns(pl.col("aes").fill_null(0))
                .with_columns(expected=pl.col("days_on_study") * pl.col("aes").sum()
                              / pl.col("days_on_study").sum())
                .filter(pl.col("SITEID").is_in(wanted["site_id"].implode()))
                .select("SITEID", "USUBJID", "days_on_study", "aes", "expected").collect())
    # P(X <= k) for X ~ Poisson(mu) is the regularised upper incomplete gamma Q(k + 1, mu)
    mu = np.maximum(subjects["expected"].to_numpy(), 1e-12)
    subjects = subjects.with_columns(p=pl.Series(gammaincc(subjects["aes"].to_numpy() + 1.0, mu)))
    item = pl.format("{} ({} AEs in {} days, {} expected)", "USUBJID", "aes", "days_on_study",
                     pl.col("expected").round(1))
    sites = (subjects.sort(["p", "days_on_study", "USUBJID"], descending=[False, True, False])
             .group_by("SITEID")
             .agg(n=pl.len(), none=(pl.col("aes") == 0).sum(), items=item.head(SHOWN))
             .select(site_id="SITEID", where_to_look=pl.format(
                 "Subjects with the fewest AEs for their time on study ({} of {} enrolled have none): {}.",
                 "none", "n", _joined("items"))))
    return _per_site(wanted, sites)


def _non_serious_severe_aes(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """AEs of grade 3 or more not reported as serious, those whose term and grade the other sites most
    often report as serious first (then higher grade, then latest): the likeliest serious events
    reported as non-serious."""
    if "ae" not in tables:
        return _empty()
    severe = tables.with_sites("ae").filter(pl.col("grade") >= 3)
    keys = ["AEDECOD", "grade"]
    per_site = severe.group_by(*keys, "SITEID").agg(n=pl.len(), serious=(pl.col("AESER") == "Y").sum())
    elsewhere = per_site.with_columns(
        share=((pl.col("serious").sum().over(keys) - pl.col("serious"))
               / (pl.col("n").sum().over(keys) - pl.col("n"))).fill_nan(None)).select(*keys, "SITEID", "share")
    share = (pl.when(pl.col("share").is_null()).then(pl.lit("not seen at other sites"))
             .otherwise(pl.format("serious at other sites {}%", (100 * pl.col("share")).round(0).cast(pl.Int64))))
    item = pl.format("{} {} grade {} ({}; {})", "USUBJID", "AEDECOD", "grade", "AESTDTC", share)
    sites = (severe.filter(pl.col("SITEID").is_in(wanted["site_id"].implode()), pl.col("AESER").fill_null("N") != "Y")
             .join(elsewhere, on=[*keys, "SITEID"], how="left")
             .sort(["share", "grade", "AESTDTC", "USUBJID"], descending=[True, True, True, False], nulls_last=True)
             .group_by("SITEID").agg(n=pl.len(), items=item.head(SHOWN))
             .select(site_id="SITEID", where_to_look=pl.format(
                 "Non-serious AEs of grade 3 or higher, to check against the seriousness criteria ({} at the "
                 "site), those most often serious elsewhere first: {}.", "n", _joined("items")))
             .collect())
    return _per_site(wanted, sites)


# event_counts' variable (its table, upper case) -> one record and several, in an item
_EVENT_NOUNS: dict[str, tuple[str, str]] = {
    "AE": ("AE", "AEs"), "CM": ("medication", "medications"),
    "MH": ("medical history entry", "medical history entries"), "DV": ("deviation", "deviations"),
}


def _event_count_subjects(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """Per signal's site and events table (the ``variable``: AE, CM, MH, DV): when the site records fewer
    events than expected from the rest of the study (``rbqm.csm.event_counts``' effect < 0), its
    subjects with the fewest records for their time on study; when more, those with the most.

    Each subject expects the rest of the study's mean cumulative count at its time on study (as the
    test: its sum over the site is the test's E); subjects are ranked by the Poisson probability of at
    most (fewer) or at least (more) their count, lowest first, then by expected (fewer) or observed
    (more) count, largest first.
    """
    out = []
    for table, (records, _) in EVENT_TABLES.items():  # the four events tables at most
        mine = wanted.filter(pl.col("variable") == table.upper())
        if mine.height == 0 or table not in tables:
            continue
        one, many = _EVENT_NOUNS[table.upper()]
        counts = site_events(tables, table)  # as the test counts them: the same records and expectations
        subjects = counts.per_subject.filter(pl.col("site_id").is_in(mine["site_id"].unique().implode()))
        k, mu = subjects["records"].to_numpy(), np.maximum(subjects["expected"].to_numpy(), 1e-12)
        # Poisson P(X <= k) = Q(k + 1, mu) and P(X >= k) = P(k, mu) (1 for k = 0), regularised gammas
        subjects = subjects.with_columns(
            low=pl.Series(gammaincc(k + 1.0, mu)),
            high=pl.Series(np.where(k > 0, gammainc(np.maximum(k, 1), mu), 1.0)),
            fewer=pl.col("records").sum().over("site_id") < pl.col("expected").sum().over("site_id"))
        noun = pl.when(pl.col("records") == 1).then(pl.lit(one)).otherwise(pl.lit(many))
        time = pl.format(" in {} days on study", "days") if counts.timed else pl.lit("")
        item = pl.format("{}: {} {}{} ({} expected)", "USUBJID", "records", noun, time,
                         pl.col("expected").round(1))
        order = [pl.when("fewer").then("low").otherwise("high"),
                 pl.when("fewer").then("expected").otherwise("records"), "USUBJID"]
        sites = (subjects.sort(order, descending=[False, True, False])
                 .group_by("site_id")
                 .agg(n=pl.len(), none=(pl.col("records") == 0).sum(), fewer=pl.col("fewer").first(),
                      observed=pl.col("records").sum(), expected=pl.col("expected").sum(),
                      items=item.head(SHOWN))
                 .select("site_id", where_to_look=pl.format(
                     "Subjects with the {} {}{} ({} recorded at the site vs {} expected from the other "
                     "sites; {} of its {} subjects with none): {}.",
                     pl.when("fewer").then(pl.lit("fewest")).otherwise(pl.lit("most")), pl.lit(records),
                     pl.lit(" for their time on study" if counts.timed else ""), "observed",
                     pl.col("expected").round(1), "none", "n", _joined("items"))))
        out.append(_per_site(mine, sites))
    return pl.concat(out) if out else _empty()


# --- Data patterns: readings ------------------------------------------------------------------


def _digit_readings(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """Per signal's site and variable: the readings ending in the site's most over-represented terminal
    digit (against the rest of the study), by subject, with their visits."""
    all_values = measurements(tables, None)
    if all_values is None:
        return _empty()
    readings = all_values.with_columns(code=pl.col("variable").str.split(":").list.last()).filter(
        pl.col("code").is_in(wanted["variable"].implode()))
    decimal = ((pl.col("value") - pl.col("value").round(0)).abs() > 1e-9).any().over("code")
    readings = readings.with_columns(
        digit=(pl.col("value") * pl.when(decimal).then(10.0).otherwise(1.0)).round(0).cast(pl.Int64) % 10)
    counts = readings.group_by("code", "site_id", "digit").agg(n=pl.len())
    shares = counts.with_columns(
        site_share=pl.col("n") / pl.col("n").sum().over("code", "site_id"),
        rest_share=(pl.col("n").sum().over("code", "digit") - pl.col("n"))
        / (pl.col("n").sum().over("code") - pl.col("n").sum().over("code", "site_id")),
        site_total=pl.col("n").sum().over("code", "site_id"))
    preferred = (shares.filter(pl.col("site_id").is_in(wanted["site_id"].implode()))
                 .sort(["code", "site_id", "digit"])
                 .with_columns(excess=pl.col("site_share") - pl.col("rest_share"))
                 .filter(pl.col("excess") == pl.col("excess").max().over("code", "site_id"))
                 .unique(["code", "site_id"], keep="first"))
    item = pl.format("{} ({} readings, visits {})", "USUBJID", "n", "visits")
    by_subject = (readings.join(preferred.select("code", "site_id", "digit"), on=["code", "site_id", "digit"])
                  .group_by("code", "site_id", "USUBJID")
                  .agg(n=pl.len(), visits=pl.col("VISITNUM").cast(pl.Int64).unique().sort()
                       .cast(pl.String).str.join(", "))
                  .sort(["n", "USUBJID"], descending=[True, False])
                  .group_by("code", "site_id").agg(items=item.head(SHOWN)))
    found = (preferred.join(by_subject, on=["code", "site_id"])
             .select("site_id", variable="code", where_to_look=pl.format(
                 "{} readings ending in {}: {} of {} at the site ({}% elsewhere); most at {}.", "code",
                 "digit", "n", "site_total", (100 * pl.col("rest_share")).round(0).cast(pl.Int64),
                 _joined("items")))
             .collect())
    return wanted.join(found, on=["site_id", "variable"]).select(list(_OUT))


def _steadiest_subjects(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """Subjects whose lab and vital-sign results vary least from visit to visit (scored against every
    subject of the study as in ``rbqm.csm.low_variability``), steadiest first."""
    values = measurements(tables, None)
    if values is None:
        return _empty()
    scores = subject_scores(values).filter(pl.col("site_id").is_in(wanted["site_id"].implode()))
    item = pl.format("{} (results vary {}% less than typical, {} variables)", "USUBJID",
                     (100 * (1 - pl.col("log_ratio").exp())).round(0).cast(pl.Int64), "variables")
    sites = (scores.sort(["score", "USUBJID"])
             .group_by("site_id").agg(n=pl.len(), items=item.head(SHOWN))
             .select("site_id", where_to_look=pl.format(
                 "Subjects with the steadiest results from visit to visit ({} scored at the site): {}.", "n",
                 _joined("items"))))
    return _per_site(wanted, sites)


def _subject_means(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """Per signal's site and variable: the subjects whose average result lies farthest from the
    study's median subject average (in SDs of the subject averages)."""
    values = measurements(tables, None)
    if values is None:
        return _empty()
    means = (values.with_columns(code=pl.col("variable").str.split(":").list.last())
             .filter(pl.col("code").is_in(wanted["variable"].implode()))
             .group_by("code", "site_id", "USUBJID").agg(mean=pl.col("value").mean())
             .with_columns(median=pl.col("mean").median().over("code"), sd=pl.col("mean").std().over("code"))
             .with_columns(z=((pl.col("mean") - pl.col("median")) / pl.col("sd")).fill_nan(0.0)))
    item = pl.format("{} (average {}, {} SD from the study median {})", "USUBJID", pl.col("mean").round(2),
                     pl.col("z").round(1), pl.col("median").round(2))
    found = (means.filter(pl.col("site_id").is_in(wanted["site_id"].implode()))
             .sort([pl.col("z").abs(), "USUBJID"], descending=[True, False])
             .group_by("code", "site_id").agg(n=pl.len(), shift=pl.col("z").median(), items=item.head(SHOWN))
             .select("site_id", variable="code", where_to_look=pl.format(
                 "{} averages of the site's {} subjects (median {} SD from the study's); farthest: {}.",
                 "code", "n", pl.col("shift").round(1), _joined("items")))
             .collect())
    return wanted.join(found, on=["site_id", "variable"]).select(list(_OUT))


# --- Dates: visits and records -----------------------------------------------------------------


def _off_day_visits(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """Visits dated on a weekend day or public holiday of the site's country (as ``rbqm.csm.visit_dates``
    counts them), latest first, each with why: the weekday, the national holiday."""
    visits = visit_calendar(tables).filter(pl.col("site_id").is_in(wanted["site_id"].implode()))
    why = pl.concat_list(pl.when("weekend").then(pl.col("date").dt.strftime("%A")),
                         pl.when("holiday").then(pl.format("national holiday in {}", "COUNTRY")))
    item = pl.format("{} {} on {} ({})", "USUBJID", "VISIT", "date", why.list.drop_nulls().list.join(", "))
    caveat = (pl.when(pl.col("calendar")).then(pl.lit(""))
              .otherwise(pl.format("; no public holiday calendar for country '{}': weekends only",
                                   "country")))
    sites = (visits.sort(["date", "USUBJID", "VISITNUM"], descending=[True, False, False])
             .group_by("site_id")
             .agg(n=pl.len(), off=pl.col("off").sum(), calendar=pl.col("calendar").all(),
                  country=pl.col("COUNTRY").first(), items=item.filter("off").head(SHOWN))
             .filter(pl.col("off") > 0)
             .select("site_id", where_to_look=pl.format(
                 "Visits on a weekend or public holiday ({} of {} dated visits at the site{}), latest first: "
                 "{}.", "off", "n", caveat, _joined("items"))))
    return _per_site(wanted, sites)


def _visit_schedule(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """When the site's subjects keep to the usual study days more tightly than the rest of the study's
    (their mean score of ``rbqm.csm.visit_regularity`` is lower), its subjects whose scheduled visits
    deviate least from the usual days (smallest SD, then most visits); else those who deviate most.
    Each with its visit farthest from the usual day and the first visit dated before the one
    scheduled before it."""
    if "sv" not in tables:
        return _empty()
    scored = subject_regularity(tables)
    if scored.height == 0:
        return _empty()
    # the site's direction: its mean normal score against the rest of the study's, as visit_regularity
    score = pl.col("score")
    scored = scored.with_columns(score=pl.Series(ndtri(scored["percentile"].to_numpy()))).with_columns(
        tight=score.mean().over("site_id") < (score.sum() - score.sum().over("site_id"))
        / (pl.len() - pl.len().over("site_id")),
        rest_sd=pl.col("sd_days").median())
    visits = (scheduled_visits(tables).filter(pl.col("site_id").is_in(wanted["site_id"].implode()))
              .sort("USUBJID", "VISITNUM")
              .with_columns(before=pl.col("VISIT").shift(1).over("USUBJID"),
                            before_date=pl.col("date").shift(1).over("USUBJID")))
    farthest = (visits.sort([pl.col("deviation").abs(), "VISITNUM"], descending=[True, False])
                .group_by("USUBJID").first()
                .select("USUBJID", far=pl.when(pl.col("deviation") == 0)
                        .then(pl.lit("every visit on its usual study day"))
                        .otherwise(pl.format("farthest {} on {}, day {} vs usual {}", "VISIT", "date", "day",
                                             pl.col("usual").round(0).cast(pl.Int64)))))
    swapped = (visits.filter(pl.col("date") < pl.col("before_date")).group_by("USUBJID").first()
               .select("USUBJID", swap=pl.format("; {} on {} is dated before {} on {}", "VISIT", "date",
                                                 "before", "before_date")))
    item = pl.format("{} ({} scheduled visits, SD {} days; {}{})", "USUBJID", "visits",
                     pl.col("sd_days").round(1), "far", pl.col("swap").fill_null(""))
    sd_order = pl.when("tight").then(pl.col("sd_days")).otherwise(-pl.col("sd_days"))
    sites = (scored.lazy().filter(pl.col("site_id").is_in(wanted["site_id"].implode()))
             .join(farthest, on="USUBJID").join(swapped, on="USUBJID", how="left")
             .sort([sd_order, "visits", "USUBJID"], descending=[False, True, False])
             .group_by("site_id")
             .agg(n=pl.len(), tight=pl.col("tight").first(), median=pl.col("sd_days").median(),
                  rest=pl.col("rest_sd").first(), items=item.head(SHOWN))
             .select("site_id", where_to_look=pl.format(
                 "Subjects whose visits keep to the usual study days most {} ({} scored at the site; "
                 "typical SD {} days from the usual day vs {} in the study): {}.",
                 pl.when("tight").then(pl.lit("tightly")).otherwise(pl.lit("loosely")), "n",
                 pl.col("median").round(1), pl.col("rest").round(1), _joined("items")))
             .collect())
    return _per_site(wanted, sites)


def _impossible_dates(tables: AnalysisTables, wanted: pl.DataFrame, _: Path | None) -> pl.DataFrame:
    """Per signal's site and check: the records whose dates are in an impossible order (as
    ``rbqm.csm.date_order`` counts them), latest first, each with what its date contradicts."""
    records = (impossible_dates(tables)
               .filter(pl.col("site_id").is_in(wanted["site_id"].implode()))
               .with_columns(variable=pl.col("variable").str.split(":").list.last()))
    item = pl.format("{} {} ({})", "USUBJID", "record", "why")
    found = (records.group_by("site_id", "variable", maintain_order=True)
             .agg(n=pl.len(), items=item.head(SHOWN))
             .select("site_id", "variable", where_to_look=pl.format(
                 "Records whose dates cannot be right ({} at the site), latest first: {}.", "n",
                 _joined("items"))))
    return wanted.join(found, on=["site_id", "variable"]).select(list(_OUT))


# --- Any KRI or QTL: the records its numerator counts ----------------------------------------

# table -> (item template, its columns, sort column: latest first)
_RECORDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "ae": ("{} {} grade {} ({})", ("USUBJID", "AEDECOD", "AETOXGR", "AESTDTC"), "AESTDTC"),
    "dv": ("{} {} ({})", ("USUBJID", "DVTERM", "DVSTDTC"), "DVSTDTC"),
    "ds": ("{} {} ({})", ("USUBJID", "DSDECOD", "DSSTDTC"), "DSSTDTC"),
    "ie": ("{} {} ({})", ("USUBJID", "IETESTCD", "IEDTC"), "IEDTC"),
    "lb": ("{} {} visit {} ({})", ("USUBJID", "LBTESTCD", "VISITNUM", "LBDTC"), "LBDTC"),
    "vs": ("{} {} visit {} ({})", ("USUBJID", "VSTESTCD", "VISITNUM", "VSDTC"), "VSDTC"),
    "ex": ("{} {} ({})", ("USUBJID", "EXTRT", "EXSTDTC"), "EXSTDTC"),
    "sv": ("{} visit {} ({})", ("USUBJID", "VISITNUM", "SVSTDTC"), "SVSTDTC"),
    "queries": ("{} on {} {}.{} (opened {})", ("QRYID", "USUBJID", "FORM", "FIELD", "QRYOPENDTC"),
                "QRYOPENDTC"),
    "pages": ("{} {} visit {} ({})", ("USUBJID", "FORM", "VISITNUM", "VISITDTC"), "VISITDTC"),
    "datapoints": ("{} {}.{} visit {}", ("USUBJID", "FORM", "FIELD", "VISITNUM"), "VISITNUM"),
    "visits": ("{} {} (day {})", ("USUBJID", "VISIT", "planned_day"), "planned_day"),
    "subjects": ("{} (screened {})", ("USUBJID", "RFICDTC"), "RFICDTC"),
}


def _text(column: str) -> pl.Expr:
    value = pl.col(column).cast(pl.Int64, strict=False) if column == "VISITNUM" else pl.col(column)
    return value.cast(pl.String).fill_null("-")


def _records(tables: AnalysisTables, numerator: Count, denominator: Count, *,
             missing: bool) -> pl.LazyFrame | None:
    """The records a numerator counts (or, when ``missing``, those its denominator counts and it does
    not: a low rate's gaps), latest (or largest summed value) first, with an ``item`` text."""
    count = denominator if missing else numerator
    if count.table not in _RECORDS or count.table not in tables:
        return None
    template, columns, order = _RECORDS[count.table]
    keep = (denominator.filter_expr() & ~numerator.filter_expr()) if missing else numerator.filter_expr()
    frame = tables.with_sites(count.table).filter(keep)
    item = pl.format(template, *(_text(c) for c in columns))
    if count.sum:  # a mean (e.g. days to entry): the largest values weigh most
        item = pl.format("{}: {} {}", item, count.sum, pl.col(count.sum).round(1))
        frame = frame.sort([count.sum, "USUBJID"], descending=[True, False], nulls_last=True)
    else:
        frame = frame.sort([order, "USUBJID"], descending=[True, False], nulls_last=True)
    if count.count == "subjects":
        frame = frame.unique("USUBJID", keep="first", maintain_order=True)
    return frame.select("SITEID", "USUBJID", item=item)


def _numerator_records(tables: AnalysisTables, wanted: pl.DataFrame, kri_dir: Path | None) -> pl.DataFrame:
    """For a KRI signal, the records its numerator counts at the site, latest first (for a KRI whose
    concern is a low rate, the records its denominator counts and its numerator misses); for a QTL
    signal, the sites with the most such records."""
    kris = {d.id: d for d in load_definitions(kri_dir)}
    qtls = {d.id: d for d in load_qtl_definitions(kri_dir)}
    out = []
    for indicator in wanted["indicator"].unique().sort():  # one query per indicator, a few at most
        mine = wanted.filter(pl.col("indicator") == indicator)
        if (d := kris.get(indicator)) is not None:
            missing = d.concern == "low"
            if missing and d.numerator.table != d.denominator.table:
                continue
            records = _records(tables, d.numerator, d.denominator, missing=missing)
            if records is None:
                continue
            what = "missing from" if missing else "behind"
            counted = d.denominator if missing else d.numerator
            noun = "Subjects" if counted.count == "subjects" else "Records"
            sites = (records.filter(pl.col("SITEID").is_in(mine["site_id"].implode()))
                     .group_by("SITEID", maintain_order=True)
                     .agg(n=pl.len(), items=pl.col("item").head(SHOWN))
                     .select(site_id="SITEID", where_to_look=pl.format(
                         "{} {} {} ({} at the site), latest first: {}.", pl.lit(noun), pl.lit(what),
                         pl.lit(d.name), "n", _joined("items")))
                     .collect())
            out.append(_per_site(mine, sites))
        elif (q := qtls.get(indicator)) is not None:
            records = _records(tables, q.numerator, q.denominator, missing=False)
            if records is None:
                continue
            unit = "subjects" if q.numerator.count == "subjects" else "records"
            top = (records.group_by("SITEID").agg(n=pl.len()).sort(["n", "SITEID"], descending=[True, False])
                   .head(SHOWN).select(pl.format("{} ({} {})", "SITEID", "n", pl.lit(unit)).alias("site"))
                   .collect()["site"].to_list())
            if top:
                out.append(mine.select("signal_id", where_to_look=pl.lit(
                    f"Sites contributing most to {q.name}: {'; '.join(top)}.")))
    return pl.concat(out).select(list(_OUT)) if out else _empty()


LOOKS: dict[str, Look] = {
    "oldest_unentered_pages": _oldest_unentered_pages,
    "oldest_open_queries": _oldest_open_queries,
    "subjects_fewest_ae": _subjects_fewest_ae,
    "non_serious_severe_aes": _non_serious_severe_aes,
    "event_count_subjects": _event_count_subjects,
    "digit_readings": _digit_readings,
    "steadiest_subjects": _steadiest_subjects,
    "subject_means": _subject_means,
    "off_day_visits": _off_day_visits,
    "visit_schedule": _visit_schedule,
    "impossible_dates": _impossible_dates,
    "numerator_records": _numerator_records,
}
"""Every ``look_at`` of actions.yaml but ``none``, and the function that computes it."""


def where_to_look(tables: AnalysisTables, wanted: pl.DataFrame, *,
                  kri_dir: Path | None = None) -> pl.DataFrame:
    """One sentence per signal naming where to look, from the analysis tables at the latest cut.

    Parameters
    ----------
    tables : AnalysisTables
        From ``rbqm.derive.derive_tables`` at the latest cut.
    wanted : polars.DataFrame
        ``WANTED_COLUMNS`` plus ``look_at`` (a key of :data:`LOOKS`, or ``none``): one row per signal.
    kri_dir : Path, optional
        The KRI and QTL definitions' folder, for ``numerator_records`` (default: the shipped library).

    Returns
    -------
    polars.DataFrame
        ``signal_id`` and ``where_to_look``; signals a look has nothing for are left out.
    """
    parts = [LOOKS[name](tables, wanted.filter(pl.col("look_at") == name).select(list(WANTED_COLUMNS)),
                         kri_dir) for name in sorted(set(wanted["look_at"]) & set(LOOKS))]
    return pl.concat(parts).select(list(_OUT)) if parts else _empty()
