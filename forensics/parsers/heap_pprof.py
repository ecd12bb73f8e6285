"""pprof ``profile.proto`` profiles (gzipped or raw): heap profiles to ``heap_samples``,
goroutine profiles to ``goroutines``, and every other kind rejected with a reason.

Why it looks the way it does:

- A heap profile of a big service holds hundreds of thousands of samples, and Go writes
  one sample per distinct allocation stack, so almost every sample is its own stack
  (500k stacks are 15M ``stacks`` rows). A Python object per sample (or per frame) would
  take many seconds, so samples are decoded with numpy from their wire bytes
  (:func:`profile_proto.decode_samples`), frames are worked out once per *location*,
  and every ``stacks`` column is gathered from a small table with a value per location
  frame (:func:`build_stacks`), a batch of samples at a time. Fresh memory is what
  costs most at this size (page faults), so no array of all frames is made that is not
  a column of the table.
- ``stack_id`` here is a fold of per-frame blake2b digests (:func:`fold_digests`), not
  :func:`forensics.stacks.stack_hash`: that one hashes each stack's whole text, a
  gigabyte of hashing for half a million distinct heap stacks. Both are stable content
  hashes of the same frame text; heap_text uses this one too, so a heap stack keeps its
  id across rounds, bundles and the two heap formats.
- Samples are decoded from the packed wire bytes only when they use the layout every
  known writer uses; anything unusual falls back to the plain protobuf message, which is
  slower but validates everything.
- Strings are kept as bytes in the schema and decoded with replacement: real profiles
  carry invalid UTF-8, and a bad symbol must not lose the profile.
- A location without symbols keeps its frame, named by its address (``0x4a3b2c``).

Heap values are as Go wrote them (already unsampled by the runtime); the numeric label
``bytes`` (the allocation's block size) goes to ``block_bytes``.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from google.protobuf.message import DecodeError

from .. import gosym
from ..schema import COMMON, arrow_schema, nulls, pandas_dtype
from ..stacks import Frame
from . import profile_proto as pb
from .base import NotUsed, ParseContext, ParseError, ParseResult
from .profile_proto import Samples

KIND = "heap_pprof"
TABLES = ("heap_samples", "stacks", "heap_profiles", "goroutines", "goroutine_leaks")
DESCRIPTION = "pprof protobuf profile (heap, allocs, goroutine), gzipped or raw"

#: Refuse to inflate a profile beyond this (a zip bomb must not take the machine down).
MAX_INFLATED = 1 << 30
HEAP_TYPES = ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space")
_GZIP = b"\x1f\x8b"

# Wire types a top-level Profile field may have, by field number (13 may be packed or not).
_LEN, _VARINT = 2, 0
_PROFILE_WIRE: dict[int, tuple[int, ...]] = {
    1: (_LEN,), 2: (_LEN,), 3: (_LEN,), 4: (_LEN,), 5: (_LEN,), 6: (_LEN,),
    7: (_VARINT,), 8: (_VARINT,), 9: (_VARINT,), 10: (_VARINT,), 11: (_LEN,),
    12: (_VARINT,), 13: (_VARINT, _LEN), 14: (_VARINT,), 15: (_VARINT,),
}


# --------------------------------------------------------------------------- sniff

def sniff(head: bytes, name: str) -> float:
    """A profile.proto starts with a well-formed run of Profile fields; text never does."""
    if head.startswith(_GZIP):
        head = _inflate_head(head)
        if not head:
            return 0.0
    if _legacy_cpu(head):
        return 0.4  # claimed only to be refused with a clear reason
    # Encoders open a profile with a length-delimited message field: sample types (1),
    # samples (2), mappings (3, pprof's own writer), locations (4), strings (6) or the
    # period type (11, Go's runtime). Short text starting with another byte is not one.
    if head[:1] not in (b"\x0a", b"\x12", b"\x1a", b"\x22", b"\x32", b"\x5a"):
        return 0.0
    fields, complete = _walk_fields(head)
    # Even the smallest profile has sample types and strings: two fields at least.
    return 0.95 if fields >= 3 or (fields >= 2 and complete) else 0.0


def _legacy_cpu(data: bytes) -> bool:
    """The pre-protobuf binary CPU profile: 64-bit words 0, 3, 0, period, 0 (either
    byte order), as written by Go before 1.9 and by gperftools."""
    if len(data) < 40:
        return False
    for order in ("<", ">"):
        words = np.frombuffer(data[:40], dtype=f"{order}u8")
        if words[0] == 0 and words[1] == 3 and words[2] == 0 and words[4] == 0:
            return True
    return False


def _inflate_head(head: bytes) -> bytes:
    try:
        return zlib.decompressobj(wbits=31).decompress(head, 1 << 16)
    except zlib.error:
        return b""


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position); position -1 when the buffer ends mid-varint."""
    value = shift = 0
    for i in range(pos, min(pos + 10, len(buf))):
        b = buf[i]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i + 1
        shift += 7
    return 0, -1


