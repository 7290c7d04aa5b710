"""Benchmark of the synthetic trial generator: records per second and peak memory.

Each run generates a study in a fresh subprocess (so peak memory is that run's own)
and reports: wall time, rows written, records per second, peak resident memory, and
the ratio of the whole run to its floor, the time polars takes just to write the same
tables from memory. Sizes: a 100-site / 10,000-subject study and the 1,000-site /
100,000-subject study of the foundation issue. ``BENCH_RUNS`` sets the runs per size
(default 3 for the small study, 1 for the large one); results go to bench/results/.

Run with ``make bench``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

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
from synthetic import SynthConfig, build_trial, generate_study, load_anomalies

cfg = SynthConfig(**json.loads(sys.argv[1]), seed=int(sys.argv[2]), anomalies=load_anomalies("default"))
out = Path(sys.argv[3])
t0 = time.perf_counter()
build_trial(cfg)
t1 = time.perf_counter()
study = generate_study(cfg, out / "study")          # what `rbqm synth` runs: build, cut, write
t2 = time.perf_counter()
peak = peak_mib()
floor = 0.0                                         # polars writing the same tables, one at a time
for path in sorted((out / "study").glob("*.parquet")):
    frame = pl.read_parquet(path)
    t = time.perf_counter()
    frame.write_parquet(out / "floor.parquet", compression="zstd")
    floor += time.perf_counter() - t
rows = sum(study.rows.values())
print(json.dumps({"build": t1 - t0, "total": t2 - t1, "floor": floor, "rows": rows,
                  "lb_vs_rows": study.rows["lb"] + study.rows["vs"], "peak_mib": peak}))
"""


def run_once(size: dict, seed: int) -> dict:
    """Generate one study in a subprocess and return its timings, rows and peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(size), str(seed), tmp],
                              check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    results = {}
    for label, size in SIZES.items():
        runs_default = 1 if size["subjects"] >= 100_000 else 3
        n = int(os.environ.get("BENCH_RUNS", runs_default))
        runs = [run_once(size, seed) for seed in range(1, n + 1)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        results[label] = {"runs": n, **med, "records_per_second": med["rows"] / med["total"],
                          "ratio_to_floor": med["total"] / med["floor"]}
        r = results[label]
        print(f"{label}: median of {n} run(s): {r['total']:.1f} s for {r['rows']:,.0f} records "
              f"({r['lb_vs_rows']:,.0f} lab and vital-sign rows) = {r['records_per_second']:,.0f} records/s; "
              f"peak memory {r['peak_mib']:,.0f} MiB; {r['ratio_to_floor']:.1f}x the time polars needs just to "
              f"write the same tables (of which generating in memory {r['build']:.1f} s)",
              flush=True)
    out = Path("bench/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "synth.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
