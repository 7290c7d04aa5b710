"""Fixtures for the real-browser tests: Debian's Chromium and a running dashboard on the tiny study."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
APT_TIMEOUT_SECONDS = 600
SERVER_START_SECONDS = 60
BROWSER_USER = "monitor"
BROWSER_PASSWORD = "a long browser-test passphrase"
"""The account the browser tests sign in with (a central monitor, added to each served store)."""


def _load_study_builder() -> ModuleType:
    """``tests/dashboard/study_builder.py``, loaded by path so it works whatever package layout tests/ has."""
    path = REPO / "tests" / "dashboard" / "study_builder.py"
    spec = importlib.util.spec_from_file_location("browser_study_builder", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


study_builder = _load_study_builder()


def _skip(reason: str) -> NoReturn:
    """Skip with a reason that is also printed, so a skipped browser test is never silent."""
    print(f"browser tests skipped: {reason}", file=sys.stderr)
    pytest.skip(reason)


def _run_apt(*args: str) -> None:
    """Run one apt-get command as root, or skip the browser tests saying why it failed."""
    command = ["apt-get", "-o", f"DPkg::Lock::Timeout={APT_TIMEOUT_SECONDS}", *args]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _skip(f"`{' '.join(command)}` did not finish within {APT_TIMEOUT_SECONDS} s")
    except OSError as exc:
        _skip(f"`{' '.join(command)}` could not run: {exc}")
    else:
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            _skip(f"`{' '.join(command)}` failed with exit code {done.returncode}: {' | '.join(tail)}")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed with apt-get when missing and we are root; else the test is skipped."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        _skip(f"{CHROMIUM} is missing and installing it needs root (run `apt-get install chromium` as root)")
    if shutil.which("apt-get") is None:
        _skip(f"{CHROMIUM} is missing and apt-get is not available to install it")
    _run_apt("update")
    _run_apt("install", "-y", "--no-install-recommends", "chromium")
    if not CHROMIUM.exists():
        _skip(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Poll Streamlit's health endpoint until it answers ``ok``; fail with the server log if it never does."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with code {server.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200 and response.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    log_text = log.read_text(errors="replace")
    pytest.fail(f"streamlit was not healthy after {SERVER_START_SECONDS} s:\n{log_text}")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the tiny study as ``demo`` (see tests/dashboard/study_builder.py)."""
    data = tmp_path_factory.mktemp("browser") / "data"
    study_builder.build_study(data / "demo")
    return data


@pytest.fixture(scope="session")
def tiny_study_counts() -> dict[str, int | str]:
    """The hand-counted numbers of the tiny study (full study, not a cut)."""
    return dict(study_builder.EXPECTED[None])


@pytest.fixture(scope="session")
def dashboard_url(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of ``streamlit run dashboard/app.py`` serving the tiny study; the server stops afterwards."""
    yield from _serve(tiny_data_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def generated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding a small generated study (12 sites, 3 countries, 2 cuts) as ``demo``."""
    from synthetic import SynthConfig, generate_study

    data = tmp_path_factory.mktemp("browser_generated") / "data"
    generate_study(SynthConfig(sites=12, subjects=240, countries=3, seed=3, months=12, cuts=2), data / "demo")
    return data


@pytest.fixture(scope="session")
def generated_dashboard_url(generated_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the dashboard serving the generated study (for the Signals pages)."""
    yield from _serve(generated_data_dir, tmp_path_factory)


def _store_with_account(folder: Path) -> str:
    """An SQLite store in ``folder`` with an admin and the :data:`BROWSER_USER` account; its URL."""
    from rbqm.store import open_store, users

    url = f"sqlite:///{folder / 'rbqm.db'}"
    store = open_store(url)
    with store.write() as session:
        users.add_user(session, "admin", "admin", role="admin", password="an admin passphrase")
        users.add_user(session, "admin", BROWSER_USER, role="central_monitor", password=BROWSER_PASSWORD)
    store.close()
    return url


def _serve(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run ``streamlit run dashboard/app.py`` on ``data_dir`` (and a store of its own with
    :data:`BROWSER_USER`), yield its URL, stop it afterwards."""
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {
        **os.environ,
        "RBQM_DATA_DIR": str(data_dir),
        "RBQM_DATABASE_URL": _store_with_account(tmp_path_factory.mktemp("store")),
        # The working tree's rbqm, whether or not the venv has it installed.
        "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p),
    }
    command = [
        str(REPO / ".venv" / "bin" / "streamlit"), "run", "dashboard/app.py",
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
