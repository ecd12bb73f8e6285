"""The legacy text heap profile (``/debug/pprof/heap?debug=1``, ``allocs?debug=1``) and
its relatives, into the same tables as :mod:`heap_pprof` (format ``text``).

Why a separate parser: customers paste this text into tickets and old services expose
only it. What it looks like::

    heap profile: 1: 24 [120369: 65498176] @ heap/1048576
    1: 24 [66654: 1599696] @ 0x454bb2 0x4545a5 0x49bda5 0x46d781
    #	0x49bda4	syscall.Setenv+0x1e4	/usr/local/go/src/syscall/env_unix.go:114
    ...
    # runtime.MemStats
    # Alloc = 2898784

- Header: in-use objects and bytes, [allocated objects and bytes], then the sampling:
  ``heap/2R`` (Go writes twice its MemProfileRate R), ``heap_v2/R`` and gperftools'
  ``heapz_v2/R`` (rate R). Records carry the same four numbers, *sampled*: they are
  unsampled here the way pprof does for this format (each count and byte pair scaled by
  ``1 / (1 - exp(-avg_size / R))``, truncated to an integer), so they compare with a
  protobuf profile's values, which the Go runtime already unsampled.
- ``#`` lines symbolize the record (innermost first); consecutive lines with the same pc
  are one location whose earlier lines were inlined into the last. Go leaves out the
  runtime's malloc frames there, so when ``#`` lines exist they are the stack; without
  them (old or C++ profiles) the ``@`` addresses are kept as ``0x...`` frames.
- Pastes turn tabs into spaces and may start with other text or carry another profile
  after this one (a SIGQUIT handler's output): the profile is read from its header to
  the next profile's header.
- Other legacy texts (``threadcreate profile: total N``, gperftools ``growthz``, lists of
  names) are refused with a ParseError that says what they are.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .base import NotUsed, ParseContext, ParseError, ParseResult, decode_text
from .heap_pprof import (
    HEAP_TYPES,
    LocationBuilder,
    Profile,
    Samples,
    build_stacks,
    heap_tables,
)

KIND = "heap_text"
TABLES = ("heap_samples", "stacks", "heap_profiles")
DESCRIPTION = "legacy text heap profile (heap?debug=1), with its runtime.MemStats trailer"

# Numbers are bounded to what fits an int64 (19 digits), and ASCII digits only.
_N = r"(\d{1,19})"
_SN = r"(-?\d{1,19})"
_HEADER = re.compile(
    rf"^[ \t]*heap profile:[ \t]*{_N}:[ \t]*{_N}[ \t]*\[[ \t]*{_N}:[ \t]*{_N}[ \t]*\]"
    rf"[ \t]*@[ \t]*([A-Za-z_0-9]*)(?:/{_N})?",
    re.M | re.ASCII,
)
_RECORD = re.compile(
    rf"[ \t]*{_SN}:[ \t]*{_SN}[ \t]*\[[ \t]*{_SN}:[ \t]*{_SN}[ \t]*\][ \t]*@(.*)", re.ASCII
)
_INT64 = 2**63 - 1
_OTHER_PROFILE = re.compile(r"^[ \t]*(\w+) profile: total \d+", re.M)
_NEXT_SECTION = re.compile(r"[ \t]*(?:\w+ profile: total \d+|goroutine \d+ \[|--- \w)")
_SYMBOL_OFFSET = re.compile(r"\+0x[0-9a-fA-F]+(?=\s)")
_MEMSTAT = re.compile(
    r"#[ \t]*(\w+)[ \t]*=[ \t]*(-?\d{1,30}(?:\.\d{1,30})?(?:[eE][-+]?\d{1,4})?)[ \t]*$", re.ASCII
)
_HEX = re.compile(r"0x[0-9a-fA-F]+")

#: Lines longer than this are skipped with a warning (bounded work per line).
MAX_LINE = 1 << 20
#: MemStats fields copied to meta (the rest are arrays or seldom useful).
MEMSTATS_KEPT = (
    "Alloc", "TotalAlloc", "Sys", "Mallocs", "Frees", "HeapAlloc", "HeapSys", "HeapIdle",
    "HeapInuse", "HeapReleased", "HeapObjects", "NextGC", "LastGC", "NumGC",
    "NumForcedGC", "GCCPUFraction", "MaxRSS",
)


def sniff(head: bytes, name: str) -> float:
    if not head or _is_binary(head):
        return 0.0
    text = decode_text(head)
    m = _HEADER.search(text)
    if m:
        # At the top it is ours; further down it is a section of some other dump.
        return 0.95 if not text[:m.start()].strip() else 0.5
    other = _OTHER_PROFILE.search(text)
    if other and other.group(1) == "threadcreate" and not text[:other.start()].strip():
        return 0.4  # claimed only to be refused with a clear reason
    return 0.0


# --------------------------------------------------------------------------- header

@dataclass
class Header:
    inuse_objects: int
    inuse_bytes: int
    alloc_objects: int
    alloc_bytes: int
    variant: str
    #: Sampling rate in bytes (0 = none); heap/2R means R.
    rate: int
    line: int


def _header(text: str) -> tuple[Header, int, int]:
    """The heap header and where it starts and ends, or a ParseError saying what the
    text is instead."""
    m = _HEADER.search(text)
    if m is None:
        message = _what_else(text)
        raise (NotUsed if "not used for leak analysis" in message else ParseError)(message)
    variant, n = m.group(5), m.group(6)
    if variant in ("growthz", "growth"):
        raise NotUsed("heap growth profile (gperftools growthz): lists where the heap "
                         "grew, not live objects; not used for leak analysis")
    if variant not in ("heap", "heap_v2", "heapz_v2", "heapz", "heapprofile"):
        raise ParseError(f"'heap profile' header with unknown sampling '{variant}'")
    rate = int(n) if n else 0
    if variant == "heap":
        rate //= 2
    head = Header(*(int(g) for g in m.group(1, 2, 3, 4)), variant=variant, rate=rate,
                  line=text.count("\n", 0, m.start()) + 1)
    return head, m.start(), m.end()


def _what_else(text: str) -> str:
    other = _OTHER_PROFILE.search(text)
    if other:
        kind = other.group(1)
        if kind == "goroutine":
            return ("goroutine profile text (debug=1), not a heap profile: the goroutines "
                    "parser reads it")
        return f"{kind} profile (legacy text): not a heap profile; not used for leak analysis"
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return (f"no 'heap profile:' header: not a legacy heap profile "
            f"(starts with {first[:60]!r})" if first else "empty file")


def unsample(count: np.ndarray, size: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Undo heap sampling: scale = 1 / (1 - exp(-avg / rate)), avg = size / count.

    A pair with a zero on either side stays zero (as pprof does), rate 0 or 1 means
    the profile was not sampled, and results are truncated toward zero.
    """
    count = np.asarray(count, np.int64)
    size = np.asarray(size, np.int64)
    zero = (count == 0) | (size == 0)
    if rate <= 1:
        return np.where(zero, 0, count), np.where(zero, 0, size)
    safe = np.where(zero, 1, count).astype(np.float64)
    avg = size / safe
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # 1 - exp(), not -expm1(): the same rounding as the reference, so truncation agrees
        scale = 1.0 / (1.0 - np.exp(-avg / float(rate)))
        c = np.where(zero, 0.0, count * scale)
        s = np.where(zero, 0.0, size * scale)
    limit = float(2**63 - 1024)
    c = np.clip(np.nan_to_num(c, nan=0.0, posinf=limit), -limit, limit)
    s = np.clip(np.nan_to_num(s, nan=0.0, posinf=limit), -limit, limit)
    return np.trunc(c).astype(np.int64), np.trunc(s).astype(np.int64)


