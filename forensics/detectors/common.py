"""Helpers every detector uses: sites from goroutine and heap buckets, the stacks behind a
site, what heap sampling can see, and how agreement and growth become confidence."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd

from ..correlate import QUIET_MS
from ..evidence import Evidence, Site, object_users, sum_by_round, trend
from ..findings import Check, SiteEvidence

#: Go's default MemProfileRate: one sample per 512 KiB allocated.
DEFAULT_RATE = 512 * 1024
#: Checked-out silent connections that make a pool leak worth reporting on their own.
MIN_SILENT_HELD = 3


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
    b = _past_helpers(ev, buckets[buckets["site_function"].notna()], pass_through_helpers(ev))
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
                          stack_ids=sorted({int(s) for s in last["stack_id"]}),
                          note=_with_via(note, g))
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


def heap_stacks(ev: Evidence, rows: pd.DataFrame, by: str, top: int,
                bytes_col: str | None = "inuse_space") -> list[dict]:
    """The report's stack entries for the ``top`` heap rows by ``by``: their live objects,
    live bytes (when ``bytes_col`` is known) and frames."""
    return [{"stack_id": int(r.stack_id), "source": "heap", "count": None, "state": None,
             "wait_minutes_min": None, "wait_minutes_max": None,
             "inuse_objects": int(r.inuse_objects),
             "inuse_bytes": int(getattr(r, bytes_col)) if bytes_col else None,
             "frames": _stack_frames(ev, int(r.stack_id))}
            for r in rows.sort_values(by, ascending=False).head(top).itertuples()]


def heap_sites(ev: Evidence, buckets: pd.DataFrame, role: str = "cause") -> list[SiteEvidence]:
    b = _past_helpers(ev, buckets[buckets["site_function"].notna()], pass_through_helpers(ev))
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
                          stack_ids=sorted({int(s) for s in g["stack_id"]}),
                          note=_with_via("", g))
        se.stacks = heap_stacks(ev, g[g["round"] == g["round"].max()], "inuse_objects", 5)
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


#: database/sql keeps this many idle connections unless SetMaxIdleConns says otherwise.
DEFAULT_MAX_IDLE = 2


@dataclass
class Silent:
    """Per round, connections to the database that are checked out yet carry no traffic
    (``ss -i`` timers): silent ones beyond what the pool holds idle, capped by db.Stats
    InUse when known. A connection running a query talks; an idle one sits in the pool;
    one that is neither was taken by code that forgot it (a Rows not closed, a Tx not
    ended, a Conn not returned)."""

    held: dict[int, int]
    quiet: dict[int, int]
    longest_s: dict[int, int]
    idle_known: bool
    #: goroutines waiting inside a database call per round (their silence is a long query)
    busy: dict[int, int] = field(default_factory=dict)

    @property
    def last(self) -> int:
        return self.held[max(self.held)] if self.held else 0

    @property
    def telling(self) -> bool:
        """Whether the count means held connections: with db.Stats the idle ones are known;
        without, a pool may keep more idle than the default (SetMaxIdleConns), so only a
        count that rises in every round of three or more says something."""
        if self.last < MIN_SILENT_HELD:
            return False
        if self.idle_known:
            return True
        return trend(self.held).rises_every_round()

    def held_while_waiting(self, waiting: dict[int, float]) -> tuple[int | None, int]:
        """(round, silent connections not answering a query) in the last round where
        callers wait for the pool: a pool with callers queued has no idle connection (it
        would have handed it over), so each of them is checked out and forgotten. Needs no
        db.Stats. (None, 0) without such a round."""
        rounds = [r for r in self.quiet if waiting.get(r, 0) > 0]
        if not rounds:
            return None, 0
        r = max(rounds)
        return r, max(0, self.quiet[r] - self.busy.get(r, 0))

    def describe(self) -> str:
        r = max(self.held)
        if not self.quiet[r]:
            return (f"no connection to the database silent for {QUIET_MS // 1000}+ s "
                    f"(longest {self.longest_s[r]} s)")
        idle = "idle in the pool per db.Stats" if self.idle_known else \
            f"the {DEFAULT_MAX_IDLE} a pool keeps idle by default"
        if self.busy.get(r):
            idle += f" and the {self.busy[r]} waiting for a query's answer"
        return (f"{self.quiet[r]} connections to the database silent for "
                f"{QUIET_MS // 1000}+ s (longest {self.longest_s[r]} s), {self.held[r]} of "
                f"them beyond {idle}: checked out and not querying")


#: Frames of a database call in progress: a goroutine parked in IO wait under one of them
#: is waiting for the server to answer (a long query), not forgetting its connection.
_DB_CALL_FRAMES = ("database/sql.", "github.com/jackc/pgx", "github.com/jackc/pgconn",
                   "github.com/lib/pq.", "github.com/go-sql-driver/mysql.",
                   "github.com/redis/go-redis/", "github.com/go-redis/redis/",
                   "github.com/gomodule/redigo/", "github.com/garyburd/redigo/")


def _waiting_on_db(ev: Evidence) -> dict[int, int]:
    """Per round, goroutines in IO wait inside a database call: each has a silent
    connection that is busy (the server is still working on its query)."""
    g = ev.goroutines
    io = g[g["state"] == "IO wait"] if len(g) else g
    if not len(io):
        return {}
    sids = {int(s) for s in io["stack_id"].unique()}
    in_call = {sid for sid in sids
               if sid in ev.stacks and any(fn.startswith(_DB_CALL_FRAMES)
                                           for fn in ev.stacks[sid].functions)}
    return sum_by_round(io[io["stack_id"].isin(in_call)], "count")


T = TypeVar("T")


def memo(ev: Evidence, key: str, compute: Callable[[Evidence], T]) -> T:
    """``compute(ev)``, worked out once per evidence: several rules read the same facts."""
    if key not in ev._memo:
        ev._memo[key] = compute(ev)
    return ev._memo[key]


def silent_connections(ev: Evidence) -> Silent | None:
    """:class:`Silent` of the bundle, or None without ``ss -i`` timers."""
    return memo(ev, "silent_connections", _silent_connections)


def _silent_connections(ev: Evidence) -> Silent | None:
    check = ev.series.get("db_check", {})
    rounds = sorted(r for r, v in check.items() if v.get("db_quiet") is not None)
    if not rounds:
        return None
    st = ev.tables["dbstats"]
    idle = sum_by_round(st[st["idle"].notna()], "idle") if len(st) else {}
    in_use = sum_by_round(st[st["in_use"].notna()], "in_use") if len(st) else {}
    busy = _waiting_on_db(ev)
    held, quiet, longest = {}, {}, {}
    for r in rounds:
        q = int(check[r]["db_quiet"])
        h = max(0, q - int(idle.get(r, DEFAULT_MAX_IDLE)) - int(busy.get(r, 0)))
        if r in in_use:
            h = min(h, int(in_use[r]))
        held[r], quiet[r] = h, q
        longest[r] = int(check[r].get("db_quiet_max_s") or 0)
    return Silent(held, quiet, longest, idle_known=bool(idle), busy=busy)


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
    h = _past_helpers(ev, h, pass_through_helpers(ev))
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
        se.note = _with_via(se.note, grp)
        se.stack_ids = sorted(set(se.stack_ids) | {int(x) for x in grp["stack_id"]})
        if not any(st["source"] == "heap" for st in se.stacks):
            se.stacks += heap_stacks(ev, grp, "alloc_objects", 3, bytes_col=None)
    out = list(sites.values())
    for s in out:
        s.inferred = True
    return out


def pass_through_helpers(ev: Evidence) -> set[str]:
    """App functions that make a pool call and hand the object to their caller: a helper
    that never calls a Rows/Tx method itself, called by functions that do. The line to
    read is the caller's, where the object should have been closed. (A function that
    works with the rows itself is where they are closed or not: it stays the site.)"""
    return memo(ev, "pass_through_helpers", _pass_through_helpers)


def _pass_through_helpers(ev: Evidence) -> set[str]:
    h = ev.heap_calls
    if not len(h) or "caller_function" not in h:
        return set()
    calls = h[h["caller_function"].notna() & h["pool_call"].astype(bool)]
    pairs = set(zip(calls["site_function"], calls["caller_function"], strict=True))
    users = object_users(ev.stacks, {f for pair in pairs for f in pair})
    return {site for site, caller in pairs if site not in users and caller in users}


def _past_helpers(ev: Evidence, rows: pd.DataFrame, helpers: set[str]) -> pd.DataFrame:
    """``rows`` (site_* columns) with sites in ``helpers`` moved to the helper's caller,
    and ``via`` naming the helper."""
    hit = rows["site_function"].isin(helpers).to_numpy(dtype=bool) if len(rows) else []
    if not len(rows) or not hit.any():
        return rows
    out = rows.copy()
    out["via"] = None
    for i in np.flatnonzero(hit):
        info = ev.stacks.get(int(out["stack_id"].iat[i]))
        site = Site(out["site_function"].iat[i], out["site_file"].iat[i],
                    out["site_line"].iat[i])
        caller = info.caller_of(site) if info else None
        if caller is not None:
            out.iloc[i, [out.columns.get_loc(c) for c in
                         ("site_function", "site_file", "site_line", "via")]] = \
                [caller.function, caller.file, caller.line, site.function]
    return out


def _with_via(note: str, rows: pd.DataFrame) -> str:
    """``note`` plus the shared helper the rows' site was reached through, if any."""
    via = rows["via"].dropna().unique() if "via" in rows else []
    if not len(via):
        return note
    return (note + f"; through the shared helper {short_name(str(via[0]))}, which opens the "
                   "object and hands it back").strip("; ")


