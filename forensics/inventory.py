"""Which member is which artifact, which capture round it belongs to, and when it was taken.

Customers lay bundles out every way there is: flat, a folder per round, a timestamp or a
round number in each name, a host-named top folder, with or without a manifest; and names
lie (``netstat.txt`` holding ``ss`` output). So a member's kind comes from its content first
(every parser's ``sniff``) and its name second, and its round from the best evidence there
is, in this order: the manifest, the folder or name it sits under, then time order.

Times, best source first: the manifest, the artifact's own clock (pprof ``time_nanos``), a
timestamp in the path, the archive member's mtime. ``time_source`` records which one won,
because a report built on mtimes should say so.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath
from types import ModuleType
from typing import Any

from .bundle import Member
from .parsers.base import ParseResult
from .timestamps import parse_time, time_in_text

SNIFF_BYTES = 64 * 1024
MIN_SCORE = 0.3
#: Kinds that describe the process rather than one moment: they join the nearest round
#: instead of opening a round of their own.
STATIC_KINDS = frozenset({"manifest", "limits"})

#: Names that promise an artifact: when content does not match, say so loudly instead of
#: silently ignoring what the engineer meant to send.
_NAME_HINTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"heap|alloc|\.pb(\.gz)?$|pprof", re.I), "heap profile"),
    (re.compile(r"gorout|stack|sigquit|traceback|dump|panic", re.I), "goroutine dump"),
    (re.compile(r"lsof", re.I), "lsof output"),
    (re.compile(r"(^|[^a-z])ss([^a-z]|$)|sockets?", re.I), "ss output"),
    (re.compile(r"netstat", re.I), "netstat output"),
    (re.compile(r"fd|limits|tcp", re.I), "/proc listing"),
    (re.compile(r"dbstat|db[-_.]?stats|pool", re.I), "db.Stats"),
    (re.compile(r"(capture|meta|manifest)[^/]*\.json$", re.I), "capture manifest"),
]

_ROUND_DIR = re.compile(
    r"^(?:round|rnd|r|capture|cap|run|snapshot|snap|iter|iteration|sample|t|pass)?[-_ ]?(\d{1,4})$",
    re.I,
)
_ROUND_NAME = re.compile(r"[._-](\d{1,3})(?=\.[A-Za-z]|$)")


@dataclass
class Artifact:
    member: Member
    kind: str
    score: float = 0.0
    status: str = "ok"
    message: str = ""
    round: int = 1
    captured_at: datetime | None = None
    time_source: str = "none"
    pid: int | None = None
    result: ParseResult | None = None
    group: Any = None
    hints: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.member.path


def identify(member: Member, parsers: list[ModuleType]) -> Artifact:
    """The artifact kind of one member: highest sniff score wins, ties to the earlier parser."""
    head = member.data[:SNIFF_BYTES]
    best, best_score = None, 0.0
    for mod in parsers:
        try:
            score = float(mod.sniff(head, member.name))
        except Exception:  # a sniffer bug must not lose the member
            score = 0.0
        if score > best_score:
            best, best_score = mod, score
    if best is None or best_score < MIN_SCORE:
        art = Artifact(member, "unknown", best_score)
        hint = next((label for rx, label in _NAME_HINTS if rx.search(member.name)), None)
        if not member.data.strip():
            art.status, art.message = "warning", "empty file"
        elif hint:
            art.status = "warning"
            art.message = (f"named like a {hint} but its content is not one we recognise "
                           f"(starts with {_preview(member.data)})")
        else:
            art.status, art.message = "ignored", "not a capture artifact we know"
        return art
    return Artifact(member, best.KIND, best_score)


def cap_artifacts(arts: list[Artifact], limit: int) -> None:
    """Leave only the first ``limit`` recognised artifacts (in path order) to be parsed.

    Each parse costs milliseconds even for a three-line file, so tens of thousands of
    tiny members that all look like dumps would take an hour; a real capture has a few
    per round. The rest fail with a message that names the limit, never silently.
    """
    known = sorted((a for a in arts if a.kind != "unknown" and a.status != "failed"),
                   key=lambda a: (a.kind != "manifest", a.path))
    for a in known[max(limit, 0):]:
        a.status = "failed"
        a.message = (f"not parsed: the bundle holds {len(known)} recognised artifacts and "
                     f"the first {limit} (in path order) are analysed (artifact limit, "
                     "--max-artifacts)")


def _preview(data: bytes) -> str:
    text = data[:40].decode("utf-8", "replace")
    text = "".join(c if c.isprintable() else "." for c in text)
    return repr(text)


def time_from_path(path: str) -> datetime | None:
    """The last timestamp written in a path (folder or file name), as UTC."""
    return time_in_text(path)


def round_hint(path: str) -> tuple[str, int | None]:
    """(folder key, round number or None) from where a member sits and how it is named."""
    p = PurePosixPath(path)
    parts = list(p.parts[:-1])
    number = None
    for part in reversed(parts):
        m = _ROUND_DIR.match(part)
        if m:
            number = int(m.group(1))
            break
    if number is None:
        found = _ROUND_NAME.findall(p.name)
        if found:
            number = int(found[-1])
    return "/".join(parts), number


def _manifest_entries(arts: list[Artifact]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Files named in manifests, keyed by their path as the manifest wrote it."""
    files: dict[str, dict[str, Any]] = {}
    meta: dict[str, Any] = {}
    for a in arts:
        if a.kind != "manifest" or a.result is None:
            continue
        meta = a.result.meta
        top = str(PurePosixPath(a.path).parent)
        for r in meta.get("rounds", []):
            for path, info in r["files"].items():
                entry = dict(info)
                entry["round"] = r["round"]
                entry.setdefault("captured_at", r.get("started_at"))
                key = path if top in ("", ".") else f"{top}/{path}"
                files[key] = entry
            if r.get("dir"):
                files.setdefault(("dir", r["dir"]), {"round": r["round"],  # type: ignore[index]
                                                     "captured_at": r.get("started_at")})
    return files, meta


