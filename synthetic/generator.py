"""Generate a synthetic multinational trial and write it as a study folder with data cuts.

The steps run in the order data arise: countries and sites, subjects and their
course, visits, measurements and events, EDC operations; then each data cut is
written with only what was known on its date.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from rbqm.errors import StudyFormatError
from rbqm.io import write_table
from synthetic.cuts import TrialRecords, tables_at
from synthetic.design import SynthConfig
from synthetic.edc import make_datapoints, make_pages, make_queries
from synthetic.events import (make_adverse_events, make_deviations, make_disposition, make_eligibility,
                              make_exposure)
from synthetic.injection import resolve_anomalies
from synthetic.measurements import make_labs, make_vitals
from synthetic.random import KeyedRandom
from synthetic.sites import make_countries, make_sites
from synthetic.subjects import make_subjects
from synthetic.timeline import WorkCalendar
from synthetic.visits import make_visits

__all__ = ["build_trial", "generate_study", "GeneratedStudy"]

_CALENDAR_MARGIN = 800  # days of working-day calendar beyond the study end (follow-up of late subjects)


@dataclass(frozen=True)
class GeneratedStudy:
    """What ``generate_study`` wrote."""

    folder: Path
    cuts: list[Path]
    rows: dict[str, int]
    truth: pl.DataFrame


def build_trial(cfg: SynthConfig) -> TrialRecords:
    """Generate the whole trial in internal form (see ``synthetic.cuts.TrialRecords``)."""
    rng = KeyedRandom(cfg.seed)
    countries = make_countries(cfg, rng)
    sites = make_sites(cfg, countries, rng)
    cal = WorkCalendar(cfg.start, cfg.end_day + _CALENDAR_MARGIN, countries["holiday_code"].to_list())
    weight = sites["enrol_weight"].to_numpy()
    enrolled = rng.generator("enrolment").multinomial(cfg.subjects, weight / weight.sum())
    inj = resolve_anomalies(cfg, sites, enrolled, rng)
    subjects = make_subjects(cfg, sites, inj, rng, cal, enrolled)
    visits = make_visits(subjects, sites, inj, rng, cal)
    pages = make_pages(visits, subjects, sites, inj, rng)
    datapoints, visit_queries = make_datapoints(pages, sites, inj, rng)
    ae = make_adverse_events(subjects, sites, inj, rng)
    entry = pages.select("sid", "VISITNUM", "FORM", known="entry")

    def entered(frame: pl.DataFrame, form: str) -> pl.DataFrame:
        keys = entry.filter(pl.col("FORM") == form).drop("FORM")
        return frame.with_columns(pl.col("VISITNUM").cast(pl.Float64)).join(keys, on=["sid", "VISITNUM"], how="left")

    return TrialRecords(
        study_id=cfg.study_id, start=cfg.start,
        sites=sites,
        subjects=subjects, visits=entered(visits.rename({"day": "SVSTDTC"}), "VISIT"),
        pages=pages.drop("key", "form_idx"), datapoints=datapoints,
        queries=make_queries(visit_queries, ae, subjects, sites, inj, rng),
        ae=ae, dv=make_deviations(subjects, visits, sites, inj, rng), ie=make_eligibility(subjects, rng),
        ds=make_disposition(subjects), ex=entered(make_exposure(subjects, visits), "EX"),
        lb=entered(make_labs(subjects, visits, inj, rng).rename({"day": "LBDTC"}), "LB"),
        vs=entered(make_vitals(subjects, visits, sites, inj, rng).rename({"day": "VSDTC"}), "VS"),
        truth=inj.truth,
    )




def _write_folder(records: TrialRecords, cut_day: int, folder: Path, cfg: SynthConfig) -> dict[str, int]:
    rows = {}
    for name, frame in tables_at(records, cut_day).items():
        if cfg.fmt == "parquet":  # streamed to disk, then counted
            path = write_table(frame, folder, name, cfg.fmt)
            rows[name] = pl.scan_parquet(path).select(pl.len()).collect().item()
        else:
            table = frame.collect()
            write_table(table, folder, name, cfg.fmt)
            rows[name] = table.height
    truth = records.truth.filter(pl.col("STARTDTC") <= cfg.to_date(cut_day).isoformat())
    truth.write_csv(folder / "truth.csv")
    return rows


def generate_study(cfg: SynthConfig, out_dir: Path, *, overwrite: bool = False) -> GeneratedStudy:
    """Generate the trial and write it to ``out_dir``: the study at its end, ``truth.csv``,
    and ``cuts/YYYY-MM-DD/`` for each of the ``cfg.cuts`` monthly data cuts.

    The folder is written beside its destination and moved into place at the end, so a
    failure leaves nothing half-written.

    Raises
    ------
    StudyFormatError
        When ``out_dir`` exists, is not empty and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())) and not overwrite:
        raise StudyFormatError(f"{out_dir}: already exists and is not empty; choose another folder "
                               "or pass --overwrite to replace it")
    records = build_trial(cfg)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        rows = _write_folder(records, cfg.end_day, staging, cfg)
        cut_paths = []
        for when in cfg.cut_dates():
            rel = Path("cuts") / when.isoformat()
            _write_folder(records, cfg.to_day(when), staging / rel, cfg)
            cut_paths.append(out_dir / rel)
        if out_dir.exists():
            shutil.rmtree(out_dir) if out_dir.is_dir() else out_dir.unlink()
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return GeneratedStudy(folder=out_dir, cuts=cut_paths, rows=rows, truth=records.truth)
