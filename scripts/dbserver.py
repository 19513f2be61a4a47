"""Finds, builds, starts and stops the MongoDB wire-protocol server the project runs on.

Order of choice (documented in the README):

1. `MONGODB_URI` set: use it, start nothing;
2. `mongod` on PATH: start it on a data directory the project owns;
3. FerretDB v1.24.2 (SQLite backend): on PATH, or built once into `.bin/` from the Go module
   proxy and reused;
4. otherwise stop with one message naming what to install.

`go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` compiles, but the binary panics at
start because module downloads lack the generated `build/version/version.txt`; so the build copies
the module from Go's module cache, writes that file, and runs `go build` on FerretDB's own
`cmd/ferretdb`. The binary is FerretDB's, unchanged.

Usage:
    python -m scripts.dbserver run [--data-dir DIR] -- COMMAND...   # COMMAND gets MONGODB_URI
    python -m scripts.dbserver build                                # make sure a binary exists
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = ROOT / ".bin"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
FERRETDB_BINARY = BIN_DIR / f"ferretdb-{FERRETDB_VERSION}"


class ServerUnavailable(RuntimeError):
    """No server can be found, built or started; the message says what to install."""


def free_port() -> int:
    """Returns a loopback port that was free a moment ago (27017 may be anyone's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log(message: str) -> None:
    print(f"[dbserver] {message}", file=sys.stderr, flush=True)


def build_ferretdb() -> Path:
    """Builds FerretDB once into `.bin/` and returns its path; later calls reuse the binary."""
    if FERRETDB_BINARY.exists():
        return FERRETDB_BINARY
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise ServerUnavailable(
            "No database server found. Install one of: MongoDB 7/8 (`mongod` on PATH), "
            "FerretDB v1.24.2 (`ferretdb` on PATH), or Go >= 1.22 so the project can build "
            "FerretDB itself; or set MONGODB_URI to a running MongoDB."
        )
    _log(f"building FerretDB {FERRETDB_VERSION} with {go} (once; about a minute)")
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
        check=True,
        capture_output=True,
        text=True,
    )
    module_dir = Path(json.loads(download.stdout)["Dir"])
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BIN_DIR) as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(module_dir, src)
        for path in src.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
        out = Path(tmp) / "ferretdb"
        subprocess.run([go, "build", "-o", str(out), "./cmd/ferretdb"], cwd=src, check=True)
        out.replace(FERRETDB_BINARY)
    _log(f"built {FERRETDB_BINARY}")
    return FERRETDB_BINARY


def _working_ferretdb_on_path() -> str | None:
    """Returns a `ferretdb` on PATH that starts; a bare `go install` build panics and is skipped."""
    found = shutil.which("ferretdb")
    if found is None:
        return None
    probe = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        _log(f"ignoring {found}: it does not start (a `go install` build lacks version.txt)")
        return None
    return found


def server_command(data_dir: Path, port: int) -> list[str]:
    """Returns the command line of the best available server, building FerretDB if needed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    mongod = shutil.which("mongod")
    if mongod:
        return [
            mongod,
            "--bind_ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--dbpath",
            str(data_dir),
            "--quiet",
        ]
    ferretdb = _working_ferretdb_on_path() or str(build_ferretdb())
    return [
        ferretdb,
        "--handler=sqlite",
        f"--sqlite-url=file:{data_dir}/",
        f"--state-dir={data_dir}",
        f"--listen-addr=127.0.0.1:{port}",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=WARN",
    ]


@dataclass
class Server:
    """A database server this process started and must stop."""

    command: list[str]
    data_dir: Path
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60.0) -> None:
        """Starts the server and returns once it answers `ping`."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerUnavailable(
                    f"database server exited with {self.process.returncode}; "
                    f"see {self.log_path}:\n{self.log_path.read_text()[-2000:]}"
                )
            if ping(self.uri, timeout_ms=500):
                return
            time.sleep(0.1)
        self.stop()
        raise ServerUnavailable(f"database server did not answer ping within {timeout}s")

    def stop(self) -> None:
        """Stops the server: SIGTERM, then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def ping(uri: str, timeout_ms: int = 1000) -> bool:
    """Tells whether a server at `uri` answers `ping`."""
    client: MongoClient[dict[str, object]] = MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def new_server(data_dir: Path, port: int | None = None) -> Server:
    """Prepares (does not start) a server on `data_dir`, on a free port unless one is given."""
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    return Server(
        command=server_command(data_dir, port),
        data_dir=data_dir,
        port=port,
        log_path=data_dir / "server.log",
    )


@contextlib.contextmanager
def running_server(data_dir: Path) -> Iterator[Server]:
    """Starts a server for the duration of the block and always stops it."""
    server = new_server(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _run(args: argparse.Namespace) -> int:
    command = [c for c in args.command if c != "--"]
    if not command:
        raise SystemExit("nothing to run: pass a command after --")
    if os.environ.get("MONGODB_URI"):
        _log("MONGODB_URI is set: using it, starting no server")
        return subprocess.call(command)
    with running_server(Path(args.data_dir).resolve()) as server:
        _log(f"{Path(server.command[0]).name} answering at {server.uri} (data: {server.data_dir})")
        env = {**os.environ, "MONGODB_URI": server.uri}
        child = subprocess.Popen(command, env=env)

        def forward(signum: int, _frame: object) -> None:
            child.send_signal(signum)

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        return child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.dbserver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="start the embedded server, run COMMAND, stop the server")
    run.add_argument("--data-dir", default=str(ROOT / ".data" / "dev"))
    run.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("build", help="make sure a server binary exists (builds FerretDB if needed)")
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            if not (shutil.which("mongod") or _working_ferretdb_on_path()):
                build_ferretdb()
            return 0
        return _run(args)
    except ServerUnavailable as exc:
        _log(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
