"""Benchmark of the complete KRI computation (read the study, derive the analysis tables, compute every
KRI of the library per site and country, site risk) against its floor: a bare polars scan of the same
Parquet files.

Studies of 100 sites / 10,000 subjects and 1,000 sites / 100,000 subjects are generated once into
bench/results/data/ (reused afterwards). Each run is a fresh subprocess, so its peak memory is its own.
``BENCH_RUNS`` sets the runs per size (default 5 and 3). Results go to bench/results/kri.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from synthetic import SynthConfig, generate_study, load_anomalies

DATA = Path("bench/results/data")
SIZES = {
    "100 sites / 10k subjects": dict(sites=100, subjects=10_000, countries=12),
    "1,000 sites / 100k subjects": dict(sites=1_000, subjects=100_000, countries=20),
}

_CHILD = r"""
def peak_mib():  # VmHWM: this process's own peak (ru_maxrss would include the parent's before exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
import json, sys, time
from pathlib import Path
import polars as pl
from rbqm.analysis import analyze_cut  # imported before timing: the benchmark is the computation
folder, what = Path(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
if what == "floor":
    for path in sorted(folder.glob("*.parquet")):
        pl.scan_parquet(path).collect()
else:
    analyze_cut(folder, csm=False)  # KRIs and QTLs (central monitoring is not part of this benchmark)
t1 = time.perf_counter()
print(json.dumps({"seconds": t1 - t0, "peak_mib": peak_mib()}))
"""


def _run(folder: Path, what: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), what], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _study(label: str, size: dict) -> Path:
    folder = DATA / f"{size['sites']}-sites"
    if not (folder / "dm.parquet").exists():
        print(f"generating the {label} study into {folder} (once)", flush=True)
        generate_study(SynthConfig(**size, seed=1, anomalies=load_anomalies("default")), folder, overwrite=True)
    return folder


def main() -> None:
    report = {}
    for label, size in SIZES.items():
        folder = _study(label, size)
        n = int(os.environ.get("BENCH_RUNS", 3 if size["subjects"] >= 100_000 else 5))
        kri = [_run(folder, "kri") for _ in range(n)]
        floor = [_run(folder, "floor") for _ in range(n)]
        med = statistics.median(r["seconds"] for r in kri)
        med_floor = statistics.median(r["seconds"] for r in floor)
        report[label] = {"runs": n, "median_seconds": med, "floor_median_seconds": med_floor,
                         "ratio_to_floor": med / med_floor, "peak_mib": max(r["peak_mib"] for r in kri),
                         "floor_peak_mib": max(r["peak_mib"] for r in floor)}
        r = report[label]
        print(f"{label}: KRI computation median of {n}: {med:.2f} s = {r['ratio_to_floor']:.1f}x a bare polars "
              f"scan of the same Parquet files ({med_floor:.2f} s); peak memory {r['peak_mib']:,.0f} MiB "
              f"(scan {r['floor_peak_mib']:,.0f} MiB)", flush=True)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/kri.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
