"""The table contract: one pyarrow schema per table, and the helpers that hold every
DataFrame to it.

Scripts outside this code read these table and column names (see DESIGN.md), so they are
declared once, here, and every parser's output passes through :func:`conform`. Parsers
produce only their own columns; the pipeline adds the common ones (bundle_id, round,
captured_at, source) so that no parser needs to know where its bytes came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

TS = pa.timestamp("ns", tz="UTC")
#: Low-cardinality text columns: dictionary-encoded in Parquet, plain strings in pandas.
CAT = pa.dictionary(pa.int32(), pa.string())

#: Text columns held as pandas ``category`` (codes + the distinct strings) instead of one
#: string per row. A heap profile of 500k stacks has a ``stacks`` row per frame of each
#: stack, 15M rows whose function/file strings alone would take gigabytes; as categories
#: they take a few bytes a row. They read like strings (``==``, ``isin``, ``.str``), but
#: ``fillna`` needs a value that is a category and ``concat`` must union the categories
#: (see :func:`concat`). Dictionary-encoded in Parquet like :data:`CAT`.
CATEGORICAL: dict[str, frozenset[str]] = {
    "stacks": frozenset({"function", "file", "frame_class", "module"}),
}

COMMON: list[tuple[str, pa.DataType]] = [
    ("bundle_id", CAT),
    ("round", pa.int64()),
    ("captured_at", TS),
    ("source", CAT),
]

_TABLES: dict[str, list[tuple[str, pa.DataType]]] = {
    "artifacts": [
        ("path", pa.string()),
        ("kind", CAT),
        ("pid", pa.int64()),
        ("bytes", pa.int64()),
        ("status", CAT),
        ("message", pa.string()),
        ("time_source", CAT),
    ],
    "stacks": [
        ("stack_id", pa.int64()),
        ("depth", pa.int32()),
        ("function", CAT),
        ("file", CAT),
        ("line", pa.int64()),
        ("inlined", pa.bool_()),
        ("frame_class", CAT),
        ("module", CAT),
    ],
    "heap_samples": [
        ("sample_id", pa.int64()),
        ("stack_id", pa.int64()),
        ("alloc_objects", pa.int64()),
        ("alloc_space", pa.int64()),
        ("inuse_objects", pa.int64()),
        ("inuse_space", pa.int64()),
        ("block_bytes", pa.int64()),
    ],
    "heap_profiles": [
        ("format", CAT),
        ("period", pa.int64()),
        ("period_type", CAT),
        ("sample_types", pa.string()),
        ("time_nanos", pa.int64()),
        ("duration_nanos", pa.int64()),
        ("samples", pa.int64()),
        ("total_inuse_space", pa.int64()),
        ("total_inuse_objects", pa.int64()),
    ],
    "goroutines": [
        ("goroutine_id", pa.int64()),
        ("count", pa.int64()),
        ("state", CAT),
        ("wait_minutes", pa.int64()),
        ("locked_to_thread", pa.bool_()),
        ("leaked", pa.bool_()),
        ("stack_id", pa.int64()),
        ("created_by", pa.string()),
        ("created_by_file", pa.string()),
        ("created_by_line", pa.int64()),
        ("parent_goroutine_id", pa.int64()),
        ("frames_elided", pa.bool_()),
        ("signature_id", pa.int64()),
        ("labels", pa.string()),
        ("format", CAT),
    ],
    "goroutine_leaks": [
        ("count", pa.int64()),
        ("stack_id", pa.int64()),
        ("signature_id", pa.int64()),
        ("labels", pa.string()),
    ],
    "sockets": [
        ("pid", pa.int64()),
        ("fd", pa.int64()),
        ("inode", pa.int64()),
        ("proto", CAT),
        ("state", CAT),
        ("local_ip", pa.string()),
        ("local_port", pa.int64()),
        ("remote_ip", pa.string()),
        ("remote_port", pa.int64()),
        ("recv_q", pa.int64()),
        ("send_q", pa.int64()),
        ("timer", pa.string()),
        ("tool", CAT),
        ("process", pa.string()),
        # ss -i's tcp_info: ms since the last send / receive, bytes sent / received (null
        # from other tools). A pooled connection checked out and forgotten is silent.
        ("last_send_ms", pa.int64()),
        ("last_recv_ms", pa.int64()),
        ("bytes_sent", pa.int64()),
        ("bytes_received", pa.int64()),
    ],
    "socket_summary": [
        ("tool", CAT),
        ("proto", CAT),
        ("state", CAT),
        ("count", pa.int64()),
    ],
    "fds": [
        ("pid", pa.int64()),
        ("fd", pa.int64()),
        ("kind", CAT),
        ("target", pa.string()),
        ("inode", pa.int64()),
        ("tool", CAT),
    ],
    "dbstats": [
        ("pool", pa.string()),
        ("max_open", pa.int64()),
        ("open", pa.int64()),
        ("in_use", pa.int64()),
        ("idle", pa.int64()),
        ("wait_count", pa.int64()),
        ("wait_duration_ns", pa.int64()),
        ("max_idle_closed", pa.int64()),
        ("max_idle_time_closed", pa.int64()),
        ("max_lifetime_closed", pa.int64()),
    ],
    "limits": [
        ("pid", pa.int64()),
        ("resource", pa.string()),
        ("soft", pa.int64()),
        ("hard", pa.int64()),
        ("unit", pa.string()),
    ],
    "connections": [
        ("pid", pa.int64()),
        ("fd", pa.int64()),
        ("inode", pa.int64()),
        ("proto", CAT),
        ("state", CAT),
        ("local_ip", pa.string()),
        ("local_port", pa.int64()),
        ("remote_ip", pa.string()),
        ("remote_port", pa.int64()),
        ("peer_role", CAT),
        ("peer", pa.string()),
        ("tools", pa.string()),
        ("owned", pa.bool_()),
        ("last_send_ms", pa.int64()),
        ("last_recv_ms", pa.int64()),
        ("bytes_sent", pa.int64()),
        ("bytes_received", pa.int64()),
    ],
    # The result model flattened for the batch dataset (forensics/dataset.py), so that
    # questions across incidents are plain SQL. Nested evidence stays as JSON text.
    "findings": [
        ("finding_index", pa.int64()),
        ("kind", CAT),
        ("severity", CAT),
        ("severity_level", pa.int64()),
        ("confidence", pa.float64()),
        ("summary", pa.string()),
        ("advice", pa.string()),
        ("sites", pa.int64()),
        ("top_function", pa.string()),
        ("evidence_json", pa.string()),
    ],
    "call_sites": [
        ("rank", pa.int64()),
        ("function", pa.string()),
        ("file", pa.string()),
        ("line", pa.int64()),
        ("leak_kind", CAT),
        ("score", pa.float64()),
        ("role", CAT),
        ("inferred", pa.bool_()),
        ("goroutines", pa.int64()),
        ("heap_inuse_objects", pa.int64()),
        ("heap_inuse_bytes", pa.int64()),
        ("growth", pa.float64()),
        ("sockets", pa.int64()),
    ],
}

#: Tables whose rows carry no bundle/round context (stacks are shared by content hash).
CONTEXT_FREE = frozenset({"stacks"})

TABLE_NAMES: tuple[str, ...] = tuple(_TABLES)


def columns(table: str) -> list[tuple[str, pa.DataType]]:
    """Every column of ``table`` in contract order, common columns first."""
    own = _TABLES[table]
    if table in CONTEXT_FREE:
        return list(own)
    return COMMON + own


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(name, typ, nullable=True) for name, typ in columns(table)])


def _pandas_dtype(typ: pa.DataType) -> str:
    if pa.types.is_integer(typ):
        return "Int64" if typ == pa.int64() else "Int32"
    if pa.types.is_boolean(typ):
        return "boolean"
    if pa.types.is_floating(typ):
        return "Float64"
    if pa.types.is_timestamp(typ):
        return "datetime64[ns, UTC]"
    return "string"


def pandas_dtype(table: str, name: str, typ: pa.DataType | None = None) -> str:
    """The pandas dtype of a column: ``category`` for :data:`CATEGORICAL` columns."""
    if name in CATEGORICAL.get(table, ()):
        return "category"
    if typ is None:
        typ = dict(columns(table))[name]
    return _pandas_dtype(typ)


def nulls(dtype: str, n: int) -> pd.api.extensions.ExtensionArray:
    """``n`` typed nulls, built in bulk (a Python list of NA costs seconds at 10^7 rows)."""
    mask = np.ones(n, bool)
    if dtype in ("Int64", "Int32"):
        return pd.arrays.IntegerArray(np.zeros(n, np.int64 if dtype == "Int64" else np.int32),
                                      mask)
    if dtype == "boolean":
        return pd.arrays.BooleanArray(np.zeros(n, bool), mask)
    if dtype == "Float64":
        return pd.arrays.FloatingArray(np.zeros(n, np.float64), mask)
    if dtype == "category":
        return pd.Categorical.from_codes(np.full(n, -1, np.int8),
                                         categories=pd.Index([], dtype="str"))
    if dtype == "string":
        return pd.arrays.ArrowStringArray(pa.nulls(n, pa.large_string()))
    return pd.array(np.full(n, None, dtype=object), dtype=dtype)


def _cast(col: pd.Series, dtype: str) -> pd.api.extensions.ExtensionArray:
    """``col``'s values as an array of ``dtype`` (its own array when it already is)."""
    if str(col.dtype) == dtype:
        if dtype != "category" or col.cat.categories.dtype == "str" \
                or not len(col.cat.categories):
            return col.array
        return col.cat.rename_categories(col.cat.categories.astype("str")).array
    if dtype.startswith("datetime"):
        return pd.to_datetime(col, utc=True, errors="coerce").array
    numpy_kind = col.dtype.kind if isinstance(col.dtype, np.dtype) else ""
    if dtype in ("Int64", "Int32"):
        if dtype == "Int64" and numpy_kind == "i":
            # Plain integers need no parsing: the values as they are, none of them null.
            return pd.arrays.IntegerArray(col.to_numpy(dtype=np.int64), np.zeros(len(col), bool))
        if numpy_kind == "f":  # already numbers: only the nulls and the cast remain
            return _float_to_int(col, dtype)
        return pd.to_numeric(col, errors="coerce").astype(dtype).array
    if dtype == "category":
        text = col.array if str(col.dtype) == "string" else _cast(col, "string")
        codes, uniques = pd.factorize(text)  # categories are strings, never numbers
        return pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype="str"))
    if dtype == "string" and isinstance(col.dtype, pd.StringDtype) \
            and col.dtype.storage == "pyarrow":
        # Text already held by Arrow (pandas' "str"): re-wrapped, not converted per value.
        return pd.arrays.ArrowStringArray(pa.array(col.array).cast(pa.large_string()))
    return col.astype(dtype).array


