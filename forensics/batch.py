"""Many bundles -> one report each + a hive-partitioned Parquet dataset, incrementally.

Support teams keep years of captures and reprocess them all when the detectors improve,
so a batch must be restartable and cheap to re-run: a small state file (``batch-state.json``)
remembers, per source, the content hash and analyzer version it was last done with, and a
re-run skips what is unchanged (``force`` redoes it). One bad bundle is recorded as failed
with its reason and never stops the batch.

Parallelism: one worker function, :func:`process_bundle`, runs wherever the executor puts
it: a local process pool (default) or a Dask cluster. It takes a small picklable
:class:`Task`, writes its own report files and dataset partitions (so no result data
crosses processes) and returns a small summary dict. Locally each bundle runs in a fresh
process forked from a pre-warmed fork server (``max_tasks_per_child=1``): all memory a big
bundle took is returned to the system when it is done, and one bundle that kills its
process (out of memory) costs only itself. (``max_tasks_per_child`` > 1 can deadlock the
pool on CPython 3.11-3.13, gh-115634; with 1 the pool never holds stale idle tokens.)

Safety: bundle ids are untrusted text (customer file names), so every file name written
is derived from :func:`forensics.dataset.safe_key` and checked to stay inside ``DIR``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import multiprocessing as mp
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .dataset import DATASET_DIR, remove_bundle, safe_key, write_bundle

STATE_FILE = "batch-state.json"
BUNDLES_FILE = "bundles.parquet"
INDEX_FILE = "index.html"
REPORTS_DIR = "reports"
TMP_DIR = ".tmp"
LOCK_FILE = ".batch.lock"
STATE_VERSION = 1
FORMATS = ("html", "md", "json")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MANIFEST_NAMES = ("capture.json", "meta.json")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GLOB_CHARS = re.compile(r"[*?\[]")
#: Modules the fork server imports once, so that each per-bundle process starts warm.
_PRELOAD = (
    "jinja2", "pyarrow.parquet", "pyarrow.pandas_compat",
    "forensics.batch", "forensics.pipeline", "forensics.correlate", "forensics.detect",
    "forensics.report", "forensics.render", "forensics.dataset",
    *(f"forensics.parsers.{n}" for n in ("manifest", "dbstats", "heap_pprof", "heap_text",
                                          "goroutines", "lsof", "ss", "netstat",
                                          "proc_net_tcp", "procfd", "limits")),
)


class BatchError(Exception):
    """The batch cannot start (bad SOURCE, DIR locked, missing optional dependency)."""


# --------------------------------------------------------------------------- discovery

@dataclass(frozen=True)
class Source:
    """One bundle to process: where it is, its display name, and a cheap fingerprint
    (size + mtime) that lets a re-run skip it without even reading it."""

    location: str
    name: str
    fingerprint: str | None = None

    @property
    def is_url(self) -> bool:
        return bool(_URL.match(self.location))


def is_archive_name(name: str) -> bool:
    low = name.lower()
    return low.endswith(ARCHIVE_SUFFIXES)


def bundle_name(name: str) -> str:
    """The bundle id a file or folder name gives (archive suffix removed)."""
    low = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def is_bundle_dir(path: Path) -> bool:
    return any((path / m).is_file() for m in MANIFEST_NAMES)


def _file_fingerprint(path: Path) -> str | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{st.st_size}:{st.st_mtime_ns}"


def _dir_fingerprint(path: Path) -> str | None:
    """Sizes and mtimes of every file below ``path`` (a folder's own mtime misses edits)."""
    h = hashlib.sha256()
    try:
        for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
            dirnames.sort()
            for fn in sorted(filenames):
                st = os.lstat(os.path.join(dirpath, fn))
                rel = os.path.relpath(os.path.join(dirpath, fn), path)
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8",
                                                                          "surrogateescape"))
    except OSError:
        return None
    return "dir:" + h.hexdigest()[:32]


def _local_source(path: Path) -> Source:
    path = path.absolute()
    fp = _dir_fingerprint(path) if path.is_dir() else _file_fingerprint(path)
    return Source(str(path), bundle_name(path.name), fp)


