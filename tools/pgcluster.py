"""A throwaway PostgreSQL cluster on 127.0.0.1, for the live tests and the sample-bundle script.

Why a helper of its own: the leaking service needs a real PostgreSQL (its leaks are about
real server connections, "idle in transaction" sessions and sockets), but a test must
never touch a database it did not create. So every cluster lives in a fresh temp
directory, listens only on 127.0.0.1 at a free port (its unix socket stays inside that
directory), trusts local connections, runs as a non-root user (initdb refuses root) and
is removed again by :meth:`PgCluster.stop`.

Use from Python::

    with PgCluster() as pg:
        pg.create_database("shop", schema=Path("tools/leakyservice/schema.sql"))
        dsn = pg.dsn("shop")    # lib/pq key=value form

or from a shell script::

    python3 tools/pgcluster.py start --dir /tmp/pg --db shop --schema tools/leakyservice/schema.sql
    python3 tools/pgcluster.py stop --dir /tmp/pg
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: Settings appended to postgresql.conf: loopback only, socket in the cluster dir, enough
#: connections for leak modes that open one per request, and no durability (throwaway).
_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockdir}'
max_connections = {max_connections}
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
"""


class PgClusterError(RuntimeError):
    """The cluster could not be created, started or stopped; the message says why."""


def find_bindir() -> Path | None:
    """PostgreSQL's server binaries: $PG_BINDIR, else the newest /usr/lib/postgresql/N/bin."""
    env = os.environ.get("PG_BINDIR")
    if env and (Path(env) / "initdb").exists():
        return Path(env)
    candidates = []
    for d in Path("/usr/lib/postgresql").glob("*/bin"):
        if (d / "initdb").exists() and d.parent.name.isdigit():
            candidates.append((int(d.parent.name), d))
    if candidates:
        return max(candidates)[1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    if find_bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the cluster as"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    """One cluster: ``start()`` it, use ``dsn()``/``psql()``, always ``stop()`` it."""

    base_dir: Path | None = None
    port: int = 0
    max_connections: int = 400
    bindir: Path | None = None
    _started: bool = False
    _owns_dir: bool = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PgCluster:
        reason = unavailable_reason()
        if reason:
            raise PgClusterError(reason)
        self.bindir = self.bindir or find_bindir()
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="pgcluster-"))
            self._owns_dir = True
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.base_dir)
        self._initdb()
        for _attempt in range(3):
            self.port = self.port or free_port()
            self._write_settings()
            if self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.logfile), check=False):
                self._started = True
                return self
            self.port = 0  # taken meanwhile: try another
        raise PgClusterError(f"postgres did not start; log:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server (fast, then immediate) and delete the cluster directory."""
        if self._started and not self._pg_ctl("stop", "-w", "-t", "30", "-m", "fast", check=False):
            self._pg_ctl("stop", "-w", "-t", "30", "-m", "immediate", check=False)
        self._started = False
        if self._owns_dir and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use ---------------------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "data"

    @property
    def logfile(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "postgres.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def dsn(self, dbname: str = "postgres") -> str:
        """lib/pq key=value DSN (trust auth: no password)."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} sslmode=disable"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL through psql over TCP; returns unaligned, tuples-only output."""
        assert self.bindir is not None
        cmd = [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
               "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", dbname]
        res = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=120,
                             check=False)
        if res.returncode != 0:
            raise PgClusterError(f"psql failed: {res.stderr.strip()}")
        return res.stdout

    def create_database(self, name: str, schema: Path | str | None = None) -> str:
        """Create database ``name`` (loading ``schema``, a path or SQL text); returns its DSN."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}"; CREATE DATABASE "{name}";')
        if schema is not None:
            sql = schema.read_text() if isinstance(schema, Path) else schema
            self.psql(sql, dbname=name)
        return self.dsn(name)

    def backends(self, dbname: str) -> dict[str, int]:
        """Server-side sessions of ``dbname`` by state (e.g. 'idle in transaction')."""
        out = self.psql(
            "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity "
            f"WHERE datname = '{dbname}' AND pid <> pg_backend_pid() GROUP BY 1;"
        )
        rows = (line.split("|") for line in out.splitlines() if "|" in line)
        return {state: int(n) for state, n in rows}

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- internals ---------------------------------------------------------------------------

    def _run_as(self) -> dict[str, object]:
        """subprocess arguments that drop root to the 'postgres' user (initdb refuses root)."""
        if os.geteuid() != 0:
            return {}
        pw = pwd.getpwnam("postgres")
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _server_cmd(self, tool: str, *args: str, check: bool = True, timeout: float = 120) -> bool:
        assert self.bindir is not None and self.base_dir is not None
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(self.base_dir)}
        res = subprocess.run([str(self.bindir / tool), *args], capture_output=True, text=True,
                             cwd=self.base_dir, env=env, timeout=timeout, check=False,
                             **self._run_as())  # type: ignore[arg-type]
        if res.returncode != 0 and check:
            raise PgClusterError(f"{tool} failed: {res.stderr.strip() or res.stdout.strip()}")
        return res.returncode == 0

    def _initdb(self) -> None:
        if (self.datadir / "PG_VERSION").exists():
            return
        self._server_cmd("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                         "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")

    def _write_settings(self) -> None:
        assert self.base_dir is not None
        conf = self.datadir / "postgresql.auto.conf"
        text = _SETTINGS.format(port=self.port, sockdir=self.base_dir,
                                max_connections=self.max_connections)
        conf.write_text(text)
        self._chown(conf)

    def _pg_ctl(self, *args: str, check: bool = True) -> bool:
        return self._server_cmd("pg_ctl", "-D", str(self.datadir), *args, check=check)


# -- command line (for shell scripts) ----------------------------------------------------------


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("start", help="create and start a cluster in DIR; print its DSN")
    st.add_argument("--dir", type=Path, required=True)
    st.add_argument("--db", default="shop")
    st.add_argument("--schema", type=Path)
    st.add_argument("--max-connections", type=int, default=400)
    sp = sub.add_parser("stop", help="stop the cluster in DIR and delete DIR")
    sp.add_argument("--dir", type=Path, required=True)
    args = ap.parse_args(argv)

    state = args.dir / "cluster.json"
    if args.cmd == "start":
        if args.dir.exists() and any(args.dir.iterdir()):
            print(f"{args.dir} is not empty; stop deletes DIR, so give a new one", file=sys.stderr)
            return 1
        pg = PgCluster(base_dir=args.dir, max_connections=args.max_connections).start()
        try:
            dsn = pg.create_database(args.db, args.schema)
        except PgClusterError:
            pg.stop()
            raise
        state.write_text(json.dumps({"port": pg.port, "dsn": dsn, "address": pg.address}))
        print(dsn)
        return 0
    if not state.exists():
        print(f"no cluster in {args.dir}", file=sys.stderr)
        return 1
    port = json.loads(state.read_text())["port"]
    pg = PgCluster(base_dir=args.dir, port=port, bindir=find_bindir(), _started=True,
                   _owns_dir=True)
    pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
