"""The pprof ``profile.proto`` message schema, built at import time from field numbers.

Why build it here instead of shipping a generated ``profile_pb2.py`` or a ``.proto`` file:
the schema is tiny and frozen (field numbers never change in protobuf), generated code is
tied to the protoc version that made it, and building descriptors by hand keeps the project
free of protoc and of third-party schema files. The field numbers are facts of the wire
format (the Go runtime's ``runtime/pprof`` writer uses the same ones).

``Profile`` is the full message class. ``RawProfile`` is a second *view* of the same bytes
in which ``Profile.sample`` is declared as ``repeated bytes``: a packed repeated field and a
``bytes`` field share wire type 2, so upb hands back each sample's encoded bytes without
building a Python object per sample. :mod:`heap_pprof` uses it to decode the samples of big
profiles with numpy instead of a Python loop.
"""

from __future__ import annotations

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

__all__ = [
    "Function",
    "Label",
    "Line",
    "Location",
    "Mapping",
    "Profile",
    "RawProfile",
    "Sample",
    "ValueType",
]