def _scan_dir(root: Path, exclude: list[Path]) -> Iterator[Source]:
    """Archives below ``root`` and folders holding a capture manifest (not descended into:
    their files belong to that bundle). Hidden folders and ``exclude`` are passed over."""
    stack = [root]
    while stack:
        d = stack.pop()
        if is_bundle_dir(d):
            yield _local_source(d)
            continue
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for e in entries:
            p = Path(e.path)
            if e.is_dir(follow_symlinks=False):
                if not e.name.startswith(".") and not any(_same(p, x) for x in exclude):
                    stack.append(p)
            elif e.is_file() and is_archive_name(e.name):
                yield _local_source(p)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _below(p: Path, root: Path) -> bool:
    try:
        return p.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def _looks_like_archive_file(path: Path) -> bool:
    if is_archive_name(path.name):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return head[:2] == b"\x1f\x8b" or head[:4] == b"PK\x03\x04" or head[257:262] == b"ustar"


def _read_list_file(path: Path) -> list[str] | None:
    """Entries of a list file (one path or URL per line, ``#`` comments), or None when
    the file is not a plain-text list."""
    try:
        with open(path, "rb") as f:
            data = f.read(4 * 1024 * 1024 + 1)
    except OSError as exc:
        raise BatchError(f"{path}: unreadable ({exc.strerror})") from exc
    if len(data) > 4 * 1024 * 1024 or b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = [ln.strip() for ln in text.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except (OSError, ValueError):
        return False


def _mostly_resolves(entries: list[str], base: Path) -> bool:
    """A list file names bundles that (mostly) exist; a log or dump read as one does not."""
    if not entries:
        return False
    sample = entries[:50]
    hits = sum(bool(_URL.match(e)) or _exists(base / Path(e).expanduser()) for e in sample)
    return hits * 2 >= len(sample)


def _list_entry(entry: str, base: Path) -> list[Source]:
    if _URL.match(entry):
        return discover_url(entry)
    p = Path(entry).expanduser()
    if not p.is_absolute():
        p = base / p
    # An explicit entry is a bundle whatever it looks like; a missing one fails in the
    # worker with a clear reason rather than vanishing from the batch.
    return [_local_source(p)]


def discover(spec: str, exclude: list[Path] | None = None) -> list[Source]:
    """Every bundle SOURCE names: a folder (recursively), a glob, a list file, an archive
    or an fsspec URL. Sorted and deduplicated by location."""
    exclude = exclude or []
    if _URL.match(spec):
        found = discover_url(spec)
    elif _GLOB_CHARS.search(spec) and not Path(spec).exists():
        found = []
        for m in sorted(glob.glob(os.path.expanduser(spec), recursive=True)):
            p = Path(m)
            if any(_same(p, x) or _below(p, x) for x in exclude):
                continue  # the output folder, when the glob reaches into it
            if p.is_dir():
                found.extend(_scan_dir(p, exclude))
            elif p.is_file() and _looks_like_archive_file(p):
                found.append(_local_source(p))
    else:
        p = Path(spec).expanduser()
        if p.is_dir():
            found = list(_scan_dir(p, exclude))
        elif p.is_file():
            if _looks_like_archive_file(p):
                found = [_local_source(p)]
            else:
                entries = _read_list_file(p)
                if entries is None or not _mostly_resolves(entries, p.parent.absolute()):
                    raise BatchError(f"{spec}: neither an archive nor a list file "
                                     "(one bundle path or URL per line)")
                found = [s for e in entries for s in _list_entry(e, p.parent.absolute())]
        else:
            raise BatchError(f"{spec}: no such file, folder or matching glob")
    seen: dict[str, Source] = {}
    for s in found:
        seen.setdefault(s.location, s)
    return sorted(seen.values(), key=lambda s: s.location)


def _fsspec():
    try:
        import fsspec
    except ImportError as exc:
        raise BatchError("URL sources need fsspec and its backend for the scheme "
                         "(e.g. pip install fsspec s3fs)") from exc
    return fsspec


def discover_url(url: str) -> list[Source]:
    """Archives at an fsspec URL: one object, a glob, or a prefix scanned recursively."""
    fsspec = _fsspec()
    try:
        fs, path = fsspec.core.url_to_fs(url)
        if _GLOB_CHARS.search(path):
            infos = fs.glob(path, detail=True)
            infos = {p: i for p, i in infos.items() if i.get("type") != "directory"}
        elif fs.isdir(path):
            infos = fs.find(path, detail=True)
            infos = {p: i for p, i in infos.items() if is_archive_name(p)}
        else:
            infos = {path: fs.info(path)}
    except ImportError as exc:
        raise BatchError(f"{url}: the fsspec backend for this scheme is not installed "
                         f"({exc})") from exc
    except (OSError, ValueError) as exc:
        raise BatchError(f"{url}: cannot list ({exc})") from exc
    out = []
    for p, info in infos.items():
        stamp = next((str(info[k]) for k in ("mtime", "LastModified", "last_modified",
                                             "ETag", "etag", "created") if info.get(k)), None)
        fp = f"{info.get('size')}:{stamp}" if stamp else None
        out.append(Source(fs.unstrip_protocol(p), bundle_name(p.rstrip("/").rsplit("/", 1)[-1]),
                          fp))
    return out


# --------------------------------------------------------------------------- worker

@dataclass(frozen=True)
class Task:
    """Everything a worker needs, small and picklable (sent to processes and Dask)."""

    source: str
    key: str
    out_dir: str
    formats: tuple[str, ...] = ("html", "json")
    force: bool = False
    #: The content hash this source was last done with under this analyzer version.
    known_hash: str | None = None
    fingerprint: str | None = None
    limits: dict[str, float] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _inside(root: Path, path: Path) -> Path:
    """``path`` if it resolves inside ``root``; raises otherwise (never write outside DIR)."""
    rp = path.resolve()
    if not rp.is_relative_to(root.resolve()):
        raise BatchError(f"refusing to write outside the output folder: {path}")
    return path


def report_path(out: Path, key: str, fmt: str) -> Path:
    if fmt not in FORMATS or safe_key(key) != key:
        raise BatchError(f"unsafe report name: {key!r}.{fmt!r}")
    return _inside(out, out / REPORTS_DIR / f"{key}.{fmt}")


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _remove_outputs(out: Path, key: str) -> None:
    remove_bundle(out / DATASET_DIR, key)
    for fmt in FORMATS:
        with contextlib.suppress(OSError):
            report_path(out, key, fmt).unlink()


@contextlib.contextmanager
def _materialized(task: Task, out: Path) -> Iterator[Path]:
    """A local path for the task's bundle: URLs are copied into DIR/.tmp (bounded)."""
    if not _URL.match(task.source):
        yield Path(task.source)
        return
    from .bundle import Limits

    fsspec = _fsspec()
    limit = task.limits.get("max_total_bytes", Limits().max_total_bytes)
    name = safe_key(task.source.rstrip("/").rsplit("/", 1)[-1], 200)
    tmp_dir = _inside(out, out / TMP_DIR / f"{task.key}-{os.getpid()}-{time.monotonic_ns()}")
    tmp_dir.mkdir(parents=True)
    try:
        local = tmp_dir / name
        with fsspec.open(task.source, "rb") as src, open(local, "wb") as dst:
            copied = 0
            while chunk := src.read(1 << 20):
                copied += len(chunk)
                if copied > limit:
                    raise BatchError(f"larger than the total size limit ({limit} bytes)")
                dst.write(chunk)
        yield local
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _summary(task: Task, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": task.source, "key": task.key, "bundle_id": None, "hostname": None,
        "pid": None, "status": "failed",
        "reason": "", "done": False, "content_hash": None, "analyzer_version": __version__,
        "fingerprint": task.fingerprint, "severity": "", "severity_level": -1, "verdict": "",
        "findings": 0, "call_sites": 0, "top_site": "", "top_score": None, "captured_at": None,
        "reports": {}, "rows": {}, "warnings": 0, "exit_code": None, "seconds": 0.0,
        "finished_at": _now(),
    }
    base.update(kw)
    return base


def _unchanged(task: Task) -> str | None:
    """The content hash when it equals the one already done (so the task can be skipped)."""
    if task.force or not task.known_hash:
        return None
    from .bundle import Limits, read_bundle

    with contextlib.suppress(Exception):
        with _materialized(task, Path(task.out_dir)) as local:
            b = read_bundle(local, Limits(**task.limits))
            if b.content_hash == task.known_hash:
                return b.content_hash
    return None


def process_bundle(task: Task) -> dict[str, Any]:
    """Analyze one bundle, write its reports and partitions, return a small summary.

    Never raises: every failure becomes ``status="failed"`` with a reason.
    """
    t0 = time.perf_counter()
    out = Path(task.out_dir)
    try:
        same = _unchanged(task)
        if same:
            return _summary(task, status="skipped", reason="unchanged content",
                            done=True, content_hash=same,
                            seconds=round(time.perf_counter() - t0, 3))
        return _analyze_and_write(task, out, t0)
    except Exception as exc:  # the batch goes on whatever one bundle does
        from .bundle import BundleError

        reason = str(exc) if isinstance(exc, (BundleError, BatchError)) else (
            f"internal error ({type(exc).__name__}: {exc})")
        with contextlib.suppress(Exception):
            _remove_outputs(out, task.key)
        return _summary(task, reason=reason[:2000], seconds=round(time.perf_counter() - t0, 3))


def _analyze_and_write(task: Task, out: Path, t0: float) -> dict[str, Any]:
    from .bundle import Limits
    from .dataset import first_capture
    from .findings import severity_level
    from .pipeline import analyze
    from .report import render, verdict

    with _materialized(task, out) as local:
        analysis = analyze(local, Limits(**task.limits))
    analysis.bundle.source = task.source
    rows = write_bundle(out / DATASET_DIR, task.key, analysis)
    reports = {}
    for fmt in task.formats:
        path = report_path(out, task.key, fmt)
        _write_text_atomic(path, render(analysis, fmt))
        reports[fmt] = path.relative_to(out).as_posix()
    v = verdict(analysis)
    top = analysis.call_sites[0] if analysis.call_sites else None
    status, reason = "ok", ""
    if not analysis.usable:
        status = "failed"
        why = "; ".join(f"{w['path']}: {w['message']}" for w in analysis.warnings[:3])
        reason = "nothing usable in the bundle" + (f" ({why})" if why else "")
    captured = first_capture(analysis)
    return _summary(
        task, status=status, reason=reason[:2000], done=True,
        bundle_id=analysis.bundle.bundle_id, content_hash=analysis.bundle.content_hash,
        hostname=_text_or_none(analysis.manifest.get("hostname")),
        pid=_int_or_none(analysis.manifest.get("pid")),
        analyzer_version=str(analysis.version), severity=v["severity"],
        severity_level=severity_level(v["severity"]), verdict=v["text"],
        findings=len(analysis.findings), call_sites=len(analysis.call_sites),
        top_site=f"{top.function} ({top.file}:{top.line})" if top else "",
        top_score=float(top.score) if top else None,
        captured_at=captured.isoformat().replace("+00:00", "Z") if captured is not None
        else None,
        reports=reports, rows=rows, warnings=len(analysis.warnings),
        exit_code=analysis.exit_code(), seconds=round(time.perf_counter() - t0, 3))


def _text_or_none(v: Any) -> str | None:
    return None if v is None else str(v)[:500]


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        return None


# --------------------------------------------------------------------------- state

@dataclass
class State:
    """What DIR already holds: per source, the last real result (never "skipped")."""

    path: Path
    bundles: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, out: Path) -> State:
        path = out / STATE_FILE
        st = cls(path)
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BatchError(f"{path}: unreadable batch state ({exc}); move it away "
                                 "to start over") from exc
            if isinstance(doc, dict) and isinstance(doc.get("bundles"), dict):
                st.bundles = {k: v for k, v in doc["bundles"].items() if isinstance(v, dict)}
        return st

    def save(self) -> None:
        doc = {"state_version": STATE_VERSION, "saved_at": _now(), "bundles": self.bundles}
        _write_text_atomic(self.path, json.dumps(doc, indent=1, sort_keys=True, default=str))

    def keys_in_use(self) -> dict[str, str]:
        return {v["key"]: src for src, v in self.bundles.items() if v.get("key")}

    def record(self, summary: dict[str, Any]) -> None:
        if summary["status"] == "skipped":
            entry = self.bundles.get(summary["source"])
            if entry is not None and summary.get("fingerprint"):
                entry["fingerprint"] = summary["fingerprint"]  # touched but same bytes
            return
        self.bundles[summary["source"]] = summary


