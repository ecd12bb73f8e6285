"""The pprof ``profile.proto`` message schema, built at import time from field numbers.

Why build it here instead of shipping a generated ``profile_pb2.py`` or a ``.proto`` file:
the schema is tiny and frozen (field numbers never change in protobuf), generated code is
tied to the protoc version that made it, and building descriptors by hand keeps the project
free of protoc and of third-party schema files. The field numbers are facts of the wire
format (the Go runtime's ``runtime/pprof`` writer uses the same ones).

``Profile`` is the full message class. ``RawProfile`` is a second *view* of the same bytes
in which ``Profile.sample`` is declared as ``repeated bytes``: a packed repeated field and a
``bytes`` field share wire type 2, so upb hands back each sample's encoded bytes without
building a Python object per sample. :func:`decode_samples` decodes those bytes with numpy,
every sample at once (see its docstring); :mod:`heap_pprof` falls back to the ``Sample``
message when they have a layout it does not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
PACKAGE = "forensics.pprof"

# (name, number, type, label, message type name or None)
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_I64, _U64, _BOOL, _STR, _BYTES, _MSG = (
    _F.TYPE_INT64, _F.TYPE_UINT64, _F.TYPE_BOOL, _F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_MESSAGE,
)

_Field = tuple[str, int, int, int, "str | None"]

_MESSAGES: dict[str, list[_Field]] = {
    "Profile": [
        ("sample_type", 1, _MSG, _REP, "ValueType"),
        ("sample", 2, _MSG, _REP, "Sample"),
        ("mapping", 3, _MSG, _REP, "Mapping"),
        ("location", 4, _MSG, _REP, "Location"),
        ("function", 5, _MSG, _REP, "Function"),
        # bytes, not string: real profiles carry invalid UTF-8 and upb would refuse them.
        ("string_table", 6, _BYTES, _REP, None),
        ("drop_frames", 7, _I64, _OPT, None),
        ("keep_frames", 8, _I64, _OPT, None),
        ("time_nanos", 9, _I64, _OPT, None),
        ("duration_nanos", 10, _I64, _OPT, None),
        ("period_type", 11, _MSG, _OPT, "ValueType"),
        ("period", 12, _I64, _OPT, None),
        ("comment", 13, _I64, _REP, None),
        ("default_sample_type", 14, _I64, _OPT, None),
        ("doc_url", 15, _I64, _OPT, None),
    ],
    "ValueType": [
        ("type", 1, _I64, _OPT, None),
        ("unit", 2, _I64, _OPT, None),
    ],
    "Sample": [
        ("location_id", 1, _U64, _REP, None),
        ("value", 2, _I64, _REP, None),
        ("label", 3, _MSG, _REP, "Label"),
    ],
    "Label": [
        ("key", 1, _I64, _OPT, None),
        ("str", 2, _I64, _OPT, None),
        ("num", 3, _I64, _OPT, None),
        ("num_unit", 4, _I64, _OPT, None),
    ],
    "Mapping": [
        ("id", 1, _U64, _OPT, None),
        ("memory_start", 2, _U64, _OPT, None),
        ("memory_limit", 3, _U64, _OPT, None),
        ("file_offset", 4, _U64, _OPT, None),
        ("filename", 5, _I64, _OPT, None),
        ("build_id", 6, _I64, _OPT, None),
        ("has_functions", 7, _BOOL, _OPT, None),
        ("has_filenames", 8, _BOOL, _OPT, None),
        ("has_line_numbers", 9, _BOOL, _OPT, None),
        ("has_inline_frames", 10, _BOOL, _OPT, None),
    ],
    "Location": [
        ("id", 1, _U64, _OPT, None),
        ("mapping_id", 2, _U64, _OPT, None),
        ("address", 3, _U64, _OPT, None),
        ("line", 4, _MSG, _REP, "Line"),
        ("is_folded", 5, _BOOL, _OPT, None),
    ],
    "Line": [
        ("function_id", 1, _U64, _OPT, None),
        ("line", 2, _I64, _OPT, None),
        ("column", 3, _I64, _OPT, None),
    ],
    "Function": [
        ("id", 1, _U64, _OPT, None),
        ("name", 2, _I64, _OPT, None),
        ("system_name", 3, _I64, _OPT, None),
        ("filename", 4, _I64, _OPT, None),
        ("start_line", 5, _I64, _OPT, None),
    ],
}

#: The raw view: Profile with samples left as bytes; everything else as in Profile.
_RAW_PROFILE: list[_Field] = [
    ("sample_type", 1, _MSG, _REP, "ValueType"),
    ("sample", 2, _BYTES, _REP, None),
    ("mapping", 3, _MSG, _REP, "Mapping"),
    ("location", 4, _MSG, _REP, "Location"),
    ("function", 5, _MSG, _REP, "Function"),
    ("string_table", 6, _BYTES, _REP, None),
    *[f for f in _MESSAGES["Profile"] if f[1] >= 7],
]


def _add_message(fdp: descriptor_pb2.FileDescriptorProto, name: str, fields: list[_Field]) -> None:
    msg = fdp.message_type.add(name=name)
    for fname, number, ftype, label, type_name in fields:
        fld = msg.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name is not None:
            fld.type_name = f".{PACKAGE}.{type_name}"


def _build() -> dict[str, type]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="forensics/pprof_profile.proto", package=PACKAGE, syntax="proto3"
    )
    for name, fields in _MESSAGES.items():
        _add_message(fdp, name, fields)
    _add_message(fdp, "RawProfile", _RAW_PROFILE)
    # A private pool: no clash with another copy of profile.proto a user may have loaded.
    pool = descriptor_pool.DescriptorPool()
    fd = pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(fd.message_types_by_name[name])
        for name in (*_MESSAGES, "RawProfile")
    }


_CLASSES = _build()
Profile = _CLASSES["Profile"]
RawProfile = _CLASSES["RawProfile"]
Sample = _CLASSES["Sample"]
ValueType = _CLASSES["ValueType"]
Label = _CLASSES["Label"]
Mapping = _CLASSES["Mapping"]
Location = _CLASSES["Location"]
Line = _CLASSES["Line"]
Function = _CLASSES["Function"]


# --------------------------------------------------------------------------- samples

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


#: Bytes of samples decoded per numpy pass: big enough that the Python work per pass is
#: nothing, small enough that the per-byte temporaries stay in cache and are reused (fresh
#: 100 MB temporaries cost more in page faults than the arithmetic done on them).
BATCH_BYTES = 1 << 20
_LEN, _VARINT = 2, 0
_LOCATIONS, _VALUES, _LABELS = 1, 2, 3  # Sample field numbers


def decode_samples(raw: Sequence[bytes], n_types: int) -> Samples | None:
    """Decode Sample messages (``RawProfile.sample``: one bytes object each) with numpy,
    or return None when they have a layout this decoder does not read (the caller then
    decodes them with the ``Sample`` message, which also validates everything).

    What makes it possible: every byte of a Sample belongs to a varint (tags, lengths,
    packed ids and values, and the all-varint Label message). So the top-level fields of
    all samples of a batch are found together, one field per sample per step (three steps
    for what Go writes); each field's payload is then a byte range of known meaning, and
    the varints in it are decoded by where they end (a byte below 0x80).
    """
    raw = list(raw)  # upb makes a new bytes object on every access: take them once
    n = len(raw)
    ends = np.cumsum(np.fromiter(map(len, raw), np.int64, count=n))
    buf = np.frombuffer(b"".join(raw), np.uint8)
    del raw
    # A location id takes a byte at least, so len(buf) bounds their number; the pages of
    # the part left unused are never touched, so they cost nothing.
    loc_ids = np.empty(len(buf), np.uint32)
    offsets = np.zeros(n + 1, np.int64)
    values = np.empty((n, n_types), np.int64)
    labels: list[tuple[np.ndarray, ...]] = []
    n_locs = 0
    for a, b in spans(ends, BATCH_BYTES):
        lo = int(ends[a - 1]) if a else 0
        part = _decode_batch(buf[lo:ends[b - 1]], ends[a:b] - lo, n_types)
        if part is None:
            return None
        locs, loc_ends, vals, (owner, *lab) = part
        loc_ids[n_locs:n_locs + len(locs)] = locs
        offsets[a + 1:b + 1] = loc_ends + n_locs
        n_locs += len(locs)
        values[a:b] = vals
        labels.append((owner + a, *lab))
    out = Samples(loc_ids[:n_locs], offsets, values)
    if labels:
        out.label_sample, out.label_key, out.label_str, out.label_num = (
            np.concatenate(col) for col in zip(*labels, strict=True))
    return out


def spans(ends: np.ndarray, size: int) -> list[tuple[int, int]]:
    """Ranges ``[a, b)`` of runs, consecutive and covering all of them, each of about
    ``size`` elements (at least one run), where run i ends at element ``ends[i]``."""
    if not len(ends):
        return []
    stops = np.searchsorted(ends, np.arange(size, int(ends[-1]), size)) + 1
    bounds = sorted({0, *stops.tolist(), len(ends)})
    return list(pairwise(bounds))


def _decode_batch(buf: np.ndarray, ends: np.ndarray, n_types: int,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]] | None:
    """Location ids, where each sample's ids end (cumulative count), values (n, n_types)
    and labels (sample, key, str, num) of the samples whose bytes are ``buf`` and
    which end at ``ends``; None when they are not laid out as this decoder expects."""
    fields = _fields(buf, ends)
    if fields is None:
        return None
    kind, begin, stop, owner = fields
    ids = _location_ids(buf, ends, kind == _LOCATIONS, begin, stop)
    is_value = kind == _VALUES
    values = _values(buf, begin[is_value], stop[is_value], owner[is_value], len(ends), n_types)
    is_label = kind == _LABELS
    labels = _labels(buf, begin[is_label], stop[is_label], owner[is_label])
    if ids is None or values is None or labels is None:
        return None
    return *ids, values, labels


def _location_ids(buf: np.ndarray, ends: np.ndarray, is_loc: np.ndarray, begin: np.ndarray,
                  stop: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Location ids (uint32) of the fields marked ``is_loc``, and where each sample's ids
    end (cumulative count). They are most of a profile's bytes (tens per sample), so
    they are found all at once: each id ends at a byte below 0x80 inside such a field."""
    loc_stop = stop[is_loc]
    if np.any(buf[loc_stop[loc_stop > begin[is_loc]] - 1] >= 0x80):
        return None  # a varint runs past the end of its field
    # Fields tile the buffer: a tag (and length) from the previous field's stop to
    # begin, then the payload.
    seg_len = np.empty(2 * len(begin), np.int64)
    seg_len[0::2] = begin - np.concatenate(([0], stop[:-1]))
    seg_len[1::2] = stop - begin
    is_last = np.repeat(np.stack([np.zeros_like(is_loc), is_loc], axis=1).ravel(), seg_len)
    is_last &= buf < 0x80
    last = np.flatnonzero(is_last)
    ids = _varints_ending_at(buf, last, np.uint32)
    if ids is None:  # an id of five bytes or more (2**28 and up): rare, done again wide
        wide = _varints_ending_at(buf, last, np.uint64)
        if wide is None or int(wide.max()) >= 2**32:
            return None
        ids = wide.astype(np.uint32)
    ended = np.zeros(len(buf) + 1, np.int32 if len(buf) < 2**31 else np.int64)
    np.cumsum(is_last, out=ended[1:])  # ids ended before each byte
    return ids, ended[ends]


