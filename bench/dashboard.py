"""Benchmark of the dashboard once warm: switching pages and changing a filter on a 1,000-site study.

A synthetic study of 1,000 sites / 100,000 subjects in 20 countries with 3 monthly data cuts is generated
once into bench/results/data/dashboard/ (reused afterwards). The dashboard runs through Streamlit's AppTest
from ``dashboard/app.py``, signed in as an admin (who sees every page), with a store of its own. Every
page of ``dashboard/pages/`` is opened once to warm the caches (the analysis of every cut is computed then;
its time is reported as ``cold_seconds``); then, ``BENCH_RUNS`` times (default 7), the benchmark switches
to each page in turn and changes one filter on it, timing each ``AppTest.run()``: the server-side time of
one rerun of the script, without the browser's rendering. It reports the medians and whether each is under
the 0.5 s budget, in bench/results/dashboard.json.

Run with ``make bench`` or ``python -m bench.dashboard``.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

DATA = Path("bench/results/data/dashboard")
STUDY = "1000-sites"
SIZE = dict(sites=1_000, subjects=100_000, countries=20, cuts=3)
BUDGET_SECONDS = 0.5
APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PAGES = sorted(p.name for p in (APP.parent / "pages").glob("*.py") if not p.name.startswith("_"))
FILTERS = {"heatmap.py": "country", "kri_explorer.py": "kri", "qtl.py": "qtl", "monitoring.py": "csm_test",
           "signals.py": "sig_severity", "site_profile.py": "profile_site", "overview.py": "cut",
           "report.py": "report_cut", "admin.py": "adm_audit_actions"}
"""The filter changed on each page; a page not listed has its first selectbox, multiselect or radio changed."""
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
    with store.write() as session:
        users.add_user(session, ADMIN, ADMIN, role="admin", password=PASSWORD)
    store.close()
    return url


def _filter(at: AppTest, page: str):
    """The widget to change on ``page`` and its two alternating values (None when it has no filter)."""
    widgets = [w for kind in ("selectbox", "multiselect", "radio") for w in at.get(kind)
               if getattr(w, "key", None) and w.key != "study" and len(getattr(w, "options", [])) >= 2]
    wanted = FILTERS.get(page)
    chosen = next((w for w in widgets if w.key == wanted), widgets[0] if widgets else None)
    if chosen is None:
        return None
    if chosen.type == "multiselect":
        return chosen.key, "multiselect", [[chosen.options[0]], []]
    return chosen.key, chosen.type, [chosen.options[1], chosen.options[0]]


def _timed(at: AppTest) -> float:
    start = time.perf_counter()
    at.run()
    return time.perf_counter() - start


def main() -> None:
    study = _study()
    runs = int(os.environ.get("BENCH_RUNS", 7))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RBQM_DATABASE_URL"] = _store(Path(tmp))
        os.environ["RBQM_DATA_DIR"] = str(DATA)
        at = AppTest.from_file(str(APP), default_timeout=3600)
        at.session_state["user"], at.session_state["role"] = ADMIN, "admin"
        at.run()
        cold, switch, change, changed = {}, {p: [] for p in PAGES}, {p: [] for p in PAGES}, {}
        for page in PAGES:  # warm every cache once
            at.switch_page(f"pages/{page}")
            cold[page] = _timed(at)
            if at.exception:
                raise SystemExit(f"{page} failed: {at.exception}")
            changed[page] = _filter(at, page)
            print(f"warmed {page} in {cold[page]:.1f} s", flush=True)
        for _ in range(runs):
            for page in PAGES:
                at.switch_page(f"pages/{page}")
                switch[page].append(_timed(at))
                if changed[page] is None:
                    continue
                key, kind, values = changed[page]
                for value in values:  # change the filter and back
                    getattr(at, kind)(key=key).set_value(value)
                    change[page].append(_timed(at))
                if at.exception:
                    raise SystemExit(f"{page} failed: {at.exception}")
    report = {"study": {**SIZE, "folder": str(study)}, "runs": runs, "budget_seconds": BUDGET_SECONDS, "pages": {}}
    for page in PAGES:
        med_switch = statistics.median(switch[page])
        med_change = statistics.median(change[page]) if change[page] else None
        report["pages"][page] = {
            "cold_seconds": cold[page], "switch_median_seconds": med_switch, "switch_under_budget": med_switch < 0.5,
            "filter": changed[page][0] if changed[page] else None, "filter_median_seconds": med_change,
            "filter_under_budget": None if med_change is None else med_change < BUDGET_SECONDS,
        }
        shown = "-" if med_change is None else f"{med_change:.3f} s ({'under' if med_change < 0.5 else 'OVER'})"
        print(f"{page:18} cold {cold[page]:7.2f} s   switch {med_switch:.3f} s "
              f"({'under' if med_switch < BUDGET_SECONDS else 'OVER'})   filter {changed[page][0] if changed[page] else '-'}:"
              f" {shown}", flush=True)
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/dashboard.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