def _walk_fields(buf: bytes, limit: int = 64) -> tuple[int, bool]:
    """How many leading Profile fields of ``buf`` are well formed, and whether the walk
    ended cleanly (end of buffer or a field running past the end of a truncated head)."""
    pos = count = 0
    while pos < len(buf) and count < limit:
        tag, nxt = _read_varint(buf, pos)
        if nxt < 0:
            return count, True
        number, wire = tag >> 3, tag & 7
        if wire not in _PROFILE_WIRE.get(number, ()):
            return count, False
        value, nxt = _read_varint(buf, nxt)
        if nxt < 0:
            return count + 1, True
        pos = nxt + value if wire == _LEN else nxt
        count += 1
    return count, True


# --------------------------------------------------------------------------- decoding

def _inflate(data: bytes, result: ParseResult) -> bytes:
    """Gunzip (possibly twice: bundlers gzip .pb.gz files again), bounded."""
    for _ in range(2):
        if not data.startswith(_GZIP):
            return data
        d = zlib.decompressobj(wbits=31)
        try:
            out = d.decompress(data, MAX_INFLATED + 1)
        except zlib.error as exc:
            raise ParseError(f"corrupt gzip stream: {exc}") from None
        if len(out) > MAX_INFLATED:
            raise ParseError(f"gzip data inflates beyond {MAX_INFLATED >> 20} MiB; refusing it")
        if not d.eof:
            result.warn("gzip stream is truncated; reading what was inflated")
        data = out
    return data


def _decode(raw: bytes) -> pb.RawProfile:
    prof = pb.RawProfile()
    try:
        prof.ParseFromString(raw)
    except DecodeError as exc:
        raise ParseError(f"truncated or corrupt profile.proto: {exc}") from None
    if not prof.sample_type and not prof.sample and len(prof.string_table) == 0:
        raise ParseError("not a pprof profile: no sample types, samples or strings")
    return prof


class _Strings:
    """The string table, decoded lazily with replacement (invalid UTF-8 happens)."""

    def __init__(self, table: Sequence[bytes]) -> None:
        self._raw = table
        self._cache: dict[int, str] = {}

    def __call__(self, index: int) -> str:
        s = self._cache.get(index)
        if s is None:
            s = ""
            if 0 <= index < len(self._raw):
                s = self._raw[index].decode("utf-8", errors="replace")
            self._cache[index] = s
        return s

    def find(self, text: str) -> int:
        """Index of ``text`` in the table, or -1."""
        needle = text.encode()
        for i, s in enumerate(self._raw):
            if s == needle:
                return i
        return -1


def _decode_samples_slow(raw_samples: Sequence[bytes], n_types: int,
                         result: ParseResult) -> Samples:
    """Reference decoding through the protobuf Sample message (validates everything)."""
    locs: list[int] = []
    offsets = [0]
    values: list[list[int]] = []
    lab: list[tuple[int, int, int, int]] = []
    msg = pb.Sample()
    for i, data in enumerate(raw_samples):
        try:
            msg.ParseFromString(data)
        except DecodeError as exc:
            raise ParseError(f"corrupt sample {i}: {exc}") from None
        v = list(msg.value)
        if len(v) != n_types:
            result.warn(f"sample {i} has {len(v)} values for {n_types} sample types",
                        offset=i)
            v = (v + [0] * n_types)[:n_types]
        values.append(v)
        locs.extend(msg.location_id)
        offsets.append(len(locs))
        lab.extend((i, lb.key, lb.str, lb.num) for lb in msg.label)
    arr = np.array(lab, dtype=np.int64).reshape(-1, 4)
    return Samples(
        np.array(locs, dtype=np.uint64), np.array(offsets, dtype=np.int64),
        np.array(values, dtype=np.int64).reshape(len(values), n_types),
        arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3],
    )


