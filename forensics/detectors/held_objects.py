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

import pandas as pd

from ..evidence import Evidence, sum_by_round, trend
from ..findings import Check, Finding, SiteEvidence
from ..signatures import CALLS_FOR_KIND, SQL_CONN, SQL_ROWS, SQL_TX
from .common import (
    absent_or_silent,
    capture_advice,
    confidence,
    heap_sees_small_objects,
    heap_sites,
    inferred_sites,
    pinned_pools,
    pool_checks,
)
from .pool_exhaustion import held_pools


@dataclass(frozen=True)
class Spec:
    leak_kind: str
    label: str
    holder_sigs: tuple[str, ...]
    heap_sites: tuple[str, ...]
    closes_with: str
    #: database/sql starts a holder goroutine for every one of these objects, so with a
    #: goroutine dump in hand, heap growth without holder growth is not this leak.
    always_holder: bool = False
    #: Driver goroutines (pq.watchCancel, pgx ctxwatch) exist per open Tx *or* Rows; the
    #: ones no Tx accounts for are counted as Rows.
    driver_share: bool = False


SPECS = (
    Spec(SQL_TX, "*sql.Tx", ("sql.tx.awaitDone",), ("sql.Tx",), "Commit or Rollback",
         always_holder=True),
    Spec(SQL_ROWS, "*sql.Rows", ("sql.rows.awaitDone",), ("sql.Rows", "pgx.Rows"),
         "rows.Close()", driver_share=True),
    Spec(SQL_CONN, "*sql.Conn", (), ("sql.Conn",), "conn.Close()"),
)
DRIVER_SIGS = ("pq.watchCancel", "pgx.ctxwatch")
#: Pools these objects draw connections from (pgx's Rows pin pgxpool's connections).
SQL_POOLS = frozenset({"sql_pool_exhausted", "pgxpool_exhausted"})

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
    per_round = sum_by_round(holders, "count")
    latest = holders[holders["round"] == max(g_rounds)] if g_rounds else holders
    stuck = int(latest[latest["wait_max"].fillna(0) >= STUCK_MINUTES]["count"].sum())
    if spec.driver_share:
        extra, extra_stuck, holders = _unattributed_driver_holders(ev, holders)
        for r, n in extra.items():
            per_round[r] = per_round.get(r, 0) + n
        stuck += extra_stuck
    h_trend = trend(per_round, g_rounds)
    proven = ev.proven(spec.holder_sigs)
    heap = ev.heap[ev.heap["heap_site"].isin(spec.heap_sites)]
    o_trend = trend(sum_by_round(heap, "inuse_objects"), h_rounds)

    holders_growing = h_trend.growing()
    heap_growing = o_trend.growing()
    many = len(g_rounds) < 2 and h_trend.last >= SINGLE_ROUND_MANY
    # Growth stops once the pool is empty: then live objects of this kind, while callers
    # wait for connections that are held and not in use, are what holds them.
    pinning = bool(o_trend.last) and bool(held_pools(ev) & SQL_POOLS)
    signals = [holders_growing, stuck >= MIN_STUCK, heap_growing, proven > 0, pinning]
    if not any(signals) and not many:
        if len(g_rounds) == 1 and h_trend.last:
            return _open_at_one_instant(ev, spec, holders, int(h_trend.last))
        return None
    if spec.always_holder and g_rounds and not (holders_growing or stuck >= MIN_STUCK
                                                or proven or many):
        # The dump shows no accumulating holders: live objects on the heap are in flight
        # (or were, at the last GC), not leaked.
        return None
    pinned, stat_rounds = pinned_pools(ev)
    strength = sum(signals) + (1 if pinned and pinned == stat_rounds else 0)
    # Holders rising in every step over three or more rounds: a leak, not a busy moment.
    strength += 1 if h_trend.rises_every_round() else 0
    severity = "high" if strength >= 2 else "medium" if strength == 1 else "low"

    label = _label(spec, heap)
    checks = _checks(ev, spec, h_trend, stuck, proven, o_trend, label, pinning)
    growing = holders_growing or heap_growing
    conf = confidence(checks, max(len(g_rounds), len(h_rounds)), growing)
    sites = heap_sites(ev, heap)
    _share_holders(sites, int(h_trend.last))
    sites += _parent_sites(ev, holders, spec)
    # Only a heap site or a lasting parent names the line; a parent merely in flight is a
    # candidate like those the pool calls suggest, and must not hide them.
    inferred = all(s.inferred for s in sites)
    if inferred:
        named = {(s.function, s.file, s.line) for s in sites}
        sites += [s for s in _inferred_sites(ev, spec)
                  if (s.function, s.file, s.line) not in named]
    parts = []
    if h_trend.last:
        parts.append(f"{int(h_trend.last)} goroutines hold open {label}"
                     + (f" (growing {h_trend.describe()} over {h_trend.rounds} rounds)"
                        if holders_growing else "")
                     + (f", {stuck} of them for {STUCK_MINUTES}+ minutes" if stuck else ""))
    if o_trend.last:
        parts.append(f"{int(o_trend.last)} live {label} objects on the heap"
                     + (f" (growing {o_trend.describe()})" if heap_growing else ""))
    if proven:
        parts.append(f"the Go runtime proved {proven} of these goroutines leaked")
    summary = (f"Leaked {label}: " + "; ".join(parts) +
               f". Each holds a pool connection until {spec.closes_with}.")
    if inferred and sites:
        summary += " The heap cannot name the line; candidates are inferred from the pool " \
                   "calls the service makes and the goroutines that opened them."
    advice = capture_advice(ev, f"opens each {label}") if inferred else ""
    return Finding(
        kind=spec.leak_kind, severity=severity, confidence=conf, summary=summary,
        evidence={
            "goroutines": {"holders_by_round": list(h_trend.values), "stuck": stuck,
                           "runtime_proven": proven},
            "heap": {"inuse_objects_by_round": list(o_trend.values)},
            "dbstats": {"pinned_rounds": pinned, "rounds": stat_rounds},
        },
        sites=sites, checks=checks, advice=advice)


