"""Every injected anomaly is present at its stated magnitude at its sites and absent elsewhere.

The injected and the clean trial share the seed, so every difference between them is
the anomaly's doing: other sites must be identical, record for record.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synthetic import tables_at
from synthetic.anomalies import ANOMALY_TYPES
from tests.conftest import ALL_ANOMALIES, PAIR
from synthetic.design import SynthConfig, catalogue

CFG = SynthConfig(**PAIR)
SITE = {a.type: a.sites[0] for a in ALL_ANOMALIES}
START = {a.type: int(a.start * CFG.end_day) for a in ALL_ANOMALIES}
MAG = {a.type: a.magnitude for a in ALL_ANOMALIES}


def test_every_type_is_covered():
    assert set(SITE) == set(ANOMALY_TYPES)
    assert len(set(SITE.values())) == len(SITE)


def test_truth_lists_every_injection(injected_records, clean_records):
    truth = injected_records.truth
    assert truth.columns == ["SITEID", "ANOMALY", "MAGNITUDE", "STARTDTC", "DETAIL"]
    assert dict(zip(truth["ANOMALY"], truth["SITEID"])) == SITE
    assert clean_records.truth.is_empty()


@pytest.mark.parametrize("name", ["dm", "ae", "ds", "dv", "ie", "lb", "vs", "sv", "ex", "queries", "pages",
                                  "datapoints", "sites"])
def test_sites_without_anomalies_are_identical(name, injected_records, clean_records):
    """Absent elsewhere: outside the injected sites every table is the same, row for row."""
    injected_sites = list(SITE.values())

    def other_sites(records):
        frame = tables_at(records, CFG.end_day)[name]
        if name != "sites":
            site_of = records.subjects.lazy().select("USUBJID", "SITEID")
            frame = frame.join(site_of, on="USUBJID", how="left")
        return frame.filter(~pl.col("SITEID").is_in(injected_sites)).collect()

    a, b = other_sites(injected_records), other_sites(clean_records)
    assert a.height > 0 or name in {"ie"}
    assert a.sort(a.columns, nulls_last=True).equals(b.sort(b.columns, nulls_last=True))


def _site(records, kind):
    return records.subjects.filter(pl.col("SITEID") == SITE[kind])


def test_ae_under_reporting(injected_records, clean_records):
    def after_start(records):
        sids = _site(records, "ae_under_reporting")["sid"]
        return records.ae.filter(pl.col("sid").is_in(sids.implode()) & (pl.col("AESTDTC") >= START["ae_under_reporting"])
                                 & (pl.col("AETOXGR") != "5")).height
    kept, total = after_start(injected_records), after_start(clean_records)
    assert total > 200
    share_dropped = 1 - kept / total
    assert share_dropped == pytest.approx(MAG["ae_under_reporting"], abs=3 * np.sqrt(0.25 / total))
    before = lambda r: r.ae.filter(pl.col("sid").is_in(_site(r, "ae_under_reporting")["sid"].implode())  # noqa: E731
                                   & (pl.col("AESTDTC") < START["ae_under_reporting"])).height
    assert before(injected_records) == before(clean_records)


def test_sae_under_reporting(injected_records, clean_records):
    kind = "sae_under_reporting"

    def serious(records):
        sids = _site(records, kind)["sid"]
        return records.ae.filter(pl.col("sid").is_in(sids.implode()) & (pl.col("AESTDTC") >= START[kind])
                                 & (pl.col("AETOXGR") != "5")).select((pl.col("AESER") == "Y").sum()).item()
    n_clean = serious(clean_records)
    assert n_clean >= 15
    share = 1 - serious(injected_records) / n_clean
    assert share == pytest.approx(MAG[kind], abs=3 * np.sqrt(0.16 / n_clean))


def test_excess_important_deviations(injected_records, clean_records):
    """The extra important deviations match the model: Poisson((m - 1) x the site's rate x days at risk)."""
    kind = "excess_important_deviations"
    site = injected_records.sites.filter(pl.col("SITEID") == SITE[kind])
    rate = catalogue()["deviations"]["rates"]["important"] * site["dv_mult"].item()
    subjects = _site(clean_records, kind).filter("enrolled")
    horizon_end = pl.min_horizontal(pl.col("study_end_day"), pl.col("rand_day") + 399)
    at_risk = subjects.select((horizon_end - pl.max_horizontal("rand_day", pl.lit(START[kind])) + 1).clip(0).sum()).item()
    expected = (MAG[kind] - 1) * rate * at_risk

    def important(records):
        sids = _site(records, kind)["sid"]
        return records.dv.filter(pl.col("sid").is_in(sids.implode()) & (pl.col("DVIMPFL") == "Y")).height
    extra = important(injected_records) - important(clean_records)
    assert expected > 10
    assert abs(extra - expected) <= 3 * np.sqrt(expected)


def test_late_data_entry(injected_records, clean_records):
    kind = "late_data_entry"

    def lags(records):
        sids = _site(records, kind)["sid"]
        pages = records.pages.filter(pl.col("sid").is_in(sids.implode()) & (pl.col("VISITDTC") >= START[kind]))
        return (pages["entry"] - pages["VISITDTC"]).cast(pl.Float64)
    clean, late = lags(clean_records), lags(injected_records)
    assert late.median() / clean.median() == pytest.approx(MAG[kind], rel=0.2)
    assert late.len() == clean.len()


def test_query_backlog(injected_records, clean_records):
    kind = "query_backlog"

    def answer_times(records):
        sids = _site(records, kind)["sid"]
        q = records.queries.filter(pl.col("sid").is_in(sids.implode()) & (pl.col("QRYOPENDTC") >= START[kind]))
        return (q["QRYANSDTC"] - q["QRYOPENDTC"]).cast(pl.Float64)
    clean, slow = answer_times(clean_records), answer_times(injected_records)
    assert slow.len() == clean.len() > 50
    assert slow.mean() / clean.mean() == pytest.approx(MAG[kind], rel=0.1)


def test_high_screen_failure(injected_records, clean_records):
    kind = "high_screen_failure"
    subjects = _site(injected_records, kind)
    share = 1 - subjects["enrolled"].mean()
    assert share == pytest.approx(MAG[kind], abs=0.06)
    clean_share = 1 - _site(clean_records, kind)["enrolled"].mean()
    assert clean_share < MAG[kind] - 0.15
    assert subjects["enrolled"].sum() == _site(clean_records, kind)["enrolled"].sum()


def test_high_discontinuation(injected_records, clean_records):
    """Hazard ratio of early withdrawal or treatment stop after the start, estimated as events per day at risk."""
    kind = "high_discontinuation"

    def rate(records):
        s = _site(records, kind).filter("enrolled")
        start = pl.max_horizontal(pl.col("rand_day"), pl.lit(START[kind]))
        stopped = ~pl.col("trt_reason").is_in(["COMPLETED", "DEATH"])
        s = s.with_columns(at_risk=(pl.col("trt_end_day") - start).clip(0), event=stopped & (pl.col("trt_end_day") >= start))
        return s["event"].sum() / s["at_risk"].sum()
    assert rate(injected_records) / rate(clean_records) == pytest.approx(MAG[kind], rel=0.45)


def test_fabricated_subjects(injected_records):
    kind = "fabricated_subjects"
    s = _site(injected_records, kind).filter("enrolled")
    eligible = s.filter(pl.col("rand_day") >= START[kind])
    assert eligible["fabricated"].mean() == pytest.approx(MAG[kind], abs=0.15)
    assert s.filter(pl.col("rand_day") < START[kind])["fabricated"].sum() == 0
    # too little variability: within-subject SD of systolic BP far below the site's real subjects
    sd = (injected_records.vs.filter((pl.col("VSTESTCD") == "SYSBP") & pl.col("sid").is_in(s["sid"].implode()))
          .group_by("sid").agg(sd=pl.col("VSSTRESN").std()).join(s.select("sid", "fabricated"), on="sid")
          .group_by("fabricated").agg(pl.col("sd").median()))
    medians = dict(zip(sd["fabricated"], sd["sd"]))
    assert medians[True] < 0.5 * medians[False]
    # copied: each fabricated subject's values track its donor's
    fab = s.filter("fabricated").select("sid", "donor_sid")
    lb = injected_records.lb.filter(pl.col("LBTESTCD") == "ALT").select("sid", "VISITNUM", "LBSTRESN")
    pairs = (fab.join(lb, on="sid").join(lb.rename({"sid": "donor_sid", "LBSTRESN": "donor"}),
                                         on=["donor_sid", "VISITNUM"]).drop_nulls())
    assert pairs.select(pl.corr("LBSTRESN", "donor", method="spearman")).item() > 0.8


def test_digit_preference(injected_records, clean_records):
    kind = "digit_preference"

    def zero_share(records):
        sids = _site(records, kind)["sid"]
        vs = records.vs.filter(pl.col("sid").is_in(sids.implode()) & pl.col("VSTESTCD").is_in(["SYSBP", "DIABP"])
                               & (pl.col("VSDTC") >= START[kind]) & pl.col("VSSTRESN").is_not_null())
        return (vs["VSSTRESN"] % 10 == 0).mean(), vs.height
    (p_inj, n), (p0, _) = zero_share(injected_records), zero_share(clean_records)
    expected = MAG[kind] + (1 - MAG[kind]) * p0
    assert p_inj == pytest.approx(expected, abs=3 * np.sqrt(expected * (1 - expected) / n))


def test_implausible_visit_dates(injected_records, clean_records):
    kind = "implausible_visit_dates"

    def weekend_share(records):
        sids = _site(records, kind)["sid"]
        v = records.visits.filter(pl.col("sid").is_in(sids.implode()) & (pl.col("SVSTDTC") >= START[kind])
                                  & (pl.col("VISITNUM") >= 3) & (pl.col("VISITNUM") < 16))
        weekday = (pl.lit(CFG.start) + pl.duration(days=pl.col("SVSTDTC"))).dt.weekday()
        return v.select((weekday >= 6).mean()).item(), v.height
    (p_inj, n), (p0, _) = weekend_share(injected_records), weekend_share(clean_records)
    assert p0 < 0.03
    assert p_inj == pytest.approx(MAG[kind] + p0, abs=3 * np.sqrt(0.25 / n))


def test_lab_calibration_shift(injected_records, clean_records):
    kind = "lab_calibration_shift"

    def creat(records, after: bool):
        sids = _site(records, kind)["sid"]
        when = pl.col("LBDTC") >= START[kind]
        return records.lb.filter(pl.col("sid").is_in(sids.implode()) & (pl.col("LBTESTCD") == "CREAT")
                                 & (when if after else ~when))["LBSTRESN"].mean()
    assert creat(injected_records, True) / creat(clean_records, True) == pytest.approx(1 + MAG[kind], abs=0.01)
    assert creat(injected_records, False) == creat(clean_records, False)
    alt = lambda r: r.lb.filter(pl.col("sid").is_in(_site(r, kind)["sid"].implode())  # noqa: E731
                                & (pl.col("LBTESTCD") == "ALT"))["LBSTRESN"].sum()
    assert alt(injected_records) == alt(clean_records)


def test_excess_eligibility_violations(injected_records, clean_records):
    kind = "excess_eligibility_violations"
    s = _site(injected_records, kind).filter("enrolled")
    share = s["elig_violation"].mean()
    base = _site(clean_records, kind).filter("enrolled")["elig_violation"].mean()
    expected = MAG[kind] + (1 - MAG[kind]) * base
    assert share == pytest.approx(expected, abs=3 * np.sqrt(expected * (1 - expected) / s.height))
    # and the violations reach the tables: IE records and important ELIGIBILITY deviations
    ie = injected_records.ie.filter(pl.col("sid").is_in(s["sid"].implode()))["sid"].n_unique()
    assert ie == s["elig_violation"].sum()


def test_example_file_covers_every_type():
    from pathlib import Path

    from synthetic import load_anomalies

    specs = load_anomalies(Path(__file__).resolve().parents[2] / "examples" / "anomalies-all-types.yaml")
    assert sorted(a.type for a in specs) == sorted(ANOMALY_TYPES)
