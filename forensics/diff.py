"""What changed between two captures: the check an engineer runs after deploying a fix.

Two bundles (before / after the fix) or two rounds of one bundle are compared on the same
footing, straight from the tables:

* per call site (the first *app* frame of a stack, as DESIGN.md defines it): goroutines
  parked there and live heap objects/bytes allocated there, before, after and delta, with
  the analyzer's rank and leak kind when the site was ranked;
* per goroutine signature (``signature_id``, a stable hash of state + stack + creator, so
  the same signature in two bundles has the same id): count and longest wait;
* totals (goroutines, heap, connections by state, fds, db.Stats);
* findings that appeared, disappeared or persisted (bundles only: findings describe a
  whole bundle, not one round).

For a bundle the *latest* round of each table is used (a leak is judged by where it got
to); for rounds, exactly the rounds asked for. Everything is grouped with pandas, so a
200k-goroutine dump costs one groupby, not a Python loop per goroutine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from .correlate import unnumbered_descriptors

SITE_KEY = ["function", "file", "line"]
SITE_VALUES = ["goroutines", "heap_inuse_objects", "heap_inuse_bytes"]
SIG_VALUES = ["goroutines", "wait_minutes_max"]
CONN_STATES = ("ESTABLISHED", "CLOSE_WAIT", "TIME_WAIT")


@dataclass
class Diff:
    mode: str  # "bundles" | "rounds"
    before: dict[str, Any]
    after: dict[str, Any]
    totals: list[dict[str, Any]] = field(default_factory=list)
    sites: list[dict[str, Any]] = field(default_factory=list)
    signatures: list[dict[str, Any]] = field(default_factory=list)
    findings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- per side

def _rows_of(df: pd.DataFrame, rnd: int | None) -> pd.DataFrame:
    """Rows of round ``rnd``, or of the table's own latest round when ``rnd`` is None."""
    if df.empty or "round" not in df.columns:
        return df
    if rnd is None:
        latest = df["round"].max()
        return df if pd.isna(latest) else df[df["round"] == latest]
    return df[df["round"] == rnd]


def _label(function: Any, file: Any, line: Any) -> str:
    if function is None or (not isinstance(function, str) and pd.isna(function)):
        return ""
    where = "" if file is None or pd.isna(file) else str(file)
    if where and line is not None and not pd.isna(line):
        where = f"{where}:{int(line)}"
    return f"{function} ({where})" if where else str(function)


def first_app_frames(stacks: pd.DataFrame) -> pd.DataFrame:
    """stack_id -> the first app frame (function, file, line): the call site."""
    app = stacks[stacks["frame_class"] == "app"]
    if app.empty:
        return pd.DataFrame(columns=["stack_id", *SITE_KEY])
    idx = app.groupby("stack_id")["depth"].idxmin()
    return app.loc[idx, ["stack_id", *SITE_KEY]].reset_index(drop=True)


def _top_frames(stacks: pd.DataFrame) -> pd.DataFrame:
    top = stacks[stacks["depth"] == 0][["stack_id", *SITE_KEY]]
    return top.drop_duplicates("stack_id")


def _goroutine_counts(g: pd.DataFrame) -> pd.Series:
    return g["count"].fillna(1).astype("int64") if "count" in g.columns else pd.Series(
        1, index=g.index, dtype="int64")


def site_table(tables: Any, rnd: int | None) -> pd.DataFrame:
    """Per call site: goroutines parked there, live heap objects and bytes allocated there."""
    sites = first_app_frames(tables["stacks"])
    g = _rows_of(tables["goroutines"], rnd)
    parts = []
    if not g.empty:
        gg = pd.DataFrame({"stack_id": g["stack_id"], "goroutines": _goroutine_counts(g)})
        gg = gg.groupby("stack_id", as_index=False)["goroutines"].sum()
        parts.append(gg.merge(sites, on="stack_id"))
    h = _rows_of(tables["heap_samples"], rnd)
    if not h.empty:
        hh = h.groupby("stack_id", as_index=False)[["inuse_objects", "inuse_space"]].sum()
        hh = hh.rename(columns={"inuse_objects": "heap_inuse_objects",
                                "inuse_space": "heap_inuse_bytes"})
        parts.append(hh.merge(sites, on="stack_id"))
    if not parts:
        return pd.DataFrame(columns=[*SITE_KEY, *SITE_VALUES])
    df = pd.concat(parts, ignore_index=True)
    for c in SITE_VALUES:
        if c not in df.columns:
            df[c] = 0
    df["line"] = df["line"].fillna(-1)
    df[SITE_VALUES] = df[SITE_VALUES].fillna(0).astype("int64")
    return df.groupby(SITE_KEY, as_index=False, dropna=False)[SITE_VALUES].sum()


