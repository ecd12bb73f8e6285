"""A connection pool with callers queueing for it (database/sql, pgxpool, go-redis,
net/http's per-host limit).

Queueing alone is not a leak: a busy healthy pool queues too. What separates them is time
and trend: waiters parked for minutes, a pool pinned at its limit in every round, and a
wait count that keeps climbing while nothing is returned. The waiting app sites are
*victims*; when no other detector names a cause, the app sites that make pool calls able
to hold a connection (queries, transactions, dedicated conns) are offered as inferred
causes.
"""

from __future__ import annotations

import pandas as pd

from ..correlate import QUIET_MS
from ..evidence import Evidence, sum_by_round, trend
from ..findings import VICTIM_NOTE, Check, Finding, SiteEvidence
from ..gosym import APP
from ..signatures import SQL_CONN, SQL_ROWS, SQL_STMT, SQL_TX, VICTIM_KINDS
from .common import (
    MIN_SILENT_HELD,
    capture_advice,
    confidence,
    db_established,
    dbstats_trend,
    goroutine_sites,
    inferred_sites,
    memo,
    pinned_pools,
    silent_connections,
)

HOLDING_CALLS = ("query", "begin", "conn", "prepare")
CALLS_KIND = {"query": SQL_ROWS, "begin": SQL_TX, "conn": SQL_CONN, "prepare": SQL_STMT}
LONG_WAIT_MINUTES = 1
#: So many callers queued at one instant is a sick service, whatever the cause.
MANY_WAITERS = 100

_LABEL = {
    "sql_pool_exhausted": "database/sql pool",
    "pgxpool_exhausted": "pgxpool",
    "redis_pool_exhausted": "Redis pool (go-redis, redigo)",
    "http_conn_wait": "net/http transport (MaxConnsPerHost)",
}


def detect(ev: Evidence) -> list[Finding]:
    out = []
    for kind in VICTIM_KINDS:
        f = _detect_kind(ev, kind)
        if f is not None:
            out.append(f)
    return out


#: Pools whose connections go to a data store the sockets label "database" (the manifest
#: names it, or it listens on a well-known port such as 5432, 3306 or 6379).
#: Their holding calls (queries, transactions, dedicated connections) are known too.
_DB_POOLS = ("sql_pool_exhausted", "pgxpool_exhausted", "redis_pool_exhausted")


def holding_candidates(ev: Evidence, kind: str = "sql_pool_exhausted") -> list[SiteEvidence]:
    """Inferred causes: the app lines whose pool calls can hold a connection until closed,
    each with the leak it would be (a query: Rows, a begin: Tx ...); for a Redis pool, the
    lines that take a dedicated connection."""
    if kind == "redis_pool_exhausted":
        sites = inferred_sites(ev, note="takes a dedicated Redis connection, which holds a "
                                        "pool slot until Close", calls=("redis_conn",))
    else:
        sites = []
        for call in HOLDING_CALLS:
            causes = inferred_sites(ev, note=f"makes a {call} pool call, which can hold a "
                                             "connection until closed or released",
                                    calls=(call,))
            for c in causes:
                c.leak_kind = CALLS_KIND[call]
            sites += causes
    _credit_waiters_below(ev, kind, sites)
    return sites


def _credit_waiters_below(ev: Evidence, kind: str, sites: list[SiteEvidence]) -> None:
    """A candidate whose function the waiting callers pass through (they wait in a helper
    it calls, after it took its connection) is credited with them: the line that leaks
    is often one frame above the line that waits."""
    g = ev.goroutines
    rounds = ev.rounds_with("goroutines")
    if not sites or not rounds or not len(g):
        return
    victims = g[(g["leak_kind"] == kind) & (g["role"] == "victim") & (g["round"] == rounds[-1])]
    counts: dict[str, int] = {}
    for sid, n in zip(victims["stack_id"], victims["count"], strict=True):
        info = ev.stacks.get(int(sid)) if pd.notna(sid) else None
        if info is None:
            continue
        first = info.app_frame()
        above = {fn for fn, cls in zip(info.functions, info.classes, strict=True)
                 if cls == APP and first is not None and fn != first.function}
        for fn in above:
            counts[fn] = counts.get(fn, 0) + int(n)
    for s in sites:
        n = counts.get(s.function, 0)
        if n > s.goroutines:
            s.goroutines = n
            s.note = (s.note + f"; {n} of the callers waiting for the pool come through "
                      "here").strip("; ")


