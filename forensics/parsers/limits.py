"""/proc/PID/limits (and ``prlimit`` output) -> ``limits`` table.

Why: a connection leak ends as EMFILE ("too many open files") when the descriptor count
reaches the soft ``Max open files`` limit; the report compares the fd count with it to say
how close the service is to falling over.

Formats::

    Limit                     Soft Limit           Hard Limit           Units
    Max cpu time              unlimited            unlimited            seconds
    Max open files            1024                 4096                 files
    Max nice priority         0                    0

    RESOURCE   DESCRIPTION                             SOFT      HARD UNITS    (prlimit)
    NOFILE     max number of open files                1024    524288 files

The kernel pads columns to fixed widths (``%-25s %-20s %-20s %-10s``) but resource names
contain spaces, so a row is read from the right: two value tokens, then an optional unit.
prlimit rows are renamed to the kernel's resource names so both sources compare.

``unlimited`` becomes a null soft/hard. Rows whose values cannot be read are dropped
with a warning, never stored as null, so in this table null always means unlimited.
"""

from __future__ import annotations

import re

import pandas as pd

from forensics.parsers.base import ParseContext, ParseError, ParseResult, decode_text
from forensics.schema import conform

KIND = "limits"
TABLES = ("limits",)
DESCRIPTION = "/proc/PID/limits or prlimit: soft/hard resource limits (open files)"

#: Real rows are ~80 characters; the lazy name group must never see a hostile long line.
_MAX_LINE = 512
_VALUE = r"(unlimited|infinity|\d{1,18})"
#: Resource names are words separated by single spaces ("Max open files"): spelling that
#: out (rather than a lazy ``.*?``) leaves the regex one way to match, so it stays linear.
_PROC_ROW = re.compile(
    rf"^(Max(?: [A-Za-z]+)+)[ \t]+{_VALUE}[ \t]+{_VALUE}(?:[ \t]+([a-z]+))?[ \t]*$"
)
_PRLIMIT_ROW = re.compile(
    rf"^([A-Z]+)[ \t]+(\S+(?: \S+)*)[ \t]+{_VALUE}[ \t]+{_VALUE}(?:[ \t]+([a-z]+))?[ \t]*$"
)
_PROC_HEADER = re.compile(r"^Limit[ \t]+Soft Limit[ \t]+Hard Limit[ \t]+Units", re.M)
_PRLIMIT_HEADER = re.compile(r"^RESOURCE[ \t]+DESCRIPTION[ \t]+SOFT[ \t]+HARD", re.M)
_PID_PATH = re.compile(r"/proc/(\d{1,10})/limits\b|prlimit\b[^\n]*?(?:-p|--pid)[ =]?(\d{1,10})")
_PATH_PID = re.compile(r"(?:^|/)proc/(\d{1,10})(?:/|$)")

#: prlimit resource -> /proc/PID/limits row name (the kernel's lim_rows[] names).
_PRLIMIT_NAMES = {
    "AS": "Max address space",
    "CORE": "Max core file size",
    "CPU": "Max cpu time",
    "DATA": "Max data size",
    "FSIZE": "Max file size",
    "LOCKS": "Max file locks",
    "MEMLOCK": "Max locked memory",
    "MSGQUEUE": "Max msgqueue size",
    "NICE": "Max nice priority",
    "NOFILE": "Max open files",
    "NPROC": "Max processes",
    "RSS": "Max resident set",
    "RTPRIO": "Max realtime priority",
    "RTTIME": "Max realtime timeout",
    "SIGPENDING": "Max pending signals",
    "STACK": "Max stack size",
}


def sniff(head: bytes, name: str) -> float:
    text = decode_text(head[:65536])
    if _PROC_HEADER.search(text) or _PRLIMIT_HEADER.search(text):
        return 0.95
    rows = sum(1 for ln in text.split("\n")[:100] if len(ln) <= _MAX_LINE and _PROC_ROW.match(ln))
    if rows >= 3:
        return 0.85
    return 0.3 if rows and "limits" in name.lower() else 0.0


def parse(data: bytes, ctx: ParseContext) -> ParseResult:
    text = decode_text(data)
    result = ParseResult()
    pid = _pid(text, ctx)
    records: list[dict] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.split("\n"), start=1):
        if len(line) > _MAX_LINE:
            result.warn("overlong line skipped", line=lineno)
            continue
        rec = _row(line)
        if rec is None:
            if line.startswith("Max ") or _looks_prlimit(line):
                result.warn(f"unreadable limit row: {line.strip()[:80]!r}", line=lineno)
            continue
        if rec["resource"] in seen:
            result.warn(f"{rec['resource']} listed twice", line=lineno)
            continue
        seen.add(rec["resource"])
        rec["pid"] = pid
        records.append(rec)
    if not records:
        raise ParseError("no resource limit rows found")
    df = conform(pd.DataFrame.from_records(records), "limits")
    result.tables["limits"] = df.drop(columns=["bundle_id", "round", "captured_at", "source"])
    if pid is not None:
        result.meta["pid"] = pid
    nofile = next((r for r in records if r["resource"] == "Max open files"), None)
    if nofile is not None:
        result.meta["max_open_files"] = nofile["soft"]
    result.meta["format"] = "prlimit" if _PRLIMIT_HEADER.search(text) else "proc"
    return result


def _looks_prlimit(line: str) -> bool:
    word = line.split(None, 1)[0] if line.strip() else ""
    return word in _PRLIMIT_NAMES


def _value(v: str) -> int | None:
    return None if v in ("unlimited", "infinity") else int(v)


def _row(line: str) -> dict | None:
    m = _PROC_ROW.match(line)
    if m:
        name, soft, hard, unit = m.groups()
        return {"resource": name, "soft": _value(soft), "hard": _value(hard), "unit": unit}
    m = _PRLIMIT_ROW.match(line)
    if m and m.group(1) in _PRLIMIT_NAMES:
        key, _desc, soft, hard, unit = m.groups()
        return {"resource": _PRLIMIT_NAMES[key], "soft": _value(soft), "hard": _value(hard),
                "unit": unit}
    return None


def _pid(text: str, ctx: ParseContext) -> int | None:
    """An echoed ``cat /proc/PID/limits`` / ``prlimit -p PID`` wins, then the context."""
    m = _PID_PATH.search(text[:4096])
    if m:
        return int(m.group(1) or m.group(2))
    if ctx.pid is not None:
        return ctx.pid
    m = _PATH_PID.search(ctx.path or "")
    return int(m.group(1)) if m else None