def _float_to_int(col: pd.Series, dtype: str) -> pd.api.extensions.ExtensionArray:
    """Floats (NaN for null) as a nullable integer array. Whole numbers that fit int64
    are taken directly; anything else goes through pandas, which refuses it as before."""
    values = col.to_numpy()
    null = np.isnan(values)
    known = values[~null]
    if dtype == "Int64" and np.isfinite(known).all() and (known == np.trunc(known)).all() \
            and (np.abs(known) < 2.0**63).all():
        return pd.arrays.IntegerArray(np.where(null, 0, values).astype(np.int64), null)
    return col.astype(dtype).array


def empty(table: str) -> pd.DataFrame:
    return _empty(table).copy()


def _empty_as_contract(df: pd.DataFrame, table: str) -> bool:
    """Whether the contract columns ``df`` has (no rows) already have their dtype, so
    that casting them would give the same empty arrays as nulls do (a categorical with
    categories but no rows keeps them, and does not qualify)."""
    for name, dtype in zip(*_contract(table), strict=True):
        if name in df.columns:
            col = df[name]
            if str(col.dtype) != dtype or (dtype == "category" and len(col.cat.categories)):
                return False
    return True


@cache
def _empty(table: str) -> pd.DataFrame:
    """The table with no rows (never handed out: callers get a copy)."""
    names, dtypes = _contract(table)
    return pd.DataFrame({name: nulls(dtype, 0) for name, dtype in zip(names, dtypes,
                                                                      strict=True)},
                        index=pd.RangeIndex(0), copy=False)


