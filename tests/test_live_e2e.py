"""Live end-to-end: build the leaking service, run it on a real PostgreSQL, drive each leak,
capture with the collector, and check what the captures show.

Why: every other test reads files somebody wrote down; this one proves the chain on what
a real Go runtime (old: 1.19, GOPATH build; current: 1.27, module build, and `go install
-trimpath` from a module proxy) and real lsof/ss write today. Each scenario is one bundle
(3 rounds, load running between them); the raw artifacts are checked through the
project's own parsers (growth of the leak's goroutines, sockets to the database against
MaxOpenConns, db.Stats), then the analyzer must rank the planted function first and find
nothing in the healthy service.

A second service, tools/pgxservice (pgx v4's pgxpool), checks a driver and a pool other than
database/sql + lib/pq the same way, and a third, tools/grpcservice (grpc-go 1.33), a gRPC
client that dials per request, and its Redis cache (redigo) that keeps connections, and a
fourth, tools/mysqlservice, go-sql-driver/mysql against a throwaway MariaDB.

Skips (fails under CI) without Go 1.19, Go 1.27, lib/pq, pgx v4, grpc-go, redigo or
go-sql-driver/mysql sources, PostgreSQL, redis-server or MariaDB.
About a minute and a half of scenarios plus the builds (cold: ~1 minute, cached: seconds).
"""

from __future__ import annotations

import itertools
import json
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import ROOT, require

from forensics import collect
from forensics.parsers import load
from forensics.parsers.base import ParseContext

sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tools" / "leakyservice")]
import harness  # noqa: E402
import loadgen  # noqa: E402
import pgcluster  # noqa: E402

pytestmark = pytest.mark.live


def _load_script(path: Path, name: str):
    """A capture script of tools/*service as a module of its own name (they are all
    called capture.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


grpc_capture = _load_script(ROOT / "tools" / "grpcservice" / "capture.py", "grpc_capture")
mysql_capture = _load_script(ROOT / "tools" / "mysqlservice" / "capture.py", "mysql_capture")

ROUNDS, INTERVAL, WARMUP = 3, 2.0, 2.0
PLANTED = {
    "rows": "internal/store.(*Store).listOrdersLeakyRows",
    "tx": "internal/store.(*Store).transferFundsLeakyTx",
    "openperreq": "main.lookupUserOpenPerRequest",
    "body": "internal/rates.(*Client).fetchUpstreamLeakyBody",
    "hang": "internal/rates.(*Client).fetchUpstreamNoTimeout",
    "conn": "main.lookupUserDedicatedConnLeaky",
}


@dataclass
class Scenario:
    go: str
    mode: str
    mix: str
    rate: float
    maxopen: int
    memprofilerate: int = 4096
    collector: str = "py"


SCENARIOS = {
    # A leaked Tx holds ~4 KiB of heap: at rate 4096 a short scenario samples it about once,
    # so one unlucky capture would leave the heap with only in-flight allocations of the
    # healthy path. 512 samples every leaked Tx (the default-rate case is sample_bundles/
    # tx-go1.19, checked in test_detect).
    "tx-1.19": Scenario("1.19", "tx", "transfer=6,orders,users,rates", 16, 100,
                        memprofilerate=512),
    "tx-1.27": Scenario("1.27", "tx", "transfer=6,orders,users,rates", 16, 100,
                        memprofilerate=512),
    "openperreq-1.27": Scenario("1.27", "openperreq", "users=4,orders,transfer,rates", 12, 10),
    "rows-1.19": Scenario("1.19", "rows", "orders=4,transfer,users,rates", 10, 4),
    "body-1.27": Scenario("1.27", "body", "rates=4,orders,transfer,users", 10, 10,
                          collector="sh"),
    # Built with `go install -trimpath module@version`: every file is `module@v1.0.0/...`,
    # the service's own included, so only main.main says which module is the app's.
    "tx-install": Scenario("1.27-install", "tx", "transfer=6,orders,users,rates", 16, 100,
                           memprofilerate=512),
    "conn-1.19": Scenario("1.19", "conn", "users=4,orders,transfer,rates", 10, 4,
                          memprofilerate=512),
    "hang-1.27": Scenario("1.27", "hang", "rates=6,orders,transfer,users", 16, 10),
    # pgx v5 as the database/sql driver: its per-connection statement cache lives under
    # queryDC and must not read as open rows of the first line that ran each query.
    "rows-pgx": Scenario("1.27-pgx", "rows", "orders=4,transfer,users,rates", 10, 4),
    "healthy-1.19": Scenario("1.19", "healthy", "orders,transfer,users,rates", 14, 10),
}


@dataclass
class Capture:
    """One scenario's bundle, read back: manifest and per-round artifact bytes."""

    path: Path
    pid: int
    db_port: int
    upstream_port: int
    manifest: dict[str, Any]
    rounds: dict[int, dict[str, bytes]]
    pg_states: dict[str, int] = field(default_factory=dict)

    def parse(self, r: int, name: str, table: str) -> pd.DataFrame:
        kind = {"goroutines.txt": "goroutines", "goroutineleak.txt": "goroutines",
                "ss.txt": "ss", "dbstats.json": "dbstats", "lsof.txt": "lsof"}[name]
        res = load(kind).parse(self.rounds[r][name], ParseContext(pid=self.pid))
        return res.tables[table]

    def goroutines_in(self, r: int, function: str) -> int:
        """Goroutines of round ``r`` whose stack holds ``function`` (a suffix match)."""
        res = load("goroutines").parse(self.rounds[r]["goroutines.txt"], ParseContext())
        stacks = res.tables["stacks"]
        hit = stacks.loc[stacks["function"].str.endswith(function), "stack_id"]
        g = res.tables["goroutines"]
        return int(g.loc[g["stack_id"].isin(hit), "count"].fillna(1).sum())

    def sockets(self, r: int, state: str, remote_port: int) -> int:
        s = self.parse(r, "ss.txt", "sockets")
        mine = s[(s["pid"] == self.pid) & (s["state"] == state) & (s["remote_port"] == remote_port)]
        return len(mine)

    def dbstats(self, r: int) -> dict[str, int]:
        return self.parse(r, "dbstats.json", "dbstats").iloc[0].to_dict()

    def status(self, r: int, name: str) -> str:
        return self.manifest["rounds"][r - 1]["files"][f"round-{r}/{name}"]["status"]


