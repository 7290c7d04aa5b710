"""A throwaway PostgreSQL server for the store tests (one per pytest worker).

``$RBQM_TEST_POSTGRES_URL`` names an existing database to use instead (.ci/run starts one).
Otherwise: find Debian's PostgreSQL binaries, install them with apt-get when missing and we
are root, then ``initdb`` a cluster in a temporary directory and start it on 127.0.0.1 on a
free port (as the ``postgres`` OS user when we are root: PostgreSQL refuses to run as root).
Each test gets its own schema in that database (see ``schema_url``).
"""

from __future__ import annotations

import fcntl
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

URL_ENV = "RBQM_TEST_POSTGRES_URL"
REQUIRE_ENV = "RBQM_REQUIRE_POSTGRES"  # "1": fail instead of skipping when PostgreSQL is unavailable
_APT_TIMEOUT_S = 600


class Unavailable(Exception):
    """PostgreSQL cannot be provided here; the message says why."""


def find_bindir() -> Path | None:
    """The newest PostgreSQL server binaries: Debian's /usr/lib/postgresql/N/bin, else on PATH."""
    def major(initdb: str) -> int:
        name = Path(initdb).parent.parent.name
        return int(name) if name.isdigit() else 0

    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major)
    if debian:
        return Path(debian[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def install() -> Path:
    """Install Debian's ``postgresql`` package (as root, one worker at a time) and return its bindir."""
    if os.geteuid() != 0:
        raise Unavailable("PostgreSQL is not installed and installing it needs root "
                          "(apt-get install postgresql, or set RBQM_TEST_POSTGRES_URL)")
    if shutil.which("apt-get") is None:
        raise Unavailable("PostgreSQL is not installed and there is no apt-get to install it")
    with open(Path(tempfile.gettempdir()) / "rbqm-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other pytest worker may be installing too
        if (bindir := find_bindir()) is not None:
            return bindir
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            for command in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
                done = subprocess.run(command, env=env, capture_output=True, text=True,
                                      timeout=_APT_TIMEOUT_S)
                if done.returncode != 0:
                    raise Unavailable(f"{' '.join(command)} failed: {done.stderr.strip()[-500:]}")
        except subprocess.TimeoutExpired as exc:
            raise Unavailable(f"installing PostgreSQL took over {_APT_TIMEOUT_S} s") from exc
    bindir = find_bindir()
    if bindir is None:
        raise Unavailable("apt-get installed postgresql but no initdb was found")
    return bindir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    """A PostgreSQL cluster in a temporary directory; ``url`` is its test database."""

    bindir: Path
    root: Path
    port: int = 0
    url: str = ""
    _run_as: list[str] = field(default_factory=list)

    def run(self, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(arg) for arg in args]
        if self._run_as and self._run_as[0] == "su":
            command = [*self._run_as, shlex.join(command)]
        else:
            command = [*self._run_as, *command]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"{command[0]} failed: {exc}") from exc

    def stop(self) -> None:
        self.run(self.bindir / "pg_ctl", "-D", self.root / "data", "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(bindir: Path) -> Cluster:
    """``initdb`` and start a cluster on 127.0.0.1 with a free port; create database ``rbqm_test``."""
    root = Path(tempfile.mkdtemp(prefix="rbqm-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    cluster = Cluster(bindir, root)
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as exc:
            shutil.rmtree(root)
            raise Unavailable("running as root and there is no 'postgres' OS user to run PostgreSQL "
                              "as") from exc
        os.chown(root, owner.pw_uid, owner.pw_gid)
        cluster._run_as = (["runuser", "-u", "postgres", "--"] if shutil.which("runuser")
                           else ["su", "postgres", "-s", "/bin/sh", "-c"])
    try:
        done = cluster.run(bindir / "initdb", "-D", root / "data", "-U", "postgres", "-A", "trust",
                           "-E", "UTF8", "--no-sync")
        if done.returncode != 0:
            raise Unavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        for _attempt in range(5):  # a port may be taken between choosing and binding it
            cluster.port = _free_port()
            options = (f"-k {root} -c listen_addresses=127.0.0.1 -p {cluster.port} -c fsync=off "
                       "-c full_page_writes=off -c max_connections=60")
            done = cluster.run(bindir / "pg_ctl", "-D", root / "data", "-l", root / "server.log", "-w",
                               "-t", "60", "-o", options, "start")
            if done.returncode == 0:
                break
        else:
            log_file = root / "server.log"
            log = log_file.read_text(errors="replace")[-500:] if log_file.exists() else ""
            raise Unavailable(f"pg_ctl start failed: {done.stderr.strip()[-300:]} {log}")
        done = cluster.run(bindir / "createdb", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
                           "rbqm_test")
        if done.returncode != 0:
            raise Unavailable(f"createdb failed: {done.stderr.strip()[-500:]}")
    except BaseException:
        cluster.stop()
        raise
    cluster.url = f"postgresql+psycopg://postgres@127.0.0.1:{cluster.port}/rbqm_test"
    return cluster


def schema_url(base_url: str) -> tuple[str, str]:
    """A new, empty schema in the database at ``base_url``: (its name, a URL that uses it)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from rbqm.store import resolve_url

    url = make_url(resolve_url(base_url))
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_libpq(url), autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{name}"')
    separator = "&" if "?" in str(base_url) else "?"
    return name, f"{resolve_url(base_url)}{separator}options={quote(f'-csearch_path={name}')}"


def drop_schema(base_url: str, name: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    from rbqm.store import resolve_url

    with psycopg.connect(_libpq(make_url(resolve_url(base_url))), autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _libpq(url) -> str:
    from psycopg.conninfo import make_conninfo

    parts = {"host": url.host, "port": url.port, "dbname": url.database, "user": url.username,
             "password": url.password, **url.query}
    return make_conninfo(**{key: value for key, value in parts.items() if value is not None})
