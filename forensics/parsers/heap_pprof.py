"""pprof ``profile.proto`` profiles (gzipped or raw): heap profiles to ``heap_samples``,
goroutine profiles to ``goroutines``, and every other kind rejected with a reason.

Why it looks the way it does:

- A heap profile of a big service holds hundreds of thousands of samples, and Go writes
  one sample per distinct allocation stack, so almost every sample is its own stack. A
  Python object per sample (or per frame) would take many seconds, so samples are decoded
  with numpy from their wire bytes (see :func:`_decode_samples`), frames are worked out
  once per *location*, and the ``stacks`` table is gathered from per-location frame
  blocks with index arithmetic. Identical location sequences are grouped with a
  vectorized hash that is then verified element by element (never merged wrongly).
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


@dataclass
class Samples:
    """Samples as flat arrays: sample i's location ids are
    ``loc_ids[offsets[i]:offsets[i+1]]`` (leaf first); ``values`` is (n, types)."""

    loc_ids: np.ndarray
    offsets: np.ndarray
    values: np.ndarray
    #: One entry per label: sample index, key, str (string indices) and num.
    label_sample: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    label_key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    label_str: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    label_num: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1


def _ranges(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenation of ``arange(starts[i], stops[i])`` and the i of each element."""
    lens = stops - starts
    group = np.repeat(np.arange(len(starts), dtype=np.int64), lens)
    first = np.cumsum(lens) - lens
    idx = np.repeat(starts - first, lens)
    idx += np.arange(len(idx), dtype=idx.dtype)
    return idx, group