def _read_bundle(path: Path) -> tuple[dict[str, Any], dict[int, dict[str, bytes]]]:
    manifest: dict[str, Any] = {}
    rounds: dict[int, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            parts = m.name.split("/")
            data = tar.extractfile(m).read()
            if parts[-1] == "capture.json":
                manifest = json.loads(data)
            elif len(parts) == 3 and parts[1].startswith("round-"):
                rounds.setdefault(int(parts[1][6:]), {})[parts[2]] = data
    return manifest, rounds


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("build")
    built = {}
    for version in harness.TARGETS:
        missing = harness.missing_for_build(version)
        require(missing is None, str(missing))
        built[version] = harness.build(out, version)
    return built


@pytest.fixture(scope="module")
def pg():
    require(pgcluster.unavailable_reason() is None, str(pgcluster.unavailable_reason()))
    with pgcluster.PgCluster(max_connections=300) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def captures(binaries, pg, tmp_path_factory) -> Callable[[str], Capture]:
    """Runs a scenario on first use and keeps its capture for the module's other tests."""
    done: dict[str, Capture] = {}
    out_dir = tmp_path_factory.mktemp("bundles")

    def get(name: str) -> Capture:
        if name not in done:
            done[name] = _run_scenario(name, SCENARIOS[name], binaries, pg, out_dir)
        return done[name]

    return get


def _run_scenario(name: str, sc: Scenario, binaries: dict[str, Path],
                  pg: pgcluster.PgCluster, out_dir: Path) -> Capture:
    db = "shop_" + name.replace("-", "_").replace(".", "")
    dsn = pg.create_database(db, harness.SCHEMA)
    bundle = out_dir / f"{name}.tar.gz"
    with harness.Service(binaries[sc.go], dsn, mode=sc.mode, maxopen=sc.maxopen,
                         memprofilerate=sc.memprofilerate) as svc:
        limit = WARMUP + (ROUNDS - 1) * INTERVAL + 2
        load_thread = threading.Thread(target=loadgen.drive, kwargs=dict(
            base=svc.app, mix=sc.mix, total=1000, rate=sc.rate, concurrency=8,
            time_limit=limit, timeout=1.0))
        load_thread.start()
        try:
            time.sleep(WARMUP)
            if sc.collector == "sh":
                _shell_collect(svc, pg, bundle)
            else:
                collect.run(svc.pid, svc.pprof, bundle, dbstats_url=svc.dbstats, rounds=ROUNDS,
                            interval=INTERVAL, db_addresses=[pg.address])
        finally:
            load_thread.join(limit + 10)
        pg_states = pg.backends(db)
        pid, upstream = svc.pid, int(svc.urls["upstream"].rsplit(":", 1)[1])
    manifest, rounds = _read_bundle(bundle)
    return Capture(bundle, pid, pg.port, upstream, manifest, rounds, pg_states)


def _shell_collect(svc: harness.Service, pg: pgcluster.PgCluster, bundle: Path) -> None:
    import subprocess

    script = bundle.with_suffix(".sh")
    script.write_text(collect.script_text())
    res = subprocess.run(
        ["sh", str(script), "-p", str(svc.pid), "-u", svc.pprof, "-d", svc.dbstats,
         "-n", str(ROUNDS), "-i", str(int(INTERVAL)), "-a", pg.address, "-o", str(bundle)],
        capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr


def _increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


# -- raw artifacts ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tx-1.19", "tx-1.27"])
def test_tx_leak_awaitdone_goroutines_grow(captures, name: str) -> None:
    c = captures(name)
    waiting = [c.goroutines_in(r, "database/sql.(*Tx).awaitDone") for r in (1, 2, 3)]
    assert _increasing(waiting) and waiting[-1] >= 8, waiting
    # Each leaked Tx pins a pool connection: InUse grows with them, far below MaxOpen.
    stats = [c.dbstats(r) for r in (1, 2, 3)]
    assert [s["max_open"] for s in stats] == [100] * 3
    # The dump and db.Stats are taken a moment apart while load runs: a transaction may
    # begin or commit in between, so allow a small difference.
    slack = 3
    assert _increasing([s["in_use"] for s in stats])
    assert stats[-1]["in_use"] >= waiting[-1] - slack, (stats[-1], waiting)
    assert c.sockets(3, "ESTABLISHED", c.db_port) >= waiting[-1] - slack
    # PostgreSQL agrees: the leaked transactions are still open on the server.
    assert c.pg_states.get("idle in transaction", 0) >= waiting[-1]
    # The leak profile exists only from Go 1.26 on.
    expected = "ok" if name.endswith("1.27") else "skipped"
    assert {c.status(r, "goroutineleak.txt") for r in (1, 2, 3)} == {expected}
    assert c.manifest["go_version"].startswith("go" + name.split("-")[1])


def test_openperreq_sockets_exceed_max_open(captures) -> None:
    c = captures("openperreq-1.27")
    openers = [c.goroutines_in(r, "database/sql.(*DB).connectionOpener") for r in (1, 2, 3)]
    assert _increasing(openers) and openers[-1] >= 20, openers
    stats = c.dbstats(3)
    established = c.sockets(3, "ESTABLISHED", c.db_port)
    # The long-lived pool is fine; the connections belong to pools nobody closed.
    assert stats["max_open"] == 10 and stats["open"] <= 10
    assert established > stats["max_open"] and established >= openers[-1] - 1
    # Go 1.27's leak profile proves the abandoned pools' opener goroutines leaked.
    leaks = c.parse(3, "goroutineleak.txt", "goroutine_leaks")
    assert int(leaks["count"].sum()) >= openers[-1] - 5


def test_rows_leak_exhausts_the_pool(captures) -> None:
    c = captures("rows-1.19")
    stats = [c.dbstats(r) for r in (1, 2, 3)]
    assert all(s["max_open"] == 4 and s["in_use"] == 4 and s["idle"] == 0 for s in stats)
    assert _increasing([s["wait_count"] for s in stats])
    # Callers queue in (*DB).conn; most of them are the leaky function itself.
    waiters = [c.goroutines_in(r, "database/sql.(*DB).conn") for r in (1, 2, 3)]
    leaky = [c.goroutines_in(r, PLANTED["rows"]) for r in (1, 2, 3)]
    assert _increasing(waiters) and waiters[-1] >= 15, waiters
    assert leaky[-1] >= waiters[-1] // 2
    assert c.sockets(3, "ESTABLISHED", c.db_port) == 4
    # Abandoned client requests leave the app's own server sockets half closed.
    s = c.parse(3, "ss.txt", "sockets")
    app_close_wait = int(((s["pid"] == c.pid) & (s["state"] == "CLOSE_WAIT")).sum())
    assert app_close_wait >= 5


def test_body_leak_shell_collector(captures) -> None:
    c = captures("body-1.27")
    assert c.manifest["tool_versions"]["collector"] == "sh"
    loops = [c.goroutines_in(r, "net/http.(*persistConn).readLoop") for r in (1, 2, 3)]
    assert _increasing(loops) and loops[-1] >= 15, loops
    # The feed closes idle connections after 3 s; the leaked client ends never close.
    assert c.sockets(3, "CLOSE_WAIT", c.upstream_port) >= 5
    assert c.dbstats(3)["in_use"] == 0


def test_healthy_service_shows_no_leak(captures) -> None:
    c = captures("healthy-1.19")
    for r in (1, 2, 3):
        assert c.goroutines_in(r, "database/sql.(*Tx).awaitDone") == 0
        assert c.goroutines_in(r, "database/sql.(*DB).connectionOpener") == 1
        assert c.goroutines_in(r, "net/http.(*persistConn).readLoop") <= 16
        assert c.sockets(r, "ESTABLISHED", c.db_port) <= 10
        s = c.parse(r, "ss.txt", "sockets")
        assert int(((s["pid"] == c.pid) & (s["state"] == "CLOSE_WAIT")).sum()) == 0
        assert c.dbstats(r)["wait_count"] == 0
    totals = [len(c.parse(r, "goroutines.txt", "goroutines")) for r in (1, 2, 3)]
    assert max(totals) - min(totals) <= 15, totals
    assert c.pg_states.get("idle in transaction", 0) == 0


# -- the analyzer on the same bundles ------------------------------------------------------------


def _analyze(path: Path) -> dict[str, Any]:
    from forensics import pipeline, report

    return report.document(pipeline.analyze(path))


@pytest.mark.parametrize("name", ["tx-1.19", "tx-1.27", "openperreq-1.27", "rows-1.19",
                                  "body-1.27", "tx-install", "hang-1.27", "conn-1.19",
                                  "rows-pgx"])
def test_analyzer_ranks_planted_function_first(captures, name: str) -> None:
    doc = _analyze(captures(name).path)
    assert doc["findings"], "no finding"
    assert doc["call_sites"], "no call site"
    assert doc["call_sites"][0]["function"].endswith(PLANTED[SCENARIOS[name].mode]), \
        [c["function"] for c in doc["call_sites"][:3]]


def test_installed_trimpath_build_reports_the_services_own_lines(captures) -> None:
    """In a ``go install -trimpath`` build, lib/pq and the service both sit at a version
    (``github.com/lib/pq@v1.10.7/conn.go``): by path alone every frame is third-party. The
    service's frames must still be the app and lib/pq's a library."""
    cap = captures("tx-install")
    from forensics import pipeline

    stacks = pipeline.build_tables(cap.path).tables["stacks"]
    files = stacks["file"].astype(str)
    own = stacks[files.str.startswith("github.com/acme-retail/orders-api@v1.0.0/")]
    pq = stacks[files.str.startswith("github.com/lib/pq@v1.10.7/")]
    assert len(own) and len(pq), files.drop_duplicates().head(20).tolist()
    assert set(own["frame_class"].astype(str)) == {"app"}
    assert set(pq["frame_class"].astype(str)) == {"library"}
    site = _analyze(cap.path)["call_sites"][0]
    assert site["file"].startswith("github.com/acme-retail/orders-api@v1.0.0/internal/store/")


def test_analyzer_finds_nothing_in_healthy_service(captures) -> None:
    doc = _analyze(captures("healthy-1.19").path)
    serious = [f for f in doc["findings"] if f["severity"] != "info"]
    assert serious == [], [f["summary"] for f in serious]
    assert not doc["verdict"]["leak"]
    assert doc["call_sites"] == []


# -- a second driver and pool: pgx's pgxpool, v4 and v5 (tools/pgxservice) ------------------


def _capture_pgx(pg, tmp_path: Path, major: str, mode: str) -> dict[str, Any]:
    """A capture of inventory-api on pgx ``major`` in ``mode`` under load, analyzed."""
    missing = harness.missing_for_pgx(major)
    require(missing is None, str(missing))
    binary = harness.build_pgx(tmp_path / "build", major)
    dsn = pg.create_database(f"inventory_{major}_{mode}", harness.PGX_SCHEMA)
    bundle = tmp_path / f"pgx{major}-{mode}.tar.gz"
    limit = WARMUP + (ROUNDS - 1) * INTERVAL + 2
    with harness.Service(binary, dsn, mode=mode, maxopen=4, memprofilerate=4096,
                         upstream=False) as svc:
        # Clients wait longer than the capture: their queued requests are the evidence.
        load_thread = threading.Thread(target=loadgen.drive, kwargs=dict(
            base=svc.app, mix="reserve", total=1000, rate=12, concurrency=96,
            time_limit=limit, timeout=limit + 2))
        load_thread.start()
        try:
            time.sleep(WARMUP)
            collect.run(svc.pid, svc.pprof, bundle, dbstats_url=None, rounds=ROUNDS,
                        interval=INTERVAL, db_addresses=[pg.address])
        finally:
            load_thread.join(2 * limit + 10)
    return _analyze(bundle)


@pytest.mark.parametrize(("major", "mode", "leak_kind", "function"), [
    ("v4", "acquire", "sql_conn_leak", "reserveStockLeakyAcquire"),
    ("v5", "rows", "sql_rows_leak", "reserveStockLeakyRows"),
])
def test_pgxpool_leak_is_named(pg, tmp_path: Path, major: str, mode: str, leak_kind: str,
                               function: str) -> None:
    """inventory-api keeps a pgxpool connection on its sold-out path: a connection acquired
    and not released (pgx v4), or rows not closed (pgx v5.9, which starts no goroutine per
    query: only the heap's live rows name the line). Once the pool is empty the callers
    queue in puddle's Acquire (v5: puddle v2's semaphore) while the connections to
    PostgreSQL stay at MaxConns and silent. No db.Stats exists for pgxpool: the dumps, the
    heap and the sockets must name the function."""
    doc = _capture_pgx(pg, tmp_path, major, mode)
    top = doc["call_sites"][0] if doc["call_sites"] else {}
    assert top.get("function", "").endswith(f"main.(*inventory).{function}"), \
        [c["function"] for c in doc["call_sites"][:3]]
    assert top["leak_kind"] == leak_kind and top["role"] == "cause", top
    exhausted = [f for f in doc["findings"] if f["kind"] == "pgxpool_exhausted"]
    assert exhausted and exhausted[0]["severity"] in ("high", "critical"), \
        [(f["kind"], f["severity"], f["summary"]) for f in doc["findings"]]


def test_pgx5_pool_done_right_is_clean(pg, tmp_path: Path) -> None:
    doc = _capture_pgx(pg, tmp_path, "v5", "healthy")
    assert _serious(doc) == []


def _leak_and_healthy(script, tmp_path: Path, leak_mode: str, missing: str | None,
                      build_args: tuple[str, ...] = (),
                      **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build a capture script's service (``build_args``: its variant), capture it in
    ``leak_mode`` and healthy, and return both reports (skipped, or failed under CI, when
    ``missing`` says why not)."""
    require(missing is None, str(missing))
    binary = script.build(tmp_path / "build", *build_args)
    docs = []
    for mode in (leak_mode, "healthy"):
        bundle = tmp_path / f"{mode}.tar.gz"
        script.capture(binary, bundle, mode, rate=10, rounds=ROUNDS, interval=INTERVAL,
                       warmup=WARMUP, **options)
        docs.append(_analyze(bundle))
    return docs[0], docs[1]


def _serious(doc: dict[str, Any]) -> list[str]:
    return [f["summary"] for f in doc["findings"] if f["severity"] != "info"]


def _named(doc: dict[str, Any], kind: str, function: str) -> None:
    """``doc`` has a ``kind`` finding of medium severity or more and ranks ``function``
    first."""
    found = [f for f in doc["findings"] if f["kind"] == kind]
    assert found and found[0]["severity"] in ("medium", "high", "critical"), doc["findings"]
    assert doc["call_sites"][0]["function"].endswith(function), doc["call_sites"][:3]


# -- a gRPC client: tools/grpcservice (grpc-go 1.33) -----------------------------------------


def test_grpc_dial_per_request_is_named_and_the_shared_conn_is_clean(tmp_path: Path) -> None:
    """pricing-gateway dials a *grpc.ClientConn per request and never closes it: its own
    goroutines, the HTTP/2 connections to the backend and the live ClientConns all grow,
    and the heap names the dialing line. With one shared ClientConn nothing is reported."""
    leak, healthy = _leak_and_healthy(grpc_capture, tmp_path, "dialperreq",
                                      grpc_capture.missing())
    grpc = [f for f in leak["findings"] if f["kind"] == "grpc_conn_leak"]
    assert grpc and grpc[0]["severity"] == "high", [f["summary"] for f in leak["findings"]]
    assert leak["call_sites"][0]["function"].endswith(
        "main.(*gateway).lookupPriceDialPerRequest"), leak["call_sites"][:3]
    assert _serious(healthy) == []


def test_go_redis_v9_pool_leak_is_named_and_the_healthy_cache_is_clean(tmp_path: Path) -> None:
    """The same cache on go-redis v9.17 (Go 1.27, from Debian unstable): a dedicated
    connection (rdb.Conn()) not closed on a miss. The callers queue in go-redis's pool
    inside a shared lookup helper; the eight connections stay open and silent; the line
    that takes the dedicated connection, which every waiter passed through, is named."""
    leak, healthy = _leak_and_healthy(grpc_capture, tmp_path, "rediscache",
                                      grpc_capture.missing(redis=True, client="goredis"),
                                      build_args=("goredis",), redis=True)
    _named(leak, "redis_pool_exhausted", "main.(*priceCache).cachedPriceLeakyConn")
    assert _serious(healthy) == []


def test_go_redis_pubsub_left_open_is_named_by_its_dial_path(tmp_path: Path) -> None:
    """A go-redis PubSub per request, never closed: connections outside the pool, so no
    pool rule speaks; the sockets to Redis keep rising and the heap's live allocations
    below the Subscribe line's dial name it."""
    why = grpc_capture.missing(redis=True, client="goredis")
    require(why is None, str(why))
    binary = grpc_capture.build(tmp_path / "build", "goredis")
    bundle = tmp_path / "pubsub.tar.gz"
    grpc_capture.capture(binary, bundle, "redispubsub", rate=10, rounds=ROUNDS,
                         interval=INTERVAL, warmup=WARMUP)
    _named(_analyze(bundle), "store_conn_growth",
           "main.(*priceCache).cachedPriceWatchLeakyPubSub")


def test_redigo_pool_leak_is_named_and_the_healthy_cache_is_clean(tmp_path: Path) -> None:
    """The gateway's Redis price cache (redigo, MaxActive 8, Wait) keeps the connection on a
    cache miss: the pool empties, callers queue in (*Pool).waitVacantConn, and the line
    that gets the connection is where they queue. With every connection closed: clean."""
    leak, healthy = _leak_and_healthy(grpc_capture, tmp_path, "rediscache",
                                      grpc_capture.missing(redis=True), redis=True)
    _named(leak, "redis_pool_exhausted", "main.(*priceCache).cachedPriceLeakyConn")
    assert _serious(healthy) == []


# -- a MySQL driver: tools/mysqlservice (go-sql-driver/mysql on MariaDB) ---------------------


def test_mysql_rows_leak_is_named_and_the_healthy_service_is_clean(tmp_path: Path) -> None:
    """catalog-api leaks a *sql.Rows on go-sql-driver/mysql against a real MariaDB: the pool
    (MaxOpen 6) empties, callers queue in (*DB).conn, the six connections sit silent, and
    the only line that queries without closing is named. Done right: clean."""
    leak, healthy = _leak_and_healthy(mysql_capture, tmp_path, "rows", mysql_capture.missing())
    assert any(f["kind"] == "sql_pool_exhausted" and f["severity"] == "high"
               for f in leak["findings"]), leak["findings"]
    assert leak["call_sites"][0]["function"].endswith("main.(*catalog).firstItemsLeakyRows"), \
        leak["call_sites"][:3]
    assert _serious(healthy) == []