def _values(buf: np.ndarray, begin: np.ndarray, stop: np.ndarray, owner: np.ndarray,
            n: int, n_types: int) -> np.ndarray | None:
    """The (n, n_types) values of ``n`` samples from their value fields (packed or one
    value per field): a few varints a sample, decoded one per field per step."""
    vals, per_field = _walk_varints(buf, begin, stop, n_types)
    if vals is None or np.any(np.bincount(owner, per_field, minlength=n) != n_types):
        return None
    return vals.view(np.int64).reshape(n, n_types)


def _walk_varints(buf: np.ndarray, begin: np.ndarray, stop: np.ndarray, most: int,
                  ) -> tuple[np.ndarray | None, np.ndarray]:
    """Every varint of the payloads ``begin..stop`` in byte order (None if one holds
    more than ``most`` or runs past its end), and how many each payload holds."""
    per_field = np.zeros(len(begin), np.int64)
    steps: list[tuple[np.ndarray, np.ndarray]] = []
    who = np.flatnonzero(stop > begin)
    cur = begin[who]
    while len(cur):
        if len(steps) == most:
            return None, per_field
        got = _varint_at(buf, cur, stop[who])
        if got is None:
            return None, per_field
        steps.append((got[0], who))
        per_field[who] += 1
        alive = got[1] < stop[who]
        cur, who = got[1][alive], who[alive]
    # In byte order: a field's k-th varint comes right after its k - 1 earlier ones.
    first = np.cumsum(per_field) - per_field
    out = np.empty(int(per_field.sum()), np.uint64)
    for k, (vals, who) in enumerate(steps):
        out[first[who] + k] = vals
    return out, per_field


