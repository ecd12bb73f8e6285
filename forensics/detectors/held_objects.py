"""Leaked *sql.Tx, *sql.Rows (and driver equivalents) and *sql.Conn: objects that hold a
pool connection until closed.

Evidence, strongest first: their per-object goroutines (``Tx.awaitDone``,
``Rows.awaitDone``, ``pq.watchCancel``, pgx ``ctxwatch``) growing between rounds or parked
for minutes; live heap objects allocated under ``beginDC``/``queryDC``/``DB.Conn``, which
name the app line; the runtime's goroutineleak verdict; a pool pinned at its limit.
When the heap cannot name the line, the goroutines that began the object (Go 1.21+ parent
ids) or the app sites that make the matching pool call are offered as inferred causes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..evidence import Evidence, trend
from ..findings import Check, Finding, SiteEvidence
from ..signatures import CALLS_FOR_KIND, SQL_CONN, SQL_ROWS, SQL_TX
from .common import (
    absent_or_silent,
    capture_advice,
    confidence,
    goroutine_sites,
    heap_sees_small_objects,
    heap_sites,
    pinned_pools,
)


@dataclass(frozen=True)
class Spec:
    leak_kind: str
    label: str
    holder_sigs: tuple[str, ...]
    heap_sites: tuple[str, ...]
    closes_with: str


SPECS = (
    Spec(SQL_TX, "*sql.Tx", ("sql.tx.awaitDone",), ("sql.Tx",), "Commit or Rollback"),
    Spec(SQL_ROWS, "*sql.Rows", ("sql.rows.awaitDone", "pq.watchCancel", "pgx.ctxwatch"),
         ("sql.Rows", "pgx.Rows"), "rows.Close()"),
    Spec(SQL_CONN, "*sql.Conn", (), ("sql.Conn",), "conn.Close()"),
)

#: A transaction or result set open for over a minute is almost never intended.
STUCK_MINUTES = 1
MIN_STUCK = 3
SINGLE_ROUND_MANY = 100


def detect(ev: Evidence) -> list[Finding]:
    return [f for spec in SPECS if (f := _detect_one(ev, spec)) is not None]


def _detect_one(ev: Evidence, spec: Spec) -> Finding | None:
    g_rounds = ev.rounds_with("goroutines")
    h_rounds = ev.heap_rounds()
    holders = ev.goroutines[ev.goroutines["sig"].isin(spec.holder_sigs)]
    h_trend = trend(holders.groupby("round")["count"].sum().to_dict(), g_rounds)
    latest = holders[holders["round"] == max(g_rounds)] if g_rounds else holders
    stuck = int(latest[latest["wait_max"].fillna(0) >= STUCK_MINUTES]["count"].sum())
    proven = int(latest[latest["leaked"]]["count"].sum()) + _leak_profile_count(ev, spec)
    heap = ev.heap[ev.heap["heap_site"].isin(spec.heap_sites)]
    o_trend = trend(heap.groupby("round")["inuse_objects"].sum().to_dict(), h_rounds)

    holders_growing = h_trend.growing()
    heap_growing = o_trend.growing()
    many = len(g_rounds) < 2 and h_trend.last >= SINGLE_ROUND_MANY
    signals = [holders_growing, stuck >= MIN_STUCK, heap_growing, proven > 0]
    if not any(signals) and not many:
        return None
    pinned, stat_rounds = pinned_pools(ev)
    strength = sum(signals) + (1 if pinned and pinned == stat_rounds else 0)
    severity = "high" if strength >= 2 else "medium" if strength == 1 else "low"

    checks = _checks(ev, spec, h_trend, stuck, proven, o_trend, pinned, stat_rounds)
    growing = holders_growing or heap_growing
    conf = confidence(checks, max(len(g_rounds), len(h_rounds)), growing)
    sites = heap_sites(ev, heap)
    sites += _parent_sites(ev, holders, spec)
    inferred = not sites
    if inferred:
        sites = _inferred_sites(ev, spec)
    parts = []
    if h_trend.last:
        parts.append(f"{int(h_trend.last)} goroutines hold open {spec.label}"
                     + (f" (growing {h_trend.describe()} over {h_trend.rounds} rounds)"
                        if holders_growing else "")
                     + (f", {stuck} of them for {STUCK_MINUTES}+ minutes" if stuck else ""))
    if o_trend.last:
        parts.append(f"{int(o_trend.last)} live {spec.label} objects on the heap"
                     + (f" (growing {o_trend.describe()})" if heap_growing else ""))
    if proven:
        parts.append(f"the Go runtime proved {proven} of these goroutines leaked")
    summary = (f"Leaked {spec.label}: " + "; ".join(parts) +
               f". Each holds a pool connection until {spec.closes_with}.")
    if inferred and sites:
        summary += " The heap cannot name the line; candidates are inferred from the pool " \
                   "calls the service's goroutines make."
    advice = capture_advice(ev, f"opens each {spec.label}") if inferred else ""
    return Finding(
        kind=spec.leak_kind, severity=severity, confidence=conf, summary=summary,
        evidence={
            "goroutines": {"holders_by_round": list(h_trend.values), "stuck": stuck,
                           "runtime_proven": proven},
            "heap": {"inuse_objects_by_round": list(o_trend.values)},
            "dbstats": {"pinned_rounds": pinned, "rounds": stat_rounds},
        },
        sites=sites, checks=checks, advice=advice)


def _leak_profile_count(ev: Evidence, spec: Spec) -> int:
    leaks = ev.tables["goroutine_leaks"]
    if not len(leaks) or not spec.holder_sigs:
        return 0
    from ..signatures import GOROUTINE_SIGNATURES

    prefixes = tuple(f for s in GOROUTINE_SIGNATURES if s.id in spec.holder_sigs for f in s.frames)
    total = 0
    latest = leaks[leaks["round"] == leaks["round"].max()]
    for sid, count in zip(latest["stack_id"], latest["count"], strict=False):
        info = ev.stacks.get(int(sid)) if sid is not None else None
        if info and any(fn.startswith(prefixes) for fn in info.functions):
            total += int(count or 1)
    return total


def _checks(ev, spec, h_trend, stuck, proven, o_trend, pinned, stat_rounds) -> list[Check]:
    checks = []
    if not len(ev.tables["goroutines"]):
        checks.append(Check("goroutines", "absent", "no goroutine dump in the bundle"))
    elif h_trend.growing() or stuck >= MIN_STUCK:
        checks.append(Check("goroutines", "supports",
                            f"{spec.label} holder goroutines {h_trend.describe()}"
                            + (f"; {stuck} parked {STUCK_MINUTES}+ min" if stuck else "")))
    elif h_trend.last:
        checks.append(Check("goroutines", "silent",
                            f"{int(h_trend.last)} holders, not growing"))
    else:
        checks.append(Check("goroutines", "silent",
                            "no holder goroutines (a context.Background() leak leaves none)"))
    if o_trend.growing():
        checks.append(Check("heap", "supports", f"live {spec.label} {o_trend.describe()}"))
    elif o_trend.last:
        checks.append(Check("heap", "silent", f"{int(o_trend.last)} live {spec.label}, "
                                              "not growing (or no GC between rounds)"))
    elif heap_sees_small_objects(ev) is False:
        checks.append(Check("heap", "silent", "sampling period too coarse for these objects"))
    else:
        checks.append(absent_or_silent(ev, "heap", "heap_samples",
                                       f"no live {spec.label} sampled"))
    if stat_rounds:
        verdict = "supports" if pinned else "silent"
        checks.append(Check("dbstats", verdict,
                            f"pool at MaxOpenConnections in {pinned} of {stat_rounds} rounds"))
    else:
        checks.append(Check("dbstats", "absent", "no db.Stats in the bundle"))
    if proven:
        checks.append(Check("goroutineleak", "supports",
                            f"runtime proved {proven} holder goroutines leaked"))
    return checks


def _parent_sites(ev: Evidence, holders, spec: Spec) -> list[SiteEvidence]:
    """Go 1.21+ names the goroutine that started each holder; if it still runs, its app
    frame is where the object was opened (a long-lived worker or a stuck handler)."""
    out: dict[tuple, SiteEvidence] = {}
    for rec in holders.itertuples():
        ids = ev.live_ids.get(int(rec.round), {})
        for parent in rec.parents:
            sid = ids.get(parent)
            info = ev.stacks.get(sid) if sid is not None else None
            site = info.app_frame() if info else None
            if site is None:
                continue
            se = out.setdefault(site, SiteEvidence(site.function, site.file, site.line,
                                                   role="cause",
                                                   note=f"started the goroutine holding "
                                                        f"{spec.label} (parent goroutine)"))
            se.goroutines += 1
            se.stack_ids = sorted(set(se.stack_ids) | {int(sid)})
    return list(out.values())


def _inferred_sites(ev: Evidence, spec: Spec) -> list[SiteEvidence]:
    calls = CALLS_FOR_KIND.get(spec.leak_kind, ())
    g = ev.goroutines[ev.goroutines["pool_call"].isin(calls)]
    sites = goroutine_sites(ev, g, role="cause",
                            note=f"makes the pool call that opens {spec.label}")
    for s in sites:
        s.inferred = True
    return sites
