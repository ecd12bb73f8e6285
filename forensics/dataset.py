"""The batch dataset: every table of every bundle, hive-partitioned by bundle, in Parquet.

Layout (one folder per table, one partition per bundle, one file per partition)::

    DIR/dataset/<table>/bundle=<key>/part-0.parquet

Why this shape: support teams ask questions *across* incidents ("which call sites leaked
most this quarter?"), and a hive layout is what DuckDB, pyarrow.dataset and Spark read
without any glue. One partition per bundle also makes reprocessing a bundle a plain
replace of its own files: a worker writes only its own partitions, so many workers (local
processes or Dask) never touch the same file and need no coordination.

Every row carries ``bundle_content_hash`` and ``analyzer_version`` so a query can tell
which capture and which version of the detectors produced it. The partition value
``key`` is a file-name-safe form of the bundle id (bundle ids come from customer file
names: untrusted text), see :func:`safe_key`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .findings import severity_level
from .schema import TABLE_NAMES, arrow_schema, conform, to_arrow

DATASET_DIR = "dataset"
PART_FILE = "part-0.parquet"
PARTITION = "bundle"
#: Columns added to every row of the dataset (not part of a single bundle's tables).
EXTRA_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("bundle_content_hash", pa.string()),
    ("analyzer_version", pa.string()),
)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_KEY = 80


def safe_key(text: str, max_len: int = MAX_KEY) -> str:
    """A file-name-safe, hive-safe partition value for an untrusted bundle id.

    Only ``[A-Za-z0-9._-]`` survive (runs of anything else become ``_``); no leading dot
    or dash (hidden files, options), never ``.``/``..``, never empty, bounded length.
    """
    key = _UNSAFE.sub("_", text or "").strip("._-")
    key = key[:max_len].rstrip("._-")
    return key or "bundle"


def is_table_name(name: str) -> bool:
    """True for names that are safe as SQL identifiers and folder names."""
    return bool(_TABLE_NAME.match(name))


def partition_dir(root: Path, table: str, key: str) -> Path:
    if not is_table_name(table) or safe_key(key) != key:
        raise ValueError(f"unsafe table or partition name: {table!r} / {key!r}")
    return root / table / f"{PARTITION}={key}"


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy / pandas scalars
        return o.item()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)


def _dumps(obj: Any) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), default=_json_default, sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))


def first_capture(analysis: Any) -> pd.Timestamp | None:
    """The bundle's earliest artifact time: what 'when did this incident happen' means."""
    times = [a.captured_at for a in analysis.artifacts if a.captured_at is not None]
    return pd.Timestamp(min(times)) if times else None


def findings_frame(analysis: Any) -> pd.DataFrame:
    """One row per finding; the nested evidence kept whole as JSON text."""
    rows = []
    for i, f in enumerate(analysis.findings):
        sites = list(getattr(f, "sites", []) or [])
        rows.append({
            "finding_index": i,
            "kind": f.kind,
            "severity": f.severity,
            "severity_level": severity_level(f.severity),
            "confidence": f.confidence,
            "summary": f.summary,
            "advice": getattr(f, "advice", "") or None,
            "sites": len(sites),
            "top_function": sites[0].function if sites else None,
            "evidence_json": _dumps(f.evidence),
        })
    return _with_bundle_context(pd.DataFrame(rows), analysis, "findings")


def call_sites_frame(analysis: Any) -> pd.DataFrame:
    """One row per ranked call site, its evidence numbers as columns."""
    rows = []
    for c in analysis.call_sites:
        ev = c.evidence or {}
        rows.append({
            "rank": c.rank,
            "function": c.function,
            "file": c.file,
            "line": c.line,
            "leak_kind": c.leak_kind,
            "score": c.score,
            "role": c.role,
            "inferred": c.inferred,
            "goroutines": ev.get("goroutines"),
            "heap_inuse_objects": ev.get("heap_inuse_objects"),
            "heap_inuse_bytes": ev.get("heap_inuse_bytes"),
            "growth": ev.get("growth"),
            "sockets": ev.get("sockets"),
        })
    return _with_bundle_context(pd.DataFrame(rows), analysis, "call_sites")


def _with_bundle_context(df: pd.DataFrame, analysis: Any, table: str) -> pd.DataFrame:
    if len(df):
        df["bundle_id"] = analysis.bundle.bundle_id
        df["captured_at"] = first_capture(analysis)
    return conform(df, table)


def bundle_tables(analysis: Any) -> dict[str, pd.DataFrame]:
    """Every contract table of one analysis, plus its findings and call sites."""
    out = {name: analysis.tables[name] for name in TABLE_NAMES
           if name not in ("findings", "call_sites")}
    out["findings"] = findings_frame(analysis)
    out["call_sites"] = call_sites_frame(analysis)
    return out


def _with_extras(tbl: pa.Table, content_hash: str, version: str) -> pa.Table:
    n = tbl.num_rows
    for (name, typ), value in zip(EXTRA_COLUMNS, (content_hash, version), strict=True):
        tbl = tbl.append_column(pa.field(name, typ), pa.array([value] * n, type=typ))
    return tbl


def _write_atomic(tbl: pa.Table, path: Path) -> None:
    """Readers never see half a file: write beside it under a hidden name, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        pq.write_table(tbl, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    for other in path.parent.iterdir():  # an older layout's leftovers would be read too
        if other.name != path.name and not other.name.startswith("."):
            other.unlink() if other.is_file() else shutil.rmtree(other, ignore_errors=True)


def write_bundle(root: Path, key: str, analysis: Any) -> dict[str, int]:
    """Write (or replace) every partition of one bundle; returns rows per table.

    Every table is written, empty ones too, so each table has the same columns in every
    partition and a view over a table exists as soon as one bundle is in.
    """
    content_hash = analysis.bundle.content_hash
    version = str(analysis.version)
    rows: dict[str, int] = {}
    for table, df in bundle_tables(analysis).items():
        # Most tables of a bundle are empty: skip pandas for those (it costs ~0.1 s each).
        tbl = to_arrow(df, table) if len(df) else arrow_schema(table).empty_table()
        tbl = _with_extras(tbl, content_hash, version)
        _write_atomic(tbl, partition_dir(root, table, key) / PART_FILE)
        rows[table] = tbl.num_rows
    return rows


def remove_bundle(root: Path, key: str) -> None:
    """Drop every partition of ``key`` (a bundle that now fails must not keep stale rows)."""
    if not root.is_dir():
        return
    for table in table_names(root):
        shutil.rmtree(partition_dir(root, table, key), ignore_errors=True)


def table_names(root: Path) -> list[str]:
    """Tables present in the dataset at ``root`` (folder names that are safe identifiers)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and is_table_name(p.name))


def table_glob(root: Path, table: str) -> str:
    return str(root / table / f"{PARTITION}=*" / "*.parquet")


def read_table(root: Path, table: str) -> pd.DataFrame:
    """One table across every bundle as a DataFrame, with the ``bundle`` partition column."""
    import pyarrow.dataset as ds

    part = ds.partitioning(pa.schema([(PARTITION, pa.string())]), flavor="hive")
    dset = ds.dataset(root / table, format="parquet", partitioning=part)
    return dset.to_table().to_pandas()