def assign_times_and_rounds(arts: list[Artifact]) -> dict[str, Any]:
    """Fill ``round``, ``captured_at``, ``time_source`` and ``pid`` of every artifact.

    Returns the manifest's facts (pid, hostname, db_addresses), or {} when there is none.
    """
    files, manifest = _manifest_entries(arts)
    for a in arts:
        entry = files.get(a.path)
        if entry is None:
            for key, info in files.items():
                if isinstance(key, tuple) and f"/{key[1]}/" in f"/{a.path}":
                    entry = info
                    break
        meta = a.result.meta if a.result else {}
        t = parse_time(entry.get("captured_at")) if entry else None
        if t:
            a.captured_at, a.time_source = t, "manifest"
        elif meta.get("time_nanos"):
            a.captured_at = parse_time(int(meta["time_nanos"]))
            a.time_source = "content"
        elif (t := time_from_path(a.path)) is not None:
            a.captured_at, a.time_source = t, "path"
        elif a.member.mtime:
            a.captured_at = parse_time(a.member.mtime)
            a.time_source = "mtime"
        a.pid = meta.get("pid") or manifest.get("pid")
        folder, number = round_hint(a.path)
        if entry is not None and entry.get("round") is not None:
            a.group = ("manifest", int(entry["round"]))
        else:
            path_time = time_from_path(a.path)
            a.group = (folder, number if number is not None else
                       (path_time.isoformat() if path_time else None))
    _number_rounds(arts)
    return manifest


def _number_rounds(arts: list[Artifact]) -> None:
    groups: dict[Any, list[Artifact]] = defaultdict(list)
    for a in arts:
        groups[a.group].append(a)
    # A group holding two artifacts of one kind (flat folder, no hints) is several rounds
    # taken in time order: split it where a kind repeats.
    split: list[list[Artifact]] = []
    for members in groups.values():
        members.sort(key=lambda a: (a.captured_at or datetime.max.replace(tzinfo=timezone.utc),
                                    a.path))
        current: list[Artifact] = []
        slots: set[tuple] = set()
        for a in members:
            slot = _slot(a)
            repeat = slot in slots and a.kind != "unknown" and a.status != "failed"
            if repeat and current:
                split.append(current)
                current, slots = [], set()
            current.append(a)
            if a.status not in ("failed", "ignored"):
                slots.add(slot)
        if current:
            split.append(current)
    dynamic = [g for g in split if any(a.kind not in STATIC_KINDS and a.kind != "unknown"
                                       for a in g)]
    static = [g for g in split if g not in dynamic]
    dynamic.sort(key=_group_order)
    for n, g in enumerate(dynamic, start=1):
        for a in g:
            a.round = n
    for g in static:
        for a in g:
            a.round = _nearest_round(a, dynamic)


def _slot(a: Artifact) -> tuple:
    """What one round holds at most once: the kind, refined by variant, so that
    /proc/net/tcp beside tcp6, or a goroutine dump beside a goroutineleak profile, are
    not mistaken for two rounds."""
    if a.result is None:
        return (a.kind,)
    meta = a.result.meta
    protos: tuple = ()
    for name in ("sockets", "socket_summary"):
        df = a.result.tables.get(name)
        if df is not None and len(df) and "proto" in df.columns:
            protos += tuple(sorted({str(p) for p in df["proto"].dropna().unique()}))
    return (a.kind, meta.get("format"), meta.get("profile_kind"), protos)


def _group_order(g: list[Artifact]) -> tuple:
    manifest = next((a.group[1] for a in g if a.group and a.group[0] == "manifest"), None)
    times = sorted(a.captured_at for a in g if a.captured_at is not None)
    mid = times[len(times) // 2] if times else None
    number = next((a.group[1] for a in g if isinstance(a.group[1], int)), None)
    return (
        manifest if manifest is not None else 10**9,
        number if number is not None else 10**9,
        mid.timestamp() if mid else float("inf"),
        min(a.path for a in g),
    )


def _nearest_round(a: Artifact, dynamic: list[list[Artifact]]) -> int:
    if not dynamic:
        return 1
    if a.captured_at is None:
        return 1
    best, best_gap = 1, float("inf")
    for n, g in enumerate(dynamic, start=1):
        for b in g:
            if b.captured_at is not None:
                gap = abs((b.captured_at - a.captured_at).total_seconds())
                if gap < best_gap:
                    best, best_gap = n, gap
    return best