def unsample_one(count: int, size: int, rate: int) -> tuple[int, int]:
    """Scalar reference of :func:`unsample` (the formula as written)."""
    if count == 0 or size == 0:
        return 0, 0
    if rate <= 1:
        return count, size
    scale = 1 / (1 - math.exp(-(size / count) / rate))
    return int(count * scale), int(size * scale)


# --------------------------------------------------------------------------- records

@dataclass
class _Record:
    values: tuple[int, int, int, int]  # inuse objects, inuse bytes, alloc objects, bytes
    addresses: list[str]
    line: int
    symbols: list[tuple[str, str, str, int]] = field(default_factory=list)  # pc fn file ln


def _symbol(body: str) -> tuple[str, str, str, int] | None:
    """``0xpc func+0xoff file:line`` (tabs or spaces) -> (pc, func, file, line).

    The function name may hold spaces (generic shapes), so it ends at the first
    ``+0x..`` offset; the file is what is left, up to the last ``:line``. Linear time.
    """
    parts = body.split(None, 1)
    if not parts or not _HEX.fullmatch(parts[0]):
        return None
    pc = parts[0].lower()
    if len(parts) == 1:
        return pc, pc, "", 0
    rest = parts[1]
    m = _SYMBOL_OFFSET.search(rest)
    if m is None:  # no offset: a bare name, maybe with a location
        func, _, where = rest.partition(" ")
    else:
        func, where = rest[:m.start()], rest[m.end():]
    file, sep, line = where.strip().rpartition(":")
    if not sep or not (line.isascii() and line.isdigit() and len(line) <= 18):
        file, line = where.strip(), "0"
    return pc, func.strip() or pc, file, int(line)


