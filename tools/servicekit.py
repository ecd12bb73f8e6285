"""What the capture scripts (tools/*service/capture.py) share: building a service, starting
and stopping its processes (a service that prints a ``ready key=value ...`` line, a data
store that logs when it is ready; every one on 127.0.0.1, stopped by its handle), driving
it with load while the collector takes the rounds, and their command-line options."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

_TOOLS = Path(__file__).resolve().parent
for _path in (_TOOLS.parent, _TOOLS / "leakyservice"):  # forensics and loadgen
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def start(cmd: list[str], key: str, ready: str | None = None, stream: str = "stdout",
          timeout: float = 60) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Start ``cmd`` and wait until it is ready: a ``ready`` line naming ``key`` (the
    key=value pairs of that line are returned), or a line containing ``ready``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if stream == "stdout" else
                            subprocess.DEVNULL, stderr=subprocess.PIPE if stream == "stderr"
                            else subprocess.DEVNULL, text=True)
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = pipe.readline()
        if ready is None and line.startswith("ready ") and f"{key}=" in line:
            return proc, dict(re.findall(r"(\w+)=(\S+)", line))
        if ready is not None and ready in line:
            return proc, {}
        if not line and proc.poll() is not None:
            break
    stop(proc)
    raise RuntimeError(f"{cmd[0]} did not start")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    """A port free on 127.0.0.1 now (for servers that cannot be told to pick one)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(script: Path, out: Path, binary: str, *args: str) -> Path:
    """Run a service's build.sh into ``out`` (with ``args``: its variant); the binary it
    wrote."""
    res = subprocess.run(["sh", str(script), str(out), *args], capture_output=True, text=True,
                         timeout=600, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{script.parent.name}/{script.name} failed:\n{res.stderr[-3000:]}")
    return out / binary


def load_and_collect(facts: dict[str, str], bundle: Path, *, mix: str, rate: float,
                     rounds: int, interval: float, warmup: float, timeout: float,
                     dbstats_url: str | None = None,
                     db_addresses: list[str] | None = None) -> str:
    """Drive a started service (its ``ready`` facts: app, pprof, pid) with a bounded load
    and take ``rounds`` with the collector while it runs, after ``warmup`` seconds of load.
    Returns the load generator's summary line."""
    import loadgen

    from forensics import collect

    limit = warmup + (rounds - 1) * interval + 3
    stats: list[loadgen.Stats] = []
    load = threading.Thread(target=lambda: stats.append(loadgen.drive(
        base=facts["app"], mix=mix, total=10_000, rate=rate, concurrency=8,
        time_limit=limit, timeout=timeout)))
    load.start()
    try:
        time.sleep(warmup)
        collect.run(int(facts["pid"]), facts["pprof"], bundle, dbstats_url=dbstats_url,
                    rounds=rounds, interval=interval, db_addresses=db_addresses)
    finally:
        load.join(limit + 10)
    return str(stats[0]) if stats else "no load"


def capture_args(description: str, modes: tuple[str, ...]) -> argparse.ArgumentParser:
    """The options every capture script takes (the first of ``modes`` is the default)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--mode", default=modes[0], choices=modes)
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--interval", type=float, default=4)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--memprofilerate", type=int, default=4096)
    return ap