def signature_table(tables: Any, rnd: int | None) -> pd.DataFrame:
    """Per goroutine signature: count, longest wait, state, creator, top frames."""
    g = _rows_of(tables["goroutines"], rnd)
    cols = ["signature_id", "state", "created_by", "top_app_frame", "top_frame", *SIG_VALUES]
    if g.empty:
        return pd.DataFrame(columns=cols)
    g = g.assign(_n=_goroutine_counts(g))
    agg = g.groupby("signature_id", as_index=False).agg(
        goroutines=("_n", "sum"), wait_minutes_max=("wait_minutes", "max"),
        state=("state", "first"), created_by=("created_by", "first"),
        stack_id=("stack_id", "first"))
    stacks = tables["stacks"]
    app = first_app_frames(stacks).set_index("stack_id")
    top = _top_frames(stacks).set_index("stack_id")
    agg["top_app_frame"] = [_frame_label(app, s) for s in agg["stack_id"]]
    agg["top_frame"] = [_frame_label(top, s) for s in agg["stack_id"]]
    return agg[cols]


def _frame_label(frames: pd.DataFrame, stack_id: Any) -> str:
    if pd.isna(stack_id) or stack_id not in frames.index:
        return ""
    r = frames.loc[stack_id]
    return _label(r["function"], r["file"], r["line"])


def totals(tables: Any, rnd: int | None) -> dict[str, int | None]:
    """Whole-process numbers: what a dashboard would show for this capture."""
    out: dict[str, int | None] = {}
    g = _rows_of(tables["goroutines"], rnd)
    out["goroutines"] = int(_goroutine_counts(g).sum()) if not g.empty else None
    h = _rows_of(tables["heap_samples"], rnd)
    out["heap_inuse_objects"] = int(h["inuse_objects"].fillna(0).sum()) if not h.empty else None
    out["heap_inuse_bytes"] = int(h["inuse_space"].fillna(0).sum()) if not h.empty else None
    conns = _rows_of(tables["connections"], rnd)
    for state in CONN_STATES:
        out[f"connections {state}"] = (int((conns["state"] == state).sum())
                                       if not conns.empty else None)
    fds = _rows_of(tables["fds"], rnd)
    if not fds.empty:
        unnumbered = unnumbered_descriptors(fds)
        numbered = fds[fds["fd"].notna().to_numpy()]
        out["open fds"] = int(numbered.drop_duplicates(["pid", "fd"]).shape[0]
                              + unnumbered.sum())
    else:
        out["open fds"] = None
    db = _rows_of(tables["dbstats"], rnd)
    for col in ("in_use", "open", "wait_count"):
        out[f"db {col}"] = int(db[col].fillna(0).sum()) if not db.empty else None
    return out


# --------------------------------------------------------------------------- comparing

def _change(before: int, after: int) -> str:
    if before == after:
        return "same"
    if before == 0:
        return "new"
    if after == 0:
        return "gone"
    return "up" if after > before else "down"


def compare(before: pd.DataFrame, after: pd.DataFrame, key: list[str],
            values: list[str], keep: list[str] | None = None,
            moving: list[str] | None = None) -> pd.DataFrame:
    """Outer join on ``key``: ``<v>_before``, ``<v>_after``, ``<v>_delta`` per value.

    Rows are ordered by the absolute delta of each ``moving`` value in turn (default: all
    values, in order), so the first value is the primary signal and later ones only break
    ties: millions of ordinary heap objects must not push a site whose parked goroutines
    doubled off the screen. ``change`` (new / gone / up / down / same) reads the moving
    values together.
    """
    keep = keep or []
    moving = moving or values
    b = before[[*key, *keep, *values]]
    a = after[[*key, *keep, *values]]
    m = b.merge(a, on=key, how="outer", suffixes=("_before", "_after"))
    for k in keep:  # descriptive columns: whichever side has them
        m[k] = m[f"{k}_after"].combine_first(m[f"{k}_before"])
        m = m.drop(columns=[f"{k}_before", f"{k}_after"])
    for v in values:
        for side in ("before", "after"):
            m[f"{v}_{side}"] = pd.to_numeric(m[f"{v}_{side}"], errors="coerce").fillna(0) \
                .astype("int64")
        m[f"{v}_delta"] = m[f"{v}_after"] - m[f"{v}_before"]
    m["change"] = _changes(m, moving)
    sort_cols = []
    for v in moving:
        m[f"_abs_{v}"] = m[f"{v}_delta"].abs()
        sort_cols.append(f"_abs_{v}")
    m = m.sort_values([*sort_cols, f"{values[0]}_after"], ascending=False, kind="stable")
    return m.drop(columns=sort_cols).reset_index(drop=True)