def _open_at_one_instant(ev: Evidence, spec: Spec, holders, n: int) -> Finding:
    """One dump, objects open, nothing parked for a minute: in flight or leaked, one
    capture cannot tell. Said as an observation (no call site is ranked on it), with the
    goroutines that opened them (Go 1.21+) and what settles it."""
    sites = _parent_sites(ev, holders, spec)
    summary = (f"At the moment of capture {n} goroutines hold open {spec.label}, none of "
               f"them for {STUCK_MINUTES}+ minutes: requests in flight or leaked objects, "
               "one capture cannot tell.")
    advice = (f"Capture the goroutine dump again in a minute or two: {spec.label} still "
              "held by the same goroutine ids, or more of them, are leaked; a dump after a "
              f"few minutes also shows how long each has waited. {spec.closes_with} on "
              "every path ends them.")
    return Finding(kind=spec.leak_kind, severity="info", confidence=0.3, summary=summary,
                   evidence={"goroutines": {"holders_by_round": [n], "stuck": 0}},
                   sites=sites, checks=[Check("goroutines", "silent",
                                              f"{n} holders in the only dump")],
                   advice=advice)


def _unattributed_driver_holders(ev: Evidence, rows_holders):
    """Driver goroutines per round beyond what open Tx and Rows goroutines account for."""
    drivers = ev.goroutines[ev.goroutines["sig"].isin(DRIVER_SIGS)]
    if not len(drivers):
        return {}, 0, rows_holders
    tx = ev.goroutines[ev.goroutines["sig"] == "sql.tx.awaitDone"]
    tx_open, rows_open = sum_by_round(tx, "count"), sum_by_round(rows_holders, "count")
    extra = {r: int(max(0, n - tx_open.get(r, 0) - rows_open.get(r, 0)))
             for r, n in sum_by_round(drivers, "count").items()}
    last = max(extra) if extra else None
    stuck = 0
    if last is not None and extra[last]:
        ds = drivers[(drivers["round"] == last) & (drivers["wait_max"].fillna(0) >= STUCK_MINUTES)]
        ts = tx[(tx["round"] == last) & (tx["wait_max"].fillna(0) >= STUCK_MINUTES)]
        stuck = max(0, int(ds["count"].sum()) - int(ts["count"].sum()))
    if any(extra.values()):
        import pandas as pd

        rows_holders = pd.concat([rows_holders, drivers], ignore_index=True)
    return extra, stuck, rows_holders


def _label(spec: Spec, heap: pd.DataFrame) -> str:
    """What to call the objects: a driver's own (pgx's rows) when those are all the heap
    shows, else database/sql's."""
    live = heap[heap["inuse_objects"] > 0]
    if len(live) and not live["heap_site"].astype(str).str.startswith("sql.").any():
        return " / ".join(sorted(set(live["object"].astype(str))))
    return spec.label