def assign_keys(sources: list[Source], state: State) -> dict[str, str]:
    """A stable, unique, file-name-safe partition key per source.

    A source keeps the key it had; a new one gets its safe name, or the name plus a short
    hash of its location when another source already holds that name.
    """
    taken = state.keys_in_use()
    keys: dict[str, str] = {}
    for s in sources:
        old = state.bundles.get(s.location, {}).get("key")
        if old and safe_key(old) == old:
            keys[s.location] = old
            taken[old] = s.location
    for s in sources:
        if s.location in keys:
            continue
        key = safe_key(s.name)
        if key in taken and taken[key] != s.location:
            suffix = hashlib.sha1(s.location.encode("utf-8", "surrogateescape")).hexdigest()[:8]
            key = f"{safe_key(s.name, 70)}-{suffix}"
        keys[s.location] = key
        taken[key] = s.location
    return keys


def _fast_skip(src: Source, entry: dict[str, Any] | None) -> bool:
    """Unchanged fingerprint, same analyzer, finished last time: no need to even read it."""
    return bool(entry and entry.get("done") and src.fingerprint
                and entry.get("fingerprint") == src.fingerprint
                and entry.get("analyzer_version") == __version__)


def _known_hash(entry: dict[str, Any] | None) -> str | None:
    if entry and entry.get("done") and entry.get("analyzer_version") == __version__:
        return entry.get("content_hash")
    return None


