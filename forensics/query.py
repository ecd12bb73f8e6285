"""SQL over a batch output folder, with DuckDB (embedded: no server, nothing to run).

Why DuckDB: the dataset is hive-partitioned Parquet (see :mod:`forensics.dataset`), which
DuckDB reads in place, in parallel, with predicate pushdown on the ``bundle`` partition;
questions across years of incidents become one SQL statement. Each table folder becomes
a view of the same name (``call_sites``, ``findings``, ``goroutines``, ``sockets``, ...),
with the partition column ``bundle`` and every contract column; ``bundles`` is one row
per bundle from the batch state (status, failure reason, severity, report paths).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .dataset import DATASET_DIR, PARTITION, table_glob, table_names

BUNDLES_FILE = "bundles.parquet"

#: The README's "Querying archived incidents" examples (tests run every one of them).
EXAMPLE_QUERIES: dict[str, str] = {
    "Which call sites leaked most this quarter?": """\
SELECT function, file, line, leak_kind,
       count(DISTINCT bundle)  AS incidents,
       sum(goroutines)         AS goroutines,
       sum(heap_inuse_objects) AS live_objects,
       max(score)              AS best_score
FROM call_sites
WHERE captured_at >= date_trunc('quarter', current_date)
GROUP BY ALL
ORDER BY incidents DESC, goroutines DESC
LIMIT 20""",
    "Which customers hit pool exhaustion with the pgx driver?": """\
SELECT DISTINCT b.hostname, f.bundle, f.kind, f.severity, f.summary
FROM findings f
JOIN bundles b USING (bundle)
WHERE f.kind IN ('sql_pool_exhausted', 'pgxpool_exhausted')
  AND EXISTS (SELECT 1 FROM stacks s
              WHERE s.bundle = f.bundle AND s.module LIKE 'github.com/jackc/pgx%')
ORDER BY f.severity_level DESC, f.bundle""",
    "Where do CLOSE_WAIT sockets pile up, across all incidents?": """\
SELECT remote_ip, remote_port,
       count(*)               AS close_wait,
       count(DISTINCT bundle) AS incidents
FROM connections
WHERE state = 'CLOSE_WAIT'
GROUP BY ALL
ORDER BY close_wait DESC
LIMIT 20""",
}


class QueryError(Exception):
    """The folder holds no dataset, or the SQL failed (the message says why)."""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sources(out: Path) -> dict[str, str]:
    """View name -> the Parquet path or glob it reads."""
    root = out / DATASET_DIR
    views = {name: table_glob(root, name) for name in table_names(root)
             if any((root / name).glob(f"{PARTITION}=*/*.parquet"))}
    if (out / BUNDLES_FILE).is_file():
        views["bundles"] = str(out / BUNDLES_FILE)
    return views


def connect(out: Path) -> Any:
    """An in-memory DuckDB connection with one view per dataset table."""
    try:
        import duckdb
    except ImportError as exc:  # pragma: no cover - duckdb is a test dependency
        raise QueryError("forensics query needs duckdb (pip install duckdb)") from exc
    views = view_sources(out)
    if not views:
        raise QueryError(f"{out}: no dataset here (expected {DATASET_DIR}/<table>/"
                         f"{PARTITION}=<id>/*.parquet, written by 'forensics batch')")
    con = duckdb.connect(":memory:")
    for name, src in views.items():
        if name == "bundles":
            con.execute(f"CREATE VIEW bundles AS SELECT * FROM read_parquet({_quote(src)})")
        else:
            con.execute(
                f"CREATE VIEW {name} AS SELECT * FROM read_parquet({_quote(src)}, "
                f"hive_partitioning = true, union_by_name = true, "
                f"hive_types = {{'{PARTITION}': VARCHAR}})")
    return con


def run(out: Path, sql: str) -> Any:
    """Run ``sql`` over the dataset in ``out``; returns a pyarrow Table."""
    import duckdb

    con = connect(out)
    try:
        rel = con.sql(sql)
        if rel is None:  # a statement without a result (e.g. SET)
            import pyarrow as pa

            return pa.table({})
        fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
        return fetch()
    except duckdb.Error as exc:
        raise QueryError(str(exc).strip()) from exc
    finally:
        con.close()


def plain(tbl: Any) -> Any:
    """Dictionary and decimal columns as plain strings/floats, for CSV and printing."""
    import pyarrow as pa

    cols = []
    for col in tbl.columns:
        typ = col.type
        if pa.types.is_dictionary(typ):
            col = col.cast(typ.value_type)
        elif pa.types.is_decimal(typ):  # DuckDB's sum() of BIGINT is a HUGEINT
            try:
                col = col.cast(pa.float64()) if typ.scale else col.cast(pa.int64())
            except pa.ArrowInvalid:
                col = col.cast(pa.string())
        cols.append(col)
    return pa.Table.from_arrays(cols, names=tbl.column_names)


def write_csv(tbl: Any, path: Path) -> None:
    import pyarrow.csv as pacsv

    pacsv.write_csv(plain(tbl), path)


def write_parquet(tbl: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(tbl, path)


def rows_for_display(tbl: Any, max_rows: int) -> tuple[list[str], list[list[str]]]:
    """Column names and up to ``max_rows`` rows as text (None -> empty)."""
    head = plain(tbl.slice(0, max_rows))
    columns = [c.to_pylist() for c in head.columns]  # by position: names may repeat
    rows = [["" if v is None else str(v) for v in row] for row in zip(*columns, strict=True)]
    return head.column_names, rows
