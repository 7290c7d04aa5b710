"""Benchmark of ``rbqm ingest``: validating and snapshotting the 1,000-site / 100,000-subject study.

Uses the study bench/kri.py generates (bench/results/data/1000-sites, made once). Each run is a fresh
subprocess; reports rows per second and peak memory (median of ``BENCH_RUNS`` runs, default 1).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.kri import SIZES, _study

_CHILD = r"""
def peak_mib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
import json, sys, time
from rbqm.ingest import ingest_study
t0 = time.perf_counter()
snapshot = ingest_study(sys.argv[1], "BENCH", root=sys.argv[2])
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "rows": sum(snapshot.rows.values()), "peak_mib": peak_mib()}))
"""


def main() -> None:
    label = "1,000 sites / 100k subjects"
    folder = _study(label, SIZES[label])
    runs = []
    for _ in range(int(os.environ.get("BENCH_RUNS", 1))):
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), tmp], check=True,
                                  capture_output=True, text=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    med = statistics.median(r["seconds"] for r in runs)
    rows = runs[0]["rows"]
    peak = max(r["peak_mib"] for r in runs)
    print(f"{label}: ingest (validate, then snapshot) median of {len(runs)}: {med:.1f} s for {rows:,} rows = "
          f"{rows / med:,.0f} rows/s; peak memory {peak:,.0f} MiB", flush=True)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/ingest.json").write_text(json.dumps({label: {"median_seconds": med, "rows": rows,
                                                                     "rows_per_second": rows / med,
                                                                     "peak_mib": peak}}, indent=2))


if __name__ == "__main__":
    main()
