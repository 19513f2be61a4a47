"""Finds, builds, starts and stops the MongoDB wire-protocol server the project runs on.

Order of choice (documented in docs/database.md):

1. `MONGODB_URI` set: use it, start nothing;
2. `mongod` on PATH: start it on a data directory the project owns;
3. the embedded default, FerretDB v1.24.2 on a PostgreSQL cluster of its own (`initdb` under the
   data directory, a Unix socket in a private folder, no TCP listener, no system service);
   `EMBEDDED_BACKEND=sqlite` picks FerretDB's SQLite backend instead (slower: docs/performance.md);
4. otherwise stop with one message naming what to install.

`go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` compiles, but the binary panics at
start because module downloads lack the generated `build/version/version.txt`; so the build copies
the module from Go's module cache, writes that file, applies one patch
(`ferretdb-in-pushdown.patch`: an `$in` of plain values is pushed down to PostgreSQL as the OR
of the equalities FerretDB already pushes down, so a list of ids is read from an index instead
of every row of the organization; docs/database.md) and runs `go build` on FerretDB's own
`cmd/ferretdb`. The build reports itself as `FERRETDB_BUILD`; a `ferretdb` on PATH is used when it
is that build, or, without Go to build one, whatever it is.

Every server process is started in a session of its own (Ctrl-C reaches the app, which is then
stopped in order) and with a parent-death signal, so a killed bootstrap never leaves a database
running.

Usage:
    python -m scripts.dbserver run [--data-dir DIR] -- COMMAND...   # COMMAND gets MONGODB_URI
    python -m scripts.dbserver attach [--data-dir DIR] -- COMMAND... # the server `run` started
    python -m scripts.dbserver build          # make sure the binaries exist (installs, builds)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = ROOT / ".bin"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
FERRETDB_PATCH = Path(__file__).with_name("ferretdb-in-pushdown.patch")
FERRETDB_BUILD = (
    f"{FERRETDB_VERSION}-in-pushdown-{hashlib.sha1(FERRETDB_PATCH.read_bytes()).hexdigest()[:8]}"
)
"""The version the patched build reports (`--version`, `buildInfo.ferretdbVersion`): named
after the patch's content, so a changed patch is built again and an older build is not
taken for it."""
FERRETDB_BINARY = BIN_DIR / f"ferretdb-{FERRETDB_BUILD}"
GIN_TWINS_SQL = Path(__file__).with_name("gin_twins.sql")

BACKENDS = ("postgresql", "sqlite")
APP_POOL_SIZE = 16
"""PyMongo connections per client against the embedded server (the URI carries it).

FerretDB holds one PostgreSQL connection per update while it waits for a second, so more
concurrent updates than its pool can hang it; clients stay far below `FERRETDB_PG_POOL`."""
START_TIMEOUT_S = 60.0
"""How long a start waits for the server to answer."""
FERRETDB_PG_POOL = 120
PG_MAX_CONNECTIONS = 160
FERRETDB_GOGC = "400"
"""Go's garbage collector target for FerretDB (Go's default: 100), unless `GOGC` is set.

