"""``ls -l /proc/PID/fd`` -> ``fds`` table.

Why: the fd directory is the hub of every join. Each entry maps a descriptor number to
``socket:[inode]``, and the inode is what /proc/net/tcp, ``ss -e`` and ``netstat -e`` key
their rows by. It is also the cheapest capture a customer can make without root tools,
so it often is the only descriptor listing in a bundle.

Formats read::

    $ ls -l /proc/4242/fd
    total 0
    lrwx------ 1 app app 64 Jan 22 22:07 36 -> socket:[21663249]
    lrwx------. 1 root root 64 oct 24 12:19 16 -> socket:[7004576]   (SELinux ".", localized month)
    l-wx------ 1 root root 64 2024-10-24 12:19 1 -> '/tmp/log (deleted)'   (--time-style, quoting)
    lr-x------ 1 root root 64 Nov 27 19:09 7 -> pipe:[11084]
    lrwx------ 1 root root 64 Nov 27 19:09 9 -> anon_inode:[eventpoll]
    /proc/812/fd:                                  (ls -l /proc/*/fd: one block per process)

The date is never parsed: its shape depends on locale and ``--time-style``. A row is
recognised by its mode string (``l`` + 9 permission chars) and read from the right: the
token before `` -> `` is the fd, the text after is the link target. Entries are often not
sorted numerically (``ls`` sorts names as text: 36 after 359); order is irrelevant here.

The pid comes from a ``/proc/PID/fd`` path echoed in the file (a prompt line or a
per-directory header), else from the parse context, else from a ``proc/PID/`` path of the
artifact itself.
"""

from __future__ import annotations

import re

import pandas as pd

from forensics.parsers.base import ParseContext, ParseError, ParseResult, decode_text
from forensics.schema import conform

KIND = "procfd"
TABLES = ("fds",)
DESCRIPTION = "ls -l /proc/PID/fd listing: descriptor -> socket/pipe/file targets"

#: One listing row: mode with optional SELinux/ACL marker, then anything (links, owner,
#: size, date) and finally ``FD -> TARGET``. The middle is a lazy ``.*?`` anchored by the
#: literal `` -> `` on the same line: linear, no nested quantifiers.
_ROW = re.compile(
    r"^[ \t]*[l?][-rwxsStT?]{9}[.+@]?[ \t]+(?P<mid>.*?)[ \t](?P<fd>\d{1,9})"
    r"(?:[ \t]+->[ \t]+(?P<target>.*))?$",
    re.M,
)
#: PATH_MAX (4096) plus the mode/owner/date prefix; longer lines are not ls output and
#: must not reach the lazy ``mid`` group.
_MAX_LINE = 4096 + 512
_PROC_FD_PATH = re.compile(r"/proc/(\d{1,10})/fd\b")
_DIR_HEADER = re.compile(r"^[ \t]*/proc/(\d{1,10})/fd/?:[ \t]*$")
_PATH_PID = re.compile(r"(?:^|/)proc/(\d{1,10})(?:/|$)")
_INODE_LINK = re.compile(r"(socket|pipe):\[(\d{1,18})\]")
_PSEUDO = re.compile(r"(socket|pipe|anon_inode|net|mnt|pid|user|uts|ipc|cgroup|time):")


def sniff(head: bytes, name: str) -> float:
    text = decode_text(head[:65536])
    lines = [ln for ln in text.split("\n")[:300] if ln.strip()]
    if not lines:
        return 0.0
    rows = [m for m in (_ROW.match(ln) for ln in lines if len(ln) <= _MAX_LINE) if m]
    if not rows:
        return 0.0
    arrows = sum(1 for m in rows if m.group("target") is not None)
    ratio = len(rows) / len(lines)
    score = 0.5 + 0.45 * ratio if arrows else 0.2
    return min(score, 0.95)


def _target(m: re.Match[str]) -> str | None:
    t = m.group("target")
    return t.rstrip() if t is not None else None