# --------------------------------------------------------------------------- executors

OnResult = Callable[[dict[str, Any]], None]


def _pool_context() -> mp.context.BaseContext:
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(_PRELOAD))
        return ctx
    return mp.get_context("spawn")


def run_local(tasks: list[Task], workers: int, on_result: OnResult,
              fn: Callable[[Task], dict[str, Any]] | None = None) -> None:
    """A process pool, one fresh process per bundle, at most ``workers + 1`` in flight.

    When a process dies (killed for memory), the pool breaks and every task in flight
    fails with it. Those become suspects and run again at the end, one at a time, so a
    second death names the culprit exactly: it alone is recorded as failed. ``fn``
    (default :func:`process_bundle`) must be importable by name in the worker processes.
    """
    from concurrent.futures import ProcessPoolExecutor

    fn = fn or process_bundle
    pending = list(reversed(tasks))
    suspects: list[Task] = []
    while pending or suspects:
        alone = not pending
        queue = suspects if alone else pending
        n = 1 if alone else workers
        with ProcessPoolExecutor(max_workers=n, mp_context=_pool_context(),
                                 max_tasks_per_child=1) as pool:
            lost = _drain(pool, fn, queue, n + (0 if alone else 1), on_result)
        if alone:
            for t in lost:
                on_result(_summary(t, reason="the worker process died while analyzing this "
                                             "bundle (killed, probably out of memory)"))
        else:
            suspects.extend(lost)