# --------------------------------------------------------------------------- locations

@dataclass
class Locations:
    """Frames of every location, leaf first within a location (line[0] innermost).

    Location ``i`` (dense index) owns frames ``start[i] : start[i] + count[i]``.
    """

    ids: np.ndarray
    start: np.ndarray
    count: np.ndarray
    func: np.ndarray  # index into names
    line: np.ndarray  # 0 = unknown
    inlined: np.ndarray
    names: list[tuple[str, str]]  # (function, file) per distinct pair
    digest: np.ndarray  # frame_digest of each frame (uint64)


def _locations(prof: pb.RawProfile, text: _Strings, result: ParseResult) -> Locations:
    """Frames of every location, worked out once per location (not per sample)."""
    funcs: dict[int, tuple[str, str]] = {}
    for f in prof.function:
        funcs[f.id] = (text(f.name) or text(f.system_name), text(f.filename))
    maps = {m.id: text(m.filename) for m in prof.mapping}
    b = LocationBuilder()
    unknown = 0
    for loc in prof.location:
        frames: list[tuple[tuple[str, str], int]] = []
        for line in loc.line:
            pair = funcs.get(line.function_id)
            if pair is None or not pair[0]:
                unknown += pair is None
                pair = (f"0x{loc.address:x}", pair[1] if pair else maps.get(loc.mapping_id, ""))
            frames.append((pair, line.line))
        if not frames:  # unsymbolized: keep the frame, named by its address
            frames.append(((f"0x{loc.address:x}", maps.get(loc.mapping_id, "")), 0))
        b.add(loc.id, frames)
    if unknown:
        result.warn(f"{unknown} location lines name an undefined function; "
                    "their addresses stand in")
    locs = b.build()
    if len(locs.ids) > 1 and len(np.unique(locs.ids)) < len(locs.ids):
        result.warn("duplicate location ids; the first definition is used")
    return locs


class LocationBuilder:
    """Accumulates locations' frames as flat lists; digests each distinct frame once."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.start: list[int] = []
        self.count: list[int] = []
        self.func: list[int] = []
        self.line: list[int] = []
        self.inlined: list[bool] = []
        self.digest: list[int] = []
        self.names: list[tuple[str, str]] = []
        self._name_ix: dict[tuple[str, str], int] = {}
        self._digests: dict[tuple[int, int], int] = {}

    def add(self, loc_id: int, frames: Sequence[tuple[tuple[str, str], int]]) -> None:
        """``frames``: ((function, file), line) innermost first; line <= 0 = unknown."""
        self.ids.append(loc_id)
        self.start.append(len(self.func))
        self.count.append(len(frames))
        name_ix, digests = self._name_ix, self._digests
        last = len(frames) - 1
        for k, (pair, line_no) in enumerate(frames):
            ix = name_ix.get(pair)
            if ix is None:
                ix = name_ix[pair] = len(self.names)
                self.names.append(pair)
            line_no = line_no if line_no > 0 else 0
            dig = digests.get((ix, line_no))
            if dig is None:
                dig = digests[(ix, line_no)] = frame_digest(pair[0], pair[1], line_no or None)
            self.func.append(ix)
            self.line.append(line_no)
            self.inlined.append(k < last)
            self.digest.append(dig)

    def build(self) -> Locations:
        return Locations(
            np.array(self.ids, np.uint64), np.array(self.start, np.int64),
            np.array(self.count, np.int64), np.array(self.func, np.int32),
            np.array(self.line, np.int64), np.array(self.inlined, bool), self.names,
            np.array(self.digest, np.uint64),
        )


#: Location occurrences expanded to frames per pass (see :class:`_Frames`).
STACK_BATCH = 1 << 16


class _ByLocationId:
    """Finds locations by id: through a table indexed by id when ids are small (1..n in
    practice), else by a sorted search. The first definition of a duplicated id wins."""

    def __init__(self, ids: np.ndarray, largest_used: int) -> None:
        self.top = int(ids.max()) if len(ids) else -1
        self.dense = len(ids) > 0 and self.top <= 4 * len(ids) + 1024
        if self.dense:
            self.slot = np.full(self.top + 1, -1, np.intp)
            self.slot[ids[::-1].astype(np.int64)] = np.arange(len(ids))[::-1]
            self.clip = largest_used > self.top  # ids beyond the table: clipped to its end
        else:
            self.order = np.argsort(ids, kind="stable")
            self.sorted = ids[self.order]

    def keys(self, ids: np.ndarray) -> np.ndarray:
        """Where each id's values are in the tables :meth:`table` makes (intp)."""
        if self.dense:
            return (np.minimum(ids, self.top + 1) if self.clip else ids).astype(np.intp)
        if not len(self.sorted):
            return np.full(len(ids), -1, np.intp)
        at = np.minimum(np.searchsorted(self.sorted, ids), len(self.sorted) - 1)
        return np.where(self.sorted[at] == ids, self.order[at], -1)

    def table(self, per_location: np.ndarray, missing: int) -> np.ndarray:
        """``per_location`` (a value per location) laid out for :meth:`keys`; the last
        slot holds ``missing``, the value of undefined ids."""
        if not self.dense:
            return np.append(per_location, np.array(missing, per_location.dtype))
        table = np.full(self.top + 2, missing, per_location.dtype)
        defined = self.slot >= 0
        table[:-1][defined] = per_location[self.slot[defined]]
        return table


