"""Detection and ranking on real captures: the sample bundles of the leaking service (each
planted function must rank first for its leak; the healthy one must come out clean) and
corpus dumps from other people's services."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, require
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.evidence import Groups, Trend, sum_by_round
from forensics.pipeline import analyze
from forensics.report import document, to_json

SAMPLES = ROOT / "sample_bundles"
PLANTED = {
    "rows": ("listOrdersLeakyRows", "sql_rows_leak"),
    "tx": ("transferFundsLeakyTx", "sql_tx_leak"),
    "openperreq": ("lookupUserOpenPerRequest", "sql_pool_per_request"),
    "body": ("fetchUpstreamLeakyBody", "http_body_leak"),
    # tools/pgxservice: pgx v4, a pool connection acquired and not released; pgx v5.9, rows
    # not closed (no goroutine per query: the heap's live rows name the line)
    "pgxpool": ("reserveStockLeakyAcquire", "sql_conn_leak"),
    "pgx5": ("reserveStockLeakyRows", "sql_rows_leak"),
    "hang": ("fetchUpstreamNoTimeout", "http_request_hang"),
    "conn": ("lookupUserDedicatedConnLeaky", "sql_conn_leak"),
    "grpc": ("lookupPriceDialPerRequest", "grpc_conn_leak"),  # tools/grpcservice
    "redis": ("cachedPriceLeakyConn", "redis_pool_exhausted"),  # tools/grpcservice + Redis
    "mysql": ("firstItemsLeakyRows", "sql_rows_leak"),  # tools/mysqlservice + MariaDB
    # go-redis PubSub never closed: connections outside any pool, named by the dial path
    "pubsub": ("cachedPriceWatchLeakyPubSub", "store_conn_growth"),
}


def _bundles(prefix: str = "") -> list[Path]:
    return sorted(SAMPLES.glob(f"{prefix}*.tar.gz")) if SAMPLES.is_dir() else []


@pytest.fixture(scope="module")
def analyses():
    cache: dict[Path, object] = {}

    def get(path: Path):
        if path not in cache:
            cache[path] = analyze(path)
        return cache[path]

    return get


@pytest.mark.parametrize("bundle", [b for b in _bundles()
                                    if not b.name.startswith(("healthy", "helper", "slow"))],
                         ids=lambda p: p.name)
def test_planted_function_ranks_first(bundle, analyses):
    mode = bundle.name.split("-")[0]
    function, kind = PLANTED[mode]
    a = analyses(bundle)
    assert a.call_sites, f"no call site in {bundle.name}: {[f.summary for f in a.findings]}"
    top = a.call_sites[0]
    assert top.function.endswith(function), [c.function for c in a.call_sites[:3]]
    assert top.leak_kind == kind
    assert top.file.endswith(".go") and top.line
    assert any(f.severity in ("high", "critical") for f in a.findings)
    # the top site comes with the stacks behind it
    assert top.stacks and all(st["frames"] for st in top.stacks)


@pytest.mark.parametrize("bundle", _bundles("healthy"), ids=lambda p: p.name)
def test_healthy_service_is_clean(bundle, analyses):
    a = analyses(bundle)
    assert all(f.severity == "info" for f in a.findings), [(f.kind, f.summary)
                                                           for f in a.findings]
    assert not document(a)["verdict"]["leak"]
    assert a.exit_code() == 0


def test_parent_in_flight_is_a_candidate_not_the_cause(analyses):
    """tx-inflight-go1.27 (Go 1.27, default heap rate: the heap names no Tx) caught one
    transfer in flight: the goroutine that began one open Tx was running inside
    applyTransfer, the helper both transfer variants call, healthy or not. A parent seen
    in one round may be a healthy request: it is a candidate, never the named cause, and
    it must not hide the candidates the pool calls give (the line that begins the Tx). Of
    the parent's frames, the one that begins Tx (per the heap's history) is named, not
    the helper it has moved on to."""
    bundles = _bundles("tx-inflight")
    require(bool(bundles), "sample bundle tx-inflight-go1.27 missing")
    a = analyses(bundles[0])
    tx = next(f for f in a.findings if f.kind == "sql_tx_leak")
    in_flight = [s for s in tx.sites if "in flight" in s.note]
    assert in_flight and all(s.inferred for s in in_flight), tx.sites
    assert all(s.function.endswith("transferFundsLeakyTx") for s in in_flight), in_flight
    assert not any(c.function.endswith("applyTransfer") for c in a.call_sites)
    assert a.call_sites[0].function.endswith("transferFundsLeakyTx")
    assert not [c.function for c in a.call_sites if not c.inferred]


def test_silent_checked_out_connections_and_a_shared_helper(analyses):
    """helper-go1.27: the early hours of a slow leak. checkBalanceLeakyRows leaks a Rows
    (no cancellable context: no goroutine; garbage once forgotten: nothing on the heap)
    from the store's shared query helper, whose other caller closes what it gets. The pool
    is far from full and nobody waits: only the kernel (connections checked out and
    silent, ss -i) and db.Stats (InUse climbing) see it. The candidates must be the
    helper's callers, not the helper, which opens the rows and hands them back."""
    bundles = _bundles("helper")
    require(bool(bundles), "sample bundle helper-go1.27 missing")
    a = analyses(bundles[0])
    held = [f for f in a.findings if f.kind == "sql_conn_held"]
    assert held and held[0].severity == "high", [(f.kind, f.summary) for f in a.findings]
    sockets = next(c for c in held[0].checks if c.source == "sockets")
    assert sockets.verdict == "supports" and "silent" in sockets.detail
    functions = [c.function.rsplit(".", 1)[-1] for c in a.call_sites]
    assert "checkBalanceLeakyRows" in functions and "listOrdersViaHelper" in functions
    assert "query" not in functions
    assert all(c.inferred for c in a.call_sites)
    via = next(c for c in a.call_sites if c.function.endswith("checkBalanceLeakyRows"))
    assert any("shared helper store.(*Store).query" in n for n in via.evidence["notes"])


