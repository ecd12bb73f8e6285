"""Capture a bundle from a live Go service: what an engineer would otherwise gather by hand.

Why it exists: the analyzer's strongest signal is growth between rounds, and its joins need
artifacts taken together (fd listing, sockets and goroutines of the same moment, with the
time each was taken). Hand-made captures rarely have that. This collector takes N rounds of

- ``heap?gc=1`` (protobuf), ``goroutine?debug=2``, ``goroutineleak?debug=1`` (only when the
  runtime serves it: Go 1.26+), from the service's net/http/pprof;
- ``lsof -nP -p PID``; ``ss -tanpei`` (or ``netstat -tanpe``, or copies of
  ``/proc/PID/net/tcp`` and ``tcp6`` when neither tool exists); ``ls -l /proc/PID/fd``;
  ``/proc/PID/limits``; the service's db.Stats JSON when a URL is given;

and writes ``<host>-<pid>-<UTC time>/round-N/<file>`` plus a ``capture.json`` manifest
(format ``forensics-capture/1``) with per-file times and statuses. A missing tool, a denied
permission or an unserved endpoint is recorded in the manifest, never fatal: a partial
bundle still answers most questions. ``forensics/collector/collect.sh`` is the same
collector in POSIX sh for hosts without Python; both write the same layout.

Standard library only (this runs on production hosts), and no proxy: pprof URLs are
fetched directly, as they are meant to be on loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

FORMAT = "forensics-capture/1"
MANIFEST = "capture.json"
_ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

#: Seconds allowed per artifact: a debug=2 dump of 200k goroutines takes a while.
HTTP_TIMEOUT = 120.0
TOOL_TIMEOUT = 60.0

Progress = Callable[[str], None]


class CollectError(Exception):
    """Nothing can be captured (no such process, bad arguments)."""


def script_text() -> str:
    """The POSIX shell collector (``forensics collect --print-script``)."""
    return resources.files("forensics").joinpath("collector/collect.sh").read_text()


# -- small helpers ------------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as every manifest time is written."""
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _compact(t: datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%SZ")


def _safe_host(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:64] or "host"


def pprof_base(url: str) -> str:
    """``http://h:p``, ``http://h:p/`` and ``http://h:p/debug/pprof/`` all mean the same
    net/http/pprof root: return it without a trailing slash."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CollectError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/debug/pprof"):
        path += "/debug/pprof"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _redact_url(url: str) -> str:
    """A URL for the manifest: no credentials, no query (tokens live there)."""
    p = urllib.parse.urlsplit(url)
    host = p.hostname or ""
    netloc = f"{host}:{p.port}" if p.port else host
    return urllib.parse.urlunsplit((p.scheme, netloc, p.path, "", ""))


def _first_line(text: str, limit: int = 300) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


def _archive_kind(out: Path) -> str | None:
    name = out.name.lower()
    return next((ext for ext in _ARCHIVES if name.endswith(ext)), None)


# -- what the binary says about itself --------------------------------------------------------

_BUILDINFO_MAGIC = b"\xff Go buildinf:"


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(buf) and shift < 64:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad uvarint")


def go_build_info(exe: Path, max_bytes: int = 256 << 20) -> dict[str, str]:
    """Go version and main module from a Go binary's build info (Go 1.18+ inline format).

    ``{"go_version": "go1.19.8", "go_main_module": "github.com/x/y"}``; {} when the file
    is unreadable, not Go, or older than 1.18. Reads in 1 MiB chunks up to ``max_bytes``.
    """
    keep = len(_BUILDINFO_MAGIC) - 1
    try:
        with open(exe, "rb") as f:
            pos, tail = 0, b""
            while pos < max_bytes:
                chunk = f.read(1 << 20)
                if not chunk:
                    return {}
                buf = tail + chunk
                i = buf.find(_BUILDINFO_MAGIC)
                if i >= 0:
                    f.seek(pos - len(tail) + i)
                    return _decode_buildinfo(f.read(1 << 16))
                tail = buf[-keep:]
                pos += len(chunk)
    except OSError:
        return {}
    return {}


def _decode_buildinfo(buf: bytes) -> dict[str, str]:
    if len(buf) < 32 or not buf[15] & 0x2:  # flag 2: strings inline (Go 1.18+)
        return {}
    try:
        n, pos = _uvarint(buf, 32)
        version = buf[pos:pos + n].decode("utf-8", "replace")
        n2, pos2 = _uvarint(buf, pos + n)
        raw = buf[pos2:pos2 + n2]
        # modinfo sits between two 16-byte sentinels.
        modinfo = (raw[16:-16] if len(raw) > 32 else raw).decode("utf-8", "replace")
    except ValueError:
        return {}
    info = {"go_version": version} if version.startswith("go") else {}
    m = re.search(r"^path\t(\S+)", modinfo, re.M)
    if m:
        info["go_main_module"] = m.group(1)
    return info


# -- capturing one artifact ---------------------------------------------------------------------


@dataclass
class _Session:
    """Everything one run knows: where to write, what to fetch, what happened."""

    pid: int
    pprof: str
    dbstats_url: str | None
    top: Path
    progress: Progress
    manifest: dict[str, Any] = field(default_factory=dict)

    def say(self, msg: str) -> None:
        self.progress(msg)


def _record(files: dict[str, Any], rel: str, status: str, error: str = "",
            t: datetime | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if t is not None:
        entry["captured_at"] = iso(t)
    entry["status"] = status
    if error:
        entry["error"] = error
    entry.update({k: v for k, v in extra.items() if v not in (None, "")})
    files[rel] = entry
    return entry


def _fetch(url: str, dest: Path, timeout: float = HTTP_TIMEOUT) -> tuple[int | None, str, int]:
    """GET ``url`` into ``dest`` (streamed). Returns (HTTP status, error, bytes written)."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as resp, open(dest, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
            return resp.status, "", out.tell()
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code, f"HTTP {exc.code}", 0
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{type(reason).__name__}: {reason}"[:300], 0


def _http_artifact(s: _Session, files: dict[str, Any], rel: str, url: str,
                   optional: bool = False, expect_gzip: bool = False) -> None:
    dest = s.top / rel
    t = utc_now()
    status, error, size = _fetch(url, dest)
    if status == 200:
        extra = {}
        if expect_gzip and not dest.read_bytes()[:2] == b"\x1f\x8b":
            extra["warning"] = "response is not gzip-compressed protobuf"
        _record(files, rel, "ok", t=t, bytes=size, **extra)
        s.say(f"  {rel}: ok ({size} bytes)")
        return
    dest.unlink(missing_ok=True)
    if optional and status in (404, 400):
        _record(files, rel, "skipped", f"not served by this runtime ({error})", t=t)
        s.say(f"  {rel}: not served ({error})")
        return
    _record(files, rel, "failed", error or f"HTTP {status}", t=t)
    s.say(f"  {rel}: FAILED ({error or status})")


def _tool_artifact(s: _Session, files: dict[str, Any], rel: str, argv: list[str],
                   header: str = "") -> bool:
    """Run a tool into ``rel`` (after ``header``, written only when the tool printed
    something). True when it produced usable output."""
    exe = shutil.which(argv[0])
    t = utc_now()
    if exe is None:
        _record(files, rel, "failed", f"{argv[0]} not found", t=t, command=" ".join(argv))
        s.say(f"  {rel}: {argv[0]} not found")
        return False
    dest = s.top / rel
    env = dict(os.environ, LC_ALL="C")
    try:
        with open(dest, "wb") as out:
            out.write(header.encode())
            out.flush()
            res = subprocess.run([exe, *argv[1:]], stdout=out, stderr=subprocess.PIPE,
                                 timeout=TOOL_TIMEOUT, env=env, check=False)
        size = dest.stat().st_size - len(header.encode())
        err = _first_line(res.stderr.decode("utf-8", "replace"))
    except subprocess.TimeoutExpired:
        size = dest.stat().st_size - len(header.encode()) if dest.exists() else 0
        err, res = "timed out", None
    except OSError as exc:
        size, err, res = 0, f"{type(exc).__name__}: {exc}", None
    if size > 0:
        warn = err if (res is None or res.returncode != 0 or err) else ""
        _record(files, rel, "ok", t=t, bytes=dest.stat().st_size, command=" ".join(argv),
                warning=warn)
        s.say(f"  {rel}: ok ({size} bytes)")
        return True
    dest.unlink(missing_ok=True)
    why = err or (f"exit status {res.returncode}, no output" if res else "no output")
    _record(files, rel, "failed", why, t=t, command=" ".join(argv))
    s.say(f"  {rel}: FAILED ({why})")
    return False


def _copy_artifact(s: _Session, files: dict[str, Any], rel: str, src: Path) -> bool:
    t = utc_now()
    try:
        data = src.read_bytes()
    except OSError as exc:
        _record(files, rel, "failed", f"{src}: {exc.strerror or exc}", t=t)
        s.say(f"  {rel}: FAILED ({exc.strerror or exc})")
        return False
    (s.top / rel).write_bytes(data)
    _record(files, rel, "ok", t=t, bytes=len(data), source=str(src))
    s.say(f"  {rel}: ok ({len(data)} bytes)")
    return True


def _sockets(s: _Session, files: dict[str, Any], d: str) -> None:
    """ss, else netstat, else the kernel's own tables (which need no tool at all)."""
    if _tool_artifact(s, files, f"{d}/ss.txt", ["ss", "-tanpei"]):
        return
    if _tool_artifact(s, files, f"{d}/netstat.txt", ["netstat", "-tanpe"]):
        return
    _copy_artifact(s, files, f"{d}/proc-net-tcp.txt", Path(f"/proc/{s.pid}/net/tcp"))
    _copy_artifact(s, files, f"{d}/proc-net-tcp6.txt", Path(f"/proc/{s.pid}/net/tcp6"))


def _capture_round(s: _Session, n: int) -> None:
    """Take round ``n``; its manifest entry is registered first, so that an interrupted
    round still lists what it took."""
    d = f"round-{n}"
    (s.top / d).mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    rnd: dict[str, Any] = {"round": n, "dir": d, "started_at": iso(utc_now()), "files": files}
    s.manifest["rounds"].append(rnd)
    # Goroutines and fds first and close together: they are what the joins pair up.
    _http_artifact(s, files, f"{d}/goroutines.txt", f"{s.pprof}/goroutine?debug=2")
    # The directory header is what ls prints when listing several fd folders: it keeps
    # the pid in the file itself, as the parsers expect from hand-made listings too.
    _tool_artifact(s, files, f"{d}/procfd.txt", ["ls", "-l", f"/proc/{s.pid}/fd"],
                   header=f"/proc/{s.pid}/fd:\n")
    _sockets(s, files, d)
    _tool_artifact(s, files, f"{d}/lsof.txt", ["lsof", "-nP", "-p", str(s.pid)])
    if s.dbstats_url:
        _http_artifact(s, files, f"{d}/dbstats.json", s.dbstats_url)
    _copy_artifact(s, files, f"{d}/limits.txt", Path(f"/proc/{s.pid}/limits"))
    # Both force a GC; the leak profile runs the GC's leak detection.
    _http_artifact(s, files, f"{d}/heap.pb.gz", f"{s.pprof}/heap?gc=1", expect_gzip=True)
    _http_artifact(s, files, f"{d}/goroutineleak.txt", f"{s.pprof}/goroutineleak?debug=1",
                   optional=True)
    rnd["finished_at"] = iso(utc_now())


# -- manifest and packaging ---------------------------------------------------------------------


def _tool_version(argv: list[str], pattern: str) -> str | None:
    exe = shutil.which(argv[0])
    if exe is None:
        return None
    try:
        res = subprocess.run([exe, *argv[1:]], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (res.stdout + res.stderr).decode("utf-8", "replace")
    m = re.search(pattern, text)
    return m.group(1) if m else (_first_line(text, 80) or None)


def tool_versions() -> dict[str, str]:
    found = {
        "lsof": _tool_version(["lsof", "-v"], r"revision:\s*(\S+)"),
        "ss": _tool_version(["ss", "-V"], r"(iproute2[-\w.]*)"),
        "netstat": _tool_version(["netstat", "-V"], r"(net-tools\s+[\d.]+)"),
    }
    out = {k: v for k, v in found.items() if v}
    out["collector"] = "python"
    return out


def _new_manifest(pid: int, host: str, pprof: str, dbstats_url: str | None,
                  db_addresses: list[str] | None) -> dict[str, Any]:
    from . import __version__

    m: dict[str, Any] = {
        "format": FORMAT,
        "pid": pid,
        "hostname": host,
        "db_addresses": list(db_addresses or []),
        "pprof_url": _redact_url(pprof),
        "tool_versions": tool_versions(),
        "collector_version": __version__,
        "euid": os.geteuid() if hasattr(os, "geteuid") else None,
    }
    if dbstats_url:
        m["dbstats_url"] = _redact_url(dbstats_url)
    m.update(go_build_info(Path(f"/proc/{pid}/exe")))
    m["rounds"] = []
    return m


def _write_manifest(s: _Session) -> None:
    path = s.top / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(s.manifest, indent=2) + "\n")
    os.replace(tmp, path)


def _package(top: Path, out: Path, kind: str) -> Path:
    """Archive ``top`` (as the archive's single top folder) into ``out`` atomically."""
    partial = out.with_name(out.name + ".partial")
    if kind == ".zip":
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            for p in sorted(top.rglob("*")):
                if p.is_file():
                    z.write(p, f"{top.name}/{p.relative_to(top).as_posix()}")
    else:
        mode = "w" if kind == ".tar" else "w:gz"
        with tarfile.open(partial, mode) as tar:  # type: ignore[call-overload]
            tar.add(top, arcname=top.name)
    os.replace(partial, out)
    return out


# -- the entry point ----------------------------------------------------------------------------


def run(
    pid: int,
    pprof_url: str,
    out: Path,
    dbstats_url: str | None = None,
    rounds: int = 3,
    interval: float = 10.0,
    db_addresses: list[str] | None = None,
    progress: Progress | None = None,
) -> Path:
    """Capture ``rounds`` rounds, ``interval`` seconds apart (start to start), of process
    ``pid`` whose net/http/pprof is at ``pprof_url``.

    ``out`` ending in .tar.gz/.tgz/.tar/.zip gets an archive (returned); any other ``out``
    is a folder that receives the ``<host>-<pid>-<time>/`` bundle folder (returned). Ctrl-C
    stops after the artifacts taken so far and still writes the bundle, marked interrupted.
    """
    if pid <= 0:
        raise CollectError(f"bad pid {pid}")
    if Path("/proc").is_dir() and not Path(f"/proc/{pid}").exists():
        raise CollectError(f"no process with pid {pid}")
    rounds = max(1, int(rounds))
    interval = max(0.0, float(interval))
    say = progress or (lambda _msg: None)
    pprof = pprof_base(pprof_url)
    out = Path(out)
    kind = _archive_kind(out)
    host = socket.gethostname()
    start = utc_now()
    top_name = f"{_safe_host(host)}-{pid}-{_compact(start)}"

    staging: Path | None = None
    if kind:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".forensics-collect-", dir=out.parent))
        top = staging / top_name
    else:
        top = out / top_name
    top.mkdir(parents=True, exist_ok=False)
    s = _Session(pid, pprof, dbstats_url, top, say,
                 _new_manifest(pid, host, pprof, dbstats_url, db_addresses))
    try:
        _capture_rounds(s, rounds, interval)
        if kind:
            say(f"writing {out}")
            return _package(top, out, kind)
        return top
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _capture_rounds(s: _Session, rounds: int, interval: float) -> None:
    t0 = time.monotonic()
    try:
        for n in range(1, rounds + 1):
            wait = t0 + (n - 1) * interval - time.monotonic()
            if wait > 0:
                s.say(f"waiting {wait:.0f}s for round {n}")
                time.sleep(wait)
            if Path("/proc").is_dir() and not Path(f"/proc/{s.pid}").exists():
                s.manifest["process_exited"] = True
                s.say(f"process {s.pid} is gone; stopping after {n - 1} round(s)")
                break
            s.say(f"round {n}/{rounds}")
            _capture_round(s, n)
            _write_manifest(s)
    except KeyboardInterrupt:
        s.manifest["interrupted"] = True
        s.say("interrupted: writing what was captured so far")
    _write_manifest(s)