class _Frames:
    """Samples' location occurrences expanded to frames (indices into the Locations
    frame arrays; a location has one frame per inlined function), a batch of samples at
    a time: temporaries of one batch stay in cache and are reused, where arrays of all
    10^7 frames at once would cost more in page faults than in arithmetic."""

    def __init__(self, samples: Samples, locs: Locations) -> None:
        self.samples = samples
        loc_ids = samples.loc_ids
        self.by_id = _ByLocationId(locs.ids, int(loc_ids.max()) if len(loc_ids) else 0)
        # The frame of a location with just one (what most have); -1 for the others.
        self.single = self.by_id.table(np.where(locs.count == 1, locs.start, -1), -1)
        self.start = self.by_id.table(locs.start, 0)
        self.count = self.by_id.table(locs.count, 0)  # 0: undefined, no frames
        self.batches = pb.spans(samples.offsets[1:], STACK_BATCH)
        self.missing = 0

    def batch(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices of samples ``a..b-1`` and where each sample's frames start."""
        offsets = self.samples.offsets[a:b + 1]
        keys = self.by_id.keys(self.samples.loc_ids[offsets[0]:offsets[-1]])
        offsets = offsets - offsets[0]
        frame = self.single[keys]
        if not len(frame) or frame.min() >= 0:
            return frame, offsets
        per = self.count[keys]
        self.missing += len(per) - np.count_nonzero(per)
        through = np.zeros(len(per) + 1, np.int64)  # frames before each occurrence
        np.cumsum(per, out=through[1:])
        if through[-1] >= 2**31:  # inlining can multiply frames: refuse before expanding
            raise ParseError(f"samples expand to over {through[-1]} frames; "
                             "refusing a profile this large")
        frame = np.repeat(self.start[keys] - through[:-1], per)
        frame += np.arange(len(frame))
        return frame, through[offsets]


def build_stacks(samples: Samples, locs: Locations, result: ParseResult,
                 ) -> tuple[np.ndarray, pd.DataFrame]:
    """stack_id per sample, and the ``stacks`` rows of the distinct stacks.

    Two passes over the samples: the first hashes each sample's frames into its stack
    id; the second gathers the rows of the first sample of each id from per-frame
    tables. Grouping is by the id itself: the id is what every table joins on, so two
    samples with the same frames (even through different pcs) must, and do, share it.
    """
    frames = _Frames(samples, locs)
    sid = np.empty(len(samples), np.int64)
    n_frames = np.empty(len(samples), np.int64)
    for a, b in frames.batches:
        frame, offsets = frames.batch(a, b)
        sid[a:b] = fold_digests(locs.digest[frame], offsets)
        n_frames[a:b] = np.diff(offsets)
    if len(locs.ids) == 0 and len(samples.loc_ids):
        result.warn("samples reference locations but the profile defines none")
    elif frames.missing:
        result.warn(f"{frames.missing} sample frames reference undefined location ids; "
                    "dropped")
    first = _first_of_each(sid)
    rows = int(n_frames[first].sum())
    if rows >= 2**31:
        raise ParseError(f"samples expand to {rows} frames; refusing a profile this large")
    out = _StackColumns(locs, rows)
    for a, b in frames.batches:
        frame, offsets = frames.batch(a, b)
        lens = np.diff(offsets)
        ids = np.repeat(sid[a:b], lens)
        pos = _positions(offsets, lens, len(frame))
        if not first[a:b].all():
            keep = np.repeat(first[a:b], lens)
            frame, ids, pos = frame[keep], ids[keep], pos[keep]
        out.put(frame, ids, pos)
    return sid, out.frame()


def _positions(offsets: np.ndarray, lens: np.ndarray, total: int) -> np.ndarray:
    """Index of every element within its run (the frame depth), as int32."""
    pos = np.arange(total, dtype=np.int32)
    pos -= np.repeat(offsets[:-1].astype(np.int32), lens)
    return pos


# Stack ids: a fold of per-frame blake2b digests. stacks.stack_hash hashes the whole
# stack text with one blake2b per stack; for half a million distinct heap stacks that
# is a gigabyte of hashing, so here each distinct frame is hashed once and stacks are
# combined with vectorized 64-bit arithmetic. Stable across runs, rounds and bundles.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer over a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def _fold(values: np.ndarray, offsets: np.ndarray, pos: np.ndarray | None = None,
          ) -> np.ndarray:
    """Order-sensitive 64-bit hash of each run ``values[offsets[i]:offsets[i+1]]``
    (``values`` uint64; ``pos``, each element's index in its run, is computed if absent)."""
    n = len(offsets) - 1
    lens = np.diff(offsets)
    if pos is None:
        pos = _positions(offsets, lens, len(values))
    h = np.zeros(n, np.uint64)
    # Odd multipliers per position; computed for the positions that occur, not per value.
    mult = _splitmix(np.arange(int(lens.max()) + 1 if n else 1, dtype=np.uint64))
    mult |= np.uint64(1)
    with np.errstate(over="ignore"):
        terms = values ^ _GOLDEN
        terms *= mult[pos]
        nonempty = lens > 0
        if len(values):
            h[nonempty] = np.add.reduceat(terms, offsets[:-1][nonempty])
    return _splitmix(h ^ _splitmix(lens.astype(np.uint64) ^ _MIX2))


