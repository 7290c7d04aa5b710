"""QTL statuses across the data cuts of a synthetic study with excess important deviations and excess
discontinuation injected (docs/synthetic.md) from 70% of the study period: the deviation and
discontinuation QTLs are within limits before the anomalies start, then cross the secondary limit and
breach the tolerance limit, cut by cut; the same study without the anomalies stays within limits; and
the breach evaluations open at each QTL's first breached cut (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from rbqm.qtl import qtl_trend, study_qtls
from rbqm.store import qtl as store_qtl
from synthetic import AnomalySpec, SynthConfig, generate_study
from tests.store.conftest import MONITOR

WITHIN, SECONDARY, BREACHED = "within limits", "secondary limit crossed", "tolerance limit breached"
SITES = tuple(str(site) for site in range(1001, 1011))  # 10 of the 12 sites
DESIGN = dict(sites=12, subjects=600, countries=3, seed=7, months=18, cuts=8)
ANOMALIES = (
    AnomalySpec(type="excess_important_deviations", magnitude=20.0, sites=SITES, start=0.7),
    AnomalySpec(type="high_discontinuation", magnitude=7.0, sites=SITES, start=0.7),
)
W, S, B = WITHIN, SECONDARY, BREACHED
EXPECTED = {  # one status per monthly cut, oldest first; the anomalies start between the 2nd and 3rd cut
    "qtl0001": [W, W, W, W, S, B, B, B],  # subjects with important protocol deviations (beta-binomial)
    "qtl0006": [W, W, W, W, W, B, B, B],  # ... in category concomitant medication (exact proportion)
    "qtl0007": [W, W, W, W, B, B, B, B],  # ... randomisation or dosing errors (exact proportion)
    "qtl0009": [W, W, W, S, B, B, B, B],  # important protocol deviations per 1,000 days (gamma-Poisson)
    "qtl0003": [W, W, W, W, W, S, B, B],  # premature treatment discontinuation (exact proportion)
    "qtl0004": [W, S, S, B, B, B, B, B],  # withdrawal or loss to follow-up (gsm.qtl's one-sided test)
    "qtl0002": [W] * 8, "qtl0005": [W] * 8, "qtl0008": [W] * 8,  # eligibility, missed visits, early deaths
}
TARGETED = ["qtl0001", "qtl0006", "qtl0007", "qtl0009", "qtl0003", "qtl0004"]
UNTOUCHED = ["qtl0002", "qtl0008"]  # neither anomaly changes eligibility or deaths
CLEAN = {qtl_id: [W] * 8 for qtl_id in EXPECTED} | {  # withdrawal: about 10% a year in the generator, 7% expected
    "qtl0004": [W, S, S, S, S, B, B, B]}


def _qtls(folder, anomalies=()) -> pl.DataFrame:
    generate_study(SynthConfig(**DESIGN, anomalies=anomalies), folder)
    return study_qtls(folder)


@pytest.fixture(scope="module")
def injected(tmp_path_factory) -> tuple[pl.DataFrame, date]:
    """The QTLs at every cut of the study with the anomalies, and the date they start."""
    folder = tmp_path_factory.mktemp("transitions") / "injected"
    frame = _qtls(folder, ANOMALIES)
    starts = pl.read_csv(folder / "truth.csv")["STARTDTC"].unique().to_list()
    assert len(starts) == 1
    return frame, date.fromisoformat(starts[0])


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> pl.DataFrame:
    return _qtls(tmp_path_factory.mktemp("transitions") / "clean")


def _statuses(frame: pl.DataFrame) -> dict[str, list[str]]:
    rows = frame.sort("cut_date")
    return {qtl_id: rows.filter(pl.col("qtl_id") == qtl_id)["status"].to_list() for qtl_id in frame["qtl_id"].unique()}


def test_deviation_and_discontinuation_qtls_cross_their_limits_cut_by_cut(injected, clean):
    frame, start = injected
    assert frame["cut_date"].n_unique() == 8
    assert _statuses(frame) == EXPECTED
    assert _statuses(clean) == CLEAN
    # before the anomalies start the two studies are the same; from then on the targeted QTLs are worse
    before = pl.col("cut_date") < start
    columns = ["cut_date", "qtl_id", "numerator", "denominator", "estimate", "status"]
    assert frame.filter(before).select(columns).equals(clean.filter(before).select(columns))
    assert frame.filter(before)["cut_date"].n_unique() == 2
    later = frame.filter(~before).join(clean, on=["cut_date", "qtl_id"], suffix="_clean").sort("qtl_id", "cut_date")
    targeted = later.filter(pl.col("qtl_id").is_in(TARGETED))
    assert targeted.height == 6 * len(TARGETED)
    assert (targeted["estimate"] >= targeted["estimate_clean"]).all()
    last = targeted.filter(pl.col("cut_date") == pl.col("cut_date").max())
    assert (last["estimate"] > last["estimate_clean"]).all()
    untouched = later.filter(pl.col("qtl_id").is_in(UNTOUCHED))
    assert untouched["estimate"].equals(untouched["estimate_clean"].alias("estimate"))
    # the trend names each step: worse when the status moves up, same otherwise
    trend = qtl_trend(frame).filter(pl.col("qtl_id") == "qtl0001")
    assert trend["change"].to_list() == ["first", "same", "same", "same", "worse", "worse", "same", "same"]


def test_each_breach_opens_one_evaluation_at_its_first_breached_cut(store, people, injected):
    frame, _ = injected
    cuts = sorted(frame["cut_date"].unique())
    first = {qtl_id: cuts[statuses.index(BREACHED)] for qtl_id, statuses in EXPECTED.items() if BREACHED in statuses}
    pending = store_qtl.pending_breaches(store, "RBQM-SYN-01", frame)
    assert dict(zip(pending["qtl_id"], pending["cut_date"], strict=True)) == first
    opened = store_qtl.sync_breaches(store, MONITOR, "RBQM-SYN-01", frame)
    log = store_qtl.breach_log(store, "RBQM-SYN-01")
    assert sorted(log["breach_id"]) == sorted(opened) and log.height == len(first)
    assert dict(zip(log["qtl_id"], log["first_cut"], strict=True)) == first
    assert (log["status"] == "open").all()
    evidence = log.join(frame, left_on=["qtl_id", "first_cut"], right_on=["qtl_id", "cut_date"], suffix="_cut")
    assert evidence.select("estimate", "lower", "upper", "limit").equals(
        evidence.select(pl.col("estimate_cut", "lower_cut", "upper_cut", "limit_cut").name.map(lambda c: c[:-4])))
    assert store_qtl.pending_breaches(store, "RBQM-SYN-01", frame).is_empty()