def short_name(function: str) -> str:
    """``github.com/acme/svc/internal/store.(*Store).query`` -> ``store.(*Store).query``."""
    return function.rsplit("/", 1)[-1]


def max_open(ev: Evidence) -> int | None:
    """The largest MaxOpenConnections db.Stats reports (None without one, or 0: no limit)."""
    st = ev.tables["dbstats"]
    if not len(st) or not st["max_open"].notna().any():
        return None
    return int(st["max_open"].max()) or None


def db_established(ev: Evidence) -> dict[int, int]:
    """Per round with a socket listing, the process's ESTABLISHED connections to the
    database (correlate's ``db_check`` series)."""
    return {r: int(v["db_established"]) for r, v in ev.series.get("db_check", {}).items()
            if v.get("db_established") is not None}


def upstream_trend(ev: Evidence, states: tuple[str, ...] = ("ESTABLISHED",)):
    """Per round, the process's connections to upstreams (not the database, not inbound)
    in ``states``; None without a socket listing."""
    conns = ev.tables["connections"]
    if not len(conns):
        return None
    owned = conns[conns["owned"].fillna(True).astype(bool) & (conns["peer_role"] == "upstream")
                  & conns["state"].isin(list(states))]
    rounds = sorted(int(r) for r in conns["round"].dropna().unique())
    return trend(sum_by_round(owned), rounds)


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
    db = db_established(ev)
    if db:
        t = trend(db)
        detail = f"ESTABLISHED to the database {t.describe()}"
        silent = silent_connections(ev)
        held = silent is not None and silent.telling
        if held:
            detail += f"; {silent.describe()}"
        checks.append(Check("sockets", "supports" if t.growing() or held else "silent",
                            detail))
    else:
        checks.append(Check("sockets", "absent", "no socket listing in the bundle"))
    return checks
