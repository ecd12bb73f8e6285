"""Capture a bundle of pricing-gateway (a gRPC client) under load, with the collector.

    python3 tools/grpcservice/capture.py OUT.tar.gz [--mode dialperreq|healthy]
        [--rate 10] [--rounds 3] [--interval 4] [--warmup 3] [--memprofilerate 4096]

Builds the service (build.sh, Go 1.19 + Debian's grpc-go), starts the gRPC backend and the
gateway on 127.0.0.1, drives GET /price and takes the rounds with forensics.collect while
the load runs. Every process it starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tools" / "leakyservice")]

import loadgen  # noqa: E402

from forensics import collect  # noqa: E402

BINARY = "pricing-gateway-go1.19"


def missing() -> str | None:
    """Why the gateway cannot be built here, or None."""
    if not Path("/usr/lib/go-1.19/bin/go").exists():
        return "Go 1.19 toolchain not found (apt-get install golang-1.19)"
    if not Path("/usr/share/gocode/src/google.golang.org/grpc/health").is_dir():
        return "grpc-go sources not found (apt-get install golang-google-grpc-dev)"
    return None


def build(out: Path) -> Path:
    res = subprocess.run(["sh", str(HERE / "build.sh"), str(out)], capture_output=True,
                         text=True, timeout=600, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"grpcservice/build.sh failed:\n{res.stderr[-3000:]}")
    return out / BINARY


def _start(cmd: list[str], key: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start ``cmd``; wait for its ``ready`` line and return the key=value pairs in it."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 20
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("ready ") and f"{key}=" in line:
            return proc, dict(re.findall(r"(\w+)=(\S+)", line))
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not start")


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def capture(binary: Path, bundle: Path, mode: str = "dialperreq", rate: float = 10,
            rounds: int = 3, interval: float = 4, warmup: float = 3,
            memprofilerate: int = 4096) -> str:
    """Run one capture; returns the load generator's summary line."""
    backend, bfacts = _start([str(binary), "-role", "backend", "-listen", "127.0.0.1:0"],
                             "backend")
    try:
        gateway, facts = _start([str(binary), "-listen", "127.0.0.1:0", "-pprof",
                                 "127.0.0.1:0", "-backend", bfacts["backend"], "-mode", mode,
                                 "-memprofilerate", str(memprofilerate)], "app")
        try:
            limit = warmup + (rounds - 1) * interval + 3
            stats: list[loadgen.Stats] = []
            load = threading.Thread(target=lambda: stats.append(loadgen.drive(
                base=facts["app"], mix="price", total=10_000, rate=rate, concurrency=8,
                time_limit=limit, timeout=2.0)))
            load.start()
            try:
                time.sleep(warmup)
                collect.run(int(facts["pid"]), facts["pprof"], bundle, dbstats_url=None,
                            rounds=rounds, interval=interval)
            finally:
                load.join(limit + 10)
        finally:
            _stop(gateway)
    finally:
        _stop(backend)
    return str(stats[0]) if stats else "no load"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--mode", default="dialperreq", choices=("dialperreq", "healthy"))
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--interval", type=float, default=4)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--memprofilerate", type=int, default=4096)
    args = ap.parse_args()
    why = missing()
    if why:
        sys.exit(why)
    with tempfile.TemporaryDirectory() as tmp:
        binary = build(Path(tmp))
        print(capture(binary, args.bundle, args.mode, args.rate, args.rounds, args.interval,
                      args.warmup, args.memprofilerate), file=sys.stderr)


if __name__ == "__main__":
    main()