FerretDB allocates for every document it converts, and at the default target collecting took
a large share of its CPU time (docs/performance.md); a larger target trades memory for it."""
PG_USER = "ferretdb"
PG_DATABASE = "ferretdb"
PG_PORT = 5432
"""Only names the socket file (`.s.PGSQL.5432`): the cluster listens on no TCP port."""


class ServerUnavailable(RuntimeError):
    """No server can be found, built or started; the message says what to install."""


def free_port() -> int:
    """Returns a loopback port that was free a moment ago (27017 may be anyone's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log(message: str) -> None:
    print(f"[dbserver] {message}", file=sys.stderr, flush=True)


def embedded_backend() -> str:
    """Returns the embedded FerretDB's backend: `EMBEDDED_BACKEND`, PostgreSQL by default."""
    value = os.environ.get("EMBEDDED_BACKEND", "postgresql").strip().lower() or "postgresql"
    if value not in BACKENDS:
        raise ServerUnavailable(f"EMBEDDED_BACKEND must be one of {', '.join(BACKENDS)}")
    return value


# --- building and installing -------------------------------------------------------------


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
    if shutil.which("git") is None:
        raise ServerUnavailable("Building FerretDB needs git (to apply the project's patch)")
    _log(f"building FerretDB {FERRETDB_BUILD} with {go} (once; about a minute)")
    try:
        return _build_ferretdb(go)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ServerUnavailable(f"Building FerretDB {FERRETDB_BUILD} failed: {exc}") from exc


def _build_ferretdb(go: str) -> Path:
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
        (src / "build" / "version" / "version.txt").write_text(FERRETDB_BUILD + "\n")
        # The copy lies inside this repository's work tree: the ceiling keeps `git apply` from
        # finding the repository and applying the patch's paths relative to its root.
        subprocess.run(
            ["git", "apply", str(FERRETDB_PATCH)],
            cwd=src,
            check=True,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
                "GIT_CEILING_DIRECTORIES": tmp,
            },
        )
        out = Path(tmp) / "ferretdb"
        subprocess.run([go, "build", "-o", str(out), "./cmd/ferretdb"], cwd=src, check=True)
        out.replace(FERRETDB_BINARY)
    _log(f"built {FERRETDB_BINARY}")
    return FERRETDB_BINARY


def _working_ferretdb_on_path() -> tuple[str, bool] | None:
    """Returns a `ferretdb` on PATH that starts, and whether it is the patched build; a bare
    `go install` build panics and is skipped."""
    found = shutil.which("ferretdb")
    if found is None:
        return None
    probe = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        _log(f"ignoring {found}: it does not start (a `go install` build lacks version.txt)")
        return None
    return found, f"version: {FERRETDB_BUILD}" in probe.stdout.splitlines()


def ferretdb_binary() -> str:
    """Returns the FerretDB to run: the patched build (on PATH, built before, or built now);
    a `ferretdb` on PATH that is not it only when the build fails (no Go or git, offline),
    with a warning."""
    on_path = _working_ferretdb_on_path()
    if on_path and on_path[1]:
        return on_path[0]
    try:
        return str(build_ferretdb())
    except ServerUnavailable:
        if on_path is None:
            raise
    _log(
        f"using {on_path[0]}, which lacks the `$in` patch: a list of ids reads every row of the "
        "organization (docs/database.md); with Go and git the patched build is made"
    )
    return on_path[0]