def _changes(m: pd.DataFrame, moving: list[str]) -> list[str]:
    before = [m[f"{v}_before"] for v in moving]
    after = [m[f"{v}_after"] for v in moving]
    deltas = [m[f"{v}_delta"] for v in moving]
    any_before = sum((x != 0).astype(int) for x in before) > 0
    any_after = sum((x != 0).astype(int) for x in after) > 0
    moved = sum((x != 0).astype(int) for x in deltas) > 0
    grew = sum(x for x in deltas) >= 0
    out = []
    for ab, aa, mv, g in zip(any_before, any_after, moved, grew, strict=True):
        if not mv:
            out.append("same")
        elif not ab:
            out.append("new")
        elif not aa:
            out.append("gone")
        else:
            out.append("up" if g else "down")
    return out


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in df.to_dict("records"):
        out.append({k: (None if _isna(v) else v.item() if hasattr(v, "item") else v)
                    for k, v in rec.items()})
    return out


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _site_ranks(analysis: Any) -> dict[tuple[str, str, int], tuple[int, str]]:
    out = {}
    for c in analysis.call_sites:
        line = -1 if c.line is None else int(c.line)
        out.setdefault((c.function, c.file, line), (c.rank, c.leak_kind))
    return out


def _sites(before_df: pd.DataFrame, after_df: pd.DataFrame, ranks_before: dict,
           ranks_after: dict) -> list[dict[str, Any]]:
    ranked = pd.DataFrame([{"function": f, "file": fl, "line": ln}
                           for (f, fl, ln) in {**ranks_before, **ranks_after}],
                          columns=SITE_KEY)
    # Ranked sites are shown even when the tables attribute nothing to them.
    if not ranked.empty:
        zero = ranked.assign(**{v: 0 for v in SITE_VALUES})
        before_df = pd.concat([before_df, zero], ignore_index=True) \
            .groupby(SITE_KEY, as_index=False, dropna=False)[SITE_VALUES].sum()
        after_df = pd.concat([after_df, zero], ignore_index=True) \
            .groupby(SITE_KEY, as_index=False, dropna=False)[SITE_VALUES].sum()
    m = compare(before_df, after_df, SITE_KEY, SITE_VALUES)
    rows = _records(m)
    for r in rows:
        k = (r["function"], r["file"], r["line"])
        rb, ra = ranks_before.get(k), ranks_after.get(k)
        r["rank_before"] = rb[0] if rb else None
        r["rank_after"] = ra[0] if ra else None
        r["leak_kind"] = (ra or rb or (None, None))[1]
        if r["line"] == -1:
            r["line"] = None
    # Sites the analyzer ranked come first: they are what the fix was about.
    rows.sort(key=lambda r: r["rank_before"] is None and r["rank_after"] is None)
    return rows


def _signatures(before_df: pd.DataFrame, after_df: pd.DataFrame) -> list[dict[str, Any]]:
    keep = ["state", "created_by", "top_app_frame", "top_frame"]
    return _records(compare(before_df, after_df, ["signature_id"], SIG_VALUES, keep,
                            moving=["goroutines"]))


def _totals(before: dict[str, int | None], after: dict[str, int | None]) -> list[dict]:
    rows = []
    for metric in before:
        b, a = before[metric], after.get(metric)
        if b is None and a is None:
            continue
        delta = None if b is None or a is None else a - b
        rows.append({"metric": metric, "before": b, "after": a, "delta": delta})
    return rows


def _finding_key(f: Any) -> tuple[str, str]:
    sites = getattr(f, "sites", None) or []
    return (f.kind, sites[0].function if sites else "")


def _finding_row(f: Any) -> dict[str, Any]:
    sites = getattr(f, "sites", None) or []
    return {"kind": f.kind, "severity": f.severity, "confidence": f.confidence,
            "summary": f.summary, "site": sites[0].function if sites else None}


def _findings(before: Any, after: Any) -> dict[str, list[dict[str, Any]]]:
    b = {_finding_key(f): f for f in before.findings}
    a = {_finding_key(f): f for f in after.findings}
    return {
        "appeared": [_finding_row(a[k]) for k in a if k not in b],
        "disappeared": [_finding_row(b[k]) for k in b if k not in a],
        "persisted": [{**_finding_row(a[k]), "severity_before": b[k].severity}
                      for k in a if k in b],
    }


def _side(analysis: Any, rnd: int | None) -> dict[str, Any]:
    bundle = analysis.bundle
    return {"bundle_id": bundle.bundle_id, "source": bundle.source,
            "content_hash": bundle.content_hash, "rounds": analysis.rounds,
            "round": rnd if rnd is not None else "latest"}