def frame_digest(function: str, file: str, line: int | None) -> int:
    """64-bit blake2b of one frame's text (the same text stacks.stack_hash uses)."""
    text = f"{function}\t{file}\t{line}\n".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def fold_digests(digests: np.ndarray, offsets: np.ndarray, pos: np.ndarray | None = None,
                 ) -> np.ndarray:
    """Stack ids (non-negative int64) of runs of frame digests, leaf first."""
    folded = _fold(digests.astype(np.uint64, copy=False), offsets, pos)
    folded >>= np.uint64(1)
    return folded.view(np.int64)


def folded_stack_hash(frames: Sequence[Frame]) -> int:
    """The stack id this module gives ``frames`` (leaf first), for one stack."""
    dig = np.array([frame_digest(f.function, f.file, f.line) for f in frames], np.uint64)
    return int(fold_digests(dig, np.array([0, len(dig)], np.int64))[0])


def _first_of_each(values: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each value. A sort (fast for int64) finds the
    values that repeat, usually few; only their occurrences are looked at further."""
    first = np.ones(len(values), bool)
    ordered = np.sort(values)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(repeated):
        near = np.minimum(np.searchsorted(repeated, values), len(repeated) - 1)
        at = np.flatnonzero(repeated[near] == values)
        _, keep = np.unique(values[at], return_index=True)
        first[at] = False
        first[at[keep]] = True
    return first


class _StackColumns:
    """The ``stacks`` columns, filled a batch of rows at a time. Every column but the
    stack id and depth is a function of the frame, so it is gathered from a table with
    a value per location frame: the text columns are categoricals whose codes are worked
    out per frame from the few distinct (function, file) names. No Python object is
    built per row (10^7 rows for 500k stacks)."""

    def __init__(self, locs: Locations, rows: int) -> None:
        classes = [gosym.classify(f, fl) for f, fl in locs.names]
        texts = {
            "function": [f for f, _ in locs.names],
            "file": [fl for _, fl in locs.names],
            "frame_class": [c for c, _ in classes],
            "module": [m for _, m in classes],
        }
        self.categories: dict[str, pd.Index] = {}
        per_frame: dict[str, np.ndarray] = {}
        for name, values in texts.items():
            codes, self.categories[name] = _codes(values)
            per_frame[name] = codes[locs.func]
        per_frame["line"] = locs.line
        per_frame["line_unknown"] = locs.line <= 0
        per_frame["inlined"] = locs.inlined
        # A flag no frame has (no inlining, every line known) is a column of zeros,
        # allocated as such: pages never written cost nothing (10^7 rows).
        self.per_frame = {name: col for name, col in per_frame.items()
                          if col.dtype != bool or col.any()}
        self.columns = {name: np.empty(rows, col.dtype) if name in self.per_frame
                        else np.zeros(rows, col.dtype) for name, col in per_frame.items()}
        self.stack_id = np.empty(rows, np.int64)
        self.depth = np.empty(rows, np.int32)
        self.filled = 0

    def put(self, frame: np.ndarray, stack_id: np.ndarray, depth: np.ndarray) -> None:
        """Append rows: the frame index, stack id and depth of each."""
        rows = slice(self.filled, self.filled + len(frame))
        for name, values in self.per_frame.items():
            # mode='clip' writes straight to out (frames are valid indices)
            np.take(values, frame, out=self.columns[name][rows], mode="clip")
        self.stack_id[rows] = stack_id
        self.depth[rows] = depth
        self.filled = rows.stop

    def frame(self) -> pd.DataFrame:
        cols, n = self.columns, self.filled

        def no_nulls() -> np.ndarray:
            return np.zeros(n, bool)

        return own_frame(pd.DataFrame({
            "stack_id": pd.arrays.IntegerArray(self.stack_id, no_nulls()),
            "depth": pd.arrays.IntegerArray(self.depth, no_nulls()),
            **{name: pd.Categorical.from_codes(cols[name], dtype=pd.CategoricalDtype(cats),
                                               validate=False)
               for name, cats in self.categories.items()},
            "line": pd.arrays.IntegerArray(cols["line"], cols["line_unknown"]),
            "inlined": pd.arrays.BooleanArray(cols["inlined"], no_nulls()),
        }, copy=False), "stacks")


def _codes(values: list[str]) -> tuple[np.ndarray, pd.Index]:
    """Categorical codes of ``values`` (in the smallest integer type pandas would use)
    and their categories, in order of first appearance."""
    codes, uniques = pd.factorize(np.array(values, dtype=object))
    small = np.int8 if len(uniques) < 127 else np.int16 if len(uniques) < 32767 else np.int32
    return codes.astype(small), pd.Index(uniques, dtype="str")


# --------------------------------------------------------------------------- profile

@dataclass
class Profile:
    """A decoded profile of any kind, before the leak-analysis policy is applied."""

    kind: str
    sample_types: list[tuple[str, str]]
    period_type: tuple[str, str]
    period: int
    time_nanos: int | None
    duration_nanos: int | None
    default_sample_type: str
    comments: list[str]
    samples: Samples
    stack_ids: np.ndarray
    stacks: pd.DataFrame
    strings: _Strings = field(default_factory=lambda: _Strings([]))

    def type_names(self) -> list[str]:
        return [t for t, _ in self.sample_types]

    def describe_types(self) -> str:
        return ", ".join(f"{t}/{u}" for t, u in self.sample_types)

    def value_column(self, name: str) -> np.ndarray | None:
        names = self.type_names()
        return self.samples.values[:, names.index(name)] if name in names else None


def profile_kind(sample_types: Sequence[tuple[str, str]], period_type: tuple[str, str]) -> str:
    """heap, goroutine, goroutineleak, threadcreate, cpu, block (or mutex) or unknown."""
    names = {t for t, _ in sample_types}
    if names & set(HEAP_TYPES) or names == {"objects", "space"}:
        return "heap"
    if names == {"goroutine"}:
        return "goroutine"
    if names == {"goroutineleak"}:
        return "goroutineleak"
    if names == {"threadcreate"}:
        return "threadcreate"
    if "cpu" in names or "samples" in names or period_type[0] == "cpu":
        return "cpu"
    if names & {"contentions", "delay"}:
        return "block"  # block and mutex profiles share their sample types
    return "unknown"


#: Profile kinds the leak analysis reads; parse() refuses the others before decoding.
USED_KINDS = frozenset({"heap", "goroutine", "goroutineleak"})
_KIND_LABEL = {"cpu": "CPU", "block": "block/mutex contention", "unknown": "unrecognised"}


def load_profile(data: bytes, result: ParseResult | None = None,
                 accept: frozenset[str] | None = None) -> Profile:
    """Decode any profile.proto (gzipped or raw) into arrays and a ``stacks`` frame.

    With ``accept``, a profile of another kind is refused (ParseError) before its
    samples are decoded."""
    result = result if result is not None else ParseResult()
    if not data:
        raise ParseError("empty file")
    raw = _inflate(data, result)
    if _legacy_cpu(raw):
        raise NotUsed("legacy binary CPU profile (pre-protobuf format): "
                      "not used for leak analysis")
    prof = _decode(raw)
    # A list, not the message's own container: the message (as big as the profile) is
    # let go before the stacks are built.
    text = _Strings(list(prof.string_table))
    types = [(text(t.type), text(t.unit)) for t in prof.sample_type]
    period_type = (text(prof.period_type.type), text(prof.period_type.unit))
    kind = profile_kind(types, period_type)
    if accept is not None and kind not in accept:
        label = _KIND_LABEL.get(kind, kind)
        described = ", ".join(f"{t}/{u}" for t, u in types) or "no sample types"
        raise NotUsed(f"{label} profile ({described}): not used for leak analysis")
    n_types = len(types)
    samples = pb.decode_samples(prof.sample, n_types) if n_types else None
    if samples is None:
        samples = _decode_samples_slow(prof.sample, n_types, result)
    locs = _locations(prof, text, result)
    dst = prof.default_sample_type
    profile = Profile(
        kind=kind, sample_types=types, period_type=period_type,
        period=prof.period, time_nanos=prof.time_nanos or None,
        duration_nanos=prof.duration_nanos or None,
        default_sample_type=text(dst) if dst else "",
        comments=[text(c) for c in prof.comment], samples=samples,
        stack_ids=np.zeros(0, np.int64), stacks=pd.DataFrame(), strings=text,
    )
    del prof
    profile.stack_ids, profile.stacks = build_stacks(samples, locs, result)
    return profile


# --------------------------------------------------------------------------- tables

_COMMON = {name for name, _ in COMMON}


def own_frame(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The table's parser-own columns, in contract order and with the contract's pandas
    dtypes, so that the pipeline's :func:`forensics.schema.conform` has nothing left to
    convert; common columns are the pipeline's to add."""
    n = len(df)
    out: dict[str, pd.api.extensions.ExtensionArray | pd.Series] = {}
    for fld in arrow_schema(table):
        if fld.name in _COMMON:
            continue
        dtype = pandas_dtype(table, fld.name, fld.type)
        if fld.name not in df.columns:
            out[fld.name] = nulls(dtype, n)
            continue
        col = df[fld.name]
        out[fld.name] = col if str(col.dtype) == dtype else col.astype(dtype)
    return pd.DataFrame(out, copy=False)


def _labels_by_sample(prof: Profile) -> dict[int, str]:
    """pprof labels of each sample as Go prints them in debug=1 text (``# labels:
    {"k":"v", "k2":"v2"}``, sorted), so both goroutine formats give the same string.
    Numeric labels are written as numbers."""
    s = prof.samples
    out: dict[int, dict[str, object]] = {}
    for i, k, v, num in zip(s.label_sample.tolist(), s.label_key.tolist(),
                            s.label_str.tolist(), s.label_num.tolist(), strict=True):
        key = prof.strings(k)
        out.setdefault(i, {})[key] = prof.strings(v) if v else num
    return {i: json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(", ", ":"))
            for i, d in out.items()}


