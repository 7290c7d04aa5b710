"""Benchmark of the dashboard once warm: switching pages and changing a filter on a 1,000-site study.

A synthetic study of 1,000 sites / 100,000 subjects in 20 countries with 3 monthly data cuts is generated
once into bench/results/data/dashboard/ (reused afterwards; ``BENCH_SITES`` sets another size, with 100
subjects per site). The dashboard runs through Streamlit's AppTest
from ``dashboard/app.py``, signed in as an admin (who sees every page), with a store of its own. Every
page of ``dashboard/pages/`` is opened once to warm the caches (the analysis of every cut is computed then;
its time is reported as ``cold_seconds``; the dashboard saves the analysis under its data directory,
bench/results/data/dashboard/app-1000-sites/, so later runs read it back instead); then, ``BENCH_RUNS`` times (default 7), the benchmark switches
to each page in turn and changes one filter on it, timing each ``AppTest.run()``: the server-side time of
one rerun of the script, without the browser's rendering. It reports the medians and whether each is under
the 0.5 s budget, in bench/results/dashboard.json.

A page over the budget is profiled once (cProfile of one warm switch, printed). A page that fails is
reported under ``failed`` and left out. Run with ``make bench`` or ``python -m bench.dashboard``.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

DATA = Path("bench/results/data/dashboard")
SITES = int(os.environ.get("BENCH_SITES", 1_000))  # e.g. BENCH_SITES=20 BENCH_RUNS=1 for a quick check
SIZE = dict(sites=SITES, subjects=100 * SITES, countries=min(20, max(1, SITES // 5)), cuts=3)
STUDY = f"{SITES}-sites"
BUDGET_SECONDS = 0.5
APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PAGES = sorted(p.name for p in (APP.parent / "pages").glob("*.py") if not p.name.startswith("_"))
FILTERS = {"heatmap.py": "country", "kri_explorer.py": "kri", "qtl.py": "qtl", "monitoring.py": "csm_test",
           "signals.py": "sig_severity", "site_profile.py": "profile_site", "overview.py": "cut",
           "report.py": "report_cut", "admin.py": "adm_audit_actions", "data_intake.py": None}
"""The filter changed on each page (None: none); a page not listed has its first selectbox changed. The Data
page has none: its selectboxes format their options in a way AppTest cannot set back."""
ADMIN, PASSWORD = "bench-admin", "a long benchmark passphrase"


def _study() -> Path:
    """The benchmark study (generated once)."""
    from synthetic import SynthConfig, generate_study, load_anomalies

    folder = DATA / STUDY
    if not (folder / "dm.parquet").exists():
        print(f"generating the 1,000-site study with {SIZE['cuts']} cuts into {folder} (once)", flush=True)
        generate_study(SynthConfig(**SIZE, seed=1, anomalies=load_anomalies("default")), folder, overwrite=True)
    return folder


def _store(folder: Path) -> str:
    """A store of the benchmark's own with an admin account; its URL."""
    from rbqm.store import open_store, users

    url = f"sqlite:///{folder / 'rbqm.db'}"
    store = open_store(url)
    with store.write() as session:  # and a second account and a role change, for the audit trail's filter
        users.add_user(session, ADMIN, ADMIN, role="admin", password=PASSWORD)
        users.add_user(session, ADMIN, "bench-monitor", role="central_monitor", password=PASSWORD)
        users.set_role(session, ADMIN, "bench-monitor", "quality_lead", reason="benchmark")
    store.close()
    return url


def _filter(at: AppTest, page: str) -> tuple[str, str] | None:
    """The kind and key of the widget to change on ``page`` (None when it has none): the one named in
    :data:`FILTERS`, else its first selectbox other than the study."""
    if page in FILTERS and FILTERS[page] is None:
        return None
    widgets = [w for kind in ("selectbox", "multiselect") for w in at.get(kind)
               if getattr(w, "key", None) and w.key != "study" and len(w.options) >= 2]
    chosen = next((w for w in widgets if w.key == FILTERS.get(page)), None)
    chosen = chosen or next((w for w in widgets if w.type == "selectbox"), None)
    return None if chosen is None else (chosen.type, chosen.key)