def test_silent_connections_without_db_stats_need_a_steady_rise(tmp_path):
    """The same capture without its dbstats.json members (many customers collect none):
    the pool's idle connections are silent too and their number is unknown (MaxIdleConns
    may be anything), so a few silent connections in the last round prove nothing. The
    rule stays quiet rather than guess."""
    import io
    import tarfile

    bundles = _bundles("helper")
    require(bool(bundles), "sample bundle helper-go1.27 missing")
    out = tmp_path / "no-dbstats.tar.gz"
    with tarfile.open(bundles[0]) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            if m.name.endswith("dbstats.json"):
                continue
            dst.addfile(m, io.BytesIO(src.extractfile(m).read()) if m.isfile() else None)
    a = analyze(out)
    assert not [f for f in a.findings if f.kind == "sql_conn_held"], \
        [(f.kind, f.summary) for f in a.findings]


def test_slow_queries_are_not_forgotten_connections(analyses):
    """slow-go1.27 leaks nothing: every tenth user lookup runs a 20-second report query.
    Those connections are silent (the server is busy) and InUse climbs while they pile up,
    but a goroutine waits in IO inside each database call. No leak may be reported; the
    clients that gave up leave a few inbound CLOSE_WAITs, a minor observation at most."""
    bundles = _bundles("slow")
    require(bool(bundles), "sample bundle slow-go1.27 missing")
    a = analyses(bundles[0])
    assert not document(a)["verdict"]["leak"], [(f.kind, f.summary) for f in a.findings]
    assert all(f.severity in ("info", "low") for f in a.findings)
    assert not [f for f in a.findings if f.kind in ("sql_conn_held", "sql_pool_exhausted")]


def test_silent_connections_stay_a_check_when_the_object_is_named(analyses):
    """In tx-go1.27 the Tx rule names the leak; the silent connections back it up as its
    sockets check instead of a second finding about the same connections."""
    bundles = _bundles("tx-go1.27")
    require(bool(bundles), "sample bundle tx-go1.27 missing")
    a = analyses(bundles[0])
    assert not [f for f in a.findings if f.kind == "sql_conn_held"]
    tx = next(f for f in a.findings if f.kind == "sql_tx_leak")
    sockets = next(c for c in tx.checks if c.source == "sockets")
    assert "checked out and not querying" in sockets.detail


