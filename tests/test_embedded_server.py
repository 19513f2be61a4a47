"""The embedded database bootstrap: it starts what it needs and leaves nothing running.

These start `python -m scripts.dbserver run` as a user's `make run` would, then end it the ways a
user does: the command finishes, Ctrl-C, or the bootstrap itself is killed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from scripts import dbserver

ROOT = Path(__file__).resolve().parent.parent
PRINT_URI_AND_WAIT = (
    "import os, sys, time; print(os.environ['MONGODB_URI'], flush=True); time.sleep(120)"
)


def processes_mentioning(text: str) -> list[int]:
    """Returns the pids whose command line mentions `text` (the test's own data folder)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and "scripts.dbserver" not in cmdline:
            pids.append(int(entry.name))
    return pids


def wait_until_gone(text: str, seconds: float = 30.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := processes_mentioning(text)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@contextmanager
def bootstrap(**env: str) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """Runs the bootstrap on a fresh data folder; yields it, the URI it handed out, the folder."""
    with tempfile.TemporaryDirectory(prefix="campaigns-boot-") as tmp:
        # PostgreSQL runs as its own user, which must reach its cluster in here.
        os.chmod(tmp, 0o755)
        command = [sys.executable, "-m", "scripts.dbserver", "run", "--data-dir", tmp, "--"]
        command += [sys.executable, "-c", PRINT_URI_AND_WAIT]
        child_env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
        proc = subprocess.Popen(
            command, cwd=ROOT, env={**child_env, **env}, stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None
            uri = proc.stdout.readline().strip()
            assert uri.startswith("mongodb://"), uri
            yield proc, uri, tmp
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            wait_until_gone(tmp)


def test_the_default_embedded_server_is_ferretdb_on_postgresql() -> None:
    if os.environ.get("MONGODB_URI") or shutil.which("mongod"):
        pytest.skip(
            "checks the embedded default (FerretDB on PostgreSQL), which is not the server here: "
            "MONGODB_URI is set or a mongod is on PATH"
        )
    with bootstrap() as (_, uri, tmp):
        client: MongoClient[dict[str, Any]] = MongoClient(uri)
        try:
            info = client.admin.command("buildInfo")
            assert info["ferretdbVersion"] == dbserver.FERRETDB_BUILD  # the patched build
            client.t.c.insert_one({"a": 1})
            explained = client.t.c.find({"a": 1}).explain()
            assert "Node Type" in str(explained["queryPlanner"])  # PostgreSQL's EXPLAIN
            assert client.options.pool_options.max_pool_size == dbserver.APP_POOL_SIZE
        finally:
            client.close()
        names = " ".join(
            Path(f"/proc/{pid}/comm").read_text().strip() for pid in processes_mentioning(tmp)
        )
        assert "postgres" in names and "ferretdb" in names, names


def attach(data_dir: str) -> subprocess.CompletedProcess[str]:
    """What `make worker` runs: a command against the server `run` started on `data_dir`."""
    command = [sys.executable, "-m", "scripts.dbserver", "attach", "--data-dir", data_dir, "--"]
    command += [sys.executable, "-c", "import os; print(os.environ['MONGODB_URI'])"]
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_ctrl_c_stops_the_command_then_both_servers() -> None:
    with bootstrap() as (proc, uri, tmp):
        assert processes_mentioning(tmp)
        # A worker started beside it finds the same server.
        attached = attach(tmp)
        assert (attached.returncode, attached.stdout.strip()) == (0, uri), attached.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) != 0
        assert wait_until_gone(tmp) == []
        # And once it stopped, a worker is told to start it instead of hanging.
        attached = attach(tmp)
        assert attached.returncode == 2 and "start `make run` first" in attached.stderr


def test_killing_the_bootstrap_takes_the_servers_with_it() -> None:
    with bootstrap() as (proc, _, tmp):
        assert processes_mentioning(tmp)
        proc.kill()  # SIGKILL: no cleanup code runs; the parent-death signal must do it
        proc.wait(timeout=10)
        assert wait_until_gone(tmp) == []


def test_the_sqlite_backend_is_still_available_by_setting() -> None:
    with bootstrap(EMBEDDED_BACKEND="sqlite") as (_, uri, tmp):
        client: MongoClient[dict[str, Any]] = MongoClient(uri)
        try:
            client.t.c.insert_one({"_id": 1, "v": "x"})
            assert client.t.c.find_one({"_id": 1}) == {"_id": 1, "v": "x"}
            plan = client.t.c.find({"v": "x"}).explain()["queryPlanner"]
            assert "SCAN" in str(plan["Plan"])  # SQLite's plan: a full scan, nothing pushed down
        finally:
            client.close()
        assert not list(Path(tmp).glob("pg/PG_VERSION"))