def _checks(ev, spec, h_trend, stuck, proven, o_trend, label, pinning) -> list[Check]:
    checks = []
    if not len(ev.tables["goroutines"]):
        checks.append(Check("goroutines", "absent", "no goroutine dump in the bundle"))
    elif h_trend.growing() or stuck >= MIN_STUCK:
        checks.append(Check("goroutines", "supports",
                            f"{label} holder goroutines {h_trend.describe()}"
                            + (f"; {stuck} parked {STUCK_MINUTES}+ min" if stuck else "")))
    elif h_trend.last:
        checks.append(Check("goroutines", "silent",
                            f"{int(h_trend.last)} holders, not growing"))
    else:
        checks.append(Check("goroutines", "silent",
                            "no holder goroutines (a context.Background() leak leaves "
                            "none, and pgx 5.9+ starts none)"))
    if o_trend.growing():
        checks.append(Check("heap", "supports", f"live {label} {o_trend.describe()}"))
    elif pinning:
        checks.append(Check("heap", "supports",
                            f"{int(o_trend.last)} live {label} while callers wait for the "
                            "pool's connections, which are held and idle: these objects "
                            "hold them"))
    elif o_trend.last:
        checks.append(Check("heap", "silent", f"{int(o_trend.last)} live {label}, "
                                              "not growing (or no GC between rounds)"))
    elif heap_sees_small_objects(ev) is False:
        checks.append(Check("heap", "silent", "sampling period too coarse for these objects"))
    else:
        checks.append(absent_or_silent(ev, "heap", "heap_samples",
                                       f"no live {label} sampled"))
    checks += pool_checks(ev)
    if proven:
        checks.append(Check("goroutineleak", "supports",
                            f"runtime proved {proven} holder goroutines leaked"))
    return checks


def _share_holders(sites: list[SiteEvidence], holders: int) -> None:
    """Holder goroutines carry no app frame; the heap sites that allocated the objects do.
    Credit the holders to those sites in proportion to their live objects."""
    total = sum(s.heap_inuse_objects for s in sites)
    if not holders or not total:
        return
    for s in sites:
        s.goroutines = round(holders * s.heap_inuse_objects / total)


def _parent_sites(ev: Evidence, holders, spec: Spec) -> list[SiteEvidence]:
    """Go 1.21+ names the goroutine that started each holder; if it still runs, its app
    frame is where the object was opened. A parent that lasts (alive in two rounds, or
    beside a holder parked for a minute or more) took the object and keeps it: a
    long-lived worker or a stuck handler, named as the cause. A parent seen in one round
    only is probably a request with its object in flight, healthy or not: its app frame
    (which may be a helper the opener called, not the opener) is only a candidate."""
    alive: dict[int, int] = {}
    for ids in ev.live_ids.values():
        for gid in ids:
            alive[gid] = alive.get(gid, 0) + 1
    openers = _openers(ev, spec)
    out: dict[tuple, SiteEvidence] = {}
    for rec in holders.itertuples():
        ids = ev.live_ids.get(int(rec.round), {})
        parked = pd.notna(rec.wait_max) and rec.wait_max >= 1
        for parent in rec.parents:
            sid = ids.get(parent)
            info = ev.stacks.get(sid) if sid is not None else None
            # The parent has moved on since it opened the object: of its frames, the one
            # known to make the opening pool call, else where it is now.
            site = (info.frame_in(openers) or info.app_frame()) if info else None
            if site is None:
                continue
            se = out.get(site)
            if se is None:
                se = out[site] = SiteEvidence(
                    site.function, site.file, site.line, role="cause", inferred=True,
                    note=f"was running the goroutine that opened {spec.label} when captured "
                         f"(in flight: may be a healthy request)")
            if parked or alive.get(parent, 0) >= 2:
                se.inferred = False
                se.note = f"started the goroutine holding {spec.label} and still runs " \
                          f"(parent goroutine)"
            se.goroutines += 1
            se.stack_ids = sorted(set(se.stack_ids) | {int(sid)})
    return list(out.values())


def _openers(ev: Evidence, spec: Spec) -> set[str]:
    """App functions seen making the pool call that opens ``spec``'s object (a Tx: begin),
    in the heap's allocation history or in any goroutine."""
    calls = CALLS_FOR_KIND.get(spec.leak_kind, ())
    if not calls:
        return set()
    found: set[str] = set()
    for rows in (ev.heap_calls, ev.goroutines):
        if len(rows) and "pool_call" in rows:
            hit = rows[rows["pool_call"].isin(calls)]
            found |= {str(f) for f in hit["site_function"].dropna().unique()}
    return found


def _inferred_sites(ev: Evidence, spec: Spec) -> list[SiteEvidence]:
    calls = CALLS_FOR_KIND.get(spec.leak_kind, ())
    return inferred_sites(ev, note=f"makes the pool call that opens {spec.label}", calls=calls)