def test_redis_pool_with_waiters_and_no_connection_left(analyses):
    """redis-go1.19: redigo connections taken on the cache-miss path are never closed; the
    garbage collector closes their sockets (TIME_WAIT on the client side) but the pool's
    slots never come back, so callers queue in every round with no connection to Redis."""
    bundles = _bundles("redis")
    require(bool(bundles), "sample bundle redis-go1.19 missing")
    a = analyses(bundles[0])
    f = next(f for f in a.findings if f.kind == "redis_pool_exhausted")
    assert f.severity == "high"
    sockets = next(c for c in f.checks if c.source == "sockets")
    assert sockets.verdict == "supports" and "no connection to the data store" in sockets.detail


def test_default_rate_capture_is_inferred_and_says_what_to_capture(analyses):
    bundles = _bundles("tx-go1.19")
    require(bool(bundles), "sample bundle tx-go1.19 missing")
    a = analyses(bundles[0])
    tx = next(f for f in a.findings if f.kind == "sql_tx_leak")
    assert "MemProfileRate" in tx.advice
    assert a.call_sites[0].inferred
    holders = tx.evidence["goroutines"]["holders_by_round"]
    assert holders == sorted(holders) and holders[-1] > holders[0]


def test_json_contract(analyses):
    bundles = _bundles("tx-go1.27")
    require(bool(bundles), "sample bundle tx-go1.27 missing")
    doc = json.loads(to_json(document(analyses(bundles[0]))))
    for key in ("bundle", "rounds", "artifacts", "findings", "call_sites", "warnings"):
        assert key in doc
    assert [r["round"] for r in doc["rounds"]] == [1, 2, 3]
    f = doc["findings"][0]
    assert {"kind", "severity", "confidence", "summary", "evidence"} <= set(f)
    c = doc["call_sites"][0]
    assert {"rank", "function", "file", "line", "leak_kind", "score", "evidence"} <= set(c)
    assert {"goroutines", "heap_inuse_objects", "heap_inuse_bytes", "growth", "sockets"} \
        <= set(c["evidence"])
    assert c["rank"] == 1
    assert doc["artifacts"][0].keys() >= {"path", "kind", "round", "status", "message"}


def test_trend_rules():
    assert Trend((5, 11, 17)).growing()
    assert not Trend((5, 30, 6)).growing()  # busy, then drained: not a leak
    assert not Trend((40, 41, 42)).growing()  # within noise of a large base
    assert not Trend((17,)).growing()  # one round proves nothing about growth


def test_pgxpool_waiters_in_a_real_dump(corpus):
    """jackc/pgx#713: thousands of goroutines queued in puddle's Acquire (debug=1)."""
    a = analyze(corpus / "goroutines" /
                "issue-jackc-pgx-713-debug1-double-header-puddle-acquire.txt")
    f = next(f for f in a.findings if f.kind == "pgxpool_exhausted")
    assert f.severity == "medium"  # one round, no wait times: sick, but no proof of a leak
    assert f.evidence["goroutines"]["waiters_by_round"][-1] > 1000
    assert f.confidence <= 0.6  # a single round caps confidence


def test_idle_keepalive_connections_are_not_a_body_leak(corpus):
    """A readLoop in [IO wait] for minutes is an idle keep-alive connection, not a leak."""
    a = analyze(corpus / "goroutines" /
                "issue-spidernet-spiderpool-917-persistConn-readLoop-io-wait-minutes.txt")
    assert not [f for f in a.findings if f.kind == "http_body_leak"]


def test_close_wait_on_a_server_port_without_listen_rows(corpus):
    """ipfs/kubo#5046: lsof -p of the daemon, no LISTEN rows: 14 CLOSE_WAIT on the API port
    facing clients' ephemeral ports are inbound connections its handlers never closed."""
    a = analyze(corpus / "lsof" / "issue-ipfs-kubo-5046-lsof-headerless-close_wait.out")
    f = next(f for f in a.findings if f.kind == "close_wait")
    assert f.evidence["sockets"]["role"] == "inbound"
    assert f.evidence["sockets"]["peer"] == "127.0.0.1:5001"
    assert f.evidence["sockets"]["by_round"] == [14]
    assert f.severity == "low"  # one round: no growth to speak of


