"""database/sql pool statistics (``db.Stats()``) in every shape people capture them.

Why it matters: ``InUse`` pinned at ``MaxOpenConnections`` with ``WaitCount`` and
``WaitDuration`` rising is the pool's own account of a connection leak, and it is the
number the socket counts are checked against. Nobody captures it the same way twice, so
this module accepts:

- ``json.Marshal(db.Stats())``: Go field names, ``WaitDuration`` in integer nanoseconds::

      {"MaxOpenConnections":10,"OpenConnections":10,"InUse":10,"Idle":0,
       "WaitCount":42,"WaitDuration":1200000000,"MaxIdleClosed":0,
       "MaxIdleTimeClosed":0,"MaxLifetimeClosed":0}

- several pools in one object (``{"primary": {...}, "replica": {...}}``), arrays of pools,
  expvar pages (``{"cmdline": [...], "memstats": {...}, "db": {...}}``) and deeper nesting:
  any JSON object holding enough of these keys is a pool, named after its JSON key;
- snake_case / lowercase keys, and ``WaitDuration`` as a Go duration string ("2m3.5s");
- the ``%+v`` text form (``{MaxOpenConnections:10 OpenConnections:10 ...}``) and the
  positional ``%v`` form (``{10 10 10 0 42 1.2s 0 0 0}``) in Go's struct field order. Go
  1.11-1.14 had 8 fields (no ``MaxIdleTimeClosed``), Go 1.15+ has 9;
- Prometheus exposition of the pool: client_golang's ``go_sql_*`` collector (label
  ``db_name``), the sqlstats ``go_sql_stats_connections_*`` names and chainlink-style
  ``db_conns_*`` / ``db_wait_*`` gauges.

Output: the ``dbstats`` table, one row per pool (a file holding several snapshots of a
pool, e.g. JSON Lines, keeps the last one and says so in a warning). Pool name: the JSON
key or label value, or ``"default"``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import pandas as pd

from ..schema import COMMON, conform
from .base import ParseContext, ParseError, ParseResult, decode_text

KIND = "dbstats"
TABLES = ("dbstats",)
DESCRIPTION = "database/sql DBStats: JSON, %+v / %v text, or Prometheus go_sql_* metrics"

#: The table's value columns in Go's ``sql.DBStats`` field order (Go 1.15+).
COLUMNS: tuple[str, ...] = (
    "max_open",
    "open",
    "in_use",
    "idle",
    "wait_count",
    "wait_duration_ns",
    "max_idle_closed",
    "max_idle_time_closed",
    "max_lifetime_closed",
)
#: Go 1.11-1.14 ``sql.DBStats``: no MaxIdleTimeClosed.
COLUMNS_GO111: tuple[str, ...] = tuple(c for c in COLUMNS if c != "max_idle_time_closed")

# Keys are compared after lowercasing and dropping "_", "-", "." and spaces.
_KEY_ALIASES: dict[str, str] = {
    "maxopenconnections": "max_open",
    "maxopenconns": "max_open",
    "maxopen": "max_open",
    "openconnections": "open",
    "openconns": "open",
    "open": "open",
    "inuse": "in_use",
    "idle": "idle",
    "waitcount": "wait_count",
    "waitduration": "wait_duration_ns",
    "waitdurationns": "wait_duration_ns",
    "maxidleclosed": "max_idle_closed",
    "maxidletimeclosed": "max_idle_time_closed",
    "maxlifetimeclosed": "max_lifetime_closed",
}
#: Keys whose numbers are not nanoseconds: the multiplier to get nanoseconds.
_DURATION_UNIT_KEYS: dict[str, float] = {
    "waitdurationseconds": 1e9,
    "waitdurationsec": 1e9,
    "waitdurationms": 1e6,
    "waitdurationmillis": 1e6,
    "waitdurationus": 1e3,
}
#: Keys only a DBStats object has: one of them must be present for an object to count.
_DISTINCTIVE = frozenset({"max_open", "in_use", "wait_count", "wait_duration_ns",
                          "max_idle_closed", "max_lifetime_closed"})
#: Wrapper keys that name the container, not the pool: the pool is named one level up.
_GENERIC_KEYS = frozenset({"stats", "dbstats", "db_stats", "dbstat", "sqlstats", "sql_stats",
                           "sqldbstats", "pool", "poolstats", "pool_stats"})
_NAME_FIELDS = ("name", "pool", "db_name", "dbname", "database", "db")

_UNITS_NS: dict[str, float] = {
    "ns": 1.0, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9,
}
_DUR_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")

# %+v / %#v: a brace group holding Field:value pairs; %v: a brace group of 8 or 9 bare values.
_BRACES = re.compile(r"\{([^{}\n]{1,4000})\}")
_PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^\s,{}]+)")
_LABEL_BEFORE = re.compile(r"([A-Za-z0-9_.\-/]+)\s*[:=]\s*(?:sql\.DBStats)?\s*$")

# Prometheus exposition: name{labels} value
_PROM_LINE = re.compile(
    r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^{}]{0,2000})\})?\s+(\S+)(?:\s+\d+)?\s*$"
)
_PROM_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.){0,500})"')
#: Metric-name suffixes (after the family prefix) -> (column, multiplier to our unit).
_PROM_METRICS: dict[str, tuple[str, float]] = {
    # prometheus/client_golang collectors.NewDBStatsCollector
    "go_sql_max_open_connections": ("max_open", 1),
    "go_sql_open_connections": ("open", 1),
    "go_sql_in_use_connections": ("in_use", 1),
    "go_sql_idle_connections": ("idle", 1),
    "go_sql_wait_count_total": ("wait_count", 1),
    "go_sql_wait_duration_seconds_total": ("wait_duration_ns", 1e9),
    "go_sql_max_idle_closed_total": ("max_idle_closed", 1),
    "go_sql_max_idle_time_closed_total": ("max_idle_time_closed", 1),
    "go_sql_max_lifetime_closed_total": ("max_lifetime_closed", 1),
    # dlmiddlecote/sqlstats
    "go_sql_stats_connections_max_open": ("max_open", 1),
    "go_sql_stats_connections_open": ("open", 1),
    "go_sql_stats_connections_in_use": ("in_use", 1),
    "go_sql_stats_connections_idle": ("idle", 1),
    "go_sql_stats_connections_waited_for": ("wait_count", 1),
    "go_sql_stats_connections_blocked_seconds": ("wait_duration_ns", 1e9),
    "go_sql_stats_connections_closed_max_idle": ("max_idle_closed", 1),
    "go_sql_stats_connections_closed_max_idle_time": ("max_idle_time_closed", 1),
    "go_sql_stats_connections_closed_max_lifetime": ("max_lifetime_closed", 1),
    # chainlink and look-alikes
    "db_conns_max": ("max_open", 1),
    "db_conns_open": ("open", 1),
    "db_conns_used": ("in_use", 1),
    "db_conns_idle": ("idle", 1),
    "db_wait_count": ("wait_count", 1),
    "db_wait_time_seconds": ("wait_duration_ns", 1e9),
}
_PROM_POOL_LABELS = ("db_name", "db", "database", "pool", "name", "dbname")

#: DBStats field names as Go, JSON tags, snake_case or metric names spell them.
_SNIFF_KEY = re.compile(
    r"(?i)\b(max_?open_?conn(?:ection)?s|open_?conn(?:ection)?s|in_?use|wait_?count"
    r"|wait_?duration|max_?idle_?closed|max_?idle_?time_?closed|max_?lifetime_?closed)\b\"?\s*(?::(?!=)|=)"
    r"|\bgo_sql_(?:stats_)?\w*connections|\bdb_conns_(?:max|open|used)"
)
_SNIFF_POSITIONAL = re.compile(
    r"^\s*\{\d+ \d+ \d+ \d+ \d+ [0-9.]+[a-zµμ]* \d+ \d+(?: \d+)?\}\s*$", re.M
)
#: A JSON object somewhere in the text (after a log prefix, or on a later line).
_JSON_HINT = re.compile(r"[{\[]\s*\"")
_MAX_JSON_DEPTH = 64
_MAX_ROWS = 100_000


def sniff(head: bytes, name: str) -> float:
    text = decode_text(head[:65536])
    hits = len({m.group(0).lower().replace("_", "")[:12]
                for m in _SNIFF_KEY.finditer(text[:65536])})
    if hits >= 3:
        return 0.9
    if hits:
        return 0.5 if hits == 2 else 0.2
    if _SNIFF_POSITIONAL.search(text[:4096]):
        return 0.7 if "stat" in name.lower() or "db" in name.lower() else 0.5
    return 0.0


def parse(data: bytes, ctx: ParseContext) -> ParseResult:
    result = ParseResult()
    text = decode_text(data)
    rows: list[dict[str, Any]] = []
    fmt = ""
    if text.lstrip()[:1] in ("{", "[") or _JSON_HINT.search(text):
        rows = _from_json(text, result)
        fmt = "json" if rows else ""
    if not rows:
        rows = _from_prometheus(text)
        fmt = "prometheus" if rows else ""
    if not rows:
        rows, fmt = _from_go_text(text, result)
    if not rows:
        raise ParseError("no database/sql DBStats found (JSON, %+v/%v text or go_sql_* metrics)")
    result.meta["format"] = fmt
    latest = _latest_per_pool(rows)
    result.meta["pools"] = sorted(latest)
    result.meta["snapshots"] = len(rows)
    if len(rows) > len(latest):
        result.warn(f"{len(rows)} snapshots of {len(latest)} pool(s); kept the last of each")
    result.tables["dbstats"] = _own(pd.DataFrame(list(latest.values())), "dbstats")
    return result


def _latest_per_pool(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last snapshot of each pool, in first-seen pool order.

    The table holds one row per pool per round; a file that logs db.Stats() repeatedly
    (JSON Lines, several %+v lines) describes the pool as of its last line.
    """
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["pool"]] = row
    return latest


