"""bundle -> members -> artifacts -> tables -> correlation -> findings -> ranked sites.

The one place that knows the order of the stages. Each stage is a plain function of the
previous stage's output, so tests, ``tables``, ``inspect`` and ``batch`` can stop wherever
they need. Nothing a customer sends may stop the whole run: a parser that fails leaves a
warning on its artifact and the other artifacts are analysed as usual.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from . import __version__
from .bundle import Bundle, BundleError, BundleWarning, Limits, read_bundle
from .inventory import Artifact, assign_times_and_rounds, cap_artifacts, identify
from .parsers import available, load
from .parsers.base import NotUsed, ParseContext, ParseError
from .schema import CONTEXT_FREE, Tables, concat, conform, conform_own
from .stacks import promote_main_module

# Exit codes, documented in the CLI help and README.
EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_WARNINGS = 3
EXIT_NOTHING_USABLE = 4


@dataclass
class Analysis:
    bundle: Bundle
    artifacts: list[Artifact]
    tables: Tables
    manifest: dict[str, Any] = field(default_factory=dict)
    warnings: list[dict[str, str]] = field(default_factory=list)
    findings: list[Any] = field(default_factory=list)
    call_sites: list[Any] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: Per-round series for trend charts: name -> {round: {label: value}}. Names:
    #: goroutines_by_state, sockets_by_state, conn_objects (live heap objects of
    #: connection-holding types by type), dbstats (in_use, open, idle, max_open, wait_count).
    series: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    version: str = __version__

    @property
    def usable(self) -> bool:
        return any(a.status in ("ok", "warning") and a.kind not in ("unknown", "manifest")
                   and a.result is not None for a in self.artifacts)

    def exit_code(self) -> int:
        if not self.usable:
            return EXIT_NOTHING_USABLE
        return EXIT_WARNINGS if self.warnings else EXIT_OK

    @property
    def rounds(self) -> list[int]:
        return sorted({a.round for a in self.artifacts if a.kind not in ("unknown",)})


Progress = Callable[[str, int, int], None]
PER_PROCESS_TABLES = frozenset({"fds", "limits"})


class _ParserTimeout(BaseException):
    """Raised by SIGALRM in a parser past its budget. A BaseException, so that a parser's
    own ``except Exception`` around a row cannot swallow it."""


@contextmanager
def _time_budget(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after ``seconds`` with :class:`_ParserTimeout`.

    A worker thread with a deadline cannot stop pure-Python code, but a signal handler
    runs between bytecodes, so SIGALRM can. Only the main thread of a POSIX process gets
    signals: elsewhere (Windows, Dask worker threads) the block runs without a budget.
    An outer ITIMER_REAL (e.g. pytest-timeout) is put back with its remaining time.
    """
    if (not seconds or seconds <= 0 or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    armed = [True]

    def on_alarm(signum: int, frame: object) -> None:
        if armed[0]:
            armed[0] = False
            raise _ParserTimeout

    old_handler = signal.signal(signal.SIGALRM, on_alarm)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:
            left = max(old_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


def parse_artifact(art: Artifact, pid: int | None = None, seconds: float | None = None) -> None:
    """Run the artifact's parser, turning every failure into a status and a message.

    ``pid`` is the service's pid when a manifest already told it: a listing such as
    ``ls -l /proc/PID/fd`` does not repeat it. ``seconds`` is the parser's time budget
    (see :func:`_time_budget`); running out of it fails the artifact with a message.
    """
    if art.kind == "unknown" or art.status == "failed":
        return
    mod = load(art.kind)
    ctx = ParseContext(path=art.path, pid=pid)
    try:
        with _time_budget(seconds):
            art.result = mod.parse(art.member.data, ctx)
    except _ParserTimeout:
        art.result = None
        art.status = "failed"
        art.message = (f"{art.kind} parser stopped after {seconds:g} s (per-parser time "
                       "budget, --parser-seconds); nothing of this artifact was used")
        return
    except NotUsed as exc:
        art.status, art.message = "ignored", str(exc)
        return
    except ParseError as exc:
        art.status, art.message = "failed", str(exc)
        return
    except RecursionError:
        art.status, art.message = "failed", "parser gave up: input nested too deeply"
        return
    except MemoryError:
        art.status, art.message = "failed", "parser ran out of memory on this artifact"
        return
    except Exception as exc:  # a parser bug: keep the rest of the bundle
        art.status = "failed"
        art.message = f"internal error in the {art.kind} parser ({type(exc).__name__}: {exc})"
        return
    warns = art.result.warnings
    if warns:
        art.status = "warning"
        first = warns[0]
        where = f" ({first.where()})" if first.where() else ""
        more = f" and {len(warns) - 1} more" if len(warns) > 1 else ""
        art.message = f"{first.message}{where}{more}"


def collect_tables(bundle: Bundle, arts: list[Artifact]) -> Tables:
    """Concatenate every artifact's tables, adding the common context columns.

    Nothing is copied that does not change: a heap profile's ``stacks`` table has a row
    per frame of every stack (10^7 rows for a big service). Stacks are shared by content
    hash, so a stack already listed by an earlier artifact is not listed again; each
    parser gives one row per (stack_id, depth) of its own stacks. The context columns
    are added once per table, not once per artifact (a bundle has dozens of artifacts),
    and parsers' frames are held to their own columns only until then.
    """
    parts: dict[str, list[tuple[Artifact, pd.DataFrame]]] = {}
    for a in arts:
        if a.result is None:
            continue
        for name, df in a.result.tables.items():
            if df is not None and len(df):
                own = conform(df, name) if name in CONTEXT_FREE else conform_own(df, name)
                parts.setdefault(name, []).append((a, own))
    tables = Tables()
    for name, items in parts.items():
        dfs = [df for _, df in items]
        if name == "stacks":
            dfs = new_stacks_only(dfs)
        df = concat(dfs, name)
        if name == "stacks":
            df = promote_main_module(df)
        if name not in CONTEXT_FREE:
            df = with_context(df, name, bundle, [(a, len(d)) for a, d in items])
        tables[name] = df
    tables["artifacts"] = artifacts_frame(bundle, arts)
    return tables


def with_context(df: pd.DataFrame, name: str, bundle: Bundle,
                 spans: list[tuple[Artifact, int]]) -> pd.DataFrame:
    """Rows of several artifacts, concatenated in ``spans`` order (artifact, rows), with
    bundle_id, round, captured_at and source in front (and the pid of per-process
    listings). The text columns are built by Arrow from one value per artifact, not a
    Python string per row (a 200k-row table has 200k rows of the same few values)."""
    lens = np.array([n for _, n in spans], np.int64)
    n = int(lens.sum())
    owner = np.repeat(np.arange(len(spans), dtype=np.int32), lens)  # artifact of each row
    times = pd.to_datetime([pd.Timestamp(a.captured_at) if a.captured_at else pd.NaT
                            for a, _ in spans], utc=True)
    context: dict[str, object] = {
        "bundle_id": _repeated_text([bundle.bundle_id], np.zeros(n, np.int32)),
        "round": pd.array(np.array([a.round for a, _ in spans], np.int64)[owner],
                          dtype="Int64"),
        "captured_at": times[owner].array,
        "source": _repeated_text([a.path for a, _ in spans], owner),
    }
    own = {col: df[col].array for col in df.columns if col not in context}
    # Only per-process listings inherit the artifact's pid: /proc/PID/net/tcp
    # lists the whole network namespace, not the process's own sockets.
    if name in PER_PROCESS_TABLES and "pid" in own:
        pids = pd.array([a.pid for a, _ in spans], dtype="Int64")
        own["pid"] = own["pid"].fillna(pids[owner])
    return pd.DataFrame({**context, **own}, index=pd.RangeIndex(n), copy=False)


def _repeated_text(values: list[str], index: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``values[index[i]]`` for every row as a pandas ``string`` array, gathered by Arrow."""
    return pd.arrays.ArrowStringArray(pa.array(values, pa.large_string()).take(index))


def new_stacks_only(dfs: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Each artifact's stacks minus those an earlier artifact already listed. Stacks are
    compared by their depth-0 rows (one per stack), not by all of their frames."""
    if len(dfs) < 2:
        return dfs
    seen = np.zeros(0, np.int64)
    out = []
    for k, df in enumerate(dfs):
        ids = df["stack_id"].to_numpy(dtype=np.int64, na_value=-1)[
            (df["depth"] == 0).to_numpy(dtype=bool, na_value=False)]
        listed = ids[np.isin(ids, seen)] if len(seen) else ids[:0]
        if len(listed):
            df = df[~df["stack_id"].isin(listed)].reset_index(drop=True)
            ids = np.setdiff1d(ids, listed)
        out.append(df)
        if k < len(dfs) - 1:
            seen = np.union1d(seen, ids)
    return out


def artifacts_frame(bundle: Bundle, arts: list[Artifact]) -> pd.DataFrame:
    rows = [{
        "bundle_id": bundle.bundle_id,
        "round": a.round,
        "captured_at": pd.Timestamp(a.captured_at) if a.captured_at else pd.NaT,
        "source": a.path,
        "path": a.path,
        "kind": a.kind,
        "pid": a.pid,
        "bytes": len(a.member.data),
        "status": a.status,
        "message": a.message,
        "time_source": a.time_source,
    } for a in arts]
    return conform(pd.DataFrame(rows), "artifacts")


def collect_warnings(bundle: Bundle, arts: list[Artifact]) -> list[dict[str, str]]:
    out = [{"path": w.path, "message": w.message} for w in bundle.warnings]
    for a in arts:
        if a.status in ("warning", "failed"):
            out.append({"path": a.path, "message": a.message or a.status})
    return out


def build_tables(source: str | Path, limits: Limits | None = None,
                 progress: Progress | None = None) -> Analysis:
    """Everything up to and including the joined tables (no detection)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    bundle = read_bundle(source, limits)
    timings["read"] = time.perf_counter() - t0
    parsers = available()
    limits = limits or Limits()
    arts = [identify(m, parsers) for m in bundle.members]
    cap_artifacts(arts, limits.max_artifacts)
    # The manifest first: its facts do not depend on anything else.
    arts.sort(key=lambda a: (a.kind != "manifest", a.path))
    t0 = time.perf_counter()
    pid = None
    for i, a in enumerate(arts):
        if progress:
            progress(a.path, i, len(arts))
        parse_artifact(a, pid, limits.parser_seconds)
        if a.kind == "manifest" and a.result is not None and pid is None:
            pid = a.result.meta.get("pid")
    timings["parse"] = time.perf_counter() - t0
    manifest = assign_times_and_rounds(arts)
    arts.sort(key=lambda a: (a.round, a.path))
    t0 = time.perf_counter()
    tables = collect_tables(bundle, arts)
    from .correlate import correlate

    try:
        series = correlate(tables, manifest)
    except Exception as exc:  # a join bug must not cost the parsed tables
        series = {}
        bundle.warnings.append(BundleWarning(
            "correlation", f"internal error joining sockets and fds: {type(exc).__name__}: "
                           f"{exc}; socket joins and peer roles are missing"))
    timings["tables"] = time.perf_counter() - t0
    return Analysis(bundle=bundle, artifacts=arts, tables=tables, manifest=manifest,
                    warnings=collect_warnings(bundle, arts), timings=timings, series=series)


def analyze(source: str | Path, limits: Limits | None = None,
            progress: Progress | None = None) -> Analysis:
    """The whole job: tables, then findings and ranked call sites."""
    analysis = build_tables(source, limits, progress)
    t0 = time.perf_counter()
    from .detect import detect

    detect(analysis)
    analysis.timings["detect"] = time.perf_counter() - t0
    return analysis


__all__ = ["Analysis", "BundleError", "analyze", "build_tables"]