def test_close_wait_spread_over_hosts_of_one_service(corpus):
    """ably-go#89: CLOSE_WAIT to several EC2 addresses of one HTTPS service add up."""
    a = analyze(corpus / "lsof" / "issue-ably-go-89-lsof-redacted-placeholders-close_wait.out")
    f = next(f for f in a.findings if f.kind == "close_wait")
    assert f.evidence["sockets"]["role"] == "upstream"
    assert f.evidence["sockets"]["peer"].startswith("*:443")
    assert f.evidence["sockets"]["by_round"] == [6]


def test_pgxpool_waiters_counted_once_and_capped_by_sockets(analyses):
    """puddle parks a cond.Wait helper beside every waiting caller: callers are counted once.
    pgxpool has no db.Stats; the sockets to PostgreSQL, flat while the queue grows, show
    the pool at its limit."""
    bundles = _bundles("pgxpool")
    require(bool(bundles), "sample bundle pgxpool-go1.19 missing")
    a = analyses(bundles[0])
    f = next(f for f in a.findings if f.kind == "pgxpool_exhausted")
    waiters = f.evidence["goroutines"]["waiters_by_round"]
    by_state = a.series["goroutines_by_state"]
    cond = by_state[max(by_state)].get("sync.Cond.Wait", 0)  # the helpers, last round
    assert waiters == sorted(waiters) and waiters[-1] > waiters[0]
    assert cond > 0 and waiters[-1] <= cond + 1  # one per caller, not caller + helper
    sockets = next(c for c in f.checks if c.source == "sockets")
    assert sockets.verdict == "supports" and "stays at 8" in sockets.detail
    assert f.severity == "high"



def test_driver_work_under_a_query_is_not_an_open_rows(analyses):
    """rows-pgx5-go1.27: orders-api on pgx v5 through database/sql. Under queryDC pgx
    prepares and caches each statement per connection; those objects live with the
    connection. They must not count as live *sql.Rows of whichever line first ran the
    query (here the healthy lookupUser), so no line but the planted one is named as a
    cause, and every live Rows counted was allocated by queryDC itself."""
    bundles = _bundles("rows-pgx5")
    require(bool(bundles), "sample bundle rows-pgx5-go1.27 missing")
    a = analyses(bundles[0])
    named = [c for c in a.call_sites if c.role == "cause" and not c.inferred]
    assert all(c.function.endswith("listOrdersLeakyRows") for c in named), named
    assert a.call_sites[0].function.endswith("listOrdersLeakyRows")
    lookup = [c for c in a.call_sites if c.function == "main.lookupUser"]
    assert lookup and lookup[0].role == "victim"


def test_silent_connections_while_callers_queue_are_held_without_db_stats(analyses):
    """redis-goredis-go1.27: go-redis keeps the forgotten connections referenced, so they
    stay open and silent; no db.Stats says how many are idle, but a pool with callers
    queued has none idle. The waiters wait in a shared helper; the line above it that
    takes the dedicated connection, which they all pass through, is named."""
    bundles = _bundles("redis-goredis")
    require(bool(bundles), "sample bundle redis-goredis-go1.27 missing")
    a = analyses(bundles[0])
    f = next(f for f in a.findings if f.kind == "redis_pool_exhausted")
    assert f.severity == "high" and f.evidence["connections_held"]
    assert any("has none idle" in c.detail for c in f.checks if c.source == "sockets")
    top = a.call_sites[0]
    assert top.function.endswith("cachedPriceLeakyConn") and top.role == "cause"
    assert any("come through here" in n for n in top.evidence["notes"])


