"""Capture a bundle of pricing-gateway (a gRPC and Redis client) under load, with the
collector.

    python3 tools/grpcservice/capture.py OUT.tar.gz [--mode dialperreq|rediscache|healthy]
        [--redis] [--rate 10] [--rounds 3] [--interval 4] [--warmup 3] [--memprofilerate 4096]

Builds the service (build.sh, Go 1.19 + Debian's grpc-go and redigo), starts the gRPC
backend, a throwaway redis-server (mode rediscache, or --redis) and the gateway on
127.0.0.1, drives GET /price and takes the rounds with forensics.collect while the load
runs. Every process it starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools"), str(ROOT / "tools" / "leakyservice")]

import loadgen  # noqa: E402
from servicekit import free_port, start, stop  # noqa: E402

from forensics import collect  # noqa: E402

BINARY = "pricing-gateway-go1.19"


def missing(redis: bool = False) -> str | None:
    """Why the gateway cannot be built (or, with ``redis``, given its Redis) here, or None."""
    if not Path("/usr/lib/go-1.19/bin/go").exists():
        return "Go 1.19 toolchain not found (apt-get install golang-1.19)"
    if not Path("/usr/share/gocode/src/google.golang.org/grpc/health").is_dir():
        return "grpc-go sources not found (apt-get install golang-google-grpc-dev)"
    if not Path("/usr/share/gocode/src/github.com/gomodule/redigo/redis").is_dir():
        return "redigo sources not found (apt-get install golang-github-gomodule-redigo-dev)"
    if redis and not shutil.which("redis-server"):
        return "redis-server not found (apt-get install redis-server)"
    return None


def build(out: Path) -> Path:
    res = subprocess.run(["sh", str(HERE / "build.sh"), str(out)], capture_output=True,
                         text=True, timeout=600, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"grpcservice/build.sh failed:\n{res.stderr[-3000:]}")
    return out / BINARY


def _start_redis() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc, _ = start(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                     "--appendonly", "no", "--daemonize", "no", "--loglevel", "notice"],
                    "redis", ready="Ready to accept connections")
    return proc, f"127.0.0.1:{port}"


def capture(binary: Path, bundle: Path, mode: str = "dialperreq", rate: float = 10,
            rounds: int = 3, interval: float = 4, warmup: float = 3,
            memprofilerate: int = 4096, redis: bool = False) -> str:
    """Run one capture; returns the load generator's summary line. ``redis``: give the
    gateway its Redis price cache (always in mode rediscache); the manifest names Redis
    as the capture's data store."""
    redis = redis or mode == "rediscache"
    started: list[subprocess.Popen[str]] = []
    try:
        return _capture(binary, bundle, mode, rate, rounds, interval, warmup, memprofilerate,
                        redis, started)
    finally:
        for proc in reversed(started):
            stop(proc)


def _capture(binary: Path, bundle: Path, mode: str, rate: float, rounds: int,
             interval: float, warmup: float, memprofilerate: int, redis: bool,
             started: list[subprocess.Popen[str]]) -> str:
    stores: list[str] = []
    extra: list[str] = []
    if redis:
        proc, addr = _start_redis()
        started.append(proc)
        stores, extra = [addr], ["-redis", addr]
    backend, bfacts = start([str(binary), "-role", "backend", "-listen", "127.0.0.1:0"],
                             "backend")
    started.append(backend)
    gateway, facts = start([str(binary), "-listen", "127.0.0.1:0", "-pprof", "127.0.0.1:0",
                             "-backend", bfacts["backend"], "-mode", mode,
                             "-memprofilerate", str(memprofilerate), *extra], "app")
    started.append(gateway)
    limit = warmup + (rounds - 1) * interval + 3
    stats: list[loadgen.Stats] = []
    load = threading.Thread(target=lambda: stats.append(loadgen.drive(
        base=facts["app"], mix="price", total=10_000, rate=rate, concurrency=8,
        time_limit=limit, timeout=2.0)))
    load.start()
    try:
        time.sleep(warmup)
        collect.run(int(facts["pid"]), facts["pprof"], bundle, dbstats_url=None,
                    rounds=rounds, interval=interval, db_addresses=stores or None)
    finally:
        load.join(limit + 10)
    return str(stats[0]) if stats else "no load"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--mode", default="dialperreq",
                    choices=("dialperreq", "rediscache", "healthy"))
    ap.add_argument("--redis", action="store_true", help="give the gateway its Redis cache")
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--interval", type=float, default=4)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--memprofilerate", type=int, default=4096)
    args = ap.parse_args()
    why = missing(args.redis or args.mode == "rediscache")
    if why:
        sys.exit(why)
    with tempfile.TemporaryDirectory() as tmp:
        binary = build(Path(tmp))
        print(capture(binary, args.bundle, args.mode, args.rate, args.rounds, args.interval,
                      args.warmup, args.memprofilerate, args.redis), file=sys.stderr)


if __name__ == "__main__":
    main()
