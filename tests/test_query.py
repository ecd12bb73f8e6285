"""forensics query: DuckDB views over the batch dataset return the numbers in the files."""

from __future__ import annotations

import csv

import pyarrow.parquet as pq
import pytest
from conftest import CORPUS, require
from test_batch import GP2, LSOF, PGX, close_wait_lines, debug1_goroutines, debug2_goroutines
from test_batch import make_bundles as _make_bundles

try:
    import duckdb  # noqa: F401
    HAVE_DUCKDB = True
except ImportError:  # a test dependency: skip here, fail under CI
    HAVE_DUCKDB = False


@pytest.fixture(scope="module")
def out(tmp_path_factory, corpus):
    from forensics.batch import run_batch

    require(HAVE_DUCKDB, "duckdb is not installed")
    base = tmp_path_factory.mktemp("query")
    _make_bundles(base / "src")
    run_batch(str(base / "src"), base / "out", ("json",), workers=2)
    return base / "out"


def rows(out, sql):
    from forensics.query import run

    return run(out, sql).to_pylist()


def test_views_exist_for_every_table(out):
    from forensics.query import view_sources
    from forensics.schema import TABLE_NAMES

    views = view_sources(out)
    assert set(TABLE_NAMES) | {"bundles"} <= set(views)
    cols = {r["column_name"] for r in rows(out, "DESCRIBE call_sites")}
    assert {"bundle", "bundle_content_hash", "analyzer_version", "function", "file", "line",
            "score", "goroutines", "heap_inuse_objects"} <= cols


def test_goroutine_counts_per_bundle(out):
    got = {r["bundle"]: r["n"] for r in rows(
        out, "SELECT bundle, sum(coalesce(count, 1))::BIGINT AS n FROM goroutines GROUP BY 1")}
    assert got["pool"] == debug1_goroutines(PGX)
    assert got["http"] == debug2_goroutines(GP2)


def test_close_wait_across_incidents(out):
    from forensics.query import EXAMPLE_QUERIES

    sql = EXAMPLE_QUERIES["Where do CLOSE_WAIT sockets pile up, across all incidents?"]
    result = rows(out, sql)
    assert sum(r["close_wait"] for r in result) == close_wait_lines(LSOF)  # only 'pool' has lsof
    assert {r["remote_port"] for r in result} == {443}  # ':https' in the lsof NAME column
    assert {r["incidents"] for r in result} == {1}


def test_every_readme_example_runs(out):
    from forensics.query import EXAMPLE_QUERIES, run

    for title, sql in EXAMPLE_QUERIES.items():
        tbl = run(out, sql)
        assert tbl.num_columns >= 3, title


def test_pool_exhaustion_example_names_the_customer(out):
    from forensics.query import EXAMPLE_QUERIES

    found = rows(out, "SELECT bundle, kind FROM findings WHERE kind = 'pgxpool_exhausted'")
    sql = EXAMPLE_QUERIES["Which customers hit pool exhaustion with the pgx driver?"]
    # The pgx dump (3251 goroutines parked in puddle Acquire) is the only pgx bundle.
    assert [(r["bundle"], r["kind"]) for r in rows(out, sql)] == [
        (r["bundle"], r["kind"]) for r in found]
    assert all(r["bundle"] == "pool" for r in found)


def test_bundles_view_tells_failures(out):
    got = {r["bundle"]: (r["status"], r["hostname"]) for r in rows(
        out, "SELECT bundle, status, hostname FROM bundles")}
    assert got["corrupt"][0] == "failed"
    assert got["folder"] == ("ok", "web-1")  # from the folder's capture.json


def test_cli_table_csv_parquet(out, tmp_path):
    from typer.testing import CliRunner

    from forensics.cli import app

    sql = "SELECT bundle, count(*) AS n FROM sockets GROUP BY 1 ORDER BY 1"
    r = CliRunner().invoke(app, ["query", str(out), sql])
    assert r.exit_code == 0, r.output
    assert "pool" in r.output and "1 rows" in r.output

    r = CliRunner().invoke(app, ["query", str(out), sql, "--csv", str(tmp_path / "r.csv")])
    assert r.exit_code == 0, r.output
    n = len((CORPUS / LSOF).read_text().splitlines()) - 1  # lsof rows below the header
    with open(tmp_path / "r.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [{"bundle": "pool", "n": str(n)}]

    r = CliRunner().invoke(app, ["query", str(out), sql, "--parquet", str(tmp_path / "r.pq")])
    assert r.exit_code == 0, r.output
    assert pq.read_table(tmp_path / "r.pq").to_pylist() == [{"bundle": "pool", "n": n}]


def test_errors(out, tmp_path):
    from typer.testing import CliRunner

    from forensics.cli import app
    from forensics.query import QueryError, run

    with pytest.raises(QueryError, match="no_such_table"):
        run(out, "SELECT * FROM no_such_table")
    with pytest.raises(QueryError, match="no dataset here"):
        run(tmp_path, "SELECT 1")
    r = CliRunner().invoke(app, ["query", str(out), "SELEC oops"])
    assert r.exit_code == 2


def test_unsafe_folder_names_are_not_views(out):
    (out / "dataset" / "x; DROP").mkdir()
    try:
        from forensics.query import view_sources

        assert "x; DROP" not in view_sources(out)
    finally:
        (out / "dataset" / "x; DROP").rmdir()