def _records(lines: list[str], first_line: int, result: ParseResult,
             ) -> tuple[list[_Record], dict[str, int | float]]:
    """Records and MemStats from the lines after the header."""
    records: list[_Record] = []
    memstats: dict[str, int | float] = {}
    in_memstats = False
    for i, raw in enumerate(lines):
        lineno = first_line + i
        if len(raw) > MAX_LINE:
            result.warn(f"line longer than {MAX_LINE} characters skipped", line=lineno)
            continue
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body = line[1:].strip()
            if body.startswith("runtime.MemStats"):
                in_memstats = True
            elif in_memstats:
                m = _MEMSTAT.match(line)
                if m:  # ints stay ints: LastGC (ns since 1970) does not fit a float
                    num = m.group(2)
                    memstats[m.group(1)] = float(num) if any(c in num for c in ".eE") \
                        else int(num)
            elif body.startswith("labels:"):
                continue
            elif records:
                sym = _symbol(body)
                if sym is None:
                    result.warn(f"unreadable symbol line: {line[:80]!r}", line=lineno)
                else:
                    records[-1].symbols.append(sym)
            continue
        m = _RECORD.match(line)
        if m:
            addrs = m.group(5).split()
            good = [a.lower() for a in addrs if _HEX.fullmatch(a)]
            if len(good) != len(addrs):
                result.warn("record with a malformed address list", line=lineno)
            vals = tuple(int(g) for g in m.group(1, 2, 3, 4))
            if any(abs(v) > _INT64 for v in vals):
                result.warn("record with a count beyond int64 skipped", line=lineno)
                continue
            records.append(_Record(vals, good, lineno))
            continue
        if _NEXT_SECTION.match(line):
            break  # another profile or dump follows this one
        if not in_memstats:
            result.warn(f"unrecognised line: {line[:80]!r}", line=lineno)
    return records, memstats


# --------------------------------------------------------------------------- tables

def _frames_of(rec: _Record) -> list[tuple[str, list[tuple[tuple[str, str], int]]]]:
    """Locations of one record, leaf first: (location key, frames innermost first)."""
    if not rec.symbols:
        return [(a, [((a, ""), 0)]) for a in rec.addresses]
    out: list[tuple[str, list[tuple[tuple[str, str], int]]]] = []
    for pc, func, file, line in rec.symbols:
        if out and out[-1][0] == pc:  # same pc: the earlier frames were inlined here
            out[-1][1].append(((func, file), line))
        else:
            out.append((pc, [((func, file), line)]))
    return out


def _build(records: list[_Record], header: Header, result: ParseResult) -> Profile:
    builder = LocationBuilder()
    loc_ids: dict[tuple, int] = {}
    flat: list[int] = []
    offsets = [0]
    for rec in records:
        for pc, frames in _frames_of(rec):
            key = (pc, tuple(frames))
            lid = loc_ids.get(key)
            if lid is None:
                lid = loc_ids[key] = len(loc_ids) + 1
                builder.add(lid, frames)
            flat.append(lid)
        offsets.append(len(flat))
    raw = np.array([r.values for r in records], np.int64).reshape(len(records), 4)
    inuse_n, inuse_b = unsample(raw[:, 0], raw[:, 1], header.rate)
    alloc_n, alloc_b = unsample(raw[:, 2], raw[:, 3], header.rate)
    values = np.stack([alloc_n, alloc_b, inuse_n, inuse_b], axis=1)
    samples = Samples(np.array(flat, np.uint64), np.array(offsets, np.int64), values)
    sid, stacks = build_stacks(samples, builder.build(), result)
    return Profile(
        kind="heap",
        sample_types=list(zip(HEAP_TYPES, ("count", "bytes", "count", "bytes"), strict=True)),
        period_type=("space", "bytes"), period=header.rate, time_nanos=None,
        duration_nanos=None, default_sample_type="", comments=[], samples=samples,
        stack_ids=sid, stacks=stacks,
    )


def _is_binary(data: bytes) -> bool:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text has NULs of its own
        return False
    return data.startswith(b"\x1f\x8b") or b"\x00" in data[:4096]


def parse(data: bytes, ctx: ParseContext) -> ParseResult:
    result = ParseResult()
    if _is_binary(data):
        raise ParseError("binary data (gzip, protobuf or a legacy binary profile), not a "
                         "text heap profile")
    text = decode_text(data)
    header, start, end = _header(text)
    if text[:start].strip():
        result.warn(f"heap profile starts at line {header.line}; the text before it was "
                    "skipped", line=header.line)
    body = text[end:].split("\n")
    records, memstats = _records(body[1:], header.line + 1, result)
    if header.variant not in ("heap", "heap_v2"):
        result.warn(f"not a Go heap profile ({header.variant}, e.g. gperftools/tcmalloc): "
                    "read as one, but its stacks are bare addresses")
    if header.rate == 0 and not records:
        result.warn("no samples: the heap sampling rate is 0 (MemProfileRate = 0)")
    prof = _build(records, header, result)
    result.tables = heap_tables(prof, fmt="text")
    result.meta.update({
        "format": "text",
        "profile_kind": "heap",
        "sample_types": prof.describe_types(),
        "period": header.rate,
        "samples": len(records),
        "header_totals": {
            "inuse_objects": header.inuse_objects, "inuse_space": header.inuse_bytes,
            "alloc_objects": header.alloc_objects, "alloc_space": header.alloc_bytes,
        },
        "sampling": header.variant,
    })
    kept = {k: v for k, v in memstats.items() if k in MEMSTATS_KEPT}
    if kept:
        result.meta["memstats"] = kept
    return result