def _block_bytes(prof: Profile) -> pd.arrays.IntegerArray:
    s = prof.samples
    n = len(s)
    vals = np.zeros(n, np.int64)
    mask = np.ones(n, bool)
    key = prof.strings.find("bytes")
    if key > 0 and len(s.label_key):
        sel = (s.label_key == key) & (s.label_str == 0)
        vals[s.label_sample[sel]] = s.label_num[sel]
        mask[s.label_sample[sel]] = False
    return pd.arrays.IntegerArray(vals, mask)


def _int_column(values: np.ndarray | None, n: int) -> pd.arrays.IntegerArray:
    if values is None:
        return pd.arrays.IntegerArray(np.zeros(n, np.int64), np.ones(n, bool))
    return pd.arrays.IntegerArray(np.ascontiguousarray(values, dtype=np.int64),
                                  np.zeros(n, bool))


def heap_tables(prof: Profile, fmt: str = "pprof") -> dict[str, pd.DataFrame]:
    n = len(prof.samples)
    cols = {name: prof.value_column(name) for name in HEAP_TYPES}
    if prof.type_names() == ["objects", "space"]:  # legacy converted heapz: in-use only
        cols["inuse_objects"], cols["inuse_space"] = (prof.value_column("objects"),
                                                      prof.value_column("space"))
    samples = pd.DataFrame({  # typed columns as they are: nothing for pandas to convert
        "sample_id": _int_column(np.arange(n, dtype=np.int64), n),
        "stack_id": _int_column(prof.stack_ids, n),
        **{name: _int_column(v, n) for name, v in cols.items()},
        "block_bytes": _block_bytes(prof),
    }, copy=False)

    def total(name: str) -> int | None:
        v = cols[name]
        return int(v.sum()) if v is not None else None

    summary = pd.DataFrame([{
        "format": fmt,
        "period": prof.period,
        "period_type": "/".join(prof.period_type) if any(prof.period_type) else None,
        "sample_types": ",".join(f"{t}/{u}" for t, u in prof.sample_types),
        "time_nanos": prof.time_nanos,
        "duration_nanos": prof.duration_nanos,
        "samples": n,
        "total_inuse_space": total("inuse_space"),
        "total_inuse_objects": total("inuse_objects"),
    }])
    return {
        "heap_samples": own_frame(samples, "heap_samples"),
        "stacks": prof.stacks,
        "heap_profiles": own_frame(summary, "heap_profiles"),
    }