def _fields(buf: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """The top-level fields of all samples, in byte order: kind (the field number for
    location ids and values, packed or not, and for labels; 0 for anything else), where
    the payload begins and where it stops, and the sample it belongs to. None for wire
    types other than varint and length-delimited. A varint field's payload is the
    varint itself."""
    starts = np.concatenate(([0], ends[:-1]))
    owner = np.flatnonzero(ends > starts)
    cur = starts[owner]
    steps: list[tuple[np.ndarray, ...]] = []
    while len(cur):
        if len(steps) >= 256:  # a sample with hundreds of fields: let protobuf do it
            return None
        limit = ends[owner]
        tag = _varint_at(buf, cur, limit)
        if tag is None:
            return None
        wire = tag[0] & np.uint64(7)
        packed = wire == _LEN
        if not np.all(packed | (wire == _VARINT)):
            return None
        after = _varint_at(buf, tag[1], limit)  # a length, or the field's value
        if after is None:
            return None
        size, begin = after
        if np.any(packed & (size > (limit - begin).astype(np.uint64))):
            return None
        stop = np.where(packed, begin + size.astype(np.int64), begin)
        begin = np.where(packed, begin, tag[1])
        number = tag[0] >> np.uint64(3)
        kind = np.where((number == _LOCATIONS) | (number == _VALUES)
                        | (packed & (number == _LABELS)), number, 0).astype(np.int8)
        steps.append((kind, begin, stop, owner))
        alive = stop < limit
        cur, owner = stop[alive], owner[alive]
    if not steps:
        return np.zeros(0, np.int8), *(np.zeros(0, np.int64) for _ in range(3))
    # In byte order: a sample's k-th field comes right after its k - 1 earlier fields.
    per_sample = np.zeros(len(ends), np.int64)
    for *_, who in steps:
        per_sample[who] += 1
    first = np.cumsum(per_sample) - per_sample
    out = [np.empty(int(per_sample.sum()), col.dtype) for col in steps[0]]
    for k, step in enumerate(steps):
        at = first[step[-1]] + k
        for dest, col in zip(out, step, strict=True):
            dest[at] = col
    return tuple(out)


def _varint_at(buf: np.ndarray, pos: np.ndarray, limit: np.ndarray,
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """The varints that start at ``pos`` (uint64) and the position after each; None when
    one reaches ``limit`` (its sample's end) or is longer than ten bytes."""
    if np.any(pos >= limit):
        return None
    first = buf[pos]
    value = (first & 0x7F).astype(np.uint64)
    after = pos + 1
    more = np.flatnonzero(first >= 0x80)
    for k in range(1, 10):
        if not len(more):
            return value, after
        at = pos[more] + k
        if np.any(at >= limit[more]):
            return None
        byte = buf[at]
        value[more] |= (byte & 0x7F).astype(np.uint64) << np.uint64(7 * k)
        after[more] = at + 1
        more = more[byte >= 0x80]
    return None if len(more) else (value, after)


def _varints_ending_at(buf: np.ndarray, last: np.ndarray, dtype: type[np.unsignedinteger],
                       ) -> np.ndarray | None:
    """The varints whose last byte is at ``last``, by Horner's rule from that byte
    backwards, on the shrinking set of varints that are that long. Each must be preceded
    by the end of another varint (a tag or length), never by the buffer start. None for
    a varint longer than ``dtype`` holds whole (4 bytes in uint32, 10 in uint64)."""
    longest = 4 if dtype == np.uint32 else 10
    values = buf[last].astype(dtype)  # a last byte is below 0x80: all value bits
    longer = np.flatnonzero(buf[last - 1] >= 0x80)
    seven = dtype(7)
    for k in range(1, longest):
        if not len(longer):
            return values
        at = last[longer] - k
        acc = values[longer]
        acc <<= seven
        acc |= buf[at] & 0x7F
        values[longer] = acc
        longer = longer[buf[at - 1] >= 0x80]
    return None if len(longer) else values


def _labels(buf: np.ndarray, begin: np.ndarray, stop: np.ndarray, owner: np.ndarray,
            ) -> tuple[np.ndarray, ...] | None:
    """(sample, key, str, num) of every Label, walking their (tag, value) varint pairs
    (key=1, str=2, num=3, num_unit=4) one pair per label per step; the last of a repeated
    field wins, as in protobuf."""
    fields = [np.zeros(len(begin), np.int64) for _ in range(3)]
    who = np.flatnonzero(stop > begin)
    cur = begin[who]
    for _ in range(16):  # a Label has four fields; more than 16 is for protobuf to read
        if not len(cur):
            return (owner, *fields)
        tag = _varint_at(buf, cur, stop[who])
        if tag is None or np.any(tag[0] & np.uint64(7)):  # every Label field is a varint
            return None
        value = _varint_at(buf, tag[1], stop[who])
        if value is None:
            return None
        number = tag[0] >> np.uint64(3)
        for num, arr in enumerate(fields, start=1):
            sel = number == num
            arr[who[sel]] = value[0][sel].view(np.int64)
        alive = value[1] < stop[who]
        cur, who = value[1][alive], who[alive]
    return None if len(cur) else (owner, *fields)


__all__ = [
    "Function",
    "Label",
    "Line",
    "Location",
    "Mapping",
    "Profile",
    "RawProfile",
    "Sample",
    "Samples",
    "ValueType",
    "decode_samples",
    "spans",
]