# --- values -----------------------------------------------------------------------------


def parse_go_duration(s: str) -> int | None:
    """Nanoseconds in a Go ``time.Duration.String()`` text ("1h2m3.5s", "350ms", "0s")."""
    s = s.strip()
    sign = -1 if s.startswith("-") else 1
    body = s.lstrip("+-")
    if body in ("0", ""):
        return 0 if body == "0" else None
    total = 0.0
    pos = 0
    for m in _DUR_PART.finditer(body):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS_NS[m.group(2)]
        pos = m.end()
    if pos != len(body):
        return None
    return _fit(sign * total)


def _to_int(value: Any, scale: float = 1.0) -> int | None:
    """An int from a JSON/text value: ints, floats, numeric strings, markdown ``**10**``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and scale == 1.0:
        return _fit(value)  # exact: WaitDuration in ns exceeds a float's 53 bits
    if isinstance(value, (int, float)):
        return _fit(value * scale)
    if isinstance(value, str):
        s = value.strip().strip("*`'\"")
        if _NUMBER.fullmatch(s):
            if scale == 1.0 and s.isascii() and s.lstrip("+-").isdigit():
                return _fit(int(s)) if len(s) <= 20 else None
            return _fit(float(s) * scale)
    return None


def _fit(value: float) -> int | None:
    """``value`` as an int if it is finite and fits the table's int64, else None."""
    if not math.isfinite(value) or abs(value) >= 2**63:
        return None
    return round(value)