def _capped_db_connections(ev: Evidence, kind: str, rounds: list[int],
                           waiters: tuple[float, ...]) -> int | None:
    """The number of connections to the data store when it stays the same over the last two
    or more rounds where callers wait: a pool at its limit, seen from the sockets when no
    db.Stats says so (pgxpool and Redis clients have none).

    Zero counts too, once the store's sockets are known (seen in some round, or named by
    the manifest): callers queueing for a pool while the process holds no connection at all
    means the pool's slots went to objects never closed, whose connections the garbage
    collector has since closed (a net.Conn's finalizer) without giving the slot back."""
    if kind not in _DB_POOLS:
        return None
    db = db_established(ev)
    counts = [db.get(r) for r, n in zip(rounds, waiters, strict=False) if n > 0]
    if len(counts) < 2 or counts[-1] is None:
        return None
    same = 1
    while same < len(counts) and counts[-1 - same] == counts[-1]:
        same += 1
    if same < 2:
        return None
    count = int(counts[-1])
    if count == 0 and not (any(v for v in db.values()) or ev.manifest.get("db_addresses")):
        return None  # no socket of the store was ever recognised: zero says nothing
    return count


def held_pools(ev: Evidence) -> frozenset[str]:
    """Data-store pools whose callers wait while the connections are *held*, not busy:
    waiters parked a minute or more, slots lost (no connection left behind the pool), or
    the checked-out connections silent on the wire. Live objects that keep a connection
    (a Rows, a Tx) are then holding the very connections the callers wait for."""
    return memo(ev, "held_pools", lambda e: frozenset(
        kind for kind in _DB_POOLS
        if (f := _detect_kind(e, kind)) is not None and f.evidence.get("connections_held")))


def _detect_kind(ev: Evidence, kind: str) -> Finding | None:
    return memo(ev, f"pool_exhaustion:{kind}", lambda e: _detect_kind_once(e, kind))


