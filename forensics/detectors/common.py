"""Helpers every detector uses: sites from goroutine and heap buckets, the stacks behind a
site, what heap sampling can see, and how agreement and growth become confidence."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ..evidence import Evidence, sum_by_round, trend
from ..findings import Check, SiteEvidence

#: Go's default MemProfileRate: one sample per 512 KiB allocated.
DEFAULT_RATE = 512 * 1024


def heap_period(ev: Evidence) -> int | None:
    hp = ev.heap_profiles
    if not len(hp) or not hp["period"].notna().any():
        return None
    return int(hp["period"].dropna().max())


def heap_sees_small_objects(ev: Evidence) -> bool | None:
    """None when there is no heap profile; False when its rate hides ~200-byte objects."""
    if not len(ev.tables["heap_samples"]) and not len(ev.heap_profiles):
        return None
    period = heap_period(ev)
    if period is None:
        return True
    return period <= 16 * 1024


def capture_advice(ev: Evidence, what: str) -> str:
    seen = heap_sees_small_objects(ev)
    if seen is None:
        return (f"The bundle has no heap profile, so nothing names the line that {what}. "
                "Next time capture /debug/pprof/heap?gc=1 too, with runtime.MemProfileRate = "
                "4096 set at start-up while reproducing.")
    if not seen:
        period = heap_period(ev) or DEFAULT_RATE
        return (f"The heap profile samples one allocation per {period // 1024} KiB, so small "
                f"objects (~200 bytes: *sql.Tx, *sql.Rows, *sql.DB) are almost never seen and "
                f"the line that {what} cannot be read from it. Next time set "
                "runtime.MemProfileRate = 4096 at start-up while reproducing and capture "
                "/debug/pprof/heap?gc=1 in each round.")
    return ""


def _stack_frames(ev: Evidence, sid: int, limit: int = 40) -> list[dict]:
    info = ev.stacks.get(sid)
    if info is None:
        return []
    return [{"function": info.functions[d], "file": info.files[d], "line": info.lines[d],
             "frame_class": info.classes[d]} for d in range(min(limit, len(info.functions)))]


def goroutine_sites(ev: Evidence, buckets: pd.DataFrame, role: str,
                    note: str = "") -> list[SiteEvidence]:
    """One SiteEvidence per app site in ``buckets``: latest-round counts, growth."""
    b = buckets[buckets["site_function"].notna()]
    if not len(b):
        return []
    rounds = ev.rounds_with("goroutines")
    out = []
    for key, g in b.groupby(["site_function", "site_file", "site_line"], dropna=False):
        per_round = sum_by_round(g, "count")
        t = trend(per_round, rounds)
        last = g[g["round"] == g["round"].max()]
        wait = g["wait_max"].dropna()
        se = SiteEvidence(function=str(key[0]), file=str(key[1]),
                          line=int(key[2]) if pd.notna(key[2]) else None, role=role,
                          goroutines=int(t.last), growth=t.delta,
                          wait_minutes_max=int(wait.max()) if len(wait) else None,
                          stack_ids=sorted({int(s) for s in last["stack_id"]}), note=note)
        se.stacks = goroutine_stacks(ev, g)
        out.append(se)
    return out


def goroutine_stacks(ev: Evidence, g: pd.DataFrame) -> list[dict]:
    latest = g[g["round"] == g["round"].max()]
    out = []
    for (sid, state), s in latest.groupby(["stack_id", "state"], dropna=False):
        out.append({
            "stack_id": int(sid), "source": "goroutines", "count": int(s["count"].sum()),
            "state": None if pd.isna(state) else str(state),
            "wait_minutes_min": _opt_int(s["wait_min"].min()),
            "wait_minutes_max": _opt_int(s["wait_max"].max()),
            "inuse_objects": None, "inuse_bytes": None,
            "frames": _stack_frames(ev, int(sid)),
        })
    return sorted(out, key=lambda d: -d["count"])[:10]


def heap_sites(ev: Evidence, buckets: pd.DataFrame, role: str = "cause") -> list[SiteEvidence]:
    b = buckets[buckets["site_function"].notna()]
    if not len(b):
        return []
    rounds = ev.heap_rounds()
    trends = {key: trend(sum_by_round(g, "inuse_objects"), rounds)
              for key, g in b.groupby(["site_function", "site_file", "site_line"], dropna=False)}
    # With several rounds, a site whose live objects stay flat while another's grow is the
    # service's normal pool (one sql.Open at start-up), not the leak.
    any_growth = len(rounds) >= 2 and any(t.delta > 0 for t in trends.values())
    out = []
    for key, g in b.groupby(["site_function", "site_file", "site_line"], dropna=False):
        objs = trends[key]
        if any_growth and objs.delta <= 0:
            continue
        space = sum_by_round(g, "inuse_space")
        last_round = max(rounds) if rounds else g["round"].max()
        if objs.last <= 0:
            continue
        se = SiteEvidence(function=str(key[0]), file=str(key[1]),
                          line=int(key[2]) if pd.notna(key[2]) else None, role=role,
                          heap_inuse_objects=int(objs.last),
                          heap_inuse_bytes=int(space.get(last_round, 0)), growth=objs.delta,
                          stack_ids=sorted({int(s) for s in g["stack_id"]}))
        latest = g[g["round"] == g["round"].max()]
        se.stacks = [{
            "stack_id": int(r.stack_id), "source": "heap", "count": None, "state": None,
            "wait_minutes_min": None, "wait_minutes_max": None,
            "inuse_objects": int(r.inuse_objects), "inuse_bytes": int(r.inuse_space),
            "frames": _stack_frames(ev, int(r.stack_id)),
        } for r in latest.sort_values("inuse_objects", ascending=False).head(5).itertuples()]
        out.append(se)
    return out


def _opt_int(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def confidence(checks: Iterable[Check], rounds: int, growing: bool) -> float:
    """More independent artifacts agreeing, more rounds showing growth: more confidence."""
    checks = list(checks)
    supports = sum(c.verdict == "supports" for c in checks)
    contradicts = sum(c.verdict == "contradicts" for c in checks)
    c = 0.25 + 0.2 * supports - 0.15 * contradicts
    if rounds >= 2 and growing:
        c += 0.2
    if rounds < 2:
        c = min(c, 0.6)
    return round(max(0.05, min(c, 0.97)), 2)


def absent_or_silent(ev: Evidence, source: str, table: str, silent_detail: str) -> Check:
    if len(ev.tables[table]) == 0:
        return Check(source, "absent", f"no {source} artifact in the bundle")
    return Check(source, "silent", silent_detail)


def dbstats_trend(ev: Evidence, field: str) -> tuple[list[int], list[float]]:
    st = ev.tables["dbstats"]
    if not len(st) or not st[field].notna().any():
        return [], []
    per = sum_by_round(st[st[field].notna()], field)  # rounds with a value only
    return list(per), [float(v) for v in per.values()]


def pinned_pools(ev: Evidence) -> tuple[int, int]:
    """(rounds where some pool had InUse == MaxOpen > 0, rounds with db.Stats)."""
    st = ev.tables["dbstats"]
    if not len(st):
        return 0, 0
    max_open = st["max_open"].to_numpy(dtype=np.float64, na_value=np.nan)
    in_use = st["in_use"].to_numpy(dtype=np.float64, na_value=np.nan)
    rnd = st["round"].to_numpy(dtype=np.float64, na_value=np.nan)
    pinned = (max_open > 0) & (in_use >= max_open) & ~np.isnan(rnd)
    return len(np.unique(rnd[pinned])), len(np.unique(rnd[~np.isnan(rnd)]))


def inferred_sites(ev: Evidence, note: str, calls: tuple[str, ...] = (),
                   http_client: bool = False) -> list[SiteEvidence]:
    """Candidate causes when nothing names the line directly: app sites that make the pool
    call able to leak the object (``begin`` for a Tx), seen in any goroutine of any round or
    in the heap's allocation history. Marked inferred; the report says so."""
    if http_client:
        from ..evidence import calls_http_client

        g = ev.goroutines[ev.goroutines["stack_id"].map(
            lambda s: int(s) in ev.stacks and calls_http_client(ev.stacks[int(s)].functions))]
        h = ev.heap_calls[ev.heap_calls["http_client"].astype(bool)] if len(ev.heap_calls) \
            else ev.heap_calls
    else:
        g = ev.goroutines[ev.goroutines["pool_call"].isin(calls)]
        h = ev.heap_calls[ev.heap_calls["pool_call"].isin(calls)] if len(ev.heap_calls) \
            else ev.heap_calls
    sites = {(s.function, s.file, s.line): s for s in goroutine_sites(ev, g, "cause", note)}
    for key, grp in h.groupby(["site_function", "site_file", "site_line"], dropna=False) \
            if len(h) else []:
        k = (str(key[0]), str(key[1]), int(key[2]) if pd.notna(key[2]) else None)
        se = sites.get(k)
        if se is None:
            se = sites[k] = SiteEvidence(k[0], k[1], k[2], role="cause", note=note)
        allocs = int(grp["alloc_objects"].sum())
        se.note = (se.note + f"; {allocs} sampled allocations on this path in the heap "
                   "profile's history").strip("; ")
        se.stack_ids = sorted(set(se.stack_ids) | {int(x) for x in grp["stack_id"]})
        if not any(st["source"] == "heap" for st in se.stacks):
            top = grp.sort_values("alloc_objects", ascending=False).head(3)
            se.stacks += [{"stack_id": int(r.stack_id), "source": "heap", "count": None,
                           "state": None, "wait_minutes_min": None, "wait_minutes_max": None,
                           "inuse_objects": int(r.inuse_objects), "inuse_bytes": None,
                           "frames": _stack_frames(ev, int(r.stack_id))}
                          for r in top.itertuples()]
    out = list(sites.values())
    for s in out:
        s.inferred = True
    return out


def pool_checks(ev: Evidence) -> list[Check]:
    """db.Stats and the kernel on a pool: connections in use and sockets to the database.

    Either rising between rounds supports a leak of connection-holding objects; flat ones
    say nothing either way (a pinned pool is flat too), so they are "silent".
    """
    checks = []
    rounds, in_use = dbstats_trend(ev, "in_use")
    pinned, stat_rounds = pinned_pools(ev)
    if rounds:
        t = trend(dict(zip(rounds, in_use, strict=False)))
        detail = f"InUse {t.describe()}"
        if pinned:
            detail += f"; at MaxOpenConnections in {pinned} of {stat_rounds} rounds"
        checks.append(Check("dbstats", "supports" if t.growing() or pinned else "silent",
                            detail))
    else:
        checks.append(Check("dbstats", "absent", "no db.Stats in the bundle"))
    db = {r: v.get("db_established") for r, v in ev.series.get("db_check", {}).items()
          if v.get("db_established") is not None}
    if db:
        t = trend(db)
        checks.append(Check("sockets", "supports" if t.growing() else "silent",
                            f"ESTABLISHED to the database {t.describe()}"))
    else:
        checks.append(Check("sockets", "absent", "no socket listing in the bundle"))
    return checks
