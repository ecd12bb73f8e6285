"""Capture a bundle of catalog-api (database/sql + go-sql-driver/mysql) under load.

    python3 tools/mysqlservice/capture.py OUT.tar.gz [--mode rows|healthy] [--maxopen 6]
        [--rate 10] [--rounds 3] [--interval 4] [--warmup 3] [--memprofilerate 4096]

Builds the service (build.sh, Go 1.19 + Debian's driver), starts a throwaway MariaDB on
127.0.0.1 (mariadb-install-db into a temporary folder, no grants, no persistence beyond the
run), starts the service, drives GET /items and takes the rounds with forensics.collect
while the load runs. Every process it starts is stopped before it exits.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import servicekit  # noqa: E402
from servicekit import free_port, start, stop  # noqa: E402

BINARY = "catalog-api-go1.19"


def missing() -> str | None:
    """Why the service or its database cannot be run here, or None."""
    if not Path("/usr/lib/go-1.19/bin/go").exists():
        return "Go 1.19 toolchain not found (apt-get install golang-1.19)"
    if not Path("/usr/share/gocode/src/github.com/go-sql-driver/mysql").is_dir():
        return "go-sql-driver/mysql sources not found " \
               "(apt-get install golang-github-go-sql-driver-mysql-dev)"
    for tool in ("mariadb-install-db", "mariadbd"):
        if not shutil.which(tool):
            return f"{tool} not found (apt-get install mariadb-server)"
    return None


def build(out: Path) -> Path:
    return servicekit.build(HERE / "build.sh", out, BINARY)


def _start_mariadb(work: Path) -> tuple[subprocess.Popen[str], str]:
    data = work / "data"
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   capture_output=True, text=True, timeout=120, check=True)
    port = free_port()
    proc, _ = start(["mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
                     f"--port={port}", "--bind-address=127.0.0.1",
                     f"--socket={work / 'mysqld.sock'}", f"--pid-file={work / 'mysqld.pid'}",
                     "--skip-grant-tables", "--skip-name-resolve",
                     "--innodb-buffer-pool-size=16M", "--skip-log-bin"],
                    "mariadbd", ready="ready for connections", stream="stderr")
    return proc, f"127.0.0.1:{port}"


def capture(binary: Path, bundle: Path, mode: str = "rows", maxopen: int = 6,
            rate: float = 10, rounds: int = 3, interval: float = 4, warmup: float = 3,
            memprofilerate: int = 4096) -> str:
    """Run one capture; returns the load generator's summary line."""
    with tempfile.TemporaryDirectory(prefix="catalog-db-") as tmp, \
            contextlib.ExitStack() as running:
        db, addr = _start_mariadb(Path(tmp))
        running.callback(stop, db)
        svc, facts = start([str(binary), "-listen", "127.0.0.1:0", "-pprof", "127.0.0.1:0",
                            "-dsn", f"root@tcp({addr})/catalog", "-mode", mode,
                            "-maxopen", str(maxopen), "-memprofilerate", str(memprofilerate)],
                           "app")
        running.callback(stop, svc)
        return servicekit.load_and_collect(
            facts, bundle, mix="items", rate=rate, rounds=rounds, interval=interval,
            warmup=warmup, timeout=1.0, dbstats_url=facts["pprof"] + "/debug/dbstats",
            db_addresses=[addr])


def main() -> None:
    ap = servicekit.capture_args(__doc__.split("\n\n")[0], ("rows", "healthy"))
    ap.add_argument("--maxopen", type=int, default=6)
    args = ap.parse_args()
    why = missing()
    if why:
        sys.exit(why)
    with tempfile.TemporaryDirectory() as tmp:
        binary = build(Path(tmp))
        print(capture(binary, args.bundle, args.mode, args.maxopen, args.rate, args.rounds,
                      args.interval, args.warmup, args.memprofilerate), file=sys.stderr)


if __name__ == "__main__":
    main()