def parse(data: bytes, ctx: ParseContext) -> ParseResult:
    text = decode_text(data)
    result = ParseResult()
    default_pid = _default_pid(text, ctx)
    records: list[dict] = []
    pid = default_pid
    seen: set[tuple[int | None, int]] = set()
    lines = text.split("\n")
    cut_at = len(lines) if text and not text.endswith("\n") else 0
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line) > _MAX_LINE:
            result.warn("overlong line skipped", line=lineno)
            continue
        hdr = _DIR_HEADER.match(line)
        if hdr:
            pid = int(hdr.group(1))
            continue
        m = _ROW.match(line)
        if m is None:
            _skip(line, lineno, result)
            continue
        fd = int(m.group("fd"))
        if lineno == cut_at and m.group("target") is None:
            result.warn("last row is cut off before its target", line=lineno)
            continue
        if (pid, fd) in seen:
            result.warn(f"fd {fd} listed twice", line=lineno)
            continue
        seen.add((pid, fd))
        records.append(_record(pid, fd, _target(m)))
    if not records:
        raise ParseError("no /proc/PID/fd entries found")
    if pid is None and default_pid is None:
        result.warn("no pid in the listing or its context: fds rows carry no pid")
    df = conform(pd.DataFrame.from_records(records), "fds")
    result.tables["fds"] = df.drop(columns=["bundle_id", "round", "captured_at", "source"])
    pids = df["pid"].dropna().unique()
    if len(pids) == 1:
        result.meta["pid"] = int(pids[0])
    result.meta["format"] = "ls-l"
    return result


def _default_pid(text: str, ctx: ParseContext) -> int | None:
    """An echoed ``/proc/PID/fd`` path wins, then the context's pid, then the path's."""
    m = _PROC_FD_PATH.search(text[:4096])
    if m:
        return int(m.group(1))
    if ctx.pid is not None:
        return ctx.pid
    m = _PATH_PID.search(ctx.path or "")
    return int(m.group(1)) if m else None


def _skip(line: str, lineno: int, result: ParseResult) -> None:
    s = line.strip()
    if s.startswith("total ") or "/proc/" in s or s in ("…", "...", "[...]"):
        return  # the "total N" line, echoed commands
    if re.match(r"^d[-rwxsStT?]{9}[.+@]?\s", s):
        return  # "." and ".." of ls -la
    if re.match(r"^[l?][-rwxsStT?]{9}", s):
        result.warn(f"row cut off before its fd: {s[:80]!r}", line=lineno)
        return
    if s.startswith("ls: "):
        result.warn(s[:120], line=lineno)
        return
    result.warn(f"not an ls -l row: {s[:80]!r}", line=lineno)


def _unquote(target: str) -> str:
    """Undo ls's shell quoting of a link target (``'socket:[1]'``, ``"a b"``)."""
    t = target.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    if t.startswith("$'") and t.endswith("'"):
        return t[2:-1]
    return t


def _record(pid: int | None, fd: int, raw_target: str | None) -> dict:
    if raw_target is None:
        # "ls: cannot read symbolic link": the fd exists, its target is unknown.
        return {"pid": pid, "fd": fd, "kind": "unknown", "target": None, "inode": None,
                "tool": "procfd"}
    target = _unquote(raw_target)
    kind, inode = _classify(target)
    return {"pid": pid, "fd": fd, "kind": kind, "target": target, "inode": inode,
            "tool": "procfd"}


def _classify(target: str) -> tuple[str, int | None]:
    """Link target -> (kind, inode). Inode only for sockets and pipes: the join key."""
    m = _INODE_LINK.fullmatch(target)
    if m:
        return m.group(1), int(m.group(2))
    m = _PSEUDO.match(target)
    if m:
        kind = m.group(1)
        # A cut-off "socket:[2344" keeps its kind but not a partial inode.
        return (kind if kind in ("socket", "pipe", "anon_inode") else "ns"), None
    if target.startswith("/dev/"):
        return "dev", None
    if target.startswith("/") or target.startswith("memfd:"):
        return "file", None
    return "other", None
