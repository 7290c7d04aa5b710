"""The KRI engine on a real public SDTM study as distributed: the CDISC pilot (CDISCPILOT01) XPT files.

The data are not in this repository. The test looks for them in $RBQM_REAL_SDTM or in
../shared/sdtm/cdiscpilot01 (beside the repository) and is skipped, saying so, when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from rbqm.analysis import analyze_cut
from rbqm.study import summarize_study

CANDIDATES = [os.environ.get("RBQM_REAL_SDTM"), Path(__file__).resolve().parents[2] / "shared" / "sdtm" / "cdiscpilot01"]
FOLDER = next((Path(c) for c in CANDIDATES if c and (Path(c) / "dm.xpt").is_file()), None)

pytestmark = pytest.mark.skipif(
    FOLDER is None,
    reason="no real SDTM study here: set RBQM_REAL_SDTM to a folder with the CDISC pilot XPT files "
           "(phuse-scripts data/sdtm/cdiscpilot01) or place them in ../shared/sdtm/cdiscpilot01",
)


@pytest.fixture(scope="module")
def results() -> pl.DataFrame:
    return analyze_cut(FOLDER, csm=False).kri.results.filter(pl.col("level") == "site")


def test_reads_the_pilot_as_distributed():
    summary = summarize_study(FOLDER)
    assert (summary.study_id, summary.screened, summary.enrolled, summary.sites) == ("CDISCPILOT01", 306, 254, 17)


def _note(results, kri):
    return results.filter(pl.col("kri_id") == kri)["note"].drop_nulls().unique().to_list()


@pytest.mark.parametrize("kri", ["kri0001", "kri0002", "kri0006", "kri0012", "kri0015", "kri0017"])
def test_kris_whose_inputs_exist_compute(results, kri):
    rows = results.filter(pl.col("kri_id") == kri)
    assert rows["denominator"].sum() > 0
    assert not any(n.startswith("not computable") for n in _note(results, kri))


@pytest.mark.parametrize(("kri", "reason"), [
    ("kri0004", "not computable: needs dv"),                    # the pilot has no deviations domain
    ("kri0008", "not computable: needs datapoints, queries"),   # nor EDC exports
    ("kri0007", "not computable: needs ds.DSSCAT"),             # DS has no subcategory for treatment
    ("kri0018", "not computable: needs visits.out_of_window"),  # TV has no numeric windows
    ("kri0021", "not computable: needs ae.grade"),              # AEs have severity, not CTCAE grade
])
def test_missing_inputs_are_reported_never_zero(results, kri, reason):
    assert _note(results, kri) == [reason]
    assert results.filter(pl.col("kri_id") == kri)["flag"].is_null().all()


def test_sites_with_one_subject_are_kept_but_not_scored(results):
    one = results.filter((pl.col("kri_id") == "kri0012") & (pl.col("denominator") < 3))
    assert one.height >= 1
    assert one["flag"].is_null().all()
    assert all(n.startswith("too few to score") for n in one["note"])
