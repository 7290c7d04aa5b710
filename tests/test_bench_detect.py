"""The detection benchmark (bench/detect.py): metric arithmetic on hand-made scores with known values,
signal scoring on hand-made findings, the design file, and the whole machinery on a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu, norm

from bench import detect
from bench.detect import Signal, auc, load_config, method_scores, threshold_at_fpr, tpr_at_fpr
from rbqm.errors import RbqmError

NEGATIVE = np.arange(100.0)             # 0, 1, ..., 99
POSITIVE = np.array([50.5, 98.5, 99.5, 200.0])


def test_auc_by_hand():
    # negatives below each positive: 51, 99, 100, 100 of 100
    assert auc(POSITIVE, NEGATIVE) == pytest.approx((0.51 + 0.99 + 1 + 1) / 4)
    assert auc([5.0], [5.0, 4.0]) == 0.75                     # a tie counts one half
    assert auc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert auc([np.nan], [0.0]) == 0.0                         # a site without a score ranks lowest
    assert np.isnan(auc([], [1.0]))


def test_tpr_at_fpr_by_hand():
    # FPR 0.01 of 100 negatives: 1 may exceed the threshold -> threshold 98 (the 2nd largest)
    assert threshold_at_fpr(NEGATIVE, 0.01) == 98.0
    assert tpr_at_fpr(POSITIVE, NEGATIVE, 0.01) == (0.75, 0.01)
    assert threshold_at_fpr(NEGATIVE, 0.05) == 94.0
    assert tpr_at_fpr(POSITIVE, NEGATIVE, 0.05) == (0.75, 0.05)
    # ties at the threshold are not flagged: conservative
    assert tpr_at_fpr([1.0, 2.0], [1.0] * 10, 0.5) == (0.5, 0.0)
    # fewer negatives than 1/FPR: nothing may exceed, so the threshold is the largest negative
    assert tpr_at_fpr([3.0, 2.5], [1.0, 2.0, 3.0], 0.01) == (0.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=30), st.lists(st.floats(-50, 50), min_size=1, max_size=30),
       st.sampled_from([0.01, 0.05, 0.2]))
def test_metrics_agree_with_scipy_and_hold_the_fpr(pos, neg, fpr):
    u = mannwhitneyu(pos, neg).statistic
    assert auc(pos, neg) == pytest.approx(u / (len(pos) * len(neg)))
    tpr, achieved = tpr_at_fpr(pos, neg, fpr)
    assert achieved <= fpr + 1e-12 and 0 <= tpr <= 1


def _findings() -> dict[str, pl.DataFrame]:
    """Two studies of three sites; site B of study 1 is injected."""
    sites = pl.DataFrame({"study": [1, 1, 1, 2, 2, 2], "site_id": ["A", "B", "C"] * 2,
                          "injected": [False, True, False, False, False, False], "eligible": True},
                         schema_overrides={"study": pl.Int32})
    csm = pl.DataFrame({
        "study": [1, 1, 1, 1, 2], "site_id": ["A", "B", "B", "C", "A"],
        "test": ["ae_under_reporting", "ae_under_reporting", "digit_preference", "ae_under_reporting",
                 "ae_under_reporting"],
        "variable": ["AE", "AE", "VS:SYSBP", "AE", "AE"],
        "p_value": [0.02, 0.001, 1e-320, 0.5, 0.2], "q_value": [0.03, 0.003, 0.0, 0.5, 0.2],
        "effect": [0.97, -0.99, 0.3, 0.0, 0.0], "sign": [1.0, -1.0, 1.0, -1.0, 1.0],
    }, schema_overrides={"study": pl.Int32})
    kri = pl.DataFrame({
        "study": [1, 1, 1], "site_id": ["A", "B", "C"], "kri_id": ["kri0001"] * 3,
        "score": [1.0, -2.5, None], "flag": [0, -1, None], "method": "normal_approx_rate", "metric": [3.0, 1.0, None],
    }, schema_overrides={"study": pl.Int32, "flag": pl.Int8})
    dis = pl.DataFrame({"study": [1, 1, 1], "site_id": ["A", "B", "B"], "variant": ["reference", "reference", "calibrated"],
                        "logp": [0.5, 4.0, 2.0], "q_value": [None, None, 0.04]}, schema_overrides={"study": pl.Int32})
    return {"sites": sites, "csm": csm, "kri": kri, "dis": dis}


def _by_site(frame: pl.DataFrame) -> dict[tuple[int, str], tuple]:
    return {(r["study"], r["site_id"]): (r["score"], r["flag"]) for r in frame.iter_rows(named=True)}


def test_csm_signal_one_sided_in_its_direction_and_flag_rules():
    low = Signal(csm="ae_under_reporting", direction="low", flag_effect_at_most=-0.95)
    got = _by_site(method_scores(_findings(), [low], q_level=0.05))
    assert got[(1, "A")][0] == pytest.approx(-np.log10(1 - 0.01))   # over-reporting: p_low = 1 - p/2
    assert got[(1, "B")] == (pytest.approx(-np.log10(0.0005)), True)
    assert got[(1, "C")][0] == pytest.approx(-np.log10(0.25))        # effect 0: the sign decides
    assert got[(2, "B")] == (None, False)                            # not tested: no score, not flagged
    any_q = _by_site(method_scores(_findings(), [Signal(csm="ae_under_reporting")], q_level=0.05))
    assert any_q[(1, "A")] == (pytest.approx(-np.log10(0.02)), True)  # q 0.03 < 0.05, either direction
    every = _by_site(method_scores(_findings(), [Signal(csm="*")], q_level=0.05))
    assert every[(1, "B")] == (pytest.approx(300.0), True)  # p 0 -> 1e-300: the smallest p of all tests


def test_kri_signal_in_its_direction_of_concern_and_combined_by_p():
    kri = _by_site(method_scores(_findings(), [Signal(kri="kri0001")], q_level=0.05))  # concern: low
    assert kri[(1, "A")] == (-1.0, False) and kri[(1, "B")] == (2.5, True)
    assert kri[(1, "C")] == (None, False)                          # too few to score
    both = _by_site(method_scores(_findings(), [Signal(kri="kri0001"), Signal(csm="digit_preference")],
                                  q_level=0.05))
    assert both[(1, "A")][0] == pytest.approx(-np.log10(norm.sf(-1.0)))   # the KRI's normal tail
    assert both[(1, "B")] == (pytest.approx(300.0), True)


def test_kri_flag_rule_red_only_and_dis_signals():
    red = _by_site(method_scores(_findings(), [Signal(kri="kri0001")], q_level=0.05, kri_flag_at=2))
    assert red[(1, "B")] == (2.5, False)                           # amber (-1) is not red
    reference = _by_site(method_scores(_findings(), [Signal(dis="reference")], q_level=0.05))
    assert reference[(1, "A")] == (0.5, False) and reference[(1, "B")] == (4.0, False)  # no rule without calibration
    calibrated = _by_site(method_scores(_findings(), [Signal(dis="calibrated")], q_level=0.05))
    assert calibrated[(1, "B")] == (2.0, True) and calibrated[(1, "A")] == (None, False)


def test_design_file_and_its_errors(tmp_path):
    config = load_config()
    assert set(config.types) == set(detect.ANOMALY_TYPES)
    assert all(len(t.magnitudes) >= 3 and t.moderate in t.magnitudes for t in config.types.values())
    raw = yaml.safe_load(detect.CONFIG.read_text())
    raw["types"]["digit_preference"]["moderate"] = 0.3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(RbqmError, match=r"bad.yaml: types.digit_preference: .*moderate \(0.3\)"):
        load_config(bad)
    assert detect.main(["--config", str(bad)]) == 2
    assert detect.main(["--types", "no_such_type"]) == 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, detect.DetectConfig]:
    """The shipped design on small studies (12 sites, 180 subjects) with r = 200."""
    raw = yaml.safe_load(detect.CONFIG.read_text())
    raw["study"] |= {"sites": 12, "subjects": 180, "countries": 2, "months": 12}
    raw["r"] = 200
    path = tmp_path_factory.mktemp("design") / "detect.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, load_config(path)


@pytest.fixture(scope="module")
def studies(tiny) -> dict[str, dict[str, pl.DataFrame]]:
    """One clean and one injected study (75% of AEs unreported), through the real worker."""
    _, config = tiny
    return {name: detect.study_findings(config, detect.Job(0, name, magnitude, seed=3))
            for name, magnitude in (("clean", None), ("ae_under_reporting", 0.75))}


def test_one_study_through_the_worker(studies):
    clean, injected = studies["clean"], studies["ae_under_reporting"]
    site = injected["sites"].filter("injected")
    assert site.height == 1 and site["eligible"].all() and not clean["sites"]["injected"].any()
    assert clean["sites"]["site_id"].to_list() == injected["sites"]["site_id"].to_list()
    # the clean twin: the injected site reports fewer AEs than in its clean twin, and the AE test sees it
    ae = {k: v["csm"].filter(pl.col("test") == "ae_under_reporting", pl.col("site_id") == site["site_id"][0])
          for k, v in studies.items()}
    assert ae["ae_under_reporting"]["p_value"][0] < ae["clean"]["p_value"][0]
    assert ae["ae_under_reporting"]["sign"][0] == -1.0
    assert set(injected["kri"]["kri_id"]) >= {"kri0001", "kri0004"}
    assert {"site_id", "variant", "logp", "q_value", "study"} <= set(injected["dis"].columns)


def test_tiny_run_end_to_end(tmp_path, tiny, studies, monkeypatch):
    """2 replicates of 2 types and 5 simulated studies per published magnitude through main(): the page
    and the raw figures hold every type, magnitude and method. The synthetic studies reuse the two real
    ones above (so the run takes seconds); the pool of 2 workers is checked on the published design."""
    path, config = tiny

    def reuse(config, job):
        base = studies["clean" if job.anomaly == "clean" else "ae_under_reporting"]
        return {k: v.with_columns(study=pl.lit(job.study)) for k, v in base.items()}

    monkeypatch.setattr(detect, "study_findings", reuse)
    out, results = tmp_path / "detection.md", tmp_path / "results"
    assert detect.main(["--config", str(path), "--replicates", "2", "--types", "ae_under_reporting",
                        "digit_preference", "--published", "5", "--workers", "1", "--out", str(out),
                        "--results", str(results)]) == 0
    report = json.loads((results / "detect.json").read_text())
    rows = pl.DataFrame(report["metrics"])
    product = rows.filter(pl.col("method") == "product")
    assert product.select("type", "magnitude").sort("type", "magnitude").rows() == [
        ("ae_under_reporting", 0.25), ("ae_under_reporting", 0.5), ("ae_under_reporting", 0.75),
        ("digit_preference", 0.1), ("digit_preference", 0.25), ("digit_preference", 0.5)]
    assert product["positives"].unique().to_list() == [2]
    ae = product.filter(pl.col("type") == "ae_under_reporting")
    assert (ae["auc"] > 0.9).all() and (ae["specificity"] > 0.9).all()
    signals = set(rows.filter(pl.col("method") == "signal")["signal"])
    assert {"csm:low_variability", "kri:kri0001"} <= signals         # every test and KRI, unnamed in the yaml
    assert rows.filter(pl.col("type") == "digit_preference", pl.col("method") == "baseline").height == 0
    assert len(report["published"]) == 2 * 5 * 3
    page = out.read_text()
    assert "| digit_preference | 0.25 * | csm:digit_preference |" in page
    assert "## simaerep's published design" in page and report["meta"]["replicates"] == 2
    assert (results / "detect.csv").exists()


def test_run_jobs_runs_the_published_design(tiny):
    # in this process: a spawn pool inside a pytest-xdist worker respawns its children forever
    # (the pool itself is exercised by every `make bench-detect` run)
    _, config = tiny
    config = config.model_copy(update={"published": config.published.model_copy(update={"studies": 2})})
    jobs = [detect.Job(i, "", m, seed=i, variant=v) for i, (v, m) in enumerate([("published", 0.5),
                                                                                ("visit-dependent", 1.0)])]
    done = detect.run_jobs(config, jobs, workers=1, progress=False)
    assert sorted(job.study for job, _ in done) == [0, 1]
    frame = dict(done)[jobs[1]]["published"]
    assert frame.height == 2 * config.published.sites and frame.filter("injected").height == 2