def goroutine_tables(prof: Profile) -> dict[str, pd.DataFrame]:
    """One row per (stack, labels) record with its goroutine count. A debug=0 profile has
    no ids, states or creators; ``signature_id`` uses the goroutines parser's scheme
    (state and creator unknown, as for its debug=1 records), so both formats bucket alike.
    """
    from .goroutines import signature_id  # the goroutines table's one bucketing scheme

    labels = _labels_by_sample(prof)
    n = len(prof.samples)
    sig = {s: signature_id(None, s, None) for s in set(prof.stack_ids.tolist())}
    df = pd.DataFrame({
        "count": prof.samples.values[:, 0],
        "stack_id": prof.stack_ids,
        "signature_id": [sig[s] for s in prof.stack_ids.tolist()],
        "labels": pd.array([labels.get(i) for i in range(n)], dtype="string"),
    })
    if prof.kind == "goroutineleak":
        return {"goroutine_leaks": own_frame(df, "goroutine_leaks"), "stacks": prof.stacks}
    df["format"] = "pprof"
    return {"goroutines": own_frame(df, "goroutines"), "stacks": prof.stacks}


def parse(data: bytes, ctx: ParseContext) -> ParseResult:
    result = ParseResult()
    prof = load_profile(data, result, accept=USED_KINDS)
    if prof.kind == "heap":
        result.tables = heap_tables(prof)
    else:
        result.tables = goroutine_tables(prof)
    result.meta.update({
        "format": "pprof",
        "profile_kind": prof.kind,
        "sample_types": prof.describe_types(),
        "period": prof.period,
        "samples": len(prof.samples),
    })
    if prof.time_nanos:
        result.meta["time_nanos"] = prof.time_nanos
    if prof.duration_nanos:
        result.meta["duration_nanos"] = prof.duration_nanos
    if prof.default_sample_type:
        result.meta["default_sample_type"] = prof.default_sample_type
    if prof.comments:
        result.meta["comments"] = prof.comments
    return result
