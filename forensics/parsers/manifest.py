"""Capture manifest (``capture.json`` / ``meta.json``): pid, host, rounds and their times.

The manifest is the best source of time and round for every other artifact, so it fills no
table itself: its facts go to ``meta`` for the inventory. We accept our collector's
``forensics-capture/1`` document and the looser shapes people write by hand
(``{"pid": 1, "rounds": [{"time": ..., "files": [...]}]}``, ``timestamps`` lists, ``dsn``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .base import ParseContext, ParseError, ParseResult, decode_text

KIND = "manifest"
TABLES: tuple[str, ...] = ()
DESCRIPTION = "capture manifest (capture.json / meta.json): pid, host, rounds, DB address"

_KEYS = ("rounds", "pid", "hostname", "host", "db_addresses", "db_address", "dsn", "captures")
_DB_OBJECT_KEYS = ("MaxOpenConnections", "OpenConnections", "InUse")


def sniff(head: bytes, name: str) -> float:
    text = decode_text(head[:4096]).lstrip()
    if not text.startswith("{"):
        return 0.0
    if any(k in text for k in _DB_OBJECT_KEYS):
        return 0.0
    score = 0.0
    if '"forensics-capture/' in text:
        return 1.0
    hits = sum(f'"{k}"' in text for k in _KEYS)
    if hits >= 2:
        score = 0.7
    elif hits == 1:
        score = 0.3
    if re.search(r"(capture|meta|manifest)[^/]*\.json$", name, re.I):
        score += 0.3
    return min(score, 0.95)


def _db_from_dsn(dsn: str) -> str | None:
    m = re.search(r"@([^/?\s]+)", dsn) or re.search(r"host=(\S+).*?port=(\d+)", dsn)
    if not m:
        return None
    if m.lastindex == 2:
        return f"{m.group(1)}:{m.group(2)}"
    hostport = m.group(1)
    return hostport if ":" in hostport.rsplit("]", 1)[-1] else hostport + ":5432"


def parse(data: bytes, ctx: ParseContext) -> ParseResult:
    try:
        doc = json.loads(decode_text(data))
    except json.JSONDecodeError as exc:
        raise ParseError(f"manifest is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError as exc:  # "[[[[..." thousands deep: hostile, not a manifest
        raise ParseError("manifest is not valid JSON: nested too deeply") from exc
    if not isinstance(doc, dict):
        raise ParseError("manifest is not a JSON object")
    res = ParseResult()
    meta: dict[str, Any] = {"format": str(doc.get("format", "manual"))}
    pid = doc.get("pid")
    if isinstance(pid, int) or (isinstance(pid, str) and pid.isdigit()):
        meta["pid"] = int(pid)
    host = doc.get("hostname") or doc.get("host")
    if isinstance(host, str):
        meta["hostname"] = host
    dbs: list[str] = []
    for key in ("db_addresses", "db_address", "database", "db"):
        v = doc.get(key)
        if isinstance(v, str):
            dbs.append(v)
        elif isinstance(v, list):
            dbs += [x for x in v if isinstance(x, str)]
    for key in ("dsn", "database_url", "db_dsn"):
        v = doc.get(key)
        if isinstance(v, str) and (addr := _db_from_dsn(v)):
            dbs.append(addr)
    meta["db_addresses"] = dbs
    meta["rounds"] = _rounds(doc.get("rounds") or doc.get("captures") or [], res)
    for key in ("go_version", "service", "tool_versions"):
        if key in doc:
            meta[key] = doc[key]
    res.meta = meta
    return res


def _rounds(raw: Any, res: ParseResult) -> list[dict[str, Any]]:
    """Rounds as [{"round", "started_at", "dir", "files": {path: {"captured_at", ...}}}]."""
    out = []
    if not isinstance(raw, list):
        res.warn("'rounds' is not a list; ignored")
        return out
    for i, r in enumerate(raw, start=1):
        if not isinstance(r, dict):
            res.warn(f"round entry {i} is not an object; ignored")
            continue
        n = r.get("round", i)
        files: dict[str, dict[str, Any]] = {}
        raw_files = r.get("files") or {}
        if isinstance(raw_files, list):
            raw_files = {f: {} for f in raw_files if isinstance(f, str)}
        if isinstance(raw_files, dict):
            for path, info in raw_files.items():
                files[str(path)] = info if isinstance(info, dict) else {}
        out.append({
            "round": int(n) if isinstance(n, int) else i,
            "started_at": r.get("started_at") or r.get("time") or r.get("timestamp"),
            "dir": r.get("dir"),
            "files": files,
        })
    return out
