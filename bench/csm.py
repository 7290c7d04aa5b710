"""Benchmark of central statistical monitoring on the 1,000-site / 100,000-subject study: the whole
battery (``rbqm.csm.run_csm``, every test), and the data inconsistency score with its site-label
permutations (``rbqm.csm.data_inconsistency``, ``--permutations auto``: 2 reruns of the battery at
1,000 sites).

The study is the one bench/kri.py generates (bench/results/data/1000-sites/, once; ``BENCH_SITES=100``
uses the 100-site study instead). Each run is a fresh subprocess, so its peak memory is its own; the
analysis tables are derived before the clock starts. ``BENCH_RUNS`` sets the runs of the battery
(default 3) and of the score (default 1: it is the battery 3 times over). Results go to
bench/results/csm.json. Run with ``make bench`` or ``python -m bench.csm``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.kri import SIZES, _study

_CHILD = r"""
def peak_mib():  # VmHWM: this process's own peak
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
import json, resource, sys, time
from pathlib import Path
from rbqm.csm import auto_permutations, data_inconsistency, run_csm
from rbqm.derive import as_of_date, derive_tables
from rbqm.io import scan_study
folder, what = Path(sys.argv[1]), sys.argv[2]
tables = scan_study(folder)
cut = as_of_date(tables)
analysis = derive_tables(tables, as_of=cut)
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
t0, c0 = time.perf_counter(), cpu()
findings = run_csm(analysis, study_id="BENCH", cut_date=cut)
t1, c1 = time.perf_counter(), cpu()
out = {"battery_seconds": t1 - t0, "battery_cpu_seconds": c1 - c0, "findings": findings.height,
       "tests": findings["test"].n_unique(), "sites": findings["site_id"].n_unique()}
if what == "dis":
    permutations = auto_permutations(out["sites"])
    data_inconsistency(analysis, findings, permutations=permutations, study_id="BENCH", cut_date=cut)
    out.update(permutations=permutations, dis_seconds=time.perf_counter() - t1, dis_cpu_seconds=cpu() - c1)
out["peak_mib"] = peak_mib()
print(json.dumps(out))
"""


def _run(folder: Path, what: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, str(folder), what], check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    sites = int(os.environ.get("BENCH_SITES", "1000"))
    label, size = next((label, size) for label, size in SIZES.items() if size["sites"] == sites)
    folder = _study(label, size)
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    battery = [_run(folder, "battery") for _ in range(runs)]
    dis = [_run(folder, "dis") for _ in range(max(1, runs // 3))]
    med = statistics.median(r["battery_seconds"] for r in battery)
    med_dis = statistics.median(r["dis_seconds"] for r in dis)
    report = {
        "study": label, "folder": str(folder), "cores": os.cpu_count(), "load_average_at_end": os.getloadavg(),
        "battery": {"runs": runs, "median_seconds": med,
                    "median_cpu_seconds": statistics.median(r["battery_cpu_seconds"] for r in battery),
                    "peak_mib": max(r["peak_mib"] for r in battery), "findings": battery[0]["findings"],
                    "tests": battery[0]["tests"], "sites": battery[0]["sites"]},
        "data_inconsistency": {"runs": len(dis), "permutations": dis[0]["permutations"],
                               "median_seconds": med_dis,
                               "median_cpu_seconds": statistics.median(r["dis_cpu_seconds"] for r in dis),
                               "peak_mib": max(r["peak_mib"] for r in dis)},
    }
    b, d = report["battery"], report["data_inconsistency"]
    print(f"{label}: the CSM battery ({b['tests']} tests, {b['findings']:,} findings over {b['sites']:,} sites), "
          f"median of {runs}: {med:.0f} s wall, {b['median_cpu_seconds']:.0f} s CPU, peak {b['peak_mib']:,.0f} MiB; "
          f"data inconsistency score with {d['permutations']} permutations: {med_dis:.0f} s more "
          f"({med_dis / med:.1f}x the battery), peak {d['peak_mib']:,.0f} MiB", flush=True)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/csm.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
