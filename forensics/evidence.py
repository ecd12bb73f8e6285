"""Evidence prepared once for every detector: stacks with their first app frame,
goroutines bucketed and matched to leak signatures, live heap objects matched to
connection-holding allocation sites, and helpers to read growth across rounds.

Detectors read only this and the tables; each is then a short rule about one pattern.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from .gosym import APP, RUNTIME, STDLIB
from .schema import Tables
from .signatures import DUMPER_FRAMES, GOROUTINE_SIGNATURES, HEAP_SITES, POOL_CALLS

#: Leaf runtime frames that tell a goroutine's wait state when the dump (debug=1, pprof
#: goroutine profile) does not print it.
_STATE_FROM_LEAF: tuple[tuple[str, str], ...] = (
    ("runtime.selectgo", "select"),
    ("runtime.block", "select (no cases)"),
    ("runtime.chanrecv", "chan receive"),
    ("runtime.chansend", "chan send"),
    ("internal/poll.runtime_pollWait", "IO wait"),
    ("runtime.netpollblock", "IO wait"),
    ("sync.runtime_SemacquireMutex", "semacquire"),
    ("internal/sync.runtime_SemacquireMutex", "semacquire"),
    ("sync.runtime_SemacquireRWMutex", "semacquire"),
    ("sync.runtime_Semacquire", "semacquire"),
    ("sync.runtime_notifyListWait", "sync.Cond.Wait"),
    ("time.Sleep", "sleep"),
    ("runtime.timeSleep", "sleep"),
    ("syscall.Syscall", "syscall"),
    ("syscall.syscall", "syscall"),
)
_NORMAL_STATES = {
    "sync.Mutex.Lock": "semacquire", "sync.RWMutex.Lock": "semacquire",
    "sync.RWMutex.RLock": "semacquire", "sync.WaitGroup.Wait": "semacquire",
}


class Site(NamedTuple):
    function: str
    file: str
    line: int | None


@dataclass
class StackInfo:
    functions: list[str]
    files: list[str]
    lines: list[int | None]
    classes: list[str]

    def app_frame(self, below: int = -1) -> Site | None:
        """First app frame rootward of depth ``below`` (leaf first): the call site."""
        for d in range(below + 1, len(self.functions)):
            if self.classes[d] == APP:
                return Site(self.functions[d], self.files[d], self.lines[d])
        return None

    def frame_in(self, functions: set[str]) -> Site | None:
        """The innermost app frame whose function is one of ``functions``, or None."""
        for d, cls in enumerate(self.classes):
            if cls == APP and self.functions[d] in functions:
                return Site(self.functions[d], self.files[d], self.lines[d])
        return None

    def caller_of(self, site: Site) -> Site | None:
        """The next app frame rootward of ``site`` in another function (a closure's own
        function, ``F`` of ``F.func1``, counts as the same): who called the site."""
        seen = False
        for d, cls in enumerate(self.classes):
            if cls != APP:
                continue
            fn = self.functions[d]
            if not seen:
                seen = fn == site.function and self.lines[d] == site.line
                continue
            if fn != site.function and not site.function.startswith(fn + "."):
                return Site(fn, self.files[d], self.lines[d])
        return None

    def pool_call(self) -> str:
        """The database/sql entry point the first app frame calls, e.g. "begin"."""
        for d, cls in enumerate(self.classes):
            if cls == APP:
                for callee in reversed(self.functions[:d]):
                    for prefix, call in POOL_CALLS.items():
                        if callee == prefix or callee.startswith(prefix + "."):
                            return call
                return ""
        return ""

    def leaf_state(self) -> str | None:
        for fn in self.functions[:4]:
            for prefix, state in _STATE_FROM_LEAF:
                if fn.startswith(prefix):
                    return state
        return None


@dataclass
class Evidence:
    tables: Tables
    rounds: list[int]
    stacks: Mapping[int, StackInfo]
    #: goroutine buckets: round, stack_id, state, count, wait_min, wait_max, leaked,
    #: sig (signature id or ""), role, leak_kind, site_* (first app frame), parents.
    goroutines: pd.DataFrame
    #: heap buckets: round, stack_id, heap_site, leak_kind, object, inuse_objects,
    #: inuse_space, alloc_objects, site_* (first app frame above the allocation frame).
    heap: pd.DataFrame
    heap_profiles: pd.DataFrame
    series: dict[str, dict[int, dict[str, float]]]
    #: every heap stack with an app frame that calls a database/sql pool entry point or
    #: the net/http client, and the pool call it makes (alloc or inuse): round, stack_id,
    #: pool_call, http_client, alloc_objects, inuse_objects, site_*. Allocation history
    #: shows which app lines ever begin a Tx or query, even when the sampling rate hides
    #: the leaked objects themselves. (Other stacks are left out: there are 10^5 of them
    #: in a big profile and no rule reads them.)
    heap_calls: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: buckets of the goroutineleak profile (same columns as ``goroutines``).
    leak_profile: pd.DataFrame = field(default_factory=pd.DataFrame)
    manifest: dict[str, Any] = field(default_factory=dict)
    #: goroutine id -> stack_id per round, to follow "created by ... in goroutine P".
    live_ids: dict[int, dict[int, int]] = field(default_factory=dict)
    _rounds: dict[str, list[int]] = field(default_factory=dict, repr=False)
    #: what the detectors work out from the evidence once and several rules read
    #: (detectors.common.memo)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    def proven(self, sigs: tuple[str, ...]) -> int:
        """Goroutines of these signatures the runtime proved leaked (latest round)."""
        total = 0
        for df in (self.goroutines, self.leak_profile):
            if not len(df):
                continue
            hit = df["sig"].isin(sigs).to_numpy(dtype=bool)
            if df is self.goroutines:
                hit = hit & df["leaked"].astype(bool).to_numpy()
            if hit.any():
                rounds, counts = df["round"].to_numpy()[hit], df["count"].to_numpy()[hit]
                total += int(counts[rounds == rounds.max()].sum())
        return total

    def rounds_with(self, table: str) -> list[int]:
        if table not in self._rounds:  # asked by every detector, of tables that stay put
            df = self.tables[table]
            self._rounds[table] = sorted(int(r) for r in df["round"].dropna().unique()) \
                if len(df) else []
        return list(self._rounds[table])

    def heap_rounds(self) -> list[int]:
        return self.rounds_with("heap_samples")


class StackIndex(Mapping[int, StackInfo]):
    """stack_id -> :class:`StackInfo`, built on first use of each stack.

    A heap profile of a big service has 500k stacks and 15M ``stacks`` rows; a Python
    object per stack would cost seconds and gigabytes, and detectors look at a few
    hundred stacks (goroutine buckets, connection-holding allocation sites). So the
    table's columns are kept as arrays with each stack's row range, and a StackInfo is
    made only for a stack that is asked for.
    """

    def __init__(self, stacks: pd.DataFrame) -> None:
        self._infos: dict[int, StackInfo] = {}
        self._runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._readers: dict[str, Callable[[int, int], list]] = {}
        self._table = stacks
        self._sorted = False

    def _ids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """stack_id (-1 for null), whether it is null, and depth (-1 for null) of every
        row, as arrays read once."""
        if self._rows is None:
            st = self._table
            self._rows = (st["stack_id"].to_numpy(dtype=np.int64, na_value=-1),
                          st["stack_id"].isna().to_numpy(),
                          st["depth"].to_numpy(dtype=np.int64, na_value=-1))
        return self._rows

    def _index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sorted stack ids, start row, end row): a stack's rows are the run from its
        depth-0 row to the next depth-0 row, as every parser writes them. A run that is
        not depths 0, 1, 2, ... of one stack means an unordered table (e.g. one put
        together by hand): it is then sorted once, see :meth:`_regroup`."""
        if self._runs is None:
            sid, _, depth = self._ids()
            starts = np.flatnonzero(depth == 0)
            ends = np.r_[starts[1:], len(sid)].astype(np.int64)
            ids = sid[starts]
            order = np.argsort(ids, kind="stable")
            self._runs = (ids[order], starts[order], ends[order])
        return self._runs

    def _find(self, sid: int) -> tuple[int, int] | None:
        ids, starts, ends = self._index()
        i = int(np.searchsorted(ids, sid))
        if i >= len(ids) or ids[i] != sid:
            return None
        return int(starts[i]), int(ends[i])

    def _regroup(self) -> None:
        st = self._table
        st = st[st["stack_id"].notna() & st["depth"].notna()]
        st = st.sort_values(["stack_id", "depth"], kind="stable")
        self._table = st.drop_duplicates(["stack_id", "depth"]).reset_index(drop=True)
        self._runs, self._rows, self._readers, self._sorted = None, None, {}, True

    def _column(self, name: str, start: int, end: int) -> list:
        """One stack's values of a column as Python objects (nulls: None for ``line``,
        "" for text)."""
        if name not in self._readers:
            self._readers[name] = self._reader(self._table[name], name)
        return self._readers[name](start, end)

    @staticmethod
    def _reader(col: pd.Series, name: str) -> Callable[[int, int], list]:
        """Rows start:end of ``col`` as a list, from arrays read once: categorical text
        from its codes and distinct strings, ``line`` from integers and a null mask."""
        if isinstance(col.dtype, pd.CategoricalDtype):  # "" for the null code -1
            cats = np.array([*col.cat.categories.astype(str).tolist(), ""], dtype=object)
            codes = col.cat.codes.to_numpy()
            return lambda a, b: cats[codes[a:b]].tolist()
        if name == "line":
            values = col.to_numpy(dtype=np.int64, na_value=0)
            null = col.isna().to_numpy()
            return lambda a, b: [None if n else v for v, n in
                                 zip(values[a:b].tolist(), null[a:b].tolist(), strict=True)]
        return lambda a, b: ["" if pd.isna(x) else str(x) for x in col.iloc[a:b]]

    def __getitem__(self, sid: int) -> StackInfo:
        info = self._infos.get(sid)
        if info is not None:
            return info
        rows = self._find(sid)
        if rows is None:
            raise KeyError(sid)
        start, end = rows
        ids, null_id, depth = self._ids()
        # A null stack_id inside the run does not break it (as pandas' all() skips it).
        if not self._sorted and not (
                ((ids[start:end] == sid) | null_id[start:end]).all()
                and (depth[start:end] == np.arange(end - start)).all()):
            self._regroup()
            return self[sid]
        info = self._infos[sid] = StackInfo(
            functions=self._column("function", start, end),
            files=self._column("file", start, end),
            lines=self._column("line", start, end),
            classes=self._column("frame_class", start, end),
        )
        return info

    def __contains__(self, sid: object) -> bool:
        try:
            return self._find(int(sid)) is not None  # type: ignore[call-overload]
        except (TypeError, ValueError, OverflowError):
            return False

    def __iter__(self) -> Iterator[int]:
        return iter(np.unique(self._index()[0]).tolist())

    def __len__(self) -> int:
        return len(np.unique(self._index()[0]))

    def with_function(self, test: Callable[[str], bool]) -> set[int]:
        """Stacks with a frame whose function passes ``test``: the test runs once per
        distinct function, the selection is vectorized over the rows."""
        st = self._table
        if not len(st):
            return set()
        fn = st["function"]
        if not isinstance(fn.dtype, pd.CategoricalDtype):
            fn = fn.astype("category")
        hit = np.array([test(str(c)) for c in fn.cat.categories] + [False], bool)
        rows = hit[fn.cat.codes.to_numpy()]  # code -1 (null) takes the trailing False
        ids = st["stack_id"].to_numpy(dtype=np.int64, na_value=-1)[rows]
        return set(np.unique(ids[ids >= 0]).tolist())