def _change(at: AppTest, kind: str, key: str, first: bool) -> None:
    """Set the filter to its second option (``first``) or back: a selectbox by index, a multiselect to one
    option or none (its options as shown, so only for a multiselect without ``format_func``)."""
    widget = getattr(at, kind)(key=key)
    if kind == "selectbox":
        widget.select_index(1 if first else 0)
    else:
        widget.set_value([widget.options[0]] if first else [])


def _timed(at: AppTest) -> float:
    start = time.perf_counter()
    at.run()
    return time.perf_counter() - start


def _profiled(at: AppTest) -> str:
    """The 25 most expensive calls (cumulative) of one ``at.run()``. AppTest runs the script in a thread of
    its own, so the profiler is started from that thread's first profiling event."""
    profile = cProfile.Profile()

    def start(*_: object) -> None:
        sys.setprofile(None)
        profile.enable()

    threading.setprofile(start)
    try:
        at.run()
    finally:
        threading.setprofile(None)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
    return out.getvalue()


def main() -> None:
    study = _study()
    runs = int(os.environ.get("BENCH_RUNS", 7))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RBQM_DATABASE_URL"] = _store(Path(tmp))
        # The dashboard's data directory holds only this study; it keeps the saved analysis
        # (rbqm.saved_analysis, in .analysis/) for the next run, so only the first run computes it.
        app_data = DATA / f"app-{STUDY}"
        app_data.mkdir(parents=True, exist_ok=True)
        if not (app_data / STUDY).exists():
            (app_data / STUDY).symlink_to(study.resolve())
        saved = (app_data / ".analysis").is_dir()  # saved before (still recomputed if the code or data changed)
        os.environ["RBQM_DATA_DIR"] = str(app_data)
        at = AppTest.from_file(str(APP), default_timeout=3600)
        at.session_state["user"], at.session_state["role"] = ADMIN, "admin"
        at.run()
        cold, switch, change, changed, failed = {}, {p: [] for p in PAGES}, {p: [] for p in PAGES}, {}, {}
        for page in PAGES:  # warm every cache once
            at.switch_page(f"pages/{page}")
            cold[page] = _timed(at)
            if at.exception:  # reported, and left out of the timing
                failed[page] = at.exception[0].message
                print(f"{page} FAILED: {failed[page]}", flush=True)
                continue
            changed[page] = _filter(at, page)
            print(f"warmed {page} in {cold[page]:.1f} s", flush=True)
        timed = [page for page in PAGES if page not in failed]
        for _ in range(runs):
            for page in timed:
                at.switch_page(f"pages/{page}")
                switch[page].append(_timed(at))
                if changed[page] is None:
                    continue
                for first in (True, False):  # change the filter and back
                    _change(at, *changed[page], first)
                    change[page].append(_timed(at))
                if at.exception:
                    raise SystemExit(f"{page} failed: {at.exception}")
        slow = [p for p in timed if statistics.median(switch[p]) >= BUDGET_SECONDS
                or (change[p] and statistics.median(change[p]) >= BUDGET_SECONDS)]
        for page in slow:  # where the time goes: one warm switch under cProfile
            at.switch_page(f"pages/{page}")
            print(f"--- profile of a warm switch to {page} ---\n{_profiled(at)}", flush=True)
    report = {"study": {**SIZE, "folder": str(study)}, "runs": runs, "budget_seconds": BUDGET_SECONDS,
              "saved_analyses_present": saved, "failed": failed, "pages": {}}
    for page in timed:
        med_switch = statistics.median(switch[page])
        med_change = statistics.median(change[page]) if change[page] else None
        report["pages"][page] = {
            "cold_seconds": cold[page], "switch_median_seconds": med_switch, "switch_under_budget": med_switch < 0.5,
            "filter": changed[page][1] if changed[page] else None, "filter_median_seconds": med_change,
            "filter_under_budget": None if med_change is None else med_change < BUDGET_SECONDS,
        }
        shown = "-" if med_change is None else f"{med_change:.3f} s ({'under' if med_change < 0.5 else 'OVER'})"
        print(f"{page:18} cold {cold[page]:7.2f} s   switch {med_switch:.3f} s "
              f"({'under' if med_switch < BUDGET_SECONDS else 'OVER'})   filter {changed[page][1] if changed[page] else '-'}:"
              f" {shown}", flush=True)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/dashboard.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