def _varints(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Decode ``buf`` as a run of varints: (values, index of the last byte) per varint.

    Horner's rule from each varint's last (most significant) byte backwards, one step
    per byte position, on the shrinking set of varints that are that long: only arrays
    with one entry per varint are allocated (big temporaries are slow to fault in).
    """
    # ends[i + 1] tells whether byte i ends a varint; ends[0] stands for "before the data".
    ends = np.empty(len(buf) + 1, bool)
    ends[0] = True
    np.less(buf, 0x80, out=ends[1:])
    last = np.flatnonzero(ends[1:])
    if len(buf) and (len(last) == 0 or last[-1] != len(buf) - 1):
        return None
    values = (buf[last] & 0x7F).astype(np.uint64)
    longer = np.flatnonzero(~ends[last])  # the byte before is a continuation byte
    seven = np.uint64(7)
    for k in range(1, 11):
        if not len(longer):
            return values, last
        if k == 10:
            return None  # longer than a varint may be
        at = last[longer]
        at -= k
        acc = values[longer]
        acc <<= seven
        acc |= buf[at] & 0x7F
        values[longer] = acc
        longer = longer[~ends[at]]  # at - 1 (shifted by one in ends) continues it
    return values, last


#: Samples decoded per numpy pass: big enough that the per-pass Python work is nothing,
#: small enough that the per-byte temporaries stay a few MB (fresh 100 MB arrays cost
#: more in page faults than the arithmetic done on them).
_BATCH = 1 << 15


def _decode_samples(raw: Sequence[bytes], n_types: int) -> Samples | None:
    """Decode Sample messages from their wire bytes with numpy, in batches; None to fall
    back to protobuf (see :func:`_decode_batch`)."""
    raw = list(raw)  # upb makes a new bytes object on every access: take them once
    parts: list[Samples] = []
    for at in range(0, len(raw), _BATCH):
        part = _decode_batch(raw[at:at + _BATCH], n_types)
        if part is None:
            return None
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    return _join_samples(parts, n_types)


def _join_samples(parts: list[Samples], n_types: int) -> Samples:
    base = np.cumsum([0] + [len(p) for p in parts])
    loc_base = np.cumsum([0] + [len(p.loc_ids) for p in parts])
    offsets = np.concatenate([[0]] + [p.offsets[1:] + loc_base[k] for k, p in enumerate(parts)])
    return Samples(
        np.concatenate([p.loc_ids for p in parts]), offsets,
        np.concatenate([p.values for p in parts]).reshape(-1, n_types),
        np.concatenate([p.label_sample + base[k] for k, p in enumerate(parts)]),
        np.concatenate([p.label_key for p in parts]),
        np.concatenate([p.label_str for p in parts]),
        np.concatenate([p.label_num for p in parts]),
    )


def _decode_batch(raw: list[bytes], n_types: int) -> Samples | None:
    """Decode Sample messages from their wire bytes with numpy, or None to fall back.

    Every byte of a Sample is part of a varint (tags, lengths, packed values and the
    all-varint Label message), so the joined bytes decode as one varint run. The
    top-level fields of all samples are then found together, one field per sample per
    step, following each field's length; the steps taken are the largest number of
    fields in one sample (3 or 4 for what Go writes).
    """
    n = len(raw)
    lens = np.fromiter(map(len, raw), dtype=np.int64, count=n)
    buf = np.frombuffer(b"".join(raw), dtype=np.uint8)
    dec = _varints(buf)
    if dec is None:
        return None
    vals, vlast = dec
    s_end = np.cumsum(lens)
    nonempty = np.flatnonzero(lens > 0)
    # ended[b]: varints ended at or before byte b, so a varint ending at b has index
    # ended[b] - 1. Every sample and every field payload must end where a varint ends.
    ended = np.cumsum(buf < 0x80, dtype=np.int32 if len(buf) < 2**31 else np.int64)
    if np.any(buf[s_end[nonempty] - 1] >= 0x80):
        return None
    v_end = np.zeros(n, np.int64)
    v_end[nonempty] = ended[s_end[nonempty] - 1]
    np.maximum.accumulate(v_end, out=v_end)
    v_start = np.concatenate(([0], v_end[:-1]))

    cur, mine = v_start[nonempty], nonempty
    tags: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    while len(cur):
        if len(tags) >= 256:  # a sample with hundreds of fields: let protobuf do it
            return None
        tags.append(cur)
        owners.append(mine)
        wire = vals[cur] & np.uint64(7)
        if np.any((wire != _LEN) & (wire != _VARINT)) or np.any(cur + 1 >= v_end[mine]):
            return None  # an unknown wire type, or a tag without its value
        nxt = cur + 2
        is_len = np.flatnonzero(wire == _LEN)
        if len(is_len):
            size = vals[cur[is_len] + 1]
            if np.any(size > np.uint64(len(buf))):
                return None
            last_byte = vlast[cur[is_len] + 1] + size.astype(np.int64)
            if np.any(last_byte >= s_end[mine[is_len]]):
                return None
            if np.any(buf[last_byte] >= 0x80):
                return None
            nxt[is_len] = ended[last_byte]
        alive = nxt < v_end[mine]
        cur, mine = nxt[alive], mine[alive]
    if not tags:
        return _collect_fields(np.zeros(0, np.int64), np.zeros(0, np.int64), vals, n, n_types)
    top = np.concatenate(tags)
    order = np.argsort(top, kind="stable")
    return _collect_fields(top[order], np.concatenate(owners)[order], vals, n, n_types)


def _collect_fields(top: np.ndarray, owner: np.ndarray, vals: np.ndarray, n: int,
                    n_types: int) -> Samples | None:
    """Turn the top-level field tags of all samples into :class:`Samples`."""
    nv = len(vals)
    number = (vals[top] >> np.uint64(3)).astype(np.int64)
    is_len = (vals[top] & np.uint64(7)) == _LEN
    # Field payload as a varint index range: a packed run, or the single varint value.
    # Starts are never tags and stops always are, so no two marks below land together.
    nxt = np.append(top[1:], nv)
    p_start = np.where(is_len, top + 2, top + 1)
    p_stop = np.where(is_len, nxt, top + 2)
    mark = np.zeros(nv + 1, np.int8)
    for num in (1, 2):
        sel = (number == num) & (p_stop > p_start)  # an empty packed field marks nothing
        mark[p_start[sel]] = num
        mark[p_stop[sel]] = -num
    kind = np.cumsum(mark[:-1], dtype=np.int8)

    def counts(num: int) -> np.ndarray:
        sel = number == num
        per = np.bincount(owner[sel], weights=p_stop[sel] - p_start[sel], minlength=n)
        return per.astype(np.int64)

    value_count = counts(2)
    if n and np.any(value_count != n_types):
        return None
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(counts(1), out=offsets[1:])
    value = vals[kind == 2].view(np.int64).reshape(n, n_types)
    loc = vals[kind == 1]
    if len(loc) and int(loc.max()) < 2**32:
        loc = loc.astype(np.uint32)  # location ids are small: half the memory
    out = Samples(loc, offsets, value)
    sel = (number == 3) & is_len
    if np.any(sel):
        if not _collect_labels(out, p_start[sel], p_stop[sel], owner[sel], vals):
            return None
    return out


def _collect_labels(out: Samples, start: np.ndarray, stop: np.ndarray, owner: np.ndarray,
                    vals: np.ndarray) -> bool:
    """Label messages are (tag, value) varint pairs: key=1, str=2, num=3, num_unit=4."""
    if np.any((stop - start) % 2):
        return False
    idx, grp = _ranges(start, stop)
    tag_pos = idx[(idx - start[grp]) % 2 == 0]
    tag_grp = grp[(idx - start[grp]) % 2 == 0]
    if np.any(vals[tag_pos] & 7):
        return False
    number = (vals[tag_pos] >> 3).astype(np.int64)
    got = vals[tag_pos + 1].view(np.int64)
    n = len(start)
    fields = {}
    for num in (1, 2, 3):
        arr = np.zeros(n, np.int64)
        sel = number == num
        arr[tag_grp[sel]] = got[sel]  # the last one wins, as protobuf says
        fields[num] = arr
    out.label_sample, out.label_key = owner, fields[1]
    out.label_str, out.label_num = fields[2], fields[3]
    return True


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


def _location_index(loc_ids: np.ndarray, locs: Locations, result: ParseResult) -> np.ndarray:
    """Dense location index (int32) for each sample location id; -1 for undefined ids."""
    out = np.full(len(loc_ids), -1, np.int32)
    if len(locs.ids) == 0:
        if len(loc_ids):
            result.warn("samples reference locations but the profile defines none")
        return out
    top = int(locs.ids.max())
    if top <= 4 * len(locs.ids) + 1024:  # ids are 1..n in practice: a lookup table
        table = np.full(top + 1, -1, np.int32)
        table[locs.ids[::-1].astype(np.int64)] = np.arange(len(locs.ids), dtype=np.int32)[::-1]
        if len(loc_ids) and int(loc_ids.max()) <= top:
            out = table[loc_ids]
        else:
            inside = loc_ids <= np.uint64(top)
            out[inside] = table[loc_ids[inside].astype(np.int64)]
    else:
        order = np.argsort(locs.ids, kind="stable")
        sorted_ids = locs.ids[order]
        pos = np.minimum(np.searchsorted(sorted_ids, loc_ids), len(sorted_ids) - 1)
        found = sorted_ids[pos] == loc_ids
        out[found] = order[pos[found]]
    missing = int((out < 0).sum())
    if missing:
        result.warn(f"{missing} sample frames reference undefined location ids; dropped")
    return out


# --------------------------------------------------------------------------- stacks

def build_stacks(samples: Samples, locs: Locations, result: ParseResult,
                 ) -> tuple[np.ndarray, pd.DataFrame]:
    """stack_id per sample, and the ``stacks`` rows of the distinct stacks."""
    return _stack_ids(samples, _location_index(samples.loc_ids, locs, result), locs)


def _stack_ids(samples: Samples, loc_ix: np.ndarray, locs: Locations,
               ) -> tuple[np.ndarray, pd.DataFrame]:
    """Every sample's locations expanded to frames, hashed into a stack id per sample;
    the ``stacks`` rows are the frames of the first sample of each id.

    Grouping is by the id itself: the id is what every table joins on, so two samples
    with the same frames (even through different pcs) must, and do, share it. Each step
    is one pass over flat int32/uint64 arrays, with fast paths for what Go writes: no
    undefined locations, and (outside inlining) one frame per location.
    """
    offsets = samples.offsets
    keep = loc_ix >= 0
    if not keep.all():
        loc_ix, offsets = loc_ix[keep], _kept_offsets(offsets, keep)
    frame, f_offsets = _expand_locations(loc_ix, offsets, locs)
    del loc_ix
    lens = np.diff(f_offsets)
    pos = _positions(f_offsets, lens, len(frame))
    sid = _stack_hashes(locs.digest, frame, f_offsets, pos)
    _, first = np.unique(sid, return_index=True)
    if len(first) < len(sid):  # repeated stacks: keep the rows of each id's first sample
        chosen = np.zeros(len(sid), bool)
        chosen[first] = True
        rows = np.repeat(chosen, lens)
        frame, pos = frame[rows], pos[rows]
        row_sid = np.repeat(sid[chosen], lens[chosen])
    else:
        row_sid = np.repeat(sid, lens)
    return sid, _stacks_frame(row_sid, pos, frame, locs)


def _stack_hashes(digest: np.ndarray, frame: np.ndarray, offsets: np.ndarray,
                  pos: np.ndarray) -> np.ndarray:
    """:func:`fold_digests` of every sample's frames, a batch of samples at a time (the
    per-frame uint64 temporaries of all samples at once would be the parse's peak)."""
    n = len(offsets) - 1
    out = np.empty(n, np.int64)
    for a in range(0, n, _BATCH):
        b = min(a + _BATCH, n)
        lo, hi = offsets[a], offsets[b]
        out[a:b] = fold_digests(digest[frame[lo:hi]], offsets[a:b + 1] - lo, pos[lo:hi])
    return out


def _kept_offsets(offsets: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Run offsets after dropping the elements where ``keep`` is False."""
    kept_before = np.zeros(len(keep) + 1, np.int64)
    np.cumsum(keep, out=kept_before[1:])
    return kept_before[offsets]


def _expand_locations(loc_ix: np.ndarray, offsets: np.ndarray, locs: Locations,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Frame index (int32) of every sample location (a location has one frame per
    inlined function), and the per-sample frame offsets."""
    start = locs.start.astype(np.int32)
    if not len(locs.count) or int(locs.count.max()) <= 1:
        return start[loc_ix], offsets
    multi = np.flatnonzero((locs.count > 1)[loc_ix])
    if len(multi) * 8 < len(loc_ix):
        return _insert_inlined(loc_ix, offsets, locs, start, multi)
    per = locs.count.astype(np.int32)[loc_ix]
    total = int(per.sum(dtype=np.int64))
    if total >= 2**31:
        raise ParseError(f"samples expand to {total} frames; refusing a profile this large")
    # Frames of the j-th location: start[j] .. start[j] + per[j] - 1, laid end to end.
    through = np.cumsum(per, dtype=np.int32)  # frames up to and including location j
    f_offsets = np.where(offsets > 0, through[np.maximum(offsets - 1, 0)], 0).astype(np.int64)
    through -= per
    frame = start[loc_ix]
    frame -= through
    del through
    frame = np.repeat(frame, per)
    frame += np.arange(total, dtype=np.int32)
    return frame, f_offsets


def _insert_inlined(loc_ix: np.ndarray, offsets: np.ndarray, locs: Locations,
                    start: np.ndarray, multi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_expand_locations` when few occurrences (``multi``) are of locations with
    inlined frames: each location's first frame, then the others inserted after it."""
    frame = start[loc_ix]
    extra = locs.count[loc_ix[multi]].astype(np.int64) - 1
    first = start[loc_ix[multi]].astype(np.int64) + 1
    values, _ = _ranges(first, first + extra)
    frame = np.insert(frame, np.repeat(multi + 1, extra), values.astype(np.int32))
    added = np.zeros(len(multi) + 1, np.int64)
    np.cumsum(extra, out=added[1:])
    return frame, offsets + added[np.searchsorted(multi, offsets)]


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


def _stacks_frame(sid: np.ndarray, depth: np.ndarray, frame: np.ndarray,
                  locs: Locations) -> pd.DataFrame:
    """``stacks`` rows from per-row frame indices into the location frame arrays. The
    text columns are categoricals whose codes are gathered from the few distinct
    (function, file) names, and the other columns are wrapped, not copied: no Python
    object is built per row (10^7 rows for 500k stacks)."""
    classes = [gosym.classify(f, fl) for f, fl in locs.names]
    line = locs.line[frame]
    n = len(frame)
    return own_frame(pd.DataFrame({
        "stack_id": pd.arrays.IntegerArray(sid.astype(np.int64, copy=False), np.zeros(n, bool)),
        "depth": pd.arrays.IntegerArray(depth.astype(np.int32, copy=False), np.zeros(n, bool)),
        "function": _categorical([f for f, _ in locs.names], locs.func, frame),
        "file": _categorical([fl for _, fl in locs.names], locs.func, frame),
        "line": pd.arrays.IntegerArray(line, line <= 0),
        "inlined": pd.arrays.BooleanArray(locs.inlined[frame], np.zeros(n, bool)),
        "frame_class": _categorical([c for c, _ in classes], locs.func, frame),
        "module": _categorical([m for _, m in classes], locs.func, frame),
    }, copy=False), "stacks")


def _categorical(values: list[str], name_of_frame: np.ndarray, frame: np.ndarray,
                 ) -> pd.Categorical:
    """A categorical column from a value per distinct name, the name of each location
    frame and a frame per row: the codes are worked out per frame, then gathered once
    (names can share a value: one function in two files, one class for many)."""
    value_codes, uniques = pd.factorize(np.array(values, dtype=object))
    small = np.int8 if len(uniques) < 127 else np.int16 if len(uniques) < 32767 else np.int32
    if not len(values):
        return pd.Categorical.from_codes(np.zeros(len(frame), small), categories=[])
    per_frame = value_codes.astype(small)[name_of_frame]
    return pd.Categorical.from_codes(per_frame[frame], categories=pd.Index(uniques, dtype="str"))


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
    text = _Strings(prof.string_table)
    types = [(text(t.type), text(t.unit)) for t in prof.sample_type]
    period_type = (text(prof.period_type.type), text(prof.period_type.unit))
    kind = profile_kind(types, period_type)
    if accept is not None and kind not in accept:
        label = _KIND_LABEL.get(kind, kind)
        described = ", ".join(f"{t}/{u}" for t, u in types) or "no sample types"
        raise NotUsed(f"{label} profile ({described}): not used for leak analysis")
    n_types = len(types)
    samples = _decode_samples(prof.sample, n_types) if n_types else None
    if samples is None:
        samples = _decode_samples_slow(prof.sample, n_types, result)
    sid, stacks = build_stacks(samples, _locations(prof, text, result), result)
    dst = prof.default_sample_type
    return Profile(
        kind=kind, sample_types=types, period_type=period_type,
        period=prof.period, time_nanos=prof.time_nanos or None,
        duration_nanos=prof.duration_nanos or None,
        default_sample_type=text(dst) if dst else "",
        comments=[text(c) for c in prof.comment], samples=samples, stack_ids=sid,
        stacks=stacks, strings=text,
    )


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
    samples = pd.DataFrame({
        "sample_id": np.arange(n, dtype=np.int64),
        "stack_id": prof.stack_ids,
        **{name: _int_column(v, n) for name, v in cols.items()},
        "block_bytes": _block_bytes(prof),
    })

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
