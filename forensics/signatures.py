"""The leak-frame knowledge base, as data (derived from SIGNATURES.md).

Two kinds of entries:

- :data:`GOROUTINE_SIGNATURES`: what a goroutine parked because of a connection looks like.
  ``role`` says what such a goroutine means: a *holder* exists once per leaked object (a
  ``Tx.awaitDone`` goroutine per open Tx), a *victim* is a caller waiting for a connection
  the pool cannot give (its stack names the app site that waits), a *pool* goroutine exists
  once per pool object (``connectionOpener``: many of them means a pool per request), a
  *helper* is a library's own goroutine beside a victim (not counted again), and *healthy*
  frames mean the opposite of a leak (an idle keep-alive ``readLoop``).
- :data:`HEAP_SITES`: allocation frames of connection-holding objects. A live object
  allocated there, attributed to the first app frame of its allocation stack, is the most
  direct evidence there is of the line that took the connection.

Frames match by prefix so that closures (``.func1``, ``.gowrap2``) and generic
instantiations still match. Extend this table when the tests meet a new library.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GoroutineSignature:
    id: str
    leak_kind: str
    role: str  # holder | victim | pool | helper | healthy
    frames: tuple[str, ...]
    #: Wait states in which the signature counts (None: any state).
    states: tuple[str, ...] | None = None
    #: States that mean the same frames are *not* this signature (readLoop in IO wait is idle).
    not_states: tuple[str, ...] = ()
    #: The pool call a victim makes, to narrow causes when the heap is silent.
    pool_call: str = ""
    library: str = ""
    description: str = ""


@dataclass(frozen=True)
class HeapSite:
    id: str
    leak_kind: str
    frames: tuple[str, ...]
    object: str
    library: str = ""
    #: Frames that, rootward of the allocation, make it a part of another site's object,
    #: counted there (pgx's rows under database/sql are the inside of a *sql.Rows).
    part_of: tuple[str, ...] = ()
    #: The object itself, not the work done under the site frame: only allocations with
    #: nothing but the standard library leafward of it count. Under queryDC the driver
    #: prepares and caches statements per connection (pgx), objects that live as long as
    #: the connection and say nothing about open rows.
    own_object: bool = False


# Leak kinds, used in findings and call sites.
SQL_TX = "sql_tx_leak"
SQL_ROWS = "sql_rows_leak"
SQL_CONN = "sql_conn_leak"
SQL_STMT = "sql_stmt_leak"
SQL_POOL_PER_REQUEST = "sql_pool_per_request"
SQL_POOL_EXHAUSTED = "sql_pool_exhausted"
#: Connections checked out and silent (the object that holds them is not known).
SQL_CONN_HELD = "sql_conn_held"
HTTP_BODY = "http_body_leak"
HTTP_CONN_WAIT = "http_conn_wait"
HTTP_HANG = "http_request_hang"
PGX_POOL_EXHAUSTED = "pgxpool_exhausted"
REDIS_POOL_EXHAUSTED = "redis_pool_exhausted"
GRPC_CONN = "grpc_conn_leak"
#: Connections to a data store growing round after round, whatever client opens them.
STORE_CONN_GROWTH = "store_conn_growth"
CLOSE_WAIT = "close_wait"
FD_EXHAUSTION = "fd_exhaustion"
RUNTIME_LEAK = "runtime_proven_leak"

GOROUTINE_SIGNATURES: tuple[GoroutineSignature, ...] = (
    # database/sql
    GoroutineSignature(
        "sql.tx.awaitDone", SQL_TX, "holder", ("database/sql.(*Tx).awaitDone",),
        library="database/sql",
        description="one goroutine per open *sql.Tx (until Commit/Rollback or its ctx ends)"),
    GoroutineSignature(
        "sql.rows.awaitDone", SQL_ROWS, "holder", ("database/sql.(*Rows).awaitDone",),
        library="database/sql",
        description="one goroutine per open *sql.Rows with a cancellable ctx"),
    GoroutineSignature(
        "sql.db.connectionOpener", SQL_POOL_PER_REQUEST, "pool",
        ("database/sql.(*DB).connectionOpener",), library="database/sql",
        description="one goroutine per *sql.DB: many means sql.Open is called repeatedly"),
    GoroutineSignature(
        "sql.db.conn.wait", SQL_POOL_EXHAUSTED, "victim", ("database/sql.(*DB).conn",),
        states=("select",), library="database/sql",
        description="a caller waiting for a free connection from a full pool"),
    GoroutineSignature(
        "sql.db.mutex", SQL_POOL_EXHAUSTED, "victim",
        ("database/sql.(*DB).conn", "database/sql.(*DB).putConn"),
        states=("semacquire", "sync.Mutex.Lock"), library="database/sql",
        description="contention on the pool's mutex"),
    # drivers: one goroutine per connection or per in-flight operation
    GoroutineSignature(
        "mysql.startWatcher", SQL_POOL_EXHAUSTED, "holder",
        ("github.com/go-sql-driver/mysql.(*mysqlConn).startWatcher",),
        library="github.com/go-sql-driver/mysql",
        description="one goroutine per open MySQL connection"),
    GoroutineSignature(
        "pq.watchCancel", SQL_ROWS, "holder",
        ("github.com/lib/pq.(*conn).watchCancel", "github.com/lib/pq.(*stmt).watchCancel"),
        library="github.com/lib/pq",
        description="one goroutine per in-flight lib/pq query, open Rows or Tx"),
    GoroutineSignature(
        "pgx.ctxwatch", SQL_ROWS, "holder",
        ("github.com/jackc/pgx/v5/pgconn/internal/ctxwatch.(*ContextWatcher).Watch",
         "github.com/jackc/pgx/v5/pgconn/ctxwatch.(*ContextWatcher).Watch",
         "github.com/jackc/pgconn/internal/ctxwatch.(*ContextWatcher).Watch"),
        library="github.com/jackc/pgx",
        description="one goroutine per pgx operation with a cancellable ctx (leaked pgx.Rows)"),
    GoroutineSignature(
        "puddle.acquire.cond", PGX_POOL_EXHAUSTED, "helper",
        ("github.com/jackc/puddle.(*Pool).Acquire.func", "github.com/jackc/puddle/v2.(*Pool"
         "[...]).Acquire.func"),
        states=("sync.Cond.Wait",), library="github.com/jackc/puddle",
        description="puddle's cond.Wait bridge, one beside each waiting caller (counted "
                    "through that caller, not again)"),
    GoroutineSignature(
        "pgxpool.acquire.wait", PGX_POOL_EXHAUSTED, "victim",
        ("github.com/jackc/puddle/v2.(*Pool", "github.com/jackc/puddle.(*Pool",
         "github.com/jackc/pgx/v5/pgxpool.(*Pool).Acquire",
         "github.com/jackc/pgx/v4/pgxpool.(*Pool).Acquire"),
        states=("select", "sync.Cond.Wait", "semacquire"), library="github.com/jackc/pgx",
        description="a caller waiting for a pgxpool connection"),
    GoroutineSignature(
        "pgxpool.healthcheck", SQL_POOL_PER_REQUEST, "pool",
        ("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck",
         "github.com/jackc/pgx/v4/pgxpool.(*Pool).backgroundHealthCheck"),
        library="github.com/jackc/pgx",
        description="one goroutine per pgxpool.Pool: many means pools created repeatedly"),
    GoroutineSignature(
        "redis.waitTurn", REDIS_POOL_EXHAUSTED, "victim",
        ("github.com/go-redis/redis/v8/internal/pool.(*ConnPool).waitTurn",
         "github.com/redis/go-redis/v9/internal/pool.(*ConnPool).waitTurn",
         "github.com/redis/go-redis/v9/internal.(*FastSemaphore).Acquire"),
        states=("select",), library="go-redis",
        description="a caller waiting for a go-redis pool connection"),
    GoroutineSignature(
        "redigo.waitVacantConn", REDIS_POOL_EXHAUSTED, "victim",
        ("github.com/gomodule/redigo/redis.(*Pool).waitVacantConn",
         "github.com/garyburd/redigo/redis.(*Pool).waitVacantConn"),
        states=("select",), library="redigo",
        description="a caller waiting for a redigo pool connection (Wait: true, MaxActive "
                    "reached)"),
    GoroutineSignature(
        "redigo.pool.cond", REDIS_POOL_EXHAUSTED, "victim",
        ("github.com/gomodule/redigo/redis.(*Pool).get",
         "github.com/garyburd/redigo/redis.(*Pool).get"),
        states=("sync.Cond.Wait",), library="redigo",
        description="a caller waiting for a redigo pool connection (redigo before 1.8)"),
    # net/http
    GoroutineSignature(
        "http.readLoop.body", HTTP_BODY, "holder", ("net/http.(*persistConn).readLoop",),
        states=("select",), library="net/http",
        description="HTTP/1 client connection whose response body was never read to EOF "
                    "or closed (readLoop waits for the body, not the network)"),
    GoroutineSignature(
        "http.readLoop.idle", HTTP_BODY, "healthy", ("net/http.(*persistConn).readLoop",),
        states=("IO wait",), library="net/http",
        description="idle keep-alive HTTP/1 client connection (healthy)"),
    GoroutineSignature(
        "http.getConn.wait", HTTP_CONN_WAIT, "victim", ("net/http.(*Transport).getConn",),
        states=("select",), library="net/http",
        description="a request waiting for a connection (MaxConnsPerHost reached or slow dial)"),
    GoroutineSignature(
        "http.roundTrip.wait", HTTP_HANG, "holder",
        ("net/http.(*persistConn).roundTrip", "net/http.(*http2ClientConn).RoundTrip",
         "net/http.(*http2ClientConn).roundTrip",
         "golang.org/x/net/http2.(*ClientConn).RoundTrip",
         "golang.org/x/net/http2.(*ClientConn).roundTrip"),
        states=("select",), library="net/http",
        description="a request sent and waiting for its response headers; each holds a "
                    "connection (many, growing, or for minutes: no timeout on a stalled "
                    "upstream)"),
    GoroutineSignature(
        "grpc.transport.reader", GRPC_CONN, "holder",
        ("google.golang.org/grpc/internal/transport.(*http2Client).reader",),
        library="google.golang.org/grpc",
        description="one goroutine per gRPC client transport (ClientConn never closed?)"),
    GoroutineSignature(
        "grpc.clientconn", GRPC_CONN, "holder",
        ("google.golang.org/grpc.(*ccBalancerWrapper).watcher",
         "google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
        library="google.golang.org/grpc",
        description="a *grpc.ClientConn's own goroutine (its balancer watcher up to v1.4x, "
                    "its callback serializers since): grows with ClientConns never closed"),
)

#: Frames that mean "this goroutine is taking the dump": not part of the service's state.
DUMPER_FRAMES: tuple[str, ...] = (
    "runtime/pprof.writeGoroutineStacks",
    "runtime/pprof.writeRuntimeProfile",
    "runtime/pprof.(*Profile).WriteTo",
    "runtime.Stack",
)

HEAP_SITES: tuple[HeapSite, ...] = (
    HeapSite("sql.Tx", SQL_TX, ("database/sql.(*DB).beginDC",), "*sql.Tx", "database/sql",
             own_object=True),
    HeapSite("sql.Rows", SQL_ROWS, ("database/sql.(*DB).queryDC",), "*sql.Rows",
             "database/sql", own_object=True),
    HeapSite("sql.Conn", SQL_CONN, ("database/sql.(*DB).Conn",), "*sql.Conn", "database/sql",
             own_object=True),
    HeapSite("sql.Stmt", SQL_STMT, ("database/sql.(*DB).prepareDC",), "*sql.Stmt",
             "database/sql", own_object=True),
    HeapSite("sql.DB", SQL_POOL_PER_REQUEST, ("database/sql.OpenDB",), "*sql.DB",
             "database/sql", own_object=True),
    HeapSite("pq.conn", SQL_POOL_EXHAUSTED,
             ("github.com/lib/pq.(*Connector).open", "github.com/lib/pq.NewConnector",
              "github.com/lib/pq.DialOpen", "github.com/lib/pq.Open"),
             "lib/pq connection", "github.com/lib/pq"),
    HeapSite("mysql.conn", SQL_POOL_EXHAUSTED,
             ("github.com/go-sql-driver/mysql.(*connector).Connect",),
             "go-sql-driver/mysql connection", "github.com/go-sql-driver/mysql"),
    HeapSite("pgconn", SQL_POOL_EXHAUSTED,
             ("github.com/jackc/pgx/v5/pgconn.connect", "github.com/jackc/pgx/v5/pgconn.connectOne",
              "github.com/jackc/pgconn.connect"),
             "pgconn.PgConn", "github.com/jackc/pgx"),
    # pgx v5 allocates each Rows in getRows; v4 carves them from a slab of 64 it keeps
    # per connection, so a live v4 slab says a connection exists, not that rows are open.
    HeapSite("pgx.Rows", SQL_ROWS, ("github.com/jackc/pgx/v5.(*Conn).getRows",),
             "pgx.Rows", "github.com/jackc/pgx", part_of=("database/sql.",), own_object=True),
    HeapSite("sql.driverConn", SQL_POOL_EXHAUSTED, ("database/sql.(*DB).conn",
                                                    "database/sql.(*DB).openNewConnection"),
             "*sql.driverConn / pool wait request", "database/sql"),
    HeapSite("http.Request", HTTP_BODY, ("net/http.NewRequestWithContext",),
             "*http.Request", "net/http"),
    HeapSite("http.persistConn", HTTP_BODY, ("net/http.(*Transport).dialConn",),
             "*http.persistConn + bufio buffers", "net/http"),
    HeapSite("grpc.ClientConn", GRPC_CONN, ("google.golang.org/grpc.NewClient",
                                            "google.golang.org/grpc.DialContext"),
             "*grpc.ClientConn", "google.golang.org/grpc"),
)

#: Pool calls an app site makes, by the database/sql (or pgxpool) frame directly below it:
#: used to narrow causes from victims (a leaked Tx can only come from a site that begins
#: one).
POOL_CALLS: dict[str, str] = {
    "database/sql.(*DB).BeginTx": "begin",
    "database/sql.(*DB).Begin": "begin",
    "database/sql.(*DB).QueryContext": "query",
    "database/sql.(*DB).Query": "query",
    "database/sql.(*DB).QueryRowContext": "query_row",
    "database/sql.(*DB).QueryRow": "query_row",
    "database/sql.(*DB).ExecContext": "exec",
    "database/sql.(*DB).Exec": "exec",
    "database/sql.(*DB).PrepareContext": "prepare",
    "database/sql.(*DB).Prepare": "prepare",
    "database/sql.(*DB).Conn": "conn",
    "database/sql.(*DB).PingContext": "ping",
    "database/sql.(*DB).Ping": "ping",
    "database/sql.Open": "open",
}
# Redis clients: a dedicated connection holds a pool slot until Close (go-redis's
# Client.Conn; every redigo Pool.Get). A call of its own, so no database/sql rule reads it.
for _client in ("github.com/redis/go-redis/v9.(*Client).Conn",
                "github.com/go-redis/redis/v8.(*Client).Conn",
                "github.com/gomodule/redigo/redis.(*Pool).Get",
                "github.com/gomodule/redigo/redis.(*Pool).GetContext",
                "github.com/garyburd/redigo/redis.(*Pool).Get"):
    POOL_CALLS[_client] = "redis_conn"
# pgxpool (v4, v5): Acquire hands out a connection until Release, Query until the rows
# are closed, Begin until Commit/Rollback; QueryRow and Exec give theirs back.
for _v in ("v4", "v5"):
    _pool = f"github.com/jackc/pgx/{_v}/pgxpool.(*Pool)."
    POOL_CALLS.update({_pool + "Acquire": "conn", _pool + "Query": "query",
                       _pool + "Begin": "begin", _pool + "BeginTx": "begin",
                       _pool + "QueryRow": "query_row", _pool + "Exec": "exec"})

#: Which pool calls can produce each leak kind (queries can leak Rows; QueryRow cannot).
CALLS_FOR_KIND: dict[str, tuple[str, ...]] = {
    SQL_TX: ("begin",),
    SQL_ROWS: ("query",),
    SQL_CONN: ("conn",),
    SQL_STMT: ("prepare",),
    SQL_POOL_PER_REQUEST: ("open",),
}

#: Pool waits whose app caller is the waiting site.
VICTIM_KINDS = (SQL_POOL_EXHAUSTED, PGX_POOL_EXHAUSTED, REDIS_POOL_EXHAUSTED, HTTP_CONN_WAIT)