def conform(df: pd.DataFrame | Iterable[Mapping], table: str) -> pd.DataFrame:
    """Cast ``df`` to the table's columns and dtypes; missing columns become nulls.

    Extra columns are dropped: the contract is what downstream code may rely on, and a
    parser that wants to say more must add it to the schema first. Columns that already
    have their dtype are taken as they are (no copy): conform is called on every table
    at every stage, so it must cost nothing when there is nothing to do.
    """
    if not isinstance(df, pd.DataFrame):
        df = pd.DataFrame(list(df))
    if _conformed(df, table):
        return df
    if not len(df) and _empty_as_contract(df, table):
        return _empty(table).copy()  # nothing to cast: a copy of the one built once
    out = {}
    n = len(df)
    present = set(df.columns)
    for name, dtype in zip(*_contract(table), strict=True):
        out[name] = _cast(df[name], dtype) if name in present else nulls(dtype, n)
    return pd.DataFrame(out, index=pd.RangeIndex(n), copy=False)


@cache
def _contract(table: str) -> tuple[list[str], list[str]]:
    """Column names and pandas dtype names of a table, in contract order."""
    cols = columns(table)
    return [n for n, _ in cols], [pandas_dtype(table, n, t) for n, t in cols]


def _conformed(df: pd.DataFrame, table: str, names: list[str] | None = None,
               dtypes: list[str] | None = None) -> bool:
    """Whether ``df`` already is exactly the contract (the common case: conform runs at
    every stage, and rebuilding an already conformed frame costs a millisecond each).

    A timestamp column of any unit counts: :func:`_cast` keeps the unit pandas chose
    (microseconds for Python datetimes), so casting it again would change nothing."""
    if names is None or dtypes is None:
        names, dtypes = _contract(table)
    if list(df.columns) != names:
        return False
    idx = df.index
    if not (isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1):
        return False
    return all(have == want or (_utc_datetime(want) and _utc_datetime(have))
               for have, want in zip(map(str, df.dtypes), dtypes, strict=True))