def _drain(pool: Any, fn: Callable[[Task], dict[str, Any]], pending: list[Task], window: int,
           on_result: OnResult) -> list[Task]:
    """Run ``pending`` through ``pool``; returns the tasks lost when the pool broke."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    inflight: dict[Any, Task] = {}
    lost: list[Task] = []
    while pending or inflight:
        while pending and len(inflight) < window:
            t = pending.pop()
            try:
                inflight[pool.submit(fn, t)] = t
            except BrokenProcessPool:
                pending.append(t)
                return [*inflight.values(), *lost]
        done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
        for fut in done:
            t = inflight.pop(fut)
            try:
                on_result(fut.result())
            except BrokenProcessPool:
                lost.append(t)
            except Exception as exc:  # e.g. a result that cannot be unpickled
                on_result(_summary(t, reason=f"worker error ({type(exc).__name__}: {exc})"))
        if lost:
            for fut in inflight:
                fut.cancel()
            return [*lost, *inflight.values()]
    return lost


def run_dask(tasks: list[Task], scheduler: str, on_result: OnResult) -> None:
    """The same worker function on an existing Dask cluster. DIR must be a path every
    worker can write (a shared file system): workers write their own partitions."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise BatchError("--executor dask needs dask.distributed "
                         "(pip install 'forensics[dask]')") from exc
    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise BatchError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
    with client:
        futures = client.map(process_bundle, tasks, pure=False)
        by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        for fut in as_completed(futures):
            try:
                on_result(fut.result())
            except Exception as exc:  # KilledWorker, lost connection: that bundle only
                t = by_key[fut.key]
                on_result(_summary(t, reason=f"Dask task failed ({type(exc).__name__}: "
                                             f"{exc})"[:2000]))
            fut.release()