def stack_infos(stacks: pd.DataFrame) -> StackIndex:
    return StackIndex(stacks)


class Groups:
    """Rows grouped by key columns like ``df.groupby(keys, sort=False)`` (groups in order
    of first appearance, rows with a null key left out), with the reductions the buckets
    need done by numpy on group ids: pandas' groupby machinery costs milliseconds per
    call, more than the work itself on the few hundred rows of a goroutine dump."""

    def __init__(self, df: pd.DataFrame, keys: list[str]) -> None:
        self.keys = keys
        ids = df.groupby(keys, sort=False).ngroup().fillna(-1).to_numpy(dtype=np.int64)
        self.rows = np.flatnonzero(ids >= 0)
        self.ids = ids[self.rows]
        self.count = int(self.ids.max()) + 1 if len(self.ids) else 0
        _, at = np.unique(self.ids, return_index=True)
        self.first_rows = self.rows[at]

    def first(self, col: pd.Series) -> pd.api.extensions.ExtensionArray:
        """The value of each group's first row (for key columns)."""
        return col.array.take(self.first_rows)

    def sum(self, col: pd.Series) -> np.ndarray:
        """Per group, the sum of the integers (nulls count as 0)."""
        out = np.zeros(self.count, np.int64)
        np.add.at(out, self.ids, col.to_numpy(dtype=np.int64, na_value=0)[self.rows])
        return out

    def sums(self, df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        """``df.groupby(keys, sort=False)[columns].sum().reset_index()``: the keys and
        the sums, one row per group."""
        return pd.DataFrame({**{key: self.first(df[key]) for key in self.keys},
                             **{c: self.sum(df[c]) for c in columns}})

    def min(self, col: pd.Series) -> pd.arrays.IntegerArray:
        return self._extreme(col, np.minimum, np.iinfo(np.int64).max)

    def max(self, col: pd.Series) -> pd.arrays.IntegerArray:
        return self._extreme(col, np.maximum, np.iinfo(np.int64).min)

    def _extreme(self, col: pd.Series, ufunc: np.ufunc, start: int) -> pd.arrays.IntegerArray:
        """Per group, the extreme of the non-null values; null when there is none."""
        valid = col.notna().to_numpy()[self.rows]
        values = col.to_numpy(dtype=np.int64, na_value=0)[self.rows][valid]
        out = np.full(self.count, start, np.int64)
        ufunc.at(out, self.ids[valid], values)
        seen = np.zeros(self.count, bool)
        seen[self.ids[valid]] = True
        return pd.arrays.IntegerArray(np.where(seen, out, 0), ~seen)

    def any(self, col: pd.Series) -> pd.arrays.BooleanArray:
        """Per group, whether some row is true (nulls count as false)."""
        out = np.zeros(self.count, bool)
        out[self.ids[col.fillna(False).to_numpy(dtype=bool)[self.rows]]] = True
        return pd.arrays.BooleanArray(out, np.zeros(self.count, bool))

    def distinct(self, col: pd.Series) -> list[list[int]]:
        """Per group, its distinct non-null integers in ascending order."""
        valid = col.notna().to_numpy()[self.rows]
        pairs = np.unique(np.column_stack([
            self.ids[valid], col.to_numpy(dtype=np.int64, na_value=0)[self.rows][valid]]),
            axis=0)  # sorted by group, then value
        bounds = np.searchsorted(pairs[:, 0], np.arange(self.count + 1))
        values = pairs[:, 1]
        return [values[a:b].tolist() for a, b in itertools.pairwise(bounds)]


def _match_signature(info: StackInfo | None, state: str | None):
    if info is None:
        return None
    for sig in GOROUTINE_SIGNATURES:
        if sig.states is not None and state not in sig.states:
            continue
        if state in sig.not_states:
            continue
        for d, fn in enumerate(info.functions):
            if fn.startswith(sig.frames):
                return sig, d
    return None


def _is_dumper(info: StackInfo | None) -> bool:
    return info is not None and any(fn.startswith(DUMPER_FRAMES) for fn in info.functions[:12])


def _normal_states(state: pd.Series) -> pd.Series:
    """Wait reasons with Go 1.2x's lock names folded into ``semacquire`` (worked out per
    distinct state, not per goroutine); null stays None."""
    codes, uniques = pd.factorize(state)
    normal = np.array([_NORMAL_STATES.get(u, u) if u else None for u in uniques] + [None],
                      dtype=object)
    return pd.Series(normal[codes], index=state.index, dtype=object)


def bucket_goroutines(gr: pd.DataFrame, stacks: Mapping[int, StackInfo]) -> pd.DataFrame:
    cols = ["round", "stack_id", "state", "count", "wait_min", "wait_max", "leaked", "sig",
            "role", "leak_kind", "site_function", "site_file", "site_line", "pool_call",
            "parents", "created_by"]
    if not len(gr):
        return pd.DataFrame(columns=cols)
    g = gr[gr["stack_id"].notna()].copy()
    g["state"] = _normal_states(g["state"])
    g["count"] = g["count"].fillna(1).astype("int64")
    keyed = g.assign(state_key=g["state"].fillna(""), cb=g["created_by"].fillna(""))
    groups = Groups(keyed, ["round", "stack_id", "state_key", "cb"])
    agg = pd.DataFrame({
        **{key: groups.first(keyed[key]) for key in groups.keys},
        "count": groups.sum(keyed["count"]),
        "wait_min": groups.min(keyed["wait_minutes"]),
        "wait_max": groups.max(keyed["wait_minutes"]),
        "leaked": groups.any(keyed["leaked"]),
        "parents": groups.distinct(keyed["parent_goroutine_id"]),
    })
    rows = []
    for rec in agg.itertuples(index=False):
        sid = int(rec.stack_id)
        info = stacks.get(sid)
        if _is_dumper(info):
            continue
        state = rec.state_key or (info.leaf_state() if info else None) or None
        m = _match_signature(info, state)
        site = None
        if info is not None:
            site = info.app_frame(m[1] if m else -1)
        sig = m[0] if m else None
        rows.append({
            "round": int(rec.round), "stack_id": sid, "state": state, "count": int(rec.count),
            "wait_min": rec.wait_min, "wait_max": rec.wait_max, "leaked": bool(rec.leaked),
            "sig": sig.id if sig else "", "role": sig.role if sig else "",
            "leak_kind": sig.leak_kind if sig else "",
            "site_function": site.function if site else None,
            "site_file": site.file if site else None,
            "site_line": site.line if site else None,
            "pool_call": info.pool_call() if info else "",
            "parents": rec.parents, "created_by": rec.cb,
        })
    return pd.DataFrame(rows, columns=cols)


def bucket_heap(samples: pd.DataFrame, stacks: Mapping[int, StackInfo]) -> pd.DataFrame:
    cols = ["round", "stack_id", "heap_site", "leak_kind", "object", "inuse_objects",
            "inuse_space", "alloc_objects", "site_function", "site_file", "site_line"]
    if not len(samples):
        return pd.DataFrame(columns=cols)
    candidates = _stacks_calling(stacks, lambda fn: fn.startswith(_HEAP_SITE_FRAMES))
    samples = samples[samples["stack_id"].isin(candidates)]
    per_stack = Groups(samples, ["round", "stack_id"]).sums(
        samples, ["inuse_objects", "inuse_space", "alloc_objects"])
    matched: dict[int, tuple] = {}
    for sid in per_stack["stack_id"].unique():
        info = stacks.get(int(sid))
        if info is None:
            continue
        hit = None
        for d, fn in enumerate(info.functions):
            for hs in HEAP_SITES:
                if fn.startswith(hs.frames):
                    hit = (hs, d)
                    break
            if hit:
                break
        if hit is None:
            continue
        hs, d = hit
        if hs.part_of and any(fn.startswith(hs.part_of) for fn in info.functions[d + 1:]):
            continue  # the inside of an object another site counts
        if hs.own_object and any(cls not in (RUNTIME, STDLIB) for cls in info.classes[:d]):
            continue  # work the driver did under the site frame, not the object
        matched[int(sid)] = (hs, info.app_frame(d))
    rows = []
    for rec in per_stack.itertuples(index=False):
        m = matched.get(int(rec.stack_id))
        if not m:
            continue
        hs, site = m
        rows.append({
            "round": int(rec.round), "stack_id": int(rec.stack_id), "heap_site": hs.id,
            "leak_kind": hs.leak_kind, "object": hs.object,
            "inuse_objects": int(rec.inuse_objects or 0),
            "inuse_space": int(rec.inuse_space or 0),
            "alloc_objects": int(rec.alloc_objects or 0),
            "site_function": site.function if site else None,
            "site_file": site.file if site else None,
            "site_line": site.line if site else None,
        })
    return pd.DataFrame(rows, columns=cols)


def heap_call_sites(samples: pd.DataFrame, stacks: Mapping[int, StackInfo]) -> pd.DataFrame:
    cols = ["round", "stack_id", "pool_call", "http_client", "alloc_objects", "inuse_objects",
            "site_function", "site_file", "site_line", "caller_function", "caller_file",
            "caller_line"]
    if not len(samples):
        return pd.DataFrame(columns=cols)
    candidates = _stacks_calling(stacks, _pool_or_http_call)
    samples = samples[samples["stack_id"].isin(candidates)]
    per_stack = Groups(samples, ["round", "stack_id"]).sums(
        samples, ["alloc_objects", "inuse_objects"])
    rows = []
    for rec in per_stack.itertuples(index=False):
        info = stacks.get(int(rec.stack_id))
        site = info.app_frame() if info else None
        if site is None:
            continue
        caller = info.caller_of(site)
        rows.append({"round": int(rec.round), "stack_id": int(rec.stack_id),
                     "pool_call": info.pool_call(),
                     "http_client": calls_http_client(info.functions),
                     "alloc_objects": int(rec.alloc_objects or 0),
                     "inuse_objects": int(rec.inuse_objects or 0),
                     "site_function": site.function, "site_file": site.file,
                     "site_line": site.line,
                     "caller_function": caller.function if caller else None,
                     "caller_file": caller.file if caller else None,
                     "caller_line": caller.line if caller else None})
    return pd.DataFrame(rows, columns=cols)


#: Entry points of net/http's client: an app frame calling one of these sends requests.
HTTP_CLIENT_FUNCS = frozenset({
    "net/http.Get", "net/http.Post", "net/http.Head", "net/http.PostForm",
    "net/http.NewRequest", "net/http.NewRequestWithContext",
})
HTTP_CLIENT_METHODS = ("net/http.(*Client).",)


def calls_http_client(functions: list[str]) -> bool:
    return any(_http_client_call(fn) for fn in functions)


def _http_client_call(fn: str) -> bool:
    return fn in HTTP_CLIENT_FUNCS or fn.startswith(HTTP_CLIENT_METHODS)


_HEAP_SITE_FRAMES = tuple(f for hs in HEAP_SITES for f in hs.frames)
_POOL_PREFIXES = tuple(POOL_CALLS)


def _pool_or_http_call(fn: str) -> bool:
    """A frame that can make :meth:`StackInfo.pool_call` or :func:`calls_http_client`
    say something (a necessary condition, tested once per distinct function)."""
    return fn.startswith(_POOL_PREFIXES) or _http_client_call(fn)


def _stacks_calling(stacks: Mapping[int, StackInfo], test: Callable[[str], bool]) -> set[int]:
    """Stacks with a frame passing ``test``, vectorized when ``stacks`` is an index."""
    if isinstance(stacks, StackIndex):
        return stacks.with_function(test)
    return {sid for sid, info in stacks.items() if any(test(fn) for fn in info.functions)}


#: Methods of the objects that hold a connection: an app function calling them directly
#: uses (and must close or end) an object, whoever opened it.
OBJECT_METHODS = ("database/sql.(*Rows).", "database/sql.(*Row).", "database/sql.(*Tx).",
                  "database/sql.(*Conn).", "database/sql.(*Stmt).")


def object_users(stacks: Mapping[int, StackInfo], among: set[str]) -> set[str]:
    """Those of the app functions ``among`` seen calling a method of a Rows, Row, Tx, Conn
    or Stmt (any goroutine or heap stack): they work with the object, as opposed to a
    helper that only opens it and hands it back. Only stacks holding both such a method
    and one of ``among`` are read."""
    if not among:
        return set()
    users: set[str] = set()
    sids = _stacks_calling(stacks, lambda fn: fn.startswith(OBJECT_METHODS)) & \
        _stacks_calling(stacks, lambda fn: fn in among)
    for sid in sids:
        info = stacks.get(sid)
        if info is None:
            continue
        fns = info.functions
        for d, fn in enumerate(fns):
            if not fn.startswith("database/sql."):
                continue
            # The outermost database/sql frame of this run is what the caller called:
            # Rows.Next is use; DB.QueryContext (which calls Rows.initContextClose) is not.
            while d + 1 < len(fns) and fns[d + 1].startswith("database/sql."):
                d += 1
            if fns[d].startswith(OBJECT_METHODS):
                site = info.app_frame(d)
                if site is not None and site.function in among:
                    users.add(site.function)
            break
    return users


def build(tables: Tables, rounds: list[int], series: dict, manifest: dict) -> Evidence:
    stacks = stack_infos(tables["stacks"])
    gr = tables["goroutines"]
    live: dict[int, dict[int, int]] = {}
    if len(gr):
        ids = gr[gr["goroutine_id"].notna() & gr["stack_id"].notna()]
        for rnd, g in ids.groupby("round"):
            live[int(rnd)] = dict(zip(g["goroutine_id"].astype(int), g["stack_id"].astype(int),
                                      strict=False))
    leaks = tables["goroutine_leaks"]
    leak_profile = bucket_goroutines(
        leaks.assign(goroutine_id=pd.NA, state=None, wait_minutes=pd.NA, leaked=True,
                     parent_goroutine_id=pd.NA, created_by=None), stacks) if len(leaks) \
        else bucket_goroutines(leaks, stacks)
    return Evidence(
        tables=tables, rounds=rounds, stacks=stacks,
        goroutines=bucket_goroutines(gr, stacks),
        heap=bucket_heap(tables["heap_samples"], stacks),
        heap_profiles=tables["heap_profiles"],
        series=series, manifest=manifest, live_ids=live,
        heap_calls=heap_call_sites(tables["heap_samples"], stacks),
        leak_profile=leak_profile,
    )


# ---- growth -------------------------------------------------------------------------

def sum_by_round(df: pd.DataFrame, column: str | None = None) -> dict[int, Any]:
    """``df.groupby("round")[column].sum().to_dict()``, or the rows per round when
    ``column`` is None, in round order. Done by numpy: detectors ask it of small bucket
    frames dozens of times, and a pandas groupby costs a millisecond a call."""
    if not len(df):
        return {}
    rnd = df["round"]
    known = rnd.notna().to_numpy()
    rounds, at = np.unique(rnd.to_numpy(dtype=np.int64, na_value=0)[known],
                           return_inverse=True)
    if column is None:
        values = np.ones(int(known.sum()), np.int64)
    else:
        col = df[column]
        integer = pd.api.types.is_integer_dtype(col.dtype) or pd.api.types.is_bool_dtype(
            col.dtype)
        values = col.to_numpy(dtype=np.int64 if integer else np.float64, na_value=0)[known]
    sums = np.zeros(len(rounds), values.dtype)
    np.add.at(sums, at.reshape(-1), values)
    return dict(zip(rounds.tolist(), sums.tolist(), strict=True))


@dataclass(frozen=True)
class Trend:
    values: tuple[float, ...]

    @property
    def first(self) -> float:
        return self.values[0] if self.values else 0

    @property
    def last(self) -> float:
        return self.values[-1] if self.values else 0

    @property
    def delta(self) -> float:
        return self.last - self.first

    @property
    def rounds(self) -> int:
        return len(self.values)

    def growing(self, min_delta: float = 3) -> bool:
        """Rises from first to last round by a margin, and never falls back to the start:
        a leak only accumulates, a busy service goes up and down."""
        if len(self.values) < 2 or self.delta < max(min_delta, 0.2 * self.first):
            return False
        low = self.first
        return all(v >= low for v in self.values[1:]) and self.last >= max(self.values) * 0.9

    def rises_every_round(self) -> bool:
        """Up in every step over three rounds or more: accumulating, not a busy moment."""
        return self.rounds >= 3 and all(b > a for a, b in itertools.pairwise(self.values))

    def describe(self) -> str:
        return " -> ".join(f"{v:g}" for v in self.values)


def trend(by_round: dict[int, float], rounds: list[int] | None = None) -> Trend:
    keys = rounds if rounds is not None else sorted(by_round)
    return Trend(tuple(float(by_round.get(r, 0) or 0) for r in keys))
