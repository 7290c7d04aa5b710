"""The synthetic trial looks like a real one to a statistician.

Checks on a clean study (no anomalies, 100 sites): over-dispersion where real data
are over-dispersed, no more extreme sites than chance, realistic rates, correlations
and within-subject variability.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synthetic import SynthConfig, build_trial, tables_at

CFG = SynthConfig(sites=100, subjects=4000, countries=10, seed=21, months=24)


@pytest.fixture(scope="module")
def study() -> dict[str, pl.DataFrame]:
    records = build_trial(CFG)
    return {name: lf.collect() for name, lf in tables_at(records, CFG.end_day).items()}


def _exposure(study) -> pl.DataFrame:
    """Per enrolled subject: SITEID and days on study up to the cut."""
    cut = pl.lit(CFG.end.isoformat()).str.to_date()
    dm = study["dm"].filter(pl.col("RFSTDTC").is_not_null())
    end = pl.coalesce(pl.col("RFENDTC").str.to_date(), cut)
    return dm.select("USUBJID", "SITEID", days=(end - pl.col("RFSTDTC").str.to_date()).dt.total_days() + 1)


def _site_rates(study, events: pl.DataFrame) -> pl.DataFrame:
    exp = _exposure(study)
    counts = events.group_by("USUBJID").len()
    return (exp.join(counts, on="USUBJID", how="left").group_by("SITEID")
            .agg(n=pl.col("len").fill_null(0).sum(), d=pl.col("days").sum()).filter(pl.col("d") > 0))


def _overdispersed_z(n: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, float]:
    """Reference section 3: rate z-scores with the over-dispersion factor phi."""
    mu = n.sum() / d.sum()
    z0 = (n / d - mu) / np.sqrt(mu / d)
    phi = float(np.mean(z0**2))
    return z0 / np.sqrt(phi), phi


def test_site_ae_rates_are_overdispersed_but_not_extreme(study):
    rates = _site_rates(study, study["ae"]).filter(pl.col("d") >= 30)
    z, phi = _overdispersed_z(rates["n"].to_numpy(), rates["d"].to_numpy().astype(float))
    assert phi > 1.5, "real per-site AE rates vary more than Poisson"
    assert (np.abs(z) >= 3).sum() <= 2, "a clean study should have no more extreme sites than chance"
    assert (np.abs(z) >= 2).mean() <= 0.12


def test_subject_ae_counts_are_overdispersed_and_time_dependent(study):
    exp = _exposure(study).filter(pl.col("days") >= 300)
    counts = exp.join(study["ae"].group_by("USUBJID").len(), on="USUBJID", how="left")["len"].fill_null(0)
    assert counts.var() / counts.mean() > 1.5
    dm = study["dm"].select("USUBJID", start=pl.col("RFSTDTC").str.to_date())
    day = study["ae"].join(dm, on="USUBJID").select(
        (pl.col("AESTDTC").str.to_date() - pl.col("start")).dt.total_days().alias("day"))["day"]
    early = ((day >= 0) & (day < 60)).sum() / 60
    late = ((day >= 200) & (day < 260)).sum() / 60
    assert early > 1.3 * late, "AE rates are highest early on treatment"


def test_adverse_event_attributes(study):
    ae = study["ae"]
    serious = (ae["AESER"] == "Y").mean()
    assert 0.02 < serious < 0.1
    assert set(ae["AETOXGR"].unique()) == {"1", "2", "3", "4", "5"}
    assert ae["AEDECOD"].n_unique() >= 20
    ended = ae.filter(pl.col("AEENDTC").is_not_null())
    assert (ended["AEENDTC"] >= ended["AESTDTC"]).all()


def test_enrolment_and_screening(study):
    dm, sites = study["dm"], study["sites"]
    per_site = dm.filter(pl.col("RFSTDTC").is_not_null()).group_by("SITEID").len()["len"]
    assert per_site.var() > 2 * per_site.mean(), "Poisson-gamma enrolment varies more than Poisson"
    activation = sites["ACTIVATIONDTC"].str.to_date()
    assert (activation.max() - activation.min()).days > 150, "sites activate in a staggered way"
    sf = (dm["ARMCD"] == "SCRNFAIL").mean()
    assert 0.12 < sf < 0.35
    assert dm.filter(pl.col("RFSTDTC").is_not_null())["ARMCD"].is_in(["A", "P"]).all()
    assert dm["COUNTRY"].n_unique() == CFG.countries


def test_disposition(study):
    ds = study["ds"].filter((pl.col("DSSCAT") == "STUDY PARTICIPATION") & (pl.col("DSCAT") == "DISPOSITION EVENT"))
    reasons = ds["DSDECOD"].value_counts()
    assert {"COMPLETED", "WITHDRAWAL BY SUBJECT", "LOST TO FOLLOW-UP", "ADVERSE EVENT", "DEATH"} <= set(
        reasons["DSDECOD"])
    enrolled = study["dm"].filter(pl.col("RFSTDTC").is_not_null()).height
    deaths = study["dm"]["DTHFL"].eq("Y").sum()
    assert 0 < deaths < 0.05 * enrolled
    early = ds.filter(~pl.col("DSDECOD").is_in(["COMPLETED"])).height / enrolled
    assert 0.08 < early < 0.4


def test_visits(study):
    sv = study["sv"]
    weekday = sv["SVSTDTC"].str.to_date().dt.weekday()
    assert (weekday >= 6).mean() < 0.02, "visits happen on working days"
    dm = study["dm"].filter(pl.col("RFSTDTC").is_not_null())
    per_subject = sv.filter(pl.col("VISITNUM") > 1).group_by("USUBJID").len()
    assert per_subject["len"].max() == 15
    assert per_subject.height == dm.height
    dv = study["dv"]
    assert 0.005 < dv.filter(pl.col("DVTERM") == "VISIT OUT OF WINDOW").height / sv.height < 0.06


def test_labs(study):
    lb = study["lb"]
    assert lb["LBTESTCD"].n_unique() >= 10
    assert lb.group_by("LBTESTCD").agg(pl.col("LBSTRESU").n_unique())["LBSTRESU"].max() == 1
    grade3 = lb.filter(pl.col("LBTOXGR").is_not_null()).select(pl.col("LBTOXGR").cast(pl.Int64) >= 3).to_series()
    assert 0.0005 < grade3.mean() < 0.02
    high = lb.filter(pl.col("LBNRIND") == "HIGH")
    assert (high["LBSTRESN"] > high["LBSTNRHI"]).all()
    means = (lb.filter(pl.col("LBTESTCD").is_in(["ALT", "AST", "WBC", "NEUT"]))
             .group_by("USUBJID", "LBTESTCD").agg(pl.col("LBSTRESN").log().median())
             .pivot("LBTESTCD", index="USUBJID", values="LBSTRESN").drop_nulls())
    assert means.select(pl.corr("ALT", "AST")).item() > 0.5
    assert means.select(pl.corr("WBC", "NEUT")).item() > 0.6


def _icc(frame: pl.DataFrame) -> float:
    """Share of variance between subjects (one-way random effects, moment estimate)."""
    g = frame.group_by("USUBJID").agg(m=pl.col("v").mean(), s2=pl.col("v").var(), k=pl.len()).filter(pl.col("k") >= 3)
    within = g["s2"].mean()
    between = g["m"].var() - within / g["k"].mean()
    return between / (between + within)


@pytest.mark.parametrize(("test", "low", "high"), [("SYSBP", 0.4, 0.9), ("DIABP", 0.4, 0.9), ("WEIGHT", 0.95, 1.0)])
def test_vital_signs_within_subject_correlation(study, test, low, high):
    vs = study["vs"].filter(pl.col("VSTESTCD") == test).select("USUBJID", v="VSSTRESN").drop_nulls()
    assert low < _icc(vs) < high


def test_blood_pressure_terminal_digits_are_near_uniform(study):
    bp = study["vs"].filter(pl.col("VSTESTCD") == "SYSBP")["VSSTRESN"].drop_nulls()
    digits = (bp % 10).value_counts(normalize=True)
    assert digits["proportion"].max() < 0.16
    assert digits["proportion"].min() > 0.07


def test_edc_operations(study):
    pages = study["pages"]
    lag = (pages["ENTRYDTC"].str.to_date() - pages["VISITDTC"].str.to_date()).dt.total_days().drop_nulls()
    assert 1 <= lag.median() <= 8
    assert (lag > 10).mean() < 0.25
    assert set(study["queries"]["QRYSTATUS"].unique()) == {"OPEN", "ANSWERED", "CLOSED"}
    changed = (study["datapoints"]["NCHANGES"] > 0).mean()
    assert 0.01 < changed < 0.1
    per_dp = study["queries"].filter(pl.col("FORM") != "AE").height / study["datapoints"].height
    assert 0.005 < per_dp < 0.05