def _utc_datetime(dtype: str) -> bool:
    return dtype.startswith("datetime64[") and dtype.endswith(", UTC]")


def own_columns(table: str) -> list[str]:
    """The table's columns without the common context ones: what a parser produces."""
    return [name for name, _ in _TABLES[table]]


def conform_own(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Like :func:`conform`, but only the table's own columns (no bundle_id, round,
    captured_at, source): the pipeline adds those afterwards from the artifact, so
    building null ones first would be wasted work."""
    names, dtypes = _own_contract(table)
    if _conformed(df, table, names, dtypes):
        return df
    n = len(df)
    present = set(df.columns)
    out = {name: _cast(df[name], dtype) if name in present else nulls(dtype, n)
           for name, dtype in zip(names, dtypes, strict=True)}
    return pd.DataFrame(out, index=pd.RangeIndex(n), copy=False)


@cache
def _own_contract(table: str) -> tuple[list[str], list[str]]:
    names, dtypes = _contract(table)
    own = set(own_columns(table))
    keep = [i for i, name in enumerate(names) if name in own]
    return [names[i] for i in keep], [dtypes[i] for i in keep]


def concat(frames: list[pd.DataFrame], table: str) -> pd.DataFrame:
    """``pd.concat`` of conformed frames that keeps :data:`CATEGORICAL` columns
    categorical (plain concat turns categoricals with different categories into Python
    objects, one per row)."""
    frames = [f for f in frames if len(f)] or frames[:1]
    if not frames:
        return empty(table)
    if len(frames) == 1:
        return frames[0]
    cats = [c for c in CATEGORICAL.get(table, ()) if c in frames[0].columns]
    if not cats:
        return pd.concat(frames, ignore_index=True)
    plain = [c for c in frames[0].columns if c not in cats]
    rest = pd.concat([f[plain] for f in frames], ignore_index=True)
    columns = {c: rest[c].array for c in plain} | {
        c: _union_categoricals([_cast(f[c], "category") for f in frames]) for c in cats}
    return pd.DataFrame({c: columns[c] for c in frames[0].columns}, copy=False)


def _union_categoricals(parts: list[pd.Categorical]) -> pd.Categorical:
    """The parts one after another, categories in order of first appearance (what
    ``union_categoricals`` gives), by recoding each part's codes through one table of
    all distinct categories: no string is compared per row."""
    every = pd.Index(np.concatenate([p.categories.to_numpy(dtype=object) for p in parts]))
    recode, categories = pd.factorize(every)
    offsets = np.cumsum([0] + [len(p.categories) for p in parts])
    codes = [np.where(p.codes < 0, -1, recode[start + p.codes] if len(recode) else -1)
             for p, start in zip(parts, offsets[:-1], strict=True)]
    return pd.Categorical.from_codes(np.concatenate(codes),
                                     categories=pd.Index(categories, dtype="str"))


def to_arrow(df: pd.DataFrame, table: str) -> pa.Table:
    """The table as Arrow, converted column by column in Arrow (no Python object per
    value: the stacks table of a big heap profile has 10^7 rows)."""
    df = conform(df, table)
    schema = arrow_schema(table)
    arrays = [_arrow_column(df[fld.name], fld.type) for fld in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _arrow_column(col: pd.Series, typ: pa.DataType) -> pa.Array:
    if pa.types.is_dictionary(typ):
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.int32)
            values = pa.array(col.cat.categories.astype(object).to_list(), pa.string())
            return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), values)
        arr = _plain_arrow(col, pa.string())
        return arr.dictionary_encode().cast(typ)
    return _plain_arrow(col, typ)


def _plain_arrow(col: pd.Series, typ: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(typ):
        return pa.array(col, type=typ, from_pandas=True)
    try:  # pandas' masked and Arrow-backed arrays convert without Python objects
        arr = pa.array(col.array, from_pandas=True)
        return arr if arr.type == typ else arr.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return pa.array(col.astype(object).where(col.notna(), None), type=typ)


def from_arrow(tbl: pa.Table, table: str) -> pd.DataFrame:
    df = tbl.to_pandas()
    cats = CATEGORICAL.get(table, frozenset())
    for name, typ in columns(table):
        if pa.types.is_dictionary(typ) and name in df.columns and name not in cats:
            df[name] = df[name].astype(object)
    return conform(df, table)


#: Rows per Parquet row group written by :meth:`Tables.write_parquet`.
WRITE_ROWS = 1 << 20


@dataclass
class Tables:
    """Every table of one analysis, keyed by table name; absent tables read as empty."""

    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self.frames:
            self.frames[name] = empty(name)
        return self.frames[name]

    def __setitem__(self, name: str, df: pd.DataFrame) -> None:
        self.frames[name] = conform(df, name)

    def __contains__(self, name: str) -> bool:
        return name in self.frames and len(self.frames[name]) > 0

    def names(self) -> list[str]:
        return [n for n in TABLE_NAMES if n in self.frames]

    def write_parquet(self, out_dir: Path) -> list[Path]:
        """One Parquet file per table (every contract table, even when empty)."""
        import pyarrow.parquet as pq

        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in TABLE_NAMES:
            path = out_dir / f"{name}.parquet"
            df = self[name]
            # Min/max statistics of the categorical text columns (function names, file
            # paths) prune nothing and cost more than writing the column itself.
            stats = [c for c, _ in columns(name) if c not in CATEGORICAL.get(name, ())]
            with pq.ParquetWriter(path, arrow_schema(name), write_statistics=stats) as out:
                # A row group at a time: the Arrow copy of a 10^7-row table stays small.
                for start in range(0, max(len(df), 1), WRITE_ROWS):
                    out.write_table(to_arrow(df.iloc[start:start + WRITE_ROWS], name))
            written.append(path)
        return written

    @classmethod
    def read_parquet(cls, in_dir: Path) -> Tables:
        import pyarrow.parquet as pq

        t = cls()
        for name in TABLE_NAMES:
            path = in_dir / f"{name}.parquet"
            if path.exists():
                t.frames[name] = from_arrow(pq.read_table(path), name)
        return t
