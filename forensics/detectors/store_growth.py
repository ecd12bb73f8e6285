"""Connections to a data store that keep growing, whatever client opens them.

The fallback for clients no other rule knows: a Redis PubSub never closed (go-redis keeps
those outside its pool, unbounded), a driver without a pool rule here, a hand-rolled
dialer. A pool, however busy, stops at its size; connections to the store rising in every
round by tens do not stop. The line comes from the heap: an app line with a dial below it
(``net.(*Dialer).DialContext``) whose live memory grows holds the connections' own buffers
and structures, allocated where the app asked for them.

Only when no specific rule explains the growth (a leaked Tx, a pool per request ... each
also adds connections): then this finding would say the same thing less precisely.
"""

from __future__ import annotations

import numpy as np

from ..evidence import Evidence, sum_by_round, trend
from ..findings import Check, Finding, SiteEvidence
from ..signatures import STORE_CONN_GROWTH
from .common import capture_advice, confidence, db_established, heap_stacks

SUPPRESSED_BY = frozenset({
    "sql_tx_leak", "sql_rows_leak", "sql_conn_leak", "sql_stmt_leak", "sql_pool_exhausted",
    "sql_pool_per_request", "pgxpool_exhausted", "redis_pool_exhausted",
})
#: Connections added over the rounds before growth means anything (a pool warming up
#: adds a few).
MIN_GROWTH = 10
#: Growth of a line's live memory that counts (a few connections' buffers).
MIN_GROWTH_BYTES = 64 << 10
#: Frames of opening a network connection, below which an allocation belongs to one.
DIAL_FRAMES = ("net.(*Dialer).DialContext", "net.(*Dialer).Dial", "net.DialTimeout",
               "net.Dial", "net.(*sysDialer).")


def detect(ev: Evidence) -> list[Finding]:
    db = db_established(ev)
    rounds = sorted(db)
    t = trend(db, rounds)
    if len(rounds) < 2 or not t.growing(min_delta=MIN_GROWTH):
        return []
    rises = t.rises_every_round()
    sites = _dial_sites(ev)
    severity = "high" if sites and rises else "medium" if sites or rises else "low"
    checks = [Check("sockets", "supports",
                    f"ESTABLISHED to the data store {t.describe()}"
                    + (", more in every round" if rises else ""))]
    if sites:
        checks.append(Check("heap", "supports",
                            "live allocations on a dial path growing under "
                            + ", ".join(s.function for s in sites[:3])))
    elif len(ev.tables["heap_samples"]):
        checks.append(Check("heap", "silent", "no growing allocation on a dial path sampled"))
    else:
        checks.append(Check("heap", "absent", "no heap profile in the bundle"))
    summary = (f"Connections to the data store keep growing: {t.describe()} ESTABLISHED over "
               f"{t.rounds} rounds, which no pool explains (a pool stops at its size). Some "
               "client opens connections and never closes them"
               + (f"; the heap names {sites[0].function}." if sites else "."))
    return [Finding(
        kind=STORE_CONN_GROWTH, severity=severity,
        confidence=confidence(checks, len(rounds), True), summary=summary,
        evidence={"sockets": {"db_established_by_round": list(t.values)}},
        sites=sites, checks=checks,
        advice="" if sites else capture_advice(ev, "opens the connections"))]


def _dial_sites(ev: Evidence) -> list[SiteEvidence]:
    """App lines that open connections (a dial below them, in any round's samples) and
    whose live memory grows between rounds: the connections' structures and buffers
    (32 KiB apiece in go-redis), allocated under the line that asked for them. Bytes, not
    objects: a few large buffers per connection are sampled every time, small structs by
    chance."""
    hs = ev.tables["heap_samples"]
    rounds = ev.heap_rounds()
    if len(rounds) < 2 or not len(hs):
        return []
    stacks_of: dict[tuple, list[int]] = {}  # app line -> the stacks allocating under it
    dialing: set[tuple] = set()
    for sid in hs["stack_id"].dropna().unique().tolist():
        info = ev.stacks.get(int(sid))
        site = info.app_frame() if info is not None else None
        if site is None:
            continue
        key = (site.function, site.file, site.line)
        stacks_of.setdefault(key, []).append(int(sid))
        if any(fn.startswith(DIAL_FRAMES) for fn in info.functions):
            dialing.add(key)
    out = []
    for key in dialing:
        sids = stacks_of[key]
        mine = hs[hs["stack_id"].isin(sids)]
        space = trend(sum_by_round(mine, "inuse_space"), rounds)
        if not space.growing(min_delta=MIN_GROWTH_BYTES):
            continue
        objs = trend(sum_by_round(mine, "inuse_objects"), rounds)
        latest = mine[(mine["round"] == max(rounds))
                      & (mine["inuse_objects"].fillna(0).to_numpy(dtype=np.int64) > 0)]
        se = SiteEvidence(key[0], key[1], key[2], role="cause",
                          heap_inuse_objects=int(objs.last), heap_inuse_bytes=int(space.last),
                          growth=max(objs.delta, 0), stack_ids=sorted(sids),
                          note="opens connections (a dial below this line); the live memory "
                               f"allocated here grows {_mib(space.values)}")
        se.stacks = heap_stacks(ev, latest, "inuse_space", 3)
        out.append(se)
    return sorted(out, key=lambda s: -s.heap_inuse_bytes)


def _mib(values: tuple[float, ...] | list[float]) -> str:
    return " -> ".join(f"{v / (1 << 20):.1f}" for v in values) + " MiB"
