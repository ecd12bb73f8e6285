"""Connections checked out of the pool and forgotten, seen from the kernel's side.

Every other rule needs the Go side to speak: a goroutine per leaked object, a sampled heap
object, callers queueing for a pinned pool. A slow leak in its early hours shows none of
them: a ``*sql.Rows`` opened without a cancellable context has no goroutine, is garbage
once forgotten (the heap holds nothing), and the pool is not yet full. What does show is
the connection itself. ``ss -i`` prints how long ago each socket last sent and received:
a connection that is running a query talks, an idle one sits in the pool (db.Stats
``Idle``), and one that is silent beyond the idle ones was taken by code that never gave
it back. db.Stats ``InUse`` climbing in every round says the same from the pool's side.

This finding stands alone only when no rule that names the leaked object fired: when one
did, the same numbers are one of its checks (``common.pool_checks``).
"""

from __future__ import annotations

from ..evidence import Evidence, trend
from ..findings import Check, Finding
from ..signatures import SQL_CONN_HELD
from .common import (
    MIN_SILENT_HELD,
    capture_advice,
    confidence,
    dbstats_trend,
    max_open,
    pinned_pools,
    silent_connections,
)
from .pool_exhaustion import holding_candidates

#: Findings that already explain held connections (their checks carry these numbers).
SUPPRESSED_BY = frozenset({
    "sql_tx_leak", "sql_rows_leak", "sql_conn_leak", "sql_stmt_leak", "sql_pool_exhausted",
    "sql_pool_per_request", "pgxpool_exhausted", "store_conn_growth",
})
#: InUse rising in every step by at least this much in all (three rounds or more).
MIN_IN_USE_RISE = 3


def detect(ev: Evidence) -> list[Finding]:
    silent = silent_connections(ev)
    held = silent.last if silent is not None and silent.telling else 0
    rounds, in_use = dbstats_trend(ev, "in_use")
    # Connections waiting for a long query's answer are in use too, and busy.
    busy = silent.busy if silent is not None else {}
    use = trend({r: max(0.0, n - busy.get(r, 0)) for r, n in zip(rounds, in_use, strict=False)})
    climbing = use.delta >= MIN_IN_USE_RISE and use.rises_every_round()
    if held < MIN_SILENT_HELD and not climbing:
        return []
    checks = []
    if silent is not None:
        held_trend = trend(silent.held)
        checks.append(Check("sockets", "supports" if silent.telling else "silent",
                            silent.describe()
                            + (f" (held {held_trend.describe()})"
                               if held_trend.rounds > 1 and held_trend.last else "")))
    else:
        checks.append(Check("sockets", "absent", "no ss -i traffic timers in the bundle"))
    pinned, stat_rounds = pinned_pools(ev)
    if rounds:
        checks.append(Check("dbstats", "supports" if climbing or pinned else "silent",
                            f"InUse {use.describe()}" + (" (not counting connections "
                                                         "waiting for a query)" if busy else "")))
    else:
        checks.append(Check("dbstats", "absent", "no db.Stats in the bundle"))
    pool_limit = max_open(ev)
    near_limit = bool(pool_limit) and max(held, use.last) >= pool_limit / 2
    # The kernel's silence is the strong witness; InUse climbing alone is also what a
    # service ramping up its traffic looks like.
    severity = "high" if held >= MIN_SILENT_HELD and (near_limit or climbing) else "medium"
    growing = climbing or (silent is not None and trend(silent.held).growing())
    conf = confidence(checks, max(use.rounds, len(silent.held) if silent else 0), growing)
    parts = []
    if held >= MIN_SILENT_HELD:
        parts.append(f"{held} connections to the database are checked out yet silent "
                     f"(longest {silent.longest_s[max(silent.longest_s)]} s)")
    if climbing:
        parts.append(f"db.Stats InUse climbs in every round ({use.describe()})")
    limit = f" of MaxOpenConnections {pool_limit}" if pool_limit else ""
    summary = ("Connections taken from the pool are not given back: " + "; ".join(parts)
               + f"{limit}. Some code path holds a *sql.Rows, *sql.Tx or *sql.Conn it never "
               "closes; the pool runs dry once they add up. Candidates are the lines that make "
               "pool calls able to hold a connection.")
    return [Finding(kind=SQL_CONN_HELD, severity=severity, confidence=conf, summary=summary,
                    evidence={"sockets": {"silent_held_by_round": list(silent.held.values())
                                          if silent else []},
                              "dbstats": {"in_use_by_round": list(use.values),
                                          "pinned_rounds": pinned, "rounds": stat_rounds}},
                    sites=holding_candidates(ev), checks=checks,
                    advice=capture_advice(ev, "holds the connections"))]

