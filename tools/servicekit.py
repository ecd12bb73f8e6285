"""Start and stop the helper processes of the capture scripts (tools/*service/capture.py):
a service that prints a ``ready key=value ...`` line, a data store that logs when it is
ready. Every process is started on 127.0.0.1 and stopped by its handle."""

from __future__ import annotations

import re
import socket
import subprocess
import time


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
