"""Countries and sites: where the study runs, when sites open, and how each site behaves."""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.special import logit

from synthetic.design import SynthConfig, catalogue
from synthetic.random import KeyedRandom

__all__ = ["make_countries", "make_sites"]


def make_countries(cfg: SynthConfig, rng: KeyedRandom) -> pl.DataFrame:
    """The study's countries (the first ``cfg.countries`` of the catalogue) and their effects.

    Each effect is a multiplier (log-normal) or, for screen failure, a logit shift.
    """
    chosen = catalogue()["countries"][: cfg.countries]
    sd = catalogue()["country_effects"]
    idx = np.arange(len(chosen))
    effects = {f"c_{name}": rng.normal(f"country.{name}", idx) * s for name, s in sd.items()}
    return pl.DataFrame({
        "country_idx": idx,
        "COUNTRY": [c["code"] for c in chosen],
        "REGION": [c["region"] for c in chosen],
        "holiday_code": [c["holidays"] for c in chosen],
        "weight": [float(c["weight"]) for c in chosen],
        # countries start up in waves over the first 15% of the study
        "c_start": rng.uniform("country.start", idx) * 0.15,
        **effects,
    })


def _allocate(weights: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` sites over countries: one each, the rest by largest remainder."""
    rest = total - len(weights)
    share = weights / weights.sum() * rest
    alloc = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - alloc), kind="stable")
    alloc[order[: rest - alloc.sum()]] += 1
    return alloc + 1


def make_sites(cfg: SynthConfig, countries: pl.DataFrame, rng: KeyedRandom) -> pl.DataFrame:
    """One row per site: the ``sites`` table columns plus the site's behaviour parameters.

    Parameters (lower-case columns) are drawn per site from the site's own key, so a
    site behaves the same whatever anomalies other sites carry.
    """
    design = catalogue()["study"]
    per_country = _allocate(countries["weight"].to_numpy(), cfg.sites)
    country_idx = np.repeat(countries["country_idx"].to_numpy(), per_country)
    site = np.arange(cfg.sites)
    end = cfg.end_day
    c = countries.to_dict(as_series=False)
    c_of = {k: np.asarray(v)[country_idx] for k, v in c.items() if k.startswith("c_")}

    spread = design["activation_spread"]
    lag = rng.gamma("site.activation", 2.0, site) / 2.0 * 0.12
    activation = np.floor(np.minimum(c_of["c_start"] + lag, spread) * end).astype(np.int64)
    close = int(design["enrolment_close"] * end)
    window = np.maximum(close - activation, 1)
    shape = catalogue()["study"]["enrolment"]["site_shape"]
    rate = rng.gamma("site.enrolment", shape, site) / shape * np.exp(c_of["c_enrolment"])
    planned_rate = np.exp(c_of["c_enrolment"])  # the plan knows countries, not sites
    planned = np.maximum(1, np.round(cfg.subjects * planned_rate * window / (planned_rate * window).sum()))

    sf = design["screen_failure"]
    hz = design["hazards"]
    lag_cfg = design["entry_lag"]
    edc = catalogue()["edc"]
    names = catalogue()["investigators"]
    initials = np.array(list("ABCDEFGHJKLMNPRSTW"))
    surname = np.array(names)[rng.choice("site.invnam", np.ones(len(names)), site)]
    initial = initials[rng.choice("site.initial", np.ones(len(initials)), site)]
    regions = countries["REGION"].to_numpy()[country_idx]
    return pl.DataFrame({
        "site_idx": site,
        "country_idx": country_idx,
        "SITEID": (1001 + site).astype(str),
        "COUNTRY": countries["COUNTRY"].to_numpy()[country_idx],
        "REGION": regions,
        "INVNAM": np.char.add(np.char.add("Dr ", initial), np.char.add(". ", surname)),
        "activation_day": activation,
        "PLANNEDENR": planned.astype(np.int64),
        "enrol_weight": rate * window,
        "sf_logit": logit(sf["probability"]) + c_of["c_screen_failure"] + sf["site_sd"] * rng.normal("site.sf", site),
        "hazard_mult": np.exp(hz["site_sd"] * rng.normal("site.hazard", site)),
        "ae_mult": np.exp(c_of["c_adverse_events"]
                          + catalogue()["adverse_events"]["site_sd"] * rng.normal("site.ae", site)),
        "dv_mult": np.exp(c_of["c_deviations"]
                          + catalogue()["deviations"]["site_sd"] * rng.normal("site.dv", site)),
        "entry_median": lag_cfg["median_days"] * np.exp(c_of["c_entry_lag"]
                                                        + lag_cfg["site_sd"] * rng.normal("site.entry", site)),
        "query_mult": np.exp(c_of["c_queries"] + edc["query_site_sd"] * rng.normal("site.query", site)),
        "answer_median": edc["answer"]["median_days"] * np.exp(edc["answer"]["site_sd"]
                                                               * rng.normal("site.answer", site)),
        "change_mult": np.exp(edc["spontaneous_change"]["site_sd"] * rng.normal("site.change", site)),
        "visit_mult": np.exp(0.4 * rng.normal("site.visits", site)),
        "elig_mult": np.exp(0.5 * rng.normal("site.eligibility", site)),
        "rounding": np.minimum(design["mild_rounding"]["mean"] * rng.exponential("site.rounding", site), 0.3),
        "asia": regions == "Asia-Pacific",
    })