# --------------------------------------------------------------------------- the batch

@dataclass
class BatchResult:
    out: Path
    results: list[dict[str, Any]]
    state: State
    seconds: float

    def counts(self) -> dict[str, int]:
        c = {"ok": 0, "skipped": 0, "failed": 0}
        for r in self.results:
            c[r["status"]] = c.get(r["status"], 0) + 1
        return c

    @property
    def failed(self) -> int:
        return self.counts()["failed"]


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One batch per DIR at a time: two would race on the state file."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    with open(out / LOCK_FILE, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise BatchError(f"{out} is in use by another forensics batch") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run_batch(source: str, out: Path, formats: tuple[str, ...] = ("html", "json"),
              workers: int | None = None, force: bool = False, executor: str = "local",
              scheduler: str | None = None, limits: dict[str, float] | None = None,
              on_start: Callable[[int, int], None] | None = None,
              on_result: OnResult | None = None) -> BatchResult:
    """Process every bundle ``source`` names into ``out``; see the module docstring.

    ``on_start(total, already_skipped)`` and ``on_result(summary)`` feed a progress display.
    """
    t0 = time.perf_counter()
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise BatchError(f"unknown report format(s): {', '.join(bad) or '(none)'} "
                         f"(use {', '.join(FORMATS)})")
    if executor not in ("local", "dask"):
        raise BatchError(f"unknown executor {executor!r} (use local or dask)")
    if executor == "dask" and not scheduler:
        raise BatchError("--executor dask needs --scheduler tcp://host:port")
    out = out.expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    sources = discover(source, exclude=[out])
    if not sources:
        raise BatchError(f"{source}: no bundles found (archives .tar.gz/.tgz/.tar/.zip, or "
                         f"folders holding {' or '.join(MANIFEST_NAMES)})")
    with _locked(out):
        state = State.load(out)
        keys = assign_keys(sources, state)
        results: list[dict[str, Any]] = []
        tasks: list[Task] = []
        for s in sources:
            entry = state.bundles.get(s.location)
            if not force and _fast_skip(s, entry):
                results.append({**entry, "status": "skipped", "reason": "unchanged file"})
                continue
            tasks.append(Task(s.location, keys[s.location], str(out), tuple(formats), force,
                              _known_hash(entry), s.fingerprint, dict(limits or {})))
        if on_start:
            on_start(len(sources), len(results))
        last_save = [time.monotonic()]

        def collect(summary: dict[str, Any]) -> None:
            state.record(summary)
            if summary["status"] == "skipped":  # show what the earlier run found
                summary = {**state.bundles.get(summary["source"], {}), **{
                    k: summary[k] for k in ("status", "reason", "source", "key")}}
            results.append(summary)
            if on_result:
                on_result(summary)
            if time.monotonic() - last_save[0] > 5:
                state.save()
                last_save[0] = time.monotonic()

        try:
            if tasks:
                if executor == "dask":
                    run_dask(tasks, scheduler or "", collect)
                else:
                    run_local(tasks, max(1, workers or os.cpu_count() or 1), collect)
        finally:
            state.save()
            shutil.rmtree(out / TMP_DIR, ignore_errors=True)
        write_bundles_table(out, state)
        write_index(out, state)
    return BatchResult(out, results, state, time.perf_counter() - t0)


# --------------------------------------------------------------------------- outputs