def _duration_ns(value: Any, scale: float = 1.0) -> int | None:
    if isinstance(value, str):
        s = value.strip().strip("*`'\"")
        if not _NUMBER.fullmatch(s):
            return parse_go_duration(s)
    return _to_int(value, scale)


def _norm_key(key: str) -> str:
    return re.sub(r"[\s_\-.]", "", key).lower()


def _stats_from_mapping(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The dbstats columns of ``obj`` if it looks like one DBStats, else None."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or isinstance(value, (dict, list)):
            continue
        nk = _norm_key(key)
        if nk in _DURATION_UNIT_KEYS:
            out["wait_duration_ns"] = _duration_ns(value, _DURATION_UNIT_KEYS[nk])
            continue
        col = _KEY_ALIASES.get(nk)
        if col is None:
            continue
        if col == "wait_duration_ns":
            out[col] = _duration_ns(value)
        else:
            out[col] = _to_int(value)
    if len(out) < 3 or not (_DISTINCTIVE & out.keys()):
        return None
    if sum(v is not None for v in out.values()) < 2:
        return None  # DBStats keys, but no readable numbers: nothing to report
    return out


# --- JSON -------------------------------------------------------------------------------


def _json_documents(text: str, bad_lines: list[int]) -> Iterator[Any]:
    """Every JSON value in ``text``: one document, JSON Lines, or JSON after a log prefix."""
    decoder = json.JSONDecoder()
    pos = 0
    n = len(text)
    while pos < n:
        start = _next_json_start(text, pos)
        if start < 0:
            return
        try:
            value, end = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            bad_lines.append(text.count("\n", 0, start) + 1)
            nl = text.find("\n", start)
            pos = n if nl < 0 else nl + 1
            continue
        yield value
        pos = end


def _next_json_start(text: str, pos: int) -> int:
    starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
    return min(starts) if starts else -1


def _from_json(text: str, result: ParseResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    bad_lines: list[int] = []
    for doc in _json_documents(text, bad_lines):
        for name, stats in _walk(doc, None, None, 0):
            rows.append({"pool": name or "default", **stats})
        if len(rows) >= _MAX_ROWS:
            result.warn(f"more than {_MAX_ROWS} pools; the rest were skipped")
            break
    if rows:  # a failed attempt on a text form is not worth a warning
        for line in bad_lines:
            result.warn("unreadable JSON; skipped to the next line", line=line)
    return rows


def _walk(obj: Any, key: str | None, parent_key: str | None,
          depth: int) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(pool name, stats) for every DBStats-like object under ``obj``."""
    if depth > _MAX_JSON_DEPTH:
        return
    if isinstance(obj, dict):
        stats = _stats_from_mapping(obj)
        if stats is not None:
            yield _pool_name(obj, key, parent_key), stats
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                yield from _walk(v, str(k), key, depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if not isinstance(v, (dict, list)):
                continue
            if key is not None:
                name: str | None = f"{key}[{i}]"
            else:
                name = f"pool[{i}]" if len(obj) > 1 else None
            yield from _walk(v, name, key, depth + 1)


def _pool_name(obj: dict[str, Any], key: str | None, parent_key: str | None) -> str | None:
    for field in _NAME_FIELDS:
        value = obj.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if key is not None and key.lower() in _GENERIC_KEYS:
        return parent_key
    return key


# --- Prometheus ---------------------------------------------------------------------------


def _from_prometheus(text: str) -> list[dict[str, Any]]:
    pools: dict[str, dict[str, Any]] = {}
    for line in text.split("\n"):
        if not line or line[0] == "#" or len(line) > 4000:
            continue
        m = _PROM_LINE.match(line.strip())
        if m is None:
            continue
        name, labels, value = m.groups()
        spec = _PROM_METRICS.get(name)
        if spec is None:
            continue
        column, scale = spec
        pool = "default"
        if labels:
            found = dict(_PROM_LABEL.findall(labels))
            pool = next((found[k] for k in _PROM_POOL_LABELS if found.get(k)), "default")
        try:
            number = float(value)
        except ValueError:
            continue
        scaled = _fit(number * scale)
        if scaled is None:
            continue
        pools.setdefault(pool, {"pool": pool})[column] = scaled
    return [row for row in pools.values() if len(row) > 1]


# --- Go text: %+v and %v ----------------------------------------------------------------


def _from_go_text(text: str, result: ParseResult) -> tuple[list[dict[str, Any]], str]:
    rows: list[dict[str, Any]] = []
    formats: set[str] = set()
    for m in _BRACES.finditer(text):
        inner = m.group(1)
        line_start = text.rfind("\n", 0, m.start()) + 1
        label = _LABEL_BEFORE.search(text[max(line_start, m.start() - 200):m.start()])
        pool = label.group(1) if label else "default"
        if "stat" in pool.lower():  # "stats: {...}" labels the value, not the pool
            pool = "default"
        if ":" in inner:
            stats = _stats_from_mapping(dict(_PAIR.findall(inner)))
            fmt = "go_text_fields"
        else:
            stats = _positional(inner)
            fmt = "go_text_positional"
        if stats is None:
            continue
        formats.add(fmt)
        rows.append({"pool": pool, **stats})
        if len(rows) >= _MAX_ROWS:
            result.warn(f"more than {_MAX_ROWS} DBStats values; the rest were skipped")
            break
    return rows, "+".join(sorted(formats))


def _positional(inner: str) -> dict[str, Any] | None:
    """``%v`` of sql.DBStats: 9 values (Go 1.15+) or 8 (Go 1.11-1.14), duration 6th."""
    tokens = inner.replace(",", " ").split()
    if len(tokens) == 9:
        names = COLUMNS
    elif len(tokens) == 8:
        names = COLUMNS_GO111
    else:
        return None
    stats: dict[str, Any] = {}
    for col, tok in zip(names, tokens, strict=True):
        value = _duration_ns(tok) if col == "wait_duration_ns" else _to_int(tok)
        if value is None:
            return None
        stats[col] = value
    return stats


def _own(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """``df`` cast to ``table``'s dtypes, without the context columns the pipeline adds."""
    return conform(df, table).drop(columns=[name for name, _ in COMMON])