def _detect_kind_once(ev: Evidence, kind: str) -> Finding | None:
    g_rounds = ev.rounds_with("goroutines")
    victims = ev.goroutines[(ev.goroutines["leak_kind"] == kind)
                            & (ev.goroutines["role"] == "victim")]
    v_trend = trend(sum_by_round(victims, "count"), g_rounds)
    long_wait = int(victims[victims["wait_max"].fillna(0) >= LONG_WAIT_MINUTES]["count"].sum())
    is_sql = kind == "sql_pool_exhausted"
    pinned, stat_rounds = pinned_pools(ev) if is_sql else (0, 0)
    w_rounds, w_values = dbstats_trend(ev, "wait_count") if is_sql else ([], [])
    wait_trend = trend(dict(zip(w_rounds, w_values, strict=False)))
    if v_trend.last == 0 and not (pinned and pinned == stat_rounds and stat_rounds >= 2):
        return None

    capped = _capped_db_connections(ev, kind, g_rounds, v_trend.values) if not stat_rounds \
        else None
    stuck = long_wait > 0 or capped is not None or (
        pinned == stat_rounds and stat_rounds >= 2 and v_trend.rounds >= 2 and
        min(v_trend.values) > 0)
    queue_grows = v_trend.growing(min_delta=5)
    # Waiters with no connection behind the pool at all: its slots are lost for good.
    slots_lost = capped == 0
    # Waiters while the pool's connections sit silent (ss -i): they are held, not busy.
    silent = silent_connections(ev) if kind in _DB_POOLS else None
    waiting_round, held_waiting = (silent.held_while_waiting(
        dict(zip(g_rounds, v_trend.values, strict=False))) if silent else (None, 0))
    held_silent = silent is not None and v_trend.last > 0 and (
        silent.telling or held_waiting >= MIN_SILENT_HELD)
    stuck = stuck or held_silent
    severity = ("high" if long_wait > 0 or (stuck and queue_grows) or slots_lost or held_silent
                else "medium" if stuck or queue_grows or v_trend.last >= MANY_WAITERS
                else "info")
    label = _LABEL[kind]
    checks = []
    if len(ev.tables["goroutines"]):
        checks.append(Check("goroutines", "supports" if v_trend.last else "silent",
                            f"callers waiting for a connection: {v_trend.describe()}"
                            + (f"; {long_wait} waiting {LONG_WAIT_MINUTES}+ min" if long_wait
                               else "")))
    else:
        checks.append(Check("goroutines", "absent", "no goroutine dump in the bundle"))
    if capped:
        checks.append(Check("sockets", "supports",
                            f"ESTABLISHED to the database stays at {capped} in every round "
                            "with callers waiting: the pool is at its limit"))
    elif capped == 0:
        checks.append(Check("sockets", "supports",
                            "no connection to the data store while callers wait: the pool's "
                            "slots are held by objects never closed, whose connections the "
                            "garbage collector has already closed"))
    if held_silent and silent.telling:
        checks.append(Check("sockets", "supports", f"while callers wait, {silent.describe()}"))
    elif held_silent:
        checks.append(Check("sockets", "supports",
                            f"in round {waiting_round}, while callers wait, {held_waiting} "
                            f"connections to the store silent for {QUIET_MS // 1000}+ s and "
                            "not answering a query: a pool with callers queued has none "
                            "idle, so they are checked out and not in use"))
    if is_sql:
        if stat_rounds:
            checks.append(Check("dbstats", "supports" if pinned else "contradicts",
                                f"InUse at MaxOpenConnections in {pinned} of {stat_rounds} "
                                f"rounds; WaitCount {wait_trend.describe()}"))
        else:
            checks.append(Check("dbstats", "absent", "no db.Stats in the bundle"))
    conf = confidence(checks, len(g_rounds), v_trend.growing() or wait_trend.growing())

    victims_sites = goroutine_sites(ev, victims, role="victim",
                                    note=VICTIM_NOTE)
    summary = (f"{label} exhausted: {int(v_trend.last)} callers waiting for a connection"
               + (f", {long_wait} of them for {LONG_WAIT_MINUTES}+ minutes" if long_wait else "")
               + (f"; pool pinned at its limit in {pinned} of {stat_rounds} rounds"
                  if stat_rounds else "")
               + ("; the process holds no connection to the store any more: the pool's "
                  "slots went to connections never closed (collected since, slots not "
                  "returned)" if slots_lost else "") + ".")
    advice = ""
    if severity == "info" and len(g_rounds) == 1:
        summary = (f"{label}: {int(v_trend.last)} callers queued for a connection at the "
                   "moment of capture, none for a minute yet: a busy pool or the start of "
                   "an exhaustion, one capture cannot tell.")
        advice = ("Capture again in a minute or two (with db.Stats if it is database/sql): "
                  "callers still queued, waiting longer, or a pool pinned at its limit in "
                  "both captures mean its connections are held.")
    elif severity == "info":
        summary = (f"{label} busy: {int(v_trend.last)} callers briefly queued for a connection; "
                   "no caller waited a minute and the pool is not pinned in every round, "
                   "which is what a busy healthy pool looks like.")
    finding = Finding(kind=kind, severity=severity, confidence=conf, summary=summary,
                      evidence={"connections_held": bool(long_wait or slots_lost or held_silent),
                                "goroutines": {"waiters_by_round": list(v_trend.values),
                                               "waiting_1min_plus": long_wait},
                                "dbstats": {"pinned_rounds": pinned, "rounds": stat_rounds,
                                            "wait_count_by_round": list(wait_trend.values)}},
                      sites=victims_sites, checks=checks, advice=advice)
    if severity != "info" and kind in _DB_POOLS:
        finding.sites += holding_candidates(ev, kind)
        finding.advice = capture_advice(ev, "holds the connections")
    return finding