def ranked(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Worst first: severity, then the top call site's score, then the bundle name."""
    def level(e: dict[str, Any]) -> int:
        lv = e.get("severity_level")
        return -1 if lv is None else int(lv)

    return sorted(entries, key=lambda e: (-level(e), -(e.get("top_score") or 0.0),
                                          str(e.get("bundle_id") or e.get("key"))))


def write_bundles_table(out: Path, state: State) -> Path:
    """DIR/bundles.parquet: one row per bundle (status, reason, severity, ...) for SQL."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = ("key", "bundle_id", "source", "hostname", "pid", "status", "reason", "content_hash",
            "analyzer_version", "severity", "severity_level", "verdict", "findings",
            "call_sites", "top_site", "top_score", "captured_at", "warnings", "exit_code",
            "seconds", "finished_at")
    types = {"pid": pa.int64(), "severity_level": pa.int64(), "findings": pa.int64(),
             "call_sites": pa.int64(), "warnings": pa.int64(), "exit_code": pa.int64(),
             "top_score": pa.float64(), "seconds": pa.float64()}
    entries = list(state.bundles.values())
    arrays = {c: pa.array([e.get(c) for e in entries], type=types.get(c, pa.string()))
              for c in cols}
    arrays["bundle"] = arrays.pop("key")
    arrays["reports"] = pa.array([json.dumps(e.get("reports") or {}) for e in entries])
    path = out / BUNDLES_FILE
    tmp = out / f".{BUNDLES_FILE}.tmp"
    pq.write_table(pa.table(arrays), tmp)
    os.replace(tmp, path)
    return path


INDEX_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>forensics batch: {{ entries|length }} bundles</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5rem;color:#1d232b}
h1{font-size:1.35rem;margin:0 0 .3rem} p.meta{color:#5a6472;margin:0 0 1rem}
table{border-collapse:collapse;width:100%} th,td{padding:.35rem .55rem;text-align:left;
vertical-align:top;border-bottom:1px solid #e3e6ea} th{background:#f4f6f8;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums} code{font-size:12px;word-break:break-all}
.sev{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:12px;font-weight:600}
.critical{background:#7a0b0b;color:#fff}.high{background:#c62828;color:#fff}
.medium{background:#ef8f00;color:#fff}.low{background:#fbe7a1}.info{background:#dfe9f5}
.none{background:#e3f4e6}.failed{background:#555;color:#fff} .reason{color:#8a1c1c}
</style></head><body>
<h1>Capture bundles, worst first</h1>
<p class="meta">{{ counts.ok }} analyzed, {{ counts.failed }} failed &middot; analyzer
{{ version }} &middot; generated {{ generated }}</p>
<table><thead><tr><th>#</th><th>bundle</th><th>severity</th><th>verdict</th>
<th>top call site</th><th class="num">findings</th><th>captured</th><th>reports</th></tr>
</thead><tbody>
{% for e in entries %}<tr>
<td class="num">{{ loop.index }}</td>
<td>{{ e.bundle_id or e.key }}<br><code>{{ e.source }}</code></td>
{% if e.status == "failed" %}<td><span class="sev failed">failed</span></td>
<td class="reason" colspan="3">{{ e.reason }}</td>
{% else %}<td><span class="sev {{ e.severity if e.severity in severities else 'none' }}">
{{ e.severity or "none" }}</span></td><td>{{ e.verdict }}</td>
<td><code>{{ e.top_site }}</code></td><td class="num">{{ e.findings }}</td>{% endif %}
<td>{{ e.captured_at or "" }}</td>
<td>{% for fmt, href in (e.reports or {}).items() %}<a href="{{ href }}">{{ fmt }}</a>
{% endfor %}</td>
</tr>{% endfor %}
</tbody></table>
</body></html>
"""


def write_index(out: Path, state: State) -> Path:
    """DIR/index.html: every bundle ranked by severity, failed ones last, no network."""
    from jinja2 import Environment

    from .findings import SEVERITIES

    entries = [e for e in state.bundles.values() if e.get("status") != "failed"]
    failed = sorted((e for e in state.bundles.values() if e.get("status") == "failed"),
                    key=lambda e: str(e.get("key")))
    rows = [dict(e) for e in ranked(entries) + failed]
    for e in rows:  # only links that stay inside DIR/reports
        e["reports"] = {f: h for f, h in (e.get("reports") or {}).items()
                        if f in FORMATS and h == f"{REPORTS_DIR}/{e.get('key')}.{f}"}
    env = Environment(autoescape=True)
    html = env.from_string(INDEX_TEMPLATE).render(
        entries=rows, severities=SEVERITIES, version=__version__, generated=_now(),
        counts={"ok": len(entries), "failed": len(failed)})
    path = out / INDEX_FILE
    _write_text_atomic(path, html)
    return path


def parse_formats(text: str) -> tuple[str, ...]:
    fmts = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise BatchError(f"unknown report format(s): {', '.join(bad) or '(none)'} "
                         f"(use a comma-separated list of {', '.join(FORMATS)})")
    return fmts