def _postgres_bindir() -> Path | None:
    """Returns the bin folder of the newest PostgreSQL server installed, if any."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("postgres")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    return None


def ensure_postgres() -> Path:
    """Returns PostgreSQL's bin folder, installing Debian's package first when root can."""
    bindir = _postgres_bindir()
    if bindir is not None:
        return bindir
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServerUnavailable(
            "The embedded database needs PostgreSQL's server programs (initdb, postgres): "
            "`sudo apt-get install postgresql`, or set EMBEDDED_BACKEND=sqlite (slower), "
            "or MONGODB_URI to a running MongoDB."
        )
    _log("installing Debian's postgresql (no service is started; the project runs its own)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    policy = Path("/usr/sbin/policy-rc.d")
    own_policy = not policy.exists()
    if own_policy:  # keep the package from starting a system cluster
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    finally:
        if own_policy:
            policy.unlink(missing_ok=True)
    bindir = _postgres_bindir()
    if bindir is None:
        raise ServerUnavailable("apt-get installed postgresql but no initdb/postgres was found")
    return bindir


# --- processes -------------------------------------------------------------------------


def _die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """Returns a pre-exec hook that asks Linux to send `sig` when the starting process dies."""

    def hook() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(sig))  # PR_SET_PDEATHSIG, set after any change of user

    return hook


@dataclass
class Child:
    """One server process this module started and must stop."""

    name: str
    command: list[str]
    log_path: Path
    stop_signal: signal.Signals = signal.SIGTERM
    user: pwd.struct_passwd | None = None
    env: dict[str, str] | None = None
    """The process's environment (None: this process's)."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
                preexec_fn=_die_with_parent(self.stop_signal),
                user=self.user.pw_uid if self.user else None,
                group=self.user.pw_gid if self.user else None,
                extra_groups=[] if self.user else None,
            )

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ServerUnavailable(
                f"{self.name} exited with {self.process.returncode}; "
                f"see {self.log_path}:\n{self.log_path.read_text(errors='replace')[-2000:]}"
            )

    def stop(self) -> None:
        """Stops the process: its stop signal, then SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _service_user() -> pwd.struct_passwd | None:
    """Returns the user PostgreSQL runs as: `postgres` under root (it refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServerUnavailable(
            "PostgreSQL refuses to run as root and there is no `postgres` user; "
            "install Debian's postgresql package, which creates it"
        ) from exc


def _reachable_by(path: Path, user: pwd.struct_passwd | None) -> bool:
    """Tells whether `user` can search `path` and every folder above it."""
    if user is None:
        return True
    groups = {user.pw_gid, *os.getgrouplist(user.pw_name, user.pw_gid)}
    resolved = path.resolve()
    for parent in (resolved, *resolved.parents):
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in groups:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return False
    return True


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster owned by the project: `initdb` once, then `postgres` in the
    foreground as our child, listening only on a Unix socket in a private folder."""

    bindir: Path
    cluster_dir: Path
    log_path: Path
    durable: bool
    user: pwd.struct_passwd | None
    socket_dir: Path | None = None
    child: Child | None = None

    @property
    def url(self) -> str:
        assert self.socket_dir is not None
        return (
            f"postgres://{PG_USER}@/{PG_DATABASE}?host={self.socket_dir}&port={PG_PORT}"
            f"&pool_max_conns={FERRETDB_PG_POOL}"
        )

    def _tool(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bindir / name), *args],
            capture_output=True,
            text=True,
            check=check,
            cwd="/",
            user=self.user.pw_uid if self.user else None,
            group=self.user.pw_gid if self.user else None,
            extra_groups=[] if self.user else None,
        )

    def _sql(self, database: str, sql: str) -> str:
        assert self.socket_dir is not None
        done = self._tool(
            "psql",
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(PG_PORT),
            "-U",
            PG_USER,
            "-d",
            database,
            "-c",
            sql,
            check=False,
        )
        if done.returncode != 0:
            raise ServerUnavailable(f"PostgreSQL refused SQL: {done.stderr.strip()}")
        return done.stdout.strip()

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def init(self) -> None:
        """Creates the cluster on first use (trust auth: only its own socket reaches it)."""
        if (self.cluster_dir / "PG_VERSION").exists():
            return
        self.cluster_dir.mkdir(parents=True, exist_ok=True)
        self.cluster_dir.chmod(0o700)
        self._own(self.cluster_dir)
        args = ["-D", str(self.cluster_dir), "-U", PG_USER, "-A", "trust", "-E", "UTF8"]
        args += ["--locale=C", "--no-instructions"]
        if not self.durable:
            args.append("--no-sync")
        done = self._tool("initdb", *args, check=False)
        if done.returncode != 0:
            raise ServerUnavailable(f"initdb failed:\n{done.stdout}{done.stderr}")

    def start(self, timeout: float) -> None:
        self.init()
        # A short private path: a socket's path must fit in 107 bytes.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="campaigns-pg-"))
        self._own(self.socket_dir)
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(self.socket_dir),
            "port": str(PG_PORT),
            "max_connections": str(PG_MAX_CONNECTIONS),
            "synchronous_commit": "off",
            # The GIN twins are only chosen well with fresh statistics (without them PostgreSQL
            # may AND an organization's whole posting list into a lookup by _id): analyze
            # new data within seconds, not the default minute.
            "autovacuum_naptime": "5s",
            "autovacuum_analyze_scale_factor": "0.05",
            # Many small concurrent queries on few cores: a parallel plan (which PostgreSQL
            # picks for a list of a few hundred ids once the table is large) starts workers
            # that compete with the other queries for the same cores.
            "max_parallel_workers_per_gather": "0",
            # Unique inserts are how the service decides races, so duplicate keys are routine;
            # logged, each would put its key (a phone number, say) in the server log. Errors
            # still reach the client through FerretDB.
            "log_min_messages": "fatal",
            "log_min_error_statement": "panic",
        }
        if not self.durable:  # a test database: losing it in a power cut costs nothing
            settings |= {"fsync": "off", "full_page_writes": "off"}
        command = [str(self.bindir / "postgres"), "-D", str(self.cluster_dir)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for clients to leave.
        self.child = Child("postgres", command, self.log_path, signal.SIGINT, self.user)
        self.child.start()
        deadline = time.monotonic() + timeout
        while True:
            self.child.check_alive()
            ready = self._tool(
                "pg_isready", "-q", "-h", str(self.socket_dir), "-p", str(PG_PORT), check=False
            )
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"PostgreSQL did not start; see {self.log_path}")
            time.sleep(0.1)
        exists = self._sql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'")
        if not exists:
            self._sql("postgres", f"CREATE DATABASE {PG_DATABASE}")
        self._sql(PG_DATABASE, GIN_TWINS_SQL.read_text())

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None


@dataclass
class Server:
    """A database server this process started and must stop: one or two processes."""

    kind: str
    data_dir: Path
    port: int
    log_path: Path
    main: Child
    postgres: EmbeddedPostgres | None = None
    ephemeral: bool = False
    scratch: list[Path] = field(default_factory=list)

    @property
    def uri(self) -> str:
        if self.kind == "mongod":
            return f"mongodb://127.0.0.1:{self.port}/"
        return f"mongodb://127.0.0.1:{self.port}/?maxPoolSize={APP_POOL_SIZE}"

    @property
    def command(self) -> list[str]:
        return self.main.command

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Starts the server (PostgreSQL first, then FerretDB) and returns once it answers."""
        try:
            if self.postgres is not None:
                self.postgres.start(timeout)
                self.main.command = _ferretdb_postgresql_command(
                    self.main.command[0], self.data_dir, self.port, self.postgres.url
                )
            self.main.start()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self.main.check_alive()
                if ping(self.uri, timeout_ms=500):
                    return
                time.sleep(0.1)
            raise ServerUnavailable(f"database server did not answer ping within {timeout}s")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stops FerretDB (or mongod), then PostgreSQL."""
        self.main.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def close(self) -> None:
        """Stops the server and removes what a throwaway server kept outside its data dir."""
        self.stop()
        for path in self.scratch:
            shutil.rmtree(path, ignore_errors=True)


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


def _ferretdb_common(data_dir: Path, port: int) -> list[str]:
    return [
        f"--state-dir={data_dir}",
        f"--listen-addr=127.0.0.1:{port}",
        "--debug-addr=-",
        "--telemetry=disable",
        "--log-level=WARN",
    ]


def _ferretdb_postgresql_command(binary: str, data_dir: Path, port: int, url: str) -> list[str]:
    return [
        binary,
        "--handler=postgresql",
        f"--postgresql-url={url}",
        *_ferretdb_common(data_dir, port),
    ]


def _ferretdb_env() -> dict[str, str]:
    return {"GOGC": FERRETDB_GOGC, **os.environ}


def new_server(data_dir: Path, port: int | None = None, *, ephemeral: bool = False) -> Server:
    """Prepares (does not start) the best available server on `data_dir`.

    `ephemeral` marks a throwaway database (tests): PostgreSQL skips fsync, and `close()`
    removes any cluster that had to live outside `data_dir`.
    """
    port = port or free_port()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    if mongod := shutil.which("mongod"):
        command = [mongod, "--bind_ip", "127.0.0.1", "--port", str(port)]
        command += ["--dbpath", str(data_dir), "--quiet"]
        main = Child("mongod", command, log_path)
        return Server("mongod", data_dir, port, log_path, main, ephemeral=ephemeral)
    ferretdb = ferretdb_binary()
    if embedded_backend() == "sqlite":
        _log(
            "EMBEDDED_BACKEND=sqlite: FerretDB's SQLite backend filters every query but a bare "
            "_id in Go after reading the whole collection; expect seconds at 100k documents"
        )
        command = [ferretdb, "--handler=sqlite", f"--sqlite-url=file:{data_dir}/"]
        command += _ferretdb_common(data_dir, port)
        main = Child("ferretdb", command, log_path, env=_ferretdb_env())
        return Server("ferretdb-sqlite", data_dir, port, log_path, main, ephemeral=ephemeral)

    user = _service_user()
    cluster = data_dir / "pg"
    scratch: list[Path] = []
    if not _reachable_by(data_dir, user):
        # PostgreSQL runs as `postgres`, which cannot reach a folder under, say, /root.
        digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:12]
        cluster = Path(tempfile.gettempdir()) / f"campaigns-pg-{digest}"
        _log(f"the postgres user cannot reach {data_dir}; keeping the cluster in {cluster}")
        if ephemeral:
            scratch.append(cluster)
    postgres = EmbeddedPostgres(
        bindir=ensure_postgres(),
        cluster_dir=cluster,
        log_path=data_dir / "postgres.log",
        durable=not ephemeral,
        user=user,
    )
    main = Child("ferretdb", [ferretdb], log_path, env=_ferretdb_env())
    return Server(
        "ferretdb-postgresql",
        data_dir,
        port,
        log_path,
        main,
        postgres=postgres,
        ephemeral=ephemeral,
        scratch=scratch,
    )


@contextlib.contextmanager
def running_server(data_dir: Path, *, ephemeral: bool = False) -> Iterator[Server]:
    """Starts a server for the duration of the block and always stops it."""
    server = new_server(data_dir, ephemeral=ephemeral)
    server.start()
    try:
        yield server
    finally:
        server.close()


def _run(args: argparse.Namespace) -> int:
    command = [c for c in args.command if c != "--"]
    if not command:
        raise SystemExit("nothing to run: pass a command after --")
    if os.environ.get("MONGODB_URI"):
        _log("MONGODB_URI is set: using it, starting no server")
        return subprocess.call(command)
    # Handle Ctrl-C and SIGTERM from here on: forwarded to the command once it runs, and
    # never cutting short the start or stop of the database.
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    with running_server(Path(args.data_dir)) as server:
        _log(f"{server.kind} answering at {server.uri} (data: {server.data_dir})")
        if stopping:
            return 130
        env = {**os.environ, "MONGODB_URI": server.uri}
        published = Path(args.data_dir) / URI_FILE
        published.write_text(server.uri)
        try:
            child = subprocess.Popen(command, env=env)
            return child.wait()
        finally:
            published.unlink(missing_ok=True)


URI_FILE = "server.uri"
"""Where `run` publishes its server's address while it runs, for `attach`."""


def _attach(args: argparse.Namespace) -> int:
    """Runs COMMAND against the server a `run` on the same data directory started (a worker
    beside `make run`), or against `MONGODB_URI` when it is set."""
    command = [c for c in args.command if c != "--"]
    if not command:
        raise SystemExit("nothing to run: pass a command after --")
    if os.environ.get("MONGODB_URI"):
        return subprocess.call(command)
    published = Path(args.data_dir) / URI_FILE
    uri = published.read_text().strip() if published.exists() else ""
    if not uri or not ping(uri, timeout_ms=2000):
        _log(f"no database server is running for {args.data_dir}: start `make run` first")
        return 2
    _log(f"attached to {uri}")
    return subprocess.call(command, env={**os.environ, "MONGODB_URI": uri})


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
    attach = sub.add_parser("attach", help="run COMMAND against the server `run` started")
    attach.add_argument("--data-dir", default=str(ROOT / ".data" / "dev"))
    attach.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("build", help="make sure the server's programs exist (installs, builds)")
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            if not shutil.which("mongod"):
                ferretdb_binary()
                if embedded_backend() == "postgresql":
                    ensure_postgres()
            return 0
        if args.action == "attach":
            return _attach(args)
        return _run(args)
    except ServerUnavailable as exc:
        _log(str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