def test_one_dump_with_open_objects_is_an_observation_not_a_verdict(analyses, tmp_path):
    """A single goroutine dump (the commonest capture) with open *sql.Tx, none parked for
    a minute: in flight or leaked, one moment cannot tell. Not a leak and not an all-clear:
    an observation that says what to capture next, and a verdict that says one round."""
    bundles = _bundles("tx-go1.27")
    require(bool(bundles), "sample bundle tx-go1.27 missing")
    with tarfile.open(bundles[0]) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith("round-3/goroutines.txt"))
        (tmp_path / "goroutines.txt").write_bytes(tf.extractfile(member).read())
    a = analyze(tmp_path / "goroutines.txt")
    tx = [f for f in a.findings if f.kind == "sql_tx_leak"]
    assert len(tx) == 1 and tx[0].severity == "info", [(f.kind, f.severity) for f in a.findings]
    assert "one capture cannot tell" in tx[0].summary and "again" in tx[0].advice
    assert a.call_sites == []
    verdict = document(a)["verdict"]
    assert not verdict["leak"] and "one capture" in verdict["text"]
    assert a.exit_code() == 0


def test_connections_growing_past_any_pool_are_named_by_their_dial_path(analyses):
    """pubsub-goredis-go1.27: a go-redis PubSub opened per request and never closed. No
    pool rule applies (go-redis keeps PubSub connections outside its pool, unbounded):
    only the sockets to Redis, more in every round, and the heap's live allocations under
    the dial below the app's Subscribe line. The silent-connections rule, worded for
    database/sql, stands down."""
    bundles = _bundles("pubsub-goredis")
    require(bool(bundles), "sample bundle pubsub-goredis-go1.27 missing")
    a = analyses(bundles[0])
    kinds = {f.kind: f for f in a.findings}
    assert "sql_conn_held" not in kinds, list(kinds)
    f = kinds["store_conn_growth"]
    established = f.evidence["sockets"]["db_established_by_round"]
    assert f.severity == "high" and established == sorted(established)
    assert established[-1] - established[0] >= 10
    top = a.call_sites[0]
    assert top.function.endswith("cachedPriceWatchLeakyPubSub") and not top.inferred

# ---- the numpy reductions behind the buckets agree with pandas' groupby --------------

_small_ints = st.one_of(st.none(), st.integers(-3, 3))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, 2, 3]), st.sampled_from(["a", "b", None]),
                          _small_ints, _small_ints, st.one_of(st.none(), st.booleans())),
                max_size=30))
def test_groups_reduce_like_pandas_groupby(rows):
    df = pd.DataFrame({
        "round": pd.array([r[0] for r in rows], dtype="Int64"),
        "key": pd.array([r[1] for r in rows], dtype="string"),
        "n": pd.array([r[2] for r in rows], dtype="Int64"),
        "parent": pd.array([r[3] for r in rows], dtype="Int64"),
        "flag": pd.array([r[4] for r in rows], dtype="boolean"),
    })
    g = Groups(df, ["round", "key"])
    want = df.groupby(["round", "key"], sort=False).agg(
        n_sum=("n", "sum"), n_min=("n", "min"), n_max=("n", "max"), flag=("flag", "any"),
        parents=("parent", lambda p: sorted({int(x) for x in p.dropna()}))).reset_index()
    assert list(g.first(df["round"])) == list(want["round"])
    assert list(g.first(df["key"])) == list(want["key"])
    assert g.sum(df["n"]).tolist() == want["n_sum"].tolist()
    assert list(g.min(df["n"])) == list(want["n_min"])
    assert list(g.max(df["n"])) == list(want["n_max"])
    assert list(g.any(df["flag"])) == list(want["flag"])
    assert g.distinct(df["parent"]) == want["parents"].tolist()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(1, 4)), st.integers(0, 50)),
                max_size=20))
def test_sum_by_round_like_pandas(rows):
    df = pd.DataFrame({"round": pd.array([r[0] for r in rows], dtype="Int64"),
                       "count": np.array([r[1] for r in rows], dtype=np.int64)})
    assert sum_by_round(df, "count") == df.groupby("round")["count"].sum().to_dict()
    assert sum_by_round(df) == df.groupby("round").size().to_dict()
