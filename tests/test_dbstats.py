"""db.Stats parser: the corpus pastes (values read by hand) and the JSON shapes services emit."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from forensics.parsers import dbstats, netstat, ss
from forensics.parsers.base import ParseContext, ParseError
from tests.conftest import corpus_files

VALUES = list(dbstats.COLUMNS)


def _rows(data: bytes | str) -> pd.DataFrame:
    raw = data.encode() if isinstance(data, str) else data
    return dbstats.parse(raw, ParseContext()).tables["dbstats"]


def _values(df: pd.DataFrame, pool: str = "default") -> list:
    row = df[df.pool == pool].iloc[0]
    return [None if pd.isna(row[c]) else int(row[c]) for c in VALUES]


@pytest.mark.parametrize("path", corpus_files("dbstats"), ids=lambda p: p.name)
def test_every_corpus_file_parses_and_sniffs_as_dbstats(corpus: Path, path: Path) -> None:
    data = path.read_bytes()
    result = dbstats.parse(data, ParseContext(path=path.name))
    assert len(result.tables["dbstats"]) >= 1
    assert all("snapshots" in w.message for w in result.warnings)
    assert dbstats.sniff(data, path.name) >= 0.5
    assert ss.sniff(data, path.name) == 0.0 and netstat.sniff(data, path.name) == 0.0


def test_percent_plus_v_pool_exhausted(corpus: Path) -> None:
    df = _rows((corpus / "dbstats" / "issue-godror-221-dbstats-percent-plus-v-pool-exhausted.txt")
               .read_bytes())
    assert len(df) == 1
    # MaxOpen 100, Open 100, InUse 100, Idle 0, WaitCount 1, WaitDuration 0s, closed 0/0/0
    assert _values(df) == [100, 100, 100, 0, 1, 0, 0, 0, 0]


def test_percent_plus_v_go111_has_8_fields_and_markdown(corpus: Path) -> None:
    name = "issue-golang-go-27792-dbstats-percent-plus-v-go1.11-8fields.txt"
    result = dbstats.parse((corpus / "dbstats" / name).read_bytes(), ParseContext())
    # Two snapshots printed one after the other: one row per pool, the last snapshot.
    assert result.meta["snapshots"] == 2
    assert len(result.warnings) == 1
    df = result.tables["dbstats"]
    assert len(df) == 1
    assert df["max_open"].tolist() == [1]
    assert df["max_idle_closed"].tolist() == [10]  # "MaxIdleClosed:**10**"
    assert df["max_idle_time_closed"].isna().all()  # no such field before Go 1.15
    assert df["max_lifetime_closed"].tolist() == [0]


def test_percent_v_positional_nine_fields(corpus: Path) -> None:
    name = "issue-go-sql-driver-mysql-1279-dbstats-percent-v-positional.txt"
    result = dbstats.parse((corpus / "dbstats" / name).read_bytes(), ParseContext())
    assert result.meta["format"] == "go_text_positional"
    # {6 6 6 0 0 0s 0 0 7}: the pool is pinned (InUse == MaxOpen), 7 closed by lifetime.
    assert _values(result.tables["dbstats"]) == [6, 6, 6, 0, 0, 0, 0, 0, 7]


def test_prometheus_exposition_chainlink_names(corpus: Path) -> None:
    name = "issue-chainlink-7714-dbstats-prometheus-exposition.txt"
    result = dbstats.parse((corpus / "dbstats" / name).read_bytes(), ParseContext())
    assert result.meta["format"] == "prometheus"
    df = result.tables["dbstats"]
    assert df["pool"].tolist() == ["default"]
    # db_conns_max 20, _open 5, _used 2, db_wait_count 0, db_wait_time_seconds 0; no idle.
    assert _values(df) == [20, 5, 2, None, 0, 0, None, None, None]


# --- JSON and text shapes ----------------------------------------------------------------

GO_JSON = {
    "MaxOpenConnections": 10, "OpenConnections": 10, "InUse": 10, "Idle": 0,
    "WaitCount": 42, "WaitDuration": 1_200_000_000, "MaxIdleClosed": 1,
    "MaxIdleTimeClosed": 2, "MaxLifetimeClosed": 3,
}
GO_VALUES = [10, 10, 10, 0, 42, 1_200_000_000, 1, 2, 3]


def test_json_marshal_of_db_stats() -> None:
    df = _rows(json.dumps(GO_JSON))
    assert df["pool"].tolist() == ["default"]
    assert _values(df) == GO_VALUES


def test_named_pools_and_snake_case_with_duration_strings() -> None:
    doc = {
        "primary": GO_JSON,
        "replica": {"max_open_connections": 5, "open_connections": 5, "in_use": 5, "idle": 0,
                    "wait_count": 7, "wait_duration": "2m3.5s"},
    }
    df = _rows(json.dumps(doc))
    assert sorted(df.pool) == ["primary", "replica"]
    assert _values(df, "primary") == GO_VALUES
    assert _values(df, "replica")[:6] == [5, 5, 5, 0, 7, 123_500_000_000]


def test_expvar_page_and_deeper_nesting() -> None:
    page = {"cmdline": ["/srv/app"], "memstats": {"Alloc": 1, "Frees": 2, "NumGC": 3},
            "db": GO_JSON, "app": {"pools": {"orders": {"stats": {**GO_JSON, "InUse": 4}}}}}
    df = _rows(json.dumps(page))
    assert sorted(df.pool) == ["db", "orders"]  # "stats" names the wrapper, not the pool
    assert _values(df, "db") == GO_VALUES
    assert _values(df, "orders")[2] == 4


def test_array_of_pools_with_and_without_names() -> None:
    df = _rows(json.dumps([{**GO_JSON, "name": "users"}, GO_JSON]))
    assert df["pool"].tolist() == ["users", "pool[1]"]


def test_json_lines_after_a_log_prefix() -> None:
    text = ("2024/01/02 10:00:00 dbstats " + json.dumps(GO_JSON) + "\n"
            "2024/01/02 10:00:10 dbstats " + json.dumps({**GO_JSON, "WaitCount": 50}) + "\n")
    df = _rows(text)
    assert df["wait_count"].tolist() == [50]  # the later snapshot of the same pool


def test_big_wait_duration_stays_exact() -> None:
    df = _rows(json.dumps({**GO_JSON, "WaitDuration": 2**53 + 1}))
    assert df["wait_duration_ns"][0] == 2**53 + 1  # not rounded through a float


def test_json_on_a_later_line_after_a_comment() -> None:
    df = _rows("# db.Stats() at 10:00:00\n" + json.dumps(GO_JSON) + "\n")
    assert _values(df) == GO_VALUES


@pytest.mark.parametrize(("text", "ns"), [
    ("1.5s", 1_500_000_000), ("2m3.5s", 123_500_000_000), ("350ms", 350_000_000),
    ("1h2m", 3_720_000_000_000), ("0s", 0), ("1.2µs", 1_200), ("7ns", 7), ("-1s", -10**9),
])
def test_go_duration_strings(text: str, ns: int) -> None:
    assert dbstats.parse_go_duration(text) == ns
    assert _rows(json.dumps({**GO_JSON, "WaitDuration": text}))["wait_duration_ns"][0] == ns


@pytest.mark.parametrize("bad", ["1.5", "5x", "s", "1s2", ""])
def test_not_a_go_duration(bad: str) -> None:
    assert dbstats.parse_go_duration(bad) is None


def test_percent_plus_v_with_a_pool_label_and_positional_go111() -> None:
    text = ("primary: {MaxOpenConnections:10 OpenConnections:10 InUse:10 Idle:0 WaitCount:42 "
            "WaitDuration:1.2s MaxIdleClosed:1 MaxIdleTimeClosed:2 MaxLifetimeClosed:3}\n"
            "replica={4 3 2 1 0 0s 5 6}\n")
    df = _rows(text)
    assert _values(df, "primary") == GO_VALUES
    # 8 values: Go 1.11-1.14 order, no MaxIdleTimeClosed.
    assert _values(df, "replica") == [4, 3, 2, 1, 0, 0, 5, None, 6]


def test_prometheus_client_golang_collector_with_db_name() -> None:
    text = (
        "# HELP go_sql_in_use_connections The number of connections currently in use.\n"
        'go_sql_max_open_connections{db_name="orders"} 10\n'
        'go_sql_in_use_connections{db_name="orders"} 10\n'
        'go_sql_wait_count_total{db_name="orders"} 17\n'
        'go_sql_wait_duration_seconds_total{db_name="orders"} 2.5\n'
        'go_sql_in_use_connections{db_name="users"} 1\n'
    )
    df = _rows(text)
    assert sorted(df.pool) == ["orders", "users"]
    assert _values(df, "orders")[:6] == [10, None, 10, None, 17, 2_500_000_000]


@pytest.mark.parametrize("junk", [
    b"", b"{", b"[" * 100000, b'{"a":' * 5000 + b"1" + b"}" * 5000, b"\xff\xfe\x00\x00",
    b"{1 2 3}", b'{"InUse": "x", "Idle": null}', b"go_sql_in_use_connections NaN\n",
    b'{"MaxOpenConnections": 1e999, "InUse": 100000000000000000000000, "WaitCount": "x"}',
    b"{1 2 3 4 5 99999999999999999999h 6 7 8}",
])
def test_unusable_input_raises_parse_error_only(junk: bytes) -> None:
    with pytest.raises(ParseError):
        dbstats.parse(junk, ParseContext())