def diff_bundles(before: Any, after: Any) -> Diff:
    """Compare two analyzed bundles (the latest round of each table on each side)."""
    d = Diff("bundles", _side(before, None), _side(after, None))
    bt, at = before.tables, after.tables
    d.totals = _totals(totals(bt, None), totals(at, None))
    d.sites = _sites(site_table(bt, None), site_table(at, None), _site_ranks(before),
                     _site_ranks(after))
    d.signatures = _signatures(signature_table(bt, None), signature_table(at, None))
    d.findings = _findings(before, after)
    if before.bundle.content_hash == after.bundle.content_hash:
        d.notes.append("both sides are the same capture (identical content hash)")
    return d


def diff_rounds(analysis: Any, first: int, second: int) -> Diff:
    """Compare two rounds of one bundle (findings are per bundle, so not compared)."""
    rounds = analysis.rounds
    missing = [r for r in (first, second) if r not in rounds]
    if missing:
        raise ValueError(f"round {missing[0]} is not in this bundle (rounds: "
                         f"{', '.join(map(str, rounds)) or 'none'})")
    d = Diff("rounds", _side(analysis, first), _side(analysis, second))
    t = analysis.tables
    d.totals = _totals(totals(t, first), totals(t, second))
    ranks = _site_ranks(analysis)
    d.sites = _sites(site_table(t, first), site_table(t, second), ranks, ranks)
    d.signatures = _signatures(signature_table(t, first), signature_table(t, second))
    d.findings = {"appeared": [], "disappeared": [], "persisted": []}
    d.notes.append("findings describe the whole bundle and are not compared between rounds")
    return d


def parse_rounds(text: str) -> tuple[int, int]:
    """``"1:3"`` -> (1, 3)."""
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--rounds wants FIRST:SECOND, e.g. 1:3 (got {text!r})")
    return int(parts[0]), int(parts[1])


# --------------------------------------------------------------------------- terminal

def _num(v: Any) -> str:
    return "" if v is None else f"{v:,}"


def _delta(v: Any) -> str:
    if v is None:
        return ""
    return f"+{v:,}" if v > 0 else f"{v:,}"


def print_terminal(d: Diff, console: Any, top: int = 20) -> None:
    """Tables for a person: totals, moved call sites, moved signatures, findings."""
    from rich.table import Table
    from rich.text import Text

    def side(s: dict[str, Any]) -> str:
        return f"{s['bundle_id']} (round {s['round']})"

    console.print(f"before: {side(d.before)}\nafter:  {side(d.after)}", highlight=False,
                  markup=False)
    t = Table(title="totals")
    for c in ("metric", "before", "after", "delta"):
        t.add_column(c, justify="left" if c == "metric" else "right")
    for r in d.totals:
        t.add_row(Text(r["metric"]), _num(r["before"]), _num(r["after"]), _delta(r["delta"]))
    console.print(t)
    _print_rows(console, f"call sites (top {top} by movement)", d.sites[:top],
                [("site", lambda r: _label(r["function"], r["file"], r["line"])),
                 ("rank", lambda r: f"{r['rank_before'] or '-'}→{r['rank_after'] or '-'}"),
                 ("goroutines", lambda r: _trio(r, "goroutines")),
                 ("heap objects", lambda r: _trio(r, "heap_inuse_objects")),
                 ("change", lambda r: r["change"])])
    _print_rows(console, f"goroutine signatures (top {top} by movement)", d.signatures[:top],
                [("state", lambda r: r["state"] or ""),
                 ("top app frame / top frame", _sig_label),
                 ("goroutines", lambda r: _trio(r, "goroutines")),
                 ("max wait min", lambda r: _trio(r, "wait_minutes_max")),
                 ("change", lambda r: r["change"])])
    for what in ("appeared", "disappeared", "persisted"):
        for f in d.findings.get(what, []):
            console.print(f"finding {what}: [{f['severity']}] {f['kind']}: {f['summary']}",
                          markup=False, highlight=False)
    for n in d.notes:
        console.print(f"note: {n}", markup=False, highlight=False)


def _sig_label(r: dict[str, Any]) -> str:
    label = r["top_app_frame"] or r["top_frame"] or f"signature {r['signature_id']}"
    return label + (f"\n  created by {r['created_by']}" if r.get("created_by") else "")


def _trio(r: dict[str, Any], v: str) -> str:
    return f"{_num(r[f'{v}_before'])} → {_num(r[f'{v}_after'])} ({_delta(r[f'{v}_delta'])})"


def _print_rows(console: Any, title: str, rows: list[dict[str, Any]], cols: list) -> None:
    from rich.table import Table
    from rich.text import Text

    if not rows:
        console.print(f"{title}: none", markup=False, highlight=False)
        return
    t = Table(title=title)
    for name, _ in cols:
        t.add_column(name, overflow="fold")
    for r in rows:
        t.add_row(*[Text(str(fn(r))) for _, fn in cols])  # stack text is not markup
    console.print(t)
