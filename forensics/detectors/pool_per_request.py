"""A new pool per call: ``sql.Open`` (or ``pgxpool.New``) in a request path, never closed.

Every ``*sql.DB`` runs one ``connectionOpener`` goroutine for its whole life, so their count
is the number of live pools; a service needs one or a few. Each pool keeps its own idle
connections, so sockets to the database climb past any single pool's MaxOpenConnections.
The heap names the line through ``database/sql.OpenDB`` allocations.
"""

from __future__ import annotations

from ..evidence import Evidence, sum_by_round, trend
from ..findings import Check, Finding
from ..signatures import SQL_POOL_PER_REQUEST
from .common import (
    capture_advice,
    confidence,
    db_established,
    heap_sites,
    inferred_sites,
    max_open,
)

#: More live pools than this in one process is unusual even for sharded services.
MANY_POOLS = 8


def detect(ev: Evidence) -> list[Finding]:
    g_rounds = ev.rounds_with("goroutines")
    pools = ev.goroutines[ev.goroutines["role"] == "pool"]
    p_trend = trend(sum_by_round(pools, "count"), g_rounds)
    heap = ev.heap[ev.heap["heap_site"] == "sql.DB"]
    o_trend = trend(sum_by_round(heap, "inuse_objects"), ev.heap_rounds())
    s_trend = trend(db_established(ev))
    pool_limit = max_open(ev)

    growing = p_trend.growing(min_delta=2) or o_trend.growing(min_delta=2)
    many = p_trend.last > MANY_POOLS
    if not (growing or many):
        return []
    over_limit = bool(pool_limit) and s_trend.last > pool_limit
    checks = [Check("goroutines", "supports" if (growing or many) else "silent",
                    f"connectionOpener goroutines (one per *sql.DB): {p_trend.describe()}")]
    if o_trend.last:
        checks.append(Check("heap", "supports" if o_trend.growing(min_delta=2) else "silent",
                            f"live *sql.DB objects {o_trend.describe()}"))
    else:
        checks.append(Check("heap", "silent" if len(ev.tables["heap_samples"]) else "absent",
                            "no live *sql.DB sampled"))
    if s_trend.values:
        checks.append(Check("sockets", "supports" if over_limit else "silent",
                            f"ESTABLISHED to the database {s_trend.describe()}"
                            + (f" vs MaxOpenConnections {pool_limit}" if pool_limit else "")))
    else:
        checks.append(Check("sockets", "absent", "no socket listing in the bundle"))
    proven = ev.proven(("sql.db.connectionOpener", "pgxpool.healthcheck"))
    if proven:
        checks.append(Check("goroutineleak", "supports",
                            f"the runtime proved {proven} pool goroutines leaked (their *sql.DB "
                            "is unreachable and was never closed)"))
    sites = heap_sites(ev, heap)
    severity = "high" if growing and (many or over_limit) else "medium"
    summary = (f"{int(p_trend.last)} database pools are alive (one connectionOpener goroutine "
               f"each; {p_trend.describe()} over {p_trend.rounds} rounds): sql.Open is called "
               "repeatedly and the pools are never closed.")
    if over_limit:
        summary += (f" {int(s_trend.last)} connections to the database exceed the pool limit "
                    f"of {pool_limit}.")
    return [Finding(
        kind=SQL_POOL_PER_REQUEST, severity=severity,
        confidence=confidence(checks, len(g_rounds), growing), summary=summary,
        evidence={"goroutines": {"pools_by_round": list(p_trend.values)},
                  "heap": {"inuse_objects_by_round": list(o_trend.values)},
                  "sockets": {"db_established_by_round": list(s_trend.values),
                              "max_open": pool_limit}},
        sites=sites or inferred_sites(ev, note="calls sql.Open", calls=("open",)),
        checks=checks, advice="" if sites else capture_advice(ev, "calls sql.Open"))]

