"""Goroutine dumps -> the ``goroutines``, ``goroutine_leaks`` and ``stacks`` tables.

Why it is shaped this way:

- Goroutines parked on a connection are the most direct leak evidence there is, and customers
  send them in every form the runtime prints and every way a human mangles them. So the
  parser is tolerant line by line and strict only about what a frame is: a
  ``function(args)`` line followed by a ``file:line`` line. Junk between the two (a log
  line written in the middle of a dump) is skipped, never glued into a frame.
- A leaking service has 10^5 goroutines that share a handful of stacks. One regex pass
  finds the goroutine headers; each goroutine's block is cached on its text with the
  per-goroutine noise (arguments, frame pointers, the parent id) taken out, so each
  distinct stack is parsed and interned once and a 150 MB dump costs seconds.
- Nothing is dropped. The dumping goroutine (``runtime/pprof.writeGoroutineStacks``), runtime
  helpers and goroutine 0 stay in the table: which of them matter is for detection to say.

Formats (``result.meta["format"]``, also the ``format`` column):

``debug2``
    ``/debug/pprof/goroutine?debug=2``, ``runtime.Stack(buf, true)``. One goroutine per row,
    ``count`` = 1. Line kinds, in the order they are tried (after an optional log prefix):

    ==================  ==========================================================
    header              ``goroutine 7 [select, 171 minutes, locked to thread]:``
                        ``goroutine 1 gp=0xc000002380 m=nil [chan receive]:`` (1.22+)
                        ``goroutine 9 [chan receive (leaked)]:`` (Go 1.27)
    created by          ``created by database/sql.OpenDB in goroutine 1``
    elision             ``...additional frames elided...``, ``...50 frames elided...``
    ancestors           ``[originating from goroutine 24]:`` (GODEBUG=tracebackancestors;
                        the rest of the block is ignored, counted in meta)
    no stack            ``goroutine running on other thread; stack unavailable``
    function            ``database/sql.(*DB).conn(0xc0001, {0x9b3e60, 0xc000})``; ``(...)``
                        marks an inlined frame
    file                ``\\t/usr/local/go/src/database/sql/sql.go:1246 +0x87``, with
                        optional ``fp=0x.. sp=0x.. pc=0x..`` (panic traces); any indent
    ==================  ==========================================================

``panic``
    the same, inside a crash or signal trace (``panic:``, ``fatal error:``, ``SIGQUIT:``
    preamble, or ``gp=``/``fp=`` annotations).

``debug1``
    ``goroutine profile: total N`` then records ``K @ 0x..`` with ``#\\t0xpc\\tfunc+0xoff\\t
    file:line`` frames and ``# labels: {...}``. One row per record, ``count`` = K, no id,
    state or creator.

``goroutineleak``
    the Go 1.26+/1.27 ``goroutineleak profile: total N`` (debug=1 layout): goroutines the GC
    proved blocked forever. Fills ``goroutine_leaks`` only.

Pastes: tabs turned into spaces and any indentation are accepted; a log/CI prefix carried
by every line (``[2021-12-01T09:40:42.092Z] ``, ``10:47:33 web.1 | ``) is recognised from
the header lines and stripped; text glued before the first header is preamble; a tail cut
mid-frame keeps the complete frames and warns once. A paste that starts mid-goroutine
(frames before any header) becomes one row with a null ``goroutine_id``.

``signature_id`` (see :func:`signature_id`) buckets goroutines with the same stack, state
and creator; ``stack_id`` comes from :class:`~forensics.stacks.StackTable` (leaf first, the
``created by`` frame excluded).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import conform
from ..stacks import Frame, StackTable, text_hash
from ..timestamps import to_nanos
from . import logwrap
from .base import ParseContext, ParseError, ParseResult, decode_text

KIND = "goroutines"
TABLES = ("goroutines", "goroutine_leaks", "stacks")
DESCRIPTION = (
    "Go goroutine dumps: debug=2 / runtime.Stack / SIGQUIT and panic traces, debug=1 "
    "counted profiles, and the goroutineleak profile"
)

DEBUG2, DEBUG1, PANIC, LEAK = "debug2", "debug1", "panic", "goroutineleak"

_SNIFF_BYTES = 64 * 1024
_INT64_MAX = (1 << 63) - 1
#: Chunk size for normalizing big dumps in a worker thread (characters).
_CHUNK_CHARS = 4 << 20
#: Threads normalizing chunks (RE2 runs without the GIL; the parsing thread splits). RE2
#: takes longer per chunk than the split, so two keep the parsing thread fed on two cores.
_WORKERS = 2

# --- regular expressions (every one linear: literal anchors, bounded or disjoint classes) ---

#: A debug=2 goroutine header. Unanchored: a paste may glue text before it
#: (``...dumping all stacksgoroutine 1 [running]:``).
_HEADER = re.compile(
    r"goroutine (\d{1,19})((?: (?:gp|m|mp)=(?:0x[0-9a-fA-F]+|\d+|nil))*) \[([^\]\n]{0,256})\]:?"
)
#: A header, or the parent id ending a 1.21+ ``created by F in goroutine P`` line.
_SPLIT = re.compile(r"goroutine (?:" + _HEADER.pattern[len("goroutine "):] + r"|(\d{1,19})$)",
                    re.M)
#: ``goroutine profile: total 3259``, ``heap profile: 1: 2 [..]``: found by the literal
#: ``profile: ``, the kind is read from the 64 characters before it.
_PROFILE = re.compile(r"profile: (?:total (\d{1,19}))?")
_PROFILE_KIND = re.compile(r"(\w+) $")
#: A counted record: ``3251 @ 0x465940 0x478708 ...`` (tabs may have become spaces).
_RECORD = re.compile(r"^[ \t]*(\d{1,19}) @((?:[ \t]+0x[0-9a-fA-F]+)*)[ \t]*$", re.M)
#: A frame's location line, stripped: ``/src/net/net.go:183 +0xb1 fp=0x.. sp=0x.. pc=0x..``.
_FILE = re.compile(r"(.+):(\d{1,9})(?: \+0x[0-9a-fA-F]+)?(?: (?:fp|sp|pc)=0x[0-9a-fA-F]+)*")
#: Per-goroutine noise removed before blocks are cached: arguments and frame pointers.
#: Not ``(...)`` (it marks an inlined frame: args never start with a dot) nor ``()``.
_ARGS_RE2 = r"(?m)\([^().\n][^()\n]*\)$"
_FRAME_POINTERS = re.compile(r" fp=0x[0-9a-fA-F]+(?: sp=0x[0-9a-fA-F]+)?(?: pc=0x[0-9a-fA-F]+)?")
_MINUTES = re.compile(r"(\d{1,9}) minutes?")
_OFFSET = re.compile(r"\+0x[0-9a-fA-F]+$")
_BRACKETED = re.compile(r"\[[^\[\]]*\]|\{[^{}]*\}")
_PANIC_PREAMBLE = re.compile(
    r"^(?:panic: |fatal error: |SIG[A-Z]{2,8}: |unexpected fault address|unexpected signal"
    r"|runtime: )", re.M
)
_FRAGMENT_HINT = re.compile(r"^[^\s#][^\n]{0,2000}\)[ \t]*\n[ \t]+[^\n]{1,2000}:\d+ \+0x", re.M)
_SPLIT_PREFIX = re.compile(r"(\d+|[ \t]+)")

_FLAG_SUFFIXES = (("(leaked)", "leaked"), ("(scan)", "scan"), ("(durable)", "durable"))


class State(NamedTuple):
    """What a debug=2 header says besides the id."""

    state: str
    wait_minutes: int | None
    locked_to_thread: bool
    leaked: bool


@lru_cache(maxsize=8192)
def parse_state(bracket: str) -> State:
    """``"chan receive (leaked), 12 minutes, locked to thread"`` -> the wait reason only
    (``"chan receive"``) and the flags. Unknown comma items (``synctest group 6``) are
    ignored; the wait reason keeps its own parentheses (``chan receive (nil chan)``)."""
    items = [p.strip() for p in bracket.split(",")]
    state, minutes, locked, leaked = items[0], None, False, False
    for item in items[1:]:
        m = _MINUTES.fullmatch(item)
        if m:
            minutes = int(m.group(1))
        elif item == "locked to thread":
            locked = True
    stripped = True
    while stripped:
        stripped = False
        for suffix, flag in _FLAG_SUFFIXES:
            if state.endswith(suffix):
                state = state[: -len(suffix)].rstrip()
                leaked = leaked or flag == "leaked"
                stripped = True
    return State(" ".join(state.split()), minutes, locked, leaked)


def signature_id(state: str | None, stack_id: int | None, created_by: str | None) -> int:
    """Stable bucket id of goroutines with the same state, stack (frames by function, file
    and line; no arguments or offsets) and creator function."""
    return text_hash(f"{state or ''}\n{stack_id if stack_id is not None else ''}\n"
                     f"{created_by or ''}")


# --- sniffing ----------------------------------------------------------------------------


def sniff(head: bytes, name: str) -> float:
    if not head or head[:2] == b"\x1f\x8b":
        return 0.0
    if b"\x00" in head[:4096] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return 0.0
    text = decode_text(head[:_SNIFF_BYTES])
    if _HEADER.search(text) or "goroutine profile: total" in text:
        score = 0.95
    elif "goroutineleak profile: total" in text:
        score = 0.97
    elif _FRAGMENT_HINT.search(text) and "WARNING: DATA RACE" not in text:
        score = 0.35  # a stack pasted without its header
    else:
        return 0.0
    lowered = name.lower()
    if any(word in lowered for word in ("goroutine", "stack", "dump")):
        score += 0.02
    return min(score, 1.0)


# --- accumulated output ------------------------------------------------------------------


@dataclass
class _Out:
    """Counted rows (debug=1 records, leak records) as column lists, the shared stack
    table, and the signature cache. debug=2 rows live in :class:`_Debug2` until the end."""

    stacks: StackTable = field(default_factory=StackTable)
    g: dict[str, list] = field(default_factory=lambda: {c: [] for c in _G_COLS})
    leaks: dict[str, list] = field(default_factory=lambda: {c: [] for c in _L_COLS})
    sig_cache: dict[tuple, int] = field(default_factory=dict)

    def signature(self, state: str | None, stack_id: int | None, created_by: str | None) -> int:
        key = (state, stack_id, created_by)
        sig = self.sig_cache.get(key)
        if sig is None:
            sig = self.sig_cache[key] = signature_id(state, stack_id, created_by)
        return sig


_G_COLS = ("goroutine_id", "count", "state", "wait_minutes", "locked_to_thread", "leaked",
           "stack_id", "created_by", "created_by_file", "created_by_line",
           "parent_goroutine_id", "frames_elided", "signature_id", "labels", "format")
_L_COLS = ("count", "stack_id", "signature_id", "labels")
_INT_COLS = {"goroutine_id", "count", "wait_minutes", "stack_id", "created_by_line",
             "parent_goroutine_id", "signature_id"}
_BOOL_COLS = {"locked_to_thread", "leaked", "frames_elided"}


def _frame(cols: dict[str, list], table: str) -> pd.DataFrame:
    """Typed columns built directly: 63-bit ids must not pass through float."""
    data = {}
    for name, values in cols.items():
        if name in _INT_COLS:
            data[name] = _nullable(values, np.int64, pd.arrays.IntegerArray)
        elif name in _BOOL_COLS:
            data[name] = _nullable(values, np.bool_, pd.arrays.BooleanArray)
        else:
            data[name] = pd.Series(values, dtype=object).astype("string")
    return conform(pd.DataFrame(data), table)


def _nullable(values: list, dtype: type, array: type) -> pd.api.extensions.ExtensionArray:
    n = len(values)
    mask = np.fromiter((v is None for v in values), dtype=np.bool_, count=n)
    zero = dtype(0)
    data = np.fromiter((zero if v is None else v for v in values), dtype=dtype, count=n)
    return array(data, mask)


class _LineCounter:
    """Line numbers for warnings, counted incrementally (positions mostly increase)."""

    def __init__(self, text: str) -> None:
        self.text, self.pos, self.line = text, 0, 1

    def at(self, pos: int) -> int:
        if pos < self.pos:
            self.pos, self.line = 0, 1
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.line


# --- log prefixes ------------------------------------------------------------------------


def _generalize(prefix: str) -> str:
    """A regex for a log prefix seen on one line: digits and blanks vary line to line."""
    out = []
    for part in _SPLIT_PREFIX.split(prefix):
        if not part:
            continue
        if part[0].isdigit():
            out.append(r"\d+")
        elif part[0] in " \t":
            out.append(r"[ \t]+")
        else:
            out.append(re.escape(part))
    return "".join(out)


def _header_prefixes(text: str, limit: int = 2000) -> Counter:
    """Generalized text before each header on its line (``""`` when none)."""
    counts: Counter = Counter()
    positions = [m.start() for m in itertools.islice(_HEADER.finditer(text), limit)]
    for hdr in _profile_headers(text, 1 << 20):
        if hdr.kind in _COUNTED_KINDS:
            positions.append(hdr.kind_pos)
    for pos in positions:
        start = text.rfind("\n", 0, pos) + 1
        prefix = text[start:pos]
        if 0 < len(prefix.strip()) and len(prefix) <= 120:
            counts[_generalize(prefix)] += 1
        else:
            counts[""] += 1
    return counts


def strip_line_prefix(text: str) -> tuple[str, str | None]:
    """Remove a log/CI prefix carried by every line of a paste.

    The prefix is learnt from the header lines (the text before ``goroutine N [``), digits
    and blanks generalized, and accepted only when it starts at least half of the non-blank
    lines: text glued to a single header is preamble, not a prefix.
    """
    counts = _header_prefixes(text)
    if not counts:
        return text, None
    pattern, n = counts.most_common(1)[0]
    if not pattern or n * 2 < sum(counts.values()):
        return text, None
    prefix_re = re.compile(r"^" + pattern, re.M)
    stripped, hits = prefix_re.subn("", text)
    lines = text.count("\n") + 1
    blank = text.count("\n\n")
    if hits * 2 < max(1, lines - blank):
        return text, None
    return stripped, pattern


# --- debug=2 blocks ----------------------------------------------------------------------


@dataclass
class _Block:
    """One goroutine's stack as parsed from its (normalized) text; shared by the cache."""

    frames: tuple[Frame, ...] = ()
    created_by: str | None = None
    created_by_file: str | None = None
    created_by_line: int | None = None
    elided: bool = False
    unavailable: bool = False
    ancestors: int = 0
    truncated: bool = False
    warnings: list[tuple[int, str]] = field(default_factory=list)
    stack_id: int | None = None
    parent: int | None = None  # ``in goroutine P`` left in the block text (rare)


def _function(line: str) -> tuple[str, bool] | None:
    """``pkg.(*T).m(0x1, {...})`` -> (``pkg.(*T).m``, inlined?) or None if not a call line."""
    i = line.rfind("(")
    if i <= 0:
        return None
    name = line[:i].rstrip()
    if not name or name[0] in "#[(-=<>|*+!@/\\" or name.startswith("created by "):
        return None
    if " " in name or "\t" in name:
        # Generic shapes may hold spaces (``go.shape.struct { ... }``); prose may not.
        bare = name
        while True:
            nxt = _BRACKETED.sub("", bare)
            if nxt == bare:
                break
            bare = nxt
        if " " in bare or "\t" in bare:
            return None
    if ".(_" in name:
        # Markdown turned ``(*T)`` into ``(_T)`` in old pastes; ``(_`` never starts a Go
        # receiver, since only pointer receivers are parenthesized.
        name = re.sub(r"\.\(_(?=\w)", ".(*", name)
    return name, line[i:].rstrip() == "(...)"


def _location(line: str) -> tuple[str, int] | None:
    m = _FILE.fullmatch(line)
    if not m:
        return None
    path = m.group(1)
    # A real location ends in a file name with an extension (or the runtime's ``?`` and
    # ``<autogenerated>``); ``started at 07:33:28`` is not one.
    tail = path[-16:]
    if "." not in tail and path not in ("?", "<autogenerated>"):
        return None
    return path, int(m.group(2))


class _BlockParser:
    """The line state machine of one goroutine block (see the module docstring)."""

    def __init__(self, body: str, is_last: bool) -> None:
        self.body, self.is_last = body, is_last
        self.out = _Block()
        self.frames: list[Frame] = []
        self.pending: tuple[str, bool, int] | None = None  # function line awaiting its file
        self.creator_wait = -1  # line index of a ``created by`` awaiting its file line
        self.junk: list[int] = []
        self.blank_after_content = False
        self.completed = -1  # index of the last line that completed a frame or creator
        self.leading_junk = -1  # first unrecognised line before any frame

    def run(self) -> _Block:
        lines = self.body.split("\n")
        finished = False
        for idx, raw in enumerate(lines):
            if self._line(idx, raw.strip()):
                finished = True
                break
        self._close(lines, finished)
        self.out.frames = tuple(self.frames)
        if "[originating from goroutine" in self.body:
            self.out.ancestors = self.body.count("[originating from goroutine")
        return self.out

    def _warn(self, idx: int, message: str) -> None:
        if len(self.out.warnings) < 5:
            self.out.warnings.append((idx, message))

    def _flush_pending(self, why: str) -> None:
        fn, inlined, idx = self.pending  # type: ignore[misc]
        self.frames.append(Frame(fn, "", None, inlined))
        self._warn(idx, f"frame {fn!r} has no file:line ({why})")
        self.pending = None

    def _line(self, idx: int, s: str) -> bool:
        """Consume one stripped line; True when the goroutine's block is complete."""
        if not s:
            if self.frames or self.pending:
                self.blank_after_content = True
            return False
        if self.creator_wait >= 0:
            return self._creator_location(idx, s)
        if s.startswith("created by "):
            if self.pending:
                self._flush_pending("followed by 'created by'")
            self._creator(s[len("created by "):].strip())
            self.creator_wait = idx
            return False
        if s.startswith("...") and "elided" in s:
            self.out.elided = True
            return False
        if s.startswith("[originating from goroutine") or s == "runtime stack:":
            return True
        if s.startswith("goroutine running on other thread"):
            self.out.unavailable = True
            return False
        if s.startswith("-----") and "stack segment boundary" in s:
            return False
        if s.endswith(")"):
            fn = _function(s)
            if fn is not None:
                if self.pending:
                    self._flush_pending("next line is another function")
                self.pending = (fn[0], fn[1], idx)
                self.blank_after_content = False
                return False
        loc = _location(s) if self.pending else None
        if loc is not None:
            fn, inlined, _ = self.pending  # type: ignore[misc]
            self.frames.append(Frame(fn, loc[0], loc[1], inlined))
            self.pending = None
            self.completed = idx
            if self.junk:
                self._warn(self.junk[0], f"{len(self.junk)} unrecognised line(s) inside a "
                           "stack skipped")
                self.junk.clear()
            self.blank_after_content = False
            return False
        if self.blank_after_content:
            return True  # trailer after the stack: exit status, registers, other profiles
        if self.frames or self.pending:
            self.junk.append(idx)
        elif self.leading_junk < 0:
            self.leading_junk = idx
        return False

    def _creator(self, name: str) -> None:
        if name.endswith(" in"):  # ``in goroutine P`` was split off by _SPLIT
            name = name[:-3].rstrip()
        else:
            head, sep, digits = name.rpartition(" in goroutine ")
            if sep and digits.isdigit() and len(digits) <= 18:
                name, self.out.parent = head, int(digits)
        self.out.created_by = name or None

    def _creator_location(self, idx: int, s: str) -> bool:
        loc = _location(s)
        if loc is not None:
            self.out.created_by_file, self.out.created_by_line = loc
            self.completed = idx
        else:
            self._warn(self.creator_wait, "'created by' line has no file:line")
        self.creator_wait = -1
        return True

    def _close(self, lines: list[str], finished: bool) -> None:
        at_end = not finished
        unterminated = self.is_last and not self.body.endswith("\n")
        if self.pending:
            if self.is_last and at_end:
                self.out.truncated = True  # cut mid-frame: keep only complete frames
                self.pending = None
            else:
                self._flush_pending("end of block")
        if self.creator_wait >= 0:
            if self.is_last and at_end:
                self.out.truncated = True
                if unterminated and self.creator_wait == len(lines) - 1:
                    self.out.created_by = None  # the name itself may be cut
            else:
                self._warn(self.creator_wait, "'created by' line has no file:line")
        if at_end and unterminated and lines[-1].strip() and self.completed != len(lines) - 1:
            self.out.truncated = True  # the text stops inside a line
        if not self.frames and self.leading_junk >= 0 and not self.out.truncated:
            self._warn(self.leading_junk, "no frame recognised in this goroutine's block")


# --- debug=2 driver ----------------------------------------------------------------------


def _split_parent(body: str) -> tuple[str, int | None]:
    """Take the 1.21+ ``in goroutine P`` out of the first ``created by`` line (for texts
    that do not go through :data:`_SPLIT`, such as a headerless fragment)."""
    i = body.find("created by ")
    if i < 0:
        return body, None
    eol = body.find("\n", i)
    if eol < 0:
        eol = len(body)
    j = body.rfind(" in goroutine ", i, eol)
    if j < 0:
        return body, None
    digits = body[j + len(" in goroutine "):eol].strip()
    if not digits.isdigit() or len(digits) > 18:
        return body, None
    return body[:j] + body[eol:], int(digits)


def _bounded(digits: str) -> int | None:
    value = int(digits)
    return value if value <= _INT64_MAX else None


def _starts_last_line(text: str, prefix: str) -> bool:
    """Whether the last line of ``text``, indentation aside, starts with ``prefix``."""
    start = text.rfind("\n") + 1
    if text.startswith(prefix, start):  # the usual case: no copy of the line
        return True
    return text[start:].lstrip().startswith(prefix)


def _normalize(text: str) -> tuple[str, bool]:
    """One chunk without the per-goroutine noise, by RE2 (pyarrow): it runs without the
    GIL, so the next chunk is cleaned while this thread splits the previous one. Also
    says whether the chunk had frame pointers (``fp=0x``: a panic or crash trace)."""
    chunk = pa.array([text], pa.large_string())
    chunk = pc.replace_substring_regex(chunk, _ARGS_RE2, "()")
    frame_pointers = pc.any(pc.match_substring(chunk, " fp=0x")).as_py()
    if frame_pointers:
        chunk = pc.replace_substring_regex(chunk, _FRAME_POINTERS.pattern, "")
    return chunk[0].as_py(), frame_pointers


def _normalized_chunks(text: str) -> Iterator[tuple[str, bool]]:
    """``text`` in line-aligned chunks, each normalized by :func:`_normalize` in one of
    ``_WORKERS`` threads, that many chunks ahead of the consumer. The patterns never cross
    a line end, so chunk by chunk is the same as the whole text at once."""
    if len(text) <= _CHUNK_CHARS:  # one chunk: no thread
        yield _normalize(text)
        return

    def cuts() -> Iterator[tuple[int, int]]:
        start = 0
        while start < len(text):
            end = text.find("\n", start + _CHUNK_CHARS)
            end = len(text) if end < 0 else end + 1
            yield start, end
            start = end

    with ThreadPoolExecutor(_WORKERS, thread_name_prefix="goroutines-normalize") as pool:
        ahead: deque[Future[tuple[str, bool]]] = deque()
        for a, b in cuts():
            ahead.append(pool.submit(_normalize, text[a:b]))
            if len(ahead) > _WORKERS:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


class _Debug2:
    """Splits a text into goroutines, parses each distinct block once, emits the rows.

    ``_SPLIT`` cuts the text at every header *and* at every ``goroutine P`` ending a line,
    so ``re.split`` hands back columns: per cut, the id (headers) or parent digits (markers)
    and the text up to the next cut. A goroutine is a header cut and the marker cuts up to
    the next header; its block is the tuple of its pieces with the usual parent marker taken
    out, and that tuple is the cache key. Ids and header brackets are taken column-wise;
    the loop per goroutine only looks its key up, and parsing happens on a cache miss.
    """

    def __init__(self, chunks: Iterable[tuple[str, bool]], out: _Out, result: ParseResult,
                 fmt: str) -> None:
        """``chunks``: normalized text, and whether it had frame pointers; ``fmt``: the
        format, unless frame pointers make it a panic trace."""
        self.chunks, self.out, self.result, self.fmt = chunks, out, result, fmt
        self.frame_pointers = False
        # Distinct blocks and header brackets; every goroutine is a row of four parallel
        # lists (block index, bracket index or -1, id digits or None, parent or None), so
        # the columns are gathered from the distinct values.
        self.cache: dict[str | tuple[str, ...], int] = {}
        self.blocks: list[_Block] = []
        self.brackets: dict[str, int] = {}
        self.row_block: list[int] = []
        self.row_bracket: list[int] = []
        self.row_id: list[str | None] = []
        self.row_parent: list[int | None] = []
        self.parts: list[str | None] = []
        self.lines_upto = (0, 0)  # (parts index, newlines before it): lazy, for warnings
        self.ancestors = 0
        self.truncated = False
        # A piece followed by a ``goroutine P`` cut: whether P is the usual parent id
        # (the piece ends the block's first ``created by F in``). Pieces repeat.
        self.ends_creator: dict[str, bool] = {}

    def run(self) -> None:
        parts = self.parts = self._split()
        gids, brackets, markers, pieces = parts[1::5], parts[3::5], parts[4::5], parts[5::5]
        heads = [r for r, gid in enumerate(gids) if gid is not None]  # header cuts
        # Text before the first header, with any marker cuts in it.
        self._preamble_cuts(heads[0] if heads else len(gids), last=not heads)
        if not heads:
            self.parts = []
            return
        heads.append(len(gids))
        blocks, parents = self.row_block, self.row_parent  # after a preamble row, if any
        cache, ends_creator = self.cache, self.ends_creator
        for k in range(len(heads) - 2):  # the last goroutine may be cut: parsed apart
            h, nxt = heads[k], heads[k + 1]
            if nxt == h + 1:  # no marker: the block is one piece
                key: str | tuple[str, ...] = pieces[h]
                parent = None
                bi = cache.get(key)
            elif nxt == h + 2:  # one marker: the usual ``created by F in goroutine P``?
                key = (pieces[h], pieces[h + 1])
                digits = markers[h + 1]
                parent = int(digits) if len(digits) < 19 else _bounded(digits)
                bi = cache.get(key)  # a pair is cached only once known to be the usual
                if bi is None and not self._ends_creator(pieces[h], ends_creator):
                    bi = -1
            else:
                bi = -1
            if bi == -1:  # irregular cuts: assembled one by one
                bi, parent = self._irregular(h, nxt)
            elif bi is None:
                bi = cache[key] = self._add_block(
                    self._block("".join(key) if isinstance(key, tuple) else key, False,
                                1 + 5 * h))
            blocks.append(bi)
            parents.append(parent)
        last = self._irregular(heads[-2], heads[-1], last=True)
        blocks.append(last[0])
        parents.append(last[1])
        del heads[-1]
        self.row_id.extend(gids[h] for h in heads)
        column = [brackets[h] for h in heads]
        seen = self.brackets = {b: i for i, b in enumerate(dict.fromkeys(column))}
        self.row_bracket.extend([seen[b] for b in column])
        self.parts = []

    def _split(self) -> list[str | None]:
        """``_SPLIT.split`` of the whole text, chunk by chunk: the text before a chunk's
        first cut continues the last piece of the previous chunk."""
        parts: list[str | None] = []
        for chunk, frame_pointers in self.chunks:
            self.frame_pointers = self.frame_pointers or frame_pointers
            cut = _SPLIT.split(chunk)
            if parts:
                parts[-1] += cut[0]  # type: ignore[operator]
                parts.extend(itertools.islice(cut, 1, None))
            else:
                parts = cut
        self.chunks = ()
        return parts or [""]

    @staticmethod
    def _ends_creator(piece: str, memo: dict[str, bool]) -> bool:
        """Whether ``piece`` ends a ``created by F in`` line (its ``goroutine P`` cut is
        the parent id, not text)."""
        known = memo.get(piece)
        if known is None:
            known = memo[piece] = piece.endswith(" in ") and \
                _starts_last_line(piece, "created by ")
        return known

    def _assemble(self, start: int, stop: int) -> tuple[list[str], int | None]:
        """The pieces of cuts ``start..stop`` (a header's piece, then marker cuts): the first
        ``created by F in`` marker is the parent id, any other goes back into the text."""
        pieces: list[str] = [self.parts[5 + 5 * start] if start >= 0 else self.parts[0]]
        parent: int | None = None
        for r in range(start + 1, stop):
            digits, piece = self.parts[4 + 5 * r], self.parts[5 + 5 * r]
            if parent is None and self._ends_creator(pieces[-1], self.ends_creator):
                pieces.append(piece)
                parent = _bounded(digits)
            else:
                pieces.append("goroutine " + digits)
                pieces.append(piece)
        return pieces, parent

    def _irregular(self, start: int, stop: int, last: bool = False) -> tuple[int, int | None]:
        """A goroutine whose cuts are not the usual ones, or the last one (never cached:
        a tail may be cut, and must not share its parse with complete blocks)."""
        pieces, parent = self._assemble(start, stop)
        key: str | tuple[str, ...] = pieces[0] if len(pieces) == 1 else tuple(pieces)
        bi = None if last else self.cache.get(key)
        if bi is None:
            bi = self._add_block(self._block("".join(pieces), last, 1 + 5 * start))
            if not last:
                self.cache[key] = bi
        return bi, parent

    def _preamble_cuts(self, stop: int, last: bool) -> None:
        """Text before the first header: the preamble piece and the cuts before ``stop``."""
        pieces, _ = self._assemble(-1, stop)
        self._preamble("".join(pieces), last)

    def _add_block(self, blk: _Block) -> int:
        self.blocks.append(blk)
        return len(self.blocks) - 1

    def _line_of(self, at: int) -> int:
        """1-based line where parts[at] starts (counted lazily: warnings only)."""
        done, newlines = self.lines_upto
        if at < done:
            done, newlines = 0, 0
        for part in self.parts[done:at]:
            if part:
                newlines += part.count("\n")
        self.lines_upto = (at, newlines)
        return newlines + 1

    def _block(self, body: str, last: bool, at: int) -> _Block:
        blk = _BlockParser(body, last).run()
        if blk.frames:
            blk.stack_id = self.out.stacks.intern(blk.frames)
        self.ancestors += blk.ancestors
        self.truncated = self.truncated or blk.truncated
        if blk.warnings and len(self.result.warnings) < 50:
            base = self._line_of(at)
            for idx, message in blk.warnings:
                self.result.warn(message, line=base + idx)
        return blk

    def _preamble(self, head: str, last: bool) -> None:
        """Frames before the first header: a paste that starts mid-goroutine."""
        first = next((ln.strip() for ln in head.split("\n", 200)[:200] if ln.strip()), "")
        starts_mid_stack = first.startswith("created by ") or (
            first.endswith(")") and _function(first) is not None) or _location(first)
        if not starts_mid_stack or "WARNING: DATA RACE" in head:
            return
        body, parent = _split_parent(head)
        blk = self._block(body, last, 0)
        if blk.frames:
            self.result.warn("stack without a goroutine header (the paste starts "
                             "mid-goroutine): kept as one goroutine with no id", line=1)
            self.row_block.append(self._add_block(blk))
            self.row_bracket.append(-1)
            self.row_id.append(None)
            self.row_parent.append(parent)

    def __len__(self) -> int:
        return len(self.row_block)

    def frame(self) -> pd.DataFrame:
        """The ``goroutines`` rows: per-row indices into the distinct blocks and header
        states, gathered column by column (no Python work per goroutine)."""
        n = len(self.row_block)
        blk = np.fromiter(self.row_block, np.int64, n)
        st = np.fromiter(self.row_bracket, np.int64, n)
        has_st = st >= 0
        st_at = np.where(has_st, st, 0)
        states = [parse_state(b) for b in self.brackets] or [State("", None, False, False)]
        blocks = self.blocks

        def per_block(values: list, dtype: type) -> np.ndarray:
            return np.array(values, dtype=dtype)[blk]

        def per_state(values: list, dtype: type) -> np.ndarray:
            return np.array(values, dtype=dtype)[st_at]

        sid = [b.stack_id for b in blocks]
        line = [b.created_by_line for b in blocks]
        minutes = [s.wait_minutes for s in states]
        return pd.DataFrame({
            "goroutine_id": _ids(self.row_id),
            "count": pd.arrays.IntegerArray(np.ones(n, np.int64), np.zeros(n, bool)),
            "state": _take_strings([s.state for s in states], st_at, ~has_st),
            "wait_minutes": pd.arrays.IntegerArray(
                per_state([m or 0 for m in minutes], np.int64),
                ~has_st | per_state([m is None for m in minutes], bool)),
            "locked_to_thread": pd.arrays.BooleanArray(
                per_state([s.locked_to_thread for s in states], bool), ~has_st),
            "leaked": pd.arrays.BooleanArray(per_state([s.leaked for s in states], bool),
                                             ~has_st),
            "stack_id": pd.arrays.IntegerArray(per_block([x or 0 for x in sid], np.int64),
                                               per_block([x is None for x in sid], bool)),
            "created_by": _take_strings([b.created_by for b in blocks], blk),
            "created_by_file": _take_strings([b.created_by_file for b in blocks], blk),
            "created_by_line": pd.arrays.IntegerArray(
                per_block([x or 0 for x in line], np.int64),
                per_block([x is None for x in line], bool)),
            "parent_goroutine_id": self._parents(blk),
            "frames_elided": pd.arrays.BooleanArray(per_block([b.elided for b in blocks], bool),
                                                    np.zeros(n, bool)),
            "signature_id": self._signatures(blk, st, states),
            "format": _take_strings([self.fmt], np.zeros(n, np.int64)),
        }, copy=False)

    def _parents(self, blk: np.ndarray) -> pd.arrays.IntegerArray:
        """The ``in goroutine P`` of each row, else the one its block text kept."""
        parents = pd.array(self.row_parent, dtype="Int64")
        kept = [b.parent for b in self.blocks]
        if any(p is not None for p in kept):
            from_block = _nullable(kept, np.int64, pd.arrays.IntegerArray)[blk]
            parents = parents.fillna(from_block) if parents.isna().any() else parents
        return parents

    def _signatures(self, blk: np.ndarray, st: np.ndarray, states: list[State],
                    ) -> pd.arrays.IntegerArray:
        """:func:`signature_id` once per distinct (header state, block) pair."""
        pair = st * len(self.blocks) + blk + len(self.blocks)  # st = -1 stays distinct
        uniq, inverse = np.unique(pair, return_inverse=True)
        sigs = []
        for p in uniq.tolist():
            s, b = divmod(p - len(self.blocks), len(self.blocks))
            block = self.blocks[b]
            state = states[s].state if s >= 0 else None
            sigs.append(self.out.signature(state, block.stack_id, block.created_by))
        values = np.array(sigs, dtype=np.int64)[inverse.reshape(-1)]
        return pd.arrays.IntegerArray(values, np.zeros(len(values), bool))

    def repeated_ids(self, ids: pd.Series) -> int:
        return int(ids.dropna().duplicated().sum())

    def unavailable(self) -> int:
        """Goroutines printed as ``goroutine running on other thread; stack unavailable``."""
        flags = np.array([b.unavailable for b in self.blocks] or [False], bool)
        return int(flags[np.fromiter(self.row_block, np.int64, len(self.row_block))].sum())


def _ids(digits: list[str | None]) -> pd.arrays.IntegerArray:
    """Goroutine ids from their header digits; None (no header, or beyond int64) is null."""
    n = len(digits)
    try:
        values = np.array(digits, dtype=np.int64) if n else np.zeros(0, np.int64)
        return pd.arrays.IntegerArray(values, np.zeros(n, bool))
    except (TypeError, ValueError, OverflowError):  # a None or a 19-digit id: one by one
        ints = [int(d) if d is not None and int(d) <= _INT64_MAX else None for d in digits]
        return _nullable(ints, np.int64, pd.arrays.IntegerArray)


def _take_strings(values: list[str | None], index: np.ndarray,
                  mask: np.ndarray | None = None) -> pd.api.extensions.ExtensionArray:
    """A string column: the distinct ``values`` gathered by ``index`` (null where
    ``mask``), built in Arrow rather than as one Python string per row."""
    arr = pa.array(values or [None], pa.large_string())
    taken = arr.take(pa.array(index, mask=mask))
    return pd.array(taken, dtype="string")


# --- debug=1 and goroutineleak -----------------------------------------------------------


def _counted_frame(s: str) -> Frame | None:
    """``#\\t0x4d5277\\tdatabase/sql.(*DB).connectionOpener+0xe7\\t/src/sql.go:1052``, also
    with the tabs turned into spaces or the ``#`` lost."""
    if s.startswith("#"):
        s = s[1:]
    if "\t" in s:
        parts = [p.strip() for p in s.split("\t") if p.strip()]
    else:
        parts = s.split()
    if len(parts) < 3 or not parts[0].startswith("0x"):
        return None
    rest = parts[1:]
    j = next((k for k in range(len(rest) - 2, -1, -1) if _OFFSET.search(rest[k])), 0)
    function = _OFFSET.sub("", " ".join(rest[: j + 1]))
    location = " ".join(rest[j + 1:])
    path, _, line = location.rpartition(":")
    if not function or not path or not line.isdigit() or len(line) > 9:
        return None
    return Frame(function, path, int(line), False)


_COUNTED_KINDS = ("goroutine", "goroutineleak")


class _ProfileHeader(NamedTuple):
    kind: str
    total: int | None  # None: a profile without ``total`` (``heap profile: 1: 2 [..]``)
    kind_pos: int
    body_start: int


def _profile_headers(text: str, stop: int | None = None) -> Iterator[_ProfileHeader]:
    """Every ``<kind> profile: ...`` header, in order (up to ``stop`` bytes)."""
    for m in _PROFILE.finditer(text, 0, len(text) if stop is None else min(stop, len(text))):
        window = text[max(0, m.start() - 64):m.start()]
        km = _PROFILE_KIND.search(window)
        if km is None:
            continue
        eol = text.find("\n", m.end())
        total = int(m.group(1)) if m.group(1) else None
        yield _ProfileHeader(km.group(1), total, m.start() - len(window) + km.start(),
                             len(text) if eol < 0 else eol + 1)


@dataclass
class _Section:
    kind: str  # "goroutine" or "goroutineleak"
    total: int
    start: int  # first byte after the header line
    end: int
    line: int


def _sections(text: str) -> list[_Section]:
    """Every goroutine/goroutineleak ``profile: total N`` section. Other profiles in the
    same stream (heap, threadcreate) only end the section before them."""
    if "profile: " not in text:  # a plain debug=2 dump: no need for the regex scan
        return []
    headers = list(_profile_headers(text))
    lines = _LineCounter(text)
    out = []
    for k, hdr in enumerate(headers):
        if hdr.kind not in _COUNTED_KINDS or hdr.total is None:
            continue
        end = headers[k + 1].kind_pos if k + 1 < len(headers) else len(text)
        out.append(_Section(hdr.kind, hdr.total, hdr.body_start, max(hdr.body_start, end),
                            lines.at(hdr.kind_pos)))
    return out


class _Counted:
    """Records of debug=1 goroutine and goroutineleak profiles."""

    def __init__(self, text: str, out: _Out, result: ParseResult) -> None:
        self.text, self.out, self.result = text, out, result
        self.lines = _LineCounter(text)
        self.records = {"goroutine": 0, "goroutineleak": 0}
        self.totals = {"goroutine": 0, "goroutineleak": 0}
        self.sections = {"goroutine": 0, "goroutineleak": 0}
        self.truncated = False

    def run(self, sections: list[_Section]) -> None:
        for sec in sections:
            self.sections[sec.kind] += 1
            counted = self._section(sec)
            if counted == 0 and sec.total > 0:
                self.result.warn(f"'{sec.kind} profile: total {sec.total}' has no records "
                                 "(an empty or repeated header)", line=sec.line)
                continue
            self.totals[sec.kind] += sec.total
            if counted != sec.total:
                self.result.warn(f"records of '{sec.kind} profile: total {sec.total}' add up to "
                                 f"{counted} (excerpt or truncated paste?)", line=sec.line)

    def _section(self, sec: _Section) -> int:
        body = self.text[sec.start:sec.end]
        recs = list(_RECORD.finditer(body))
        counted = 0
        for k, rec in enumerate(recs):
            rec_end = recs[k + 1].start() if k + 1 < len(recs) else len(body)
            if rec_end == len(body) and sec.end == len(self.text) and \
                    not body.endswith("\n") and "\n" not in body[rec.end():]:
                self.truncated = True  # the ``K @ 0x..`` line itself is cut
                continue
            counted += self._record(sec.kind, rec, body[rec.end():rec_end],
                                    sec.start + rec.start(),
                                    sec.start + rec_end == len(self.text))
        return counted

    def _record(self, kind: str, rec: re.Match, chunk: str, pos: int,
                at_text_end: bool) -> int:
        count = int(rec.group(1))
        pcs = len(rec.group(2).split())
        labels, frames, junk = None, [], 0
        rows = chunk.split("\n")
        for i, raw in enumerate(rows):
            s = raw.strip()
            if not s:
                continue
            if s.startswith("# labels:"):
                labels = s[len("# labels:"):].strip()
                continue
            fr = _counted_frame(s)
            if fr is not None:
                frames.append(fr)
            elif i == len(rows) - 1 and at_text_end and not self.text.endswith("\n"):
                self.truncated = True
            else:
                junk += 1
        if junk:
            self.result.warn(f"{junk} unrecognised line(s) in a '{count} @' record skipped",
                             line=self.lines.at(pos))
        stack_id = self.out.stacks.intern(frames) if frames else None
        sig = self.out.signature(None, stack_id, None)
        # Stacks are cut at 32 (128 from Go 1.23) pcs: at exactly that depth, unknown.
        elided = None if pcs in (32, 128) else False
        self._emit(kind, count, stack_id, sig, labels, elided)
        return count

    def _emit(self, kind: str, count: int, stack_id: int | None, sig: int,
              labels: str | None, elided: bool | None) -> None:
        self.records[kind] += 1
        if kind == "goroutineleak":
            cols = self.out.leaks
            for name, value in (("count", count), ("stack_id", stack_id),
                                ("signature_id", sig), ("labels", labels)):
                cols[name].append(value)
            return
        row = dict.fromkeys(_G_COLS)
        row.update(count=count, stack_id=stack_id, signature_id=sig, labels=labels,
                   frames_elided=elided, format=DEBUG1)
        for name in _G_COLS:
            self.out.g[name].append(row[name])


# --- entry point -------------------------------------------------------------------------


def _reject(text: str) -> ParseError:
    body = text.lstrip()
    if body.startswith(("[", "{")) and ('"Stack0"' in body or '"Stack"' in body):
        return ParseError("JSON rendering of runtime.GoroutineProfile records (not a Go dump "
                          "format; capture /debug/pprof/goroutine?debug=2 instead)")
    if "WARNING: DATA RACE" in text:
        return ParseError("race detector report, not a goroutine dump")
    if re.search(r"^\s*Goroutine \d+ - User: ", text, re.M):
        return ParseError("Delve 'goroutines' listing: no stacks (use 'goroutines -t' or "
                          "capture /debug/pprof/goroutine?debug=2)")
    return ParseError("no goroutine header ('goroutine N [state]:'), profile header "
                      "('goroutine profile: total N') or stack frames found")


def _dump_format(text: str) -> str:
    first = _HEADER.search(text)
    preamble = text[: first.start()] if first else text
    if _PANIC_PREAMBLE.search(preamble) or (first and first.group(2)):
        return PANIC
    return DEBUG2


def parse(data: bytes, ctx: ParseContext) -> ParseResult:
    result = ParseResult()
    text = decode_text(data)
    when = None
    log = logwrap.unwrap_json_lines(text, _HEADER)
    if log is not None:
        text, when = log.text, log.time
        result.meta["log_format"] = f"JSON lines, text in '{log.key}'"
    stripped, prefix = strip_line_prefix(text)
    if prefix:
        result.meta["line_prefix"] = prefix
        when = when or logwrap.prefix_time(text, _HEADER)
    text = stripped
    if when is not None:  # the time the log says the dump was printed
        result.meta["time_nanos"] = to_nanos(when)
    out = _Out()
    sections = _sections(text)
    counted = _Counted(text, out, result)
    counted.run(sections)
    dump = None
    if not sections or _HEADER.search(text):
        dump = _Debug2(_normalized_chunks(text), out, result, _dump_format(text))
        dump.run()
        if dump.frame_pointers:
            dump.fmt = PANIC
    if not (dump and len(dump)) and not out.g["count"] and not out.leaks["count"] \
            and not sections:
        raise _reject(text)
    _finish(result, out, counted, dump)
    return result


def _finish(result: ParseResult, out: _Out, counted: _Counted, dump: _Debug2 | None) -> None:
    parts = [dump.frame()] if dump is not None and len(dump) else []
    if out.g["count"]:  # debug=1 records after the debug=2 goroutines
        parts.append(_frame(out.g, "goroutines"))
    goroutines = conform(pd.concat(parts, ignore_index=True) if len(parts) > 1 else
                         parts[0] if parts else pd.DataFrame(), "goroutines")
    result.tables["goroutines"] = goroutines
    result.tables["goroutine_leaks"] = _frame(out.leaks, "goroutine_leaks")
    result.tables["stacks"] = out.stacks.to_frame()
    meta = result.meta
    if dump is not None and len(dump):
        meta["format"] = dump.fmt
    elif counted.sections["goroutine"]:
        meta["format"] = DEBUG1
    else:
        meta["format"] = LEAK
    meta["goroutines"] = int(goroutines["count"].sum())
    meta["distinct_stacks"] = len(out.stacks)
    meta["signatures"] = int(goroutines["signature_id"].nunique(dropna=False))
    if counted.sections["goroutine"]:
        meta["profile_total"] = counted.totals["goroutine"]
    if counted.sections["goroutineleak"]:
        meta["leak_total"] = counted.totals["goroutineleak"]
        meta["leaked_goroutines"] = int(sum(out.leaks["count"]))
    truncated = counted.truncated or bool(dump and dump.truncated)
    meta["truncated"] = truncated
    if truncated:
        result.warn("the dump is truncated (cut mid-frame or mid-record): only complete "
                    "frames were kept")
    if dump is not None:
        if dump.ancestors:
            meta["ancestor_blocks"] = dump.ancestors
        if dump.unavailable():
            meta["stacks_unavailable"] = dump.unavailable()
        repeated = dump.repeated_ids(goroutines["goroutine_id"].iloc[:len(dump)])
        if repeated:
            meta["repeated_ids"] = repeated
            result.warn(f"{repeated} goroutine id(s) appear twice: the file holds more "
                        "than one dump")
