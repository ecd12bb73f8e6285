"""lsof output -> ``fds`` and ``sockets`` tables.

Why this parser is careful: lsof is the one tool that ties a socket's endpoints to a
(pid, fd), so it is where the "which descriptor holds the DB connection" join starts. Yet
customers paste it in every shape: the full table (with or without TID/TASKCMD), ``-p`` and
``-i`` selections, headerless grep output, non-root runs full of ``unknown`` rows, sosreport
files whose header is preceded by hundreds of spaces, truncated excerpts, macOS output with
hex DEVICE addresses, and ``-F`` field output for scripts.

Table format (Linux lsof 4.8x-4.9x; macOS is the same with hex DEVICE)::

    COMMAND PID TID TASKCMD USER  FD  TYPE DEVICE SIZE/OFF NODE NAME
    vault   812             vault 12u IPv4 107001      0t0  TCP 10.0.0.1:35714->10.0.0.9:3306 (EST..
    vault   812 830 vault   vault 12u IPv4 107001      0t0  TCP 10.0.0.1:35714->..  <- thread
    vault   812             vault cwd  DIR  252,2     4096    2 /
    polipo 5646             proxy 661u sock   0,6      0t0 3066 can't identify protocol

Columns are aligned, not separated: TID, TASKCMD, DEVICE, SIZE/OFF and NODE may be blank.
lsof left-aligns COMMAND, TASKCMD and NAME and right-aligns every other column (FD's mode
and lock letters hang past the header's right edge). So each row is read as tokens: the
prefix up to FD is unambiguous by count (COMMAND PID [TID [TASKCMD]] USER; lsof escapes
spaces in command names), TYPE comes from a known vocabulary, and the blank-able numeric
columns DEVICE/SIZE/NODE are placed by their right edges under the header when there is
one, by their shape otherwise. NAME is the rest of the line (it may hold spaces).

Where the socket inode is: for IPv4/IPv6 (and ``pack``) rows Linux lsof prints the inode
in DEVICE and the protocol in NODE; for unix/sock/netlink/raw rows it is in NODE. macOS
prints a kernel address in DEVICE: no inode there.

Threads: ``lsof`` without ``-K``/``-b`` variants repeats every descriptor of a Go process
once per thread (TID column, or a thread COMMAND on older lsof). A descriptor is one row:
rows are deduplicated by (pid, fd) before any other work.

Tables: ``fds`` (one row per descriptor; cwd/rtd/txt/mem/DEL rows have a null fd and that
name as kind) and ``sockets`` (one row per socket descriptor: proto tcp/tcp6/udp/udp6 from
IPv4/IPv6 rows, ``unix`` with the path as local_ip, ``sock`` for lsof's "can't identify
protocol" sockets, the classic trace of a leaked, half-torn-down connection).

BusyBox ``lsof`` (Alpine images, so many Go containers) takes no options and prints every
process's descriptors as ``PID<TAB>EXE<TAB>LINK TARGET``: no fd numbers, no endpoints. Its
rows go to ``fds`` with a null fd (each line is one descriptor: it reads ``/proc/PID/fd``,
not the threads) and the socket inode, which joins them to ``ss`` or ``/proc/net/tcp``.

Field output (``lsof -F pcftDn``, ``-F0``): ``p`` starts a process set (``c`` command,
``K`` task id), ``f`` starts a file set (``t`` type, ``d`` device character = the socket
inode on Linux, ``i`` inode, ``P`` protocol, ``n`` name, ``TST=``/``TQR=``/``TQS=`` TCP
state and queues).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from forensics.parsers.base import ParseContext, ParseError, ParseResult, decode_text
from forensics.parsers.netaddr import normalize_state, split_endpoint
from forensics.schema import conform

KIND = "lsof"
TABLES = ("fds", "sockets")
DESCRIPTION = "lsof listing (table or -F field output): open descriptors and socket endpoints"

_TOKEN = re.compile(r"\S+")
#: An FD column value: number + access mode (+ lock), or a named descriptor.
_FD = re.compile(
    r"(?P<num>\d+)(?P<mode>[rwu\- ]?[rRwWuUNxX]?)"
    r"|(?P<name>cwd|rtd|txt|mem|DEL|NOFD|err|ltx|mmap|Mxx|m86|v86|jld|pd|tr|twd|ctty)"
    r"(?:-?[rRwWuUNxX])?"
)
_FD_WITH_MODE = re.compile(r"\d+[rwu\-][rRwWuUNxX]?|(?:cwd|rtd|txt|mem|DEL|NOFD)(?:-?[rRwWuUNxX])?")
_TYPES = frozenset(
    "REG DIR CHR BLK FIFO PIPE LINK IPv4 IPv6 unix sock a_inode netlink pack raw raw6 inet "
    "unknown ax25 x.25 KQUEUE NPOLICY PSXSHM PSXSEM systm ndrv key ATALK VREG VDIR VCHR "
    "nexus fsevents NEXUS ".split()
)
_GENERIC_TYPE = re.compile(r"[A-Z][A-Z0-9_]{1,8}")
_NUMISH = re.compile(r"\d+(?:,\d+)?|0[xX][0-9a-fA-F]+|0t\d+")
_PROTO_WORD = re.compile(r"TCP|UDP|UDPLITE|SCTP|RAW|ICMP|ICMPV6|RAW6|DCCP")
_INET_TYPES = frozenset({"IPv4", "IPv6", "inet"})
_SOCKET_TYPES = frozenset({"IPv4", "IPv6", "inet", "unix", "sock", "netlink", "pack", "raw",
                           "raw6", "ax25", "x.25", "ndrv", "key", "ATALK"})
_KIND_BY_TYPE = {"REG": "file", "DIR": "file", "VREG": "file", "VDIR": "file", "LINK": "file",
                 "CHR": "dev", "BLK": "dev", "VCHR": "dev", "FIFO": "pipe", "PIPE": "pipe",
                 "a_inode": "anon_inode", "unknown": "unknown"}
_UNREADABLE = re.compile(r"\((?:readlink|stat|lstat|opendir|open): [^()]*\)\s*$")
_PROMPT_PID = re.compile(r"lsof\b.*?-p\s*(\d+)")
_HEADER_WORDS = ("COMMAND", "PID", "FD", "NAME")
#: (pid, numeric FD) of a row, for the cheap thread-repeat check before the full parse.
#: Bounded lazy repetition: at most four candidate positions, no backtracking blow-up.
_QUICK = re.compile(r"\S+[ \t]+(\d+)[ \t]+(?:\S+[ \t]+){0,3}?(\d+[rwu\-][rRwWuUNxX]?)[ \t]")


@dataclass(frozen=True)
class _Header:
    """Alignment anchors of one header line: left edge of left-aligned columns, right
    edge of right-aligned ones (0-based, end exclusive)."""

    device_end: int | None
    size_end: int | None
    node_end: int | None
    fd_end: int | None

    @classmethod
    def parse(cls, line: str) -> _Header:
        hdr = line.lstrip()

        def end(word: str) -> int | None:
            m = re.search(rf"(?<!\S){re.escape(word)}(?!\S)", hdr)
            return m.end() if m else None

        size = end("SIZE/OFF") or end("SIZE") or end("OFFSET")
        return cls(end("DEVICE"), size, end("NODE"), end("FD"))


@dataclass
class _Row:
    command: str
    pid: int
    fd_raw: str
    typ: str | None
    device: str | None
    size: str | None
    node: str | None
    name: str


def _num(s: str | None) -> int | None:
    """Decimal digits -> int; None for anything else or for more digits than an int64
    column holds (a hostile paste must not reach int()'s digit limit)."""
    return int(s) if s and len(s) <= 18 and s.isdigit() else None


def sniff(head: bytes, name: str) -> float:
    text = decode_text(head[:65536])
    lines = [ln for ln in text.split("\n")[:200] if ln.strip()]
    if not lines:
        return 0.0
    for ln in lines[:50]:
        words = ln.split()
        if all(w in words for w in _HEADER_WORDS) and ("TYPE" in words or "DEVICE" in words):
            return 0.95
    if _looks_like_fields(lines):
        return 0.9
    if _looks_like_busybox(lines):
        return 0.85
    rows = sum(1 for ln in lines if _parse_row(ln, None) is not None)
    ratio = rows / len(lines)
    if rows >= 1 and ratio >= 0.5:
        return 0.5 + 0.4 * ratio
    return 0.05 if "lsof" in name.lower() else 0.0


def parse(data: bytes, ctx: ParseContext) -> ParseResult:
    text = decode_text(data)
    result = ParseResult()
    lines = text.replace("\0", "\n").split("\n") if "\0" in text else text.split("\n")
    nonempty = [ln for ln in lines[:400] if ln.strip()]
    if _looks_like_fields(nonempty):
        fds, socks = _parse_fields(lines, result)
        result.meta["format"] = "lsof-F"
    elif _looks_like_busybox(nonempty):
        fds, socks = _parse_busybox(lines, result), []
        result.meta["format"] = "busybox-lsof"
    else:
        truncated = bool(text) and not text.endswith("\n")
        fds, socks = _parse_table(lines, result, truncated)
        result.meta["format"] = "lsof-table"
    if not fds:
        raise ParseError("no lsof rows found")
    fd_df = conform(pd.DataFrame.from_records(fds), "fds")
    sock_df = conform(pd.DataFrame.from_records(socks), "sockets") if socks else conform(
        pd.DataFrame(), "sockets")
    result.tables = {"fds": _own(fd_df, "fds"), "sockets": _own(sock_df, "sockets")}
    pids = fd_df["pid"].dropna().unique()
    if len(pids) == 1:
        result.meta["pid"] = int(pids[0])
    result.meta["processes"] = len(pids)
    return result


def _own(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Drop the common columns conform() added: the pipeline owns those."""
    return df.drop(columns=["bundle_id", "round", "captured_at", "source"], errors="ignore")


# ---------------------------------------------------------------------------------------
# Table output


def _parse_table(
    lines: list[str], result: ParseResult, truncated: bool
) -> tuple[list[dict], list[dict]]:
    header: _Header | None = None
    seen: set[tuple] = set()
    fds: list[dict] = []
    socks: list[dict] = []
    last = len(lines) - 1
    while last >= 0 and not lines[last].strip():
        last -= 1
    for i, line in enumerate(lines):
        qm = _QUICK.match(line)
        quick = (qm.group(1), qm.group(2)) if qm else None
        if quick is not None and quick in seen:
            continue  # per-thread repeat of a descriptor already read
        if not line.strip():
            continue
        if "COMMAND" in line:
            words = line.split()
            if words[0] == "COMMAND" and all(w in words for w in _HEADER_WORDS):
                header = _Header.parse(line)
                continue
        row = _parse_row(line, header)
        if row is None:
            _skip(line, i + 1, result)
            continue
        key = (row.pid, row.fd_raw) if row.fd_raw[:1].isdigit() else (
            row.pid, row.fd_raw, row.name)
        if key in seen:
            continue
        seen.add(key)
        if quick is not None:
            seen.add(quick)
        cut = truncated and i == last
        if cut:
            result.warn("last line is cut off: endpoints and state not trusted", line=i + 1)
        fd_rec, sock_rec = _records(row, cut)
        if fd_rec is not None:
            fds.append(fd_rec)
        if sock_rec is not None:
            socks.append(sock_rec)
    return fds, socks


def _skip(line: str, lineno: int, result: ParseResult) -> None:
    s = line.strip()
    if s in ("…", "...", "[...]") or s.startswith("lsof: ") or s.startswith("Output information"):
        return
    m = _PROMPT_PID.search(s)
    if m and ("$" in s or "#" in s):
        result.meta.setdefault("command_pid", _num(m.group(1)))
        return
    result.warn(f"not an lsof row: {s[:80]!r}", line=lineno)


def _parse_row(line: str, header: _Header | None) -> _Row | None:
    """One table row -> _Row, or None when the line is not an lsof row."""
    toks: list[re.Match[str]] = []
    for m in _TOKEN.finditer(line):
        toks.append(m)
        if len(toks) >= 12:
            break
    if len(toks) < 3:
        return None
    k = _find_fd(toks, header)
    if k is None:
        return None
    prefix = [t.group() for t in toks[:k]]
    pid_at = next((j for j in range(1, k) if _num(prefix[j]) is not None), None)
    if pid_at is None:
        return None
    command = " ".join(prefix[:pid_at])
    pid = int(prefix[pid_at])
    rest = toks[k + 1 :]
    typ = None
    if rest and _is_type(rest[0].group()):
        typ = rest[0].group()
        rest = rest[1:]
    nums: list[re.Match[str]] = []
    for t in rest[:3]:
        v = t.group()
        if _NUMISH.fullmatch(v):
            nums.append(t)
        elif typ in _INET_TYPES and _PROTO_WORD.fullmatch(v):
            nums.append(t)
            break
        else:
            break
    after = rest[len(nums)] if len(rest) > len(nums) else None
    name = line[after.start() :].rstrip() if after is not None else ""
    device, size, node = _place_numbers(nums, header, typ)
    return _Row(command, pid, toks[k].group(), typ, device, size, node, name)


def _find_fd(toks: list[re.Match[str]], header: _Header | None) -> int | None:
    """Index of the FD token: under the header's FD edge when aligned, else the first
    token after COMMAND and PID that can only be an FD (it carries a mode letter)."""
    if header is not None and header.fd_end is not None:
        for j in range(2, min(len(toks), 7)):
            t = toks[j]
            if header.fd_end <= t.end() <= header.fd_end + 2 and _FD.fullmatch(t.group()):
                return j
    for j in range(2, min(len(toks), 7)):
        if _FD_WITH_MODE.fullmatch(toks[j].group()):
            return j
    return None


def _is_type(v: str) -> bool:
    return v in _TYPES or bool(_GENERIC_TYPE.fullmatch(v))


def _place_numbers(
    nums: list[re.Match[str]], header: _Header | None, typ: str | None
) -> tuple[str | None, str | None, str | None]:
    """Assign up to three DEVICE/SIZE/NODE tokens to their columns."""
    vals = [t.group() for t in nums]
    if len(vals) == 3:
        return vals[0], vals[1], vals[2]
    if not vals:
        return None, None, None
    if header is not None and None not in (header.device_end, header.size_end, header.node_end):
        anchors = (header.device_end, header.size_end, header.node_end)
        best: tuple[int, tuple[int, ...]] | None = None
        for combo in _COMBOS[len(vals)]:
            cost = sum(abs(t.end() - anchors[c]) for t, c in zip(nums, combo, strict=True))
            if best is None or cost < best[0]:
                best = (cost, combo)
        if best is not None and best[0] == 0:
            out: list[str | None] = [None, None, None]
            for v, c in zip(vals, best[1], strict=True):
                out[c] = v
            return out[0], out[1], out[2]
    if len(vals) == 1:
        return None, None, vals[0]
    first = vals[0]
    if first.startswith("0t"):
        return None, first, vals[1]
    return first, None, vals[1]


_COMBOS: dict[int, list[tuple[int, ...]]] = {
    1: [(0,), (1,), (2,)],
    2: [(0, 1), (0, 2), (1, 2)],
}


def _records(row: _Row, cut: bool) -> tuple[dict | None, dict | None]:
    """A parsed row -> (fds record, sockets record or None)."""
    if row.fd_raw.startswith("NOFD"):
        return None, None  # "/proc/N/fd (opendir: Permission denied)": no descriptor
    m = _FD.fullmatch(row.fd_raw)
    fd = _num(m.group("num")) if m and m.group("num") else None
    typ = row.typ or ("unknown" if fd is not None else None)
    is_socket = typ in _SOCKET_TYPES
    if fd is None:
        kind = m.group("name").lower() if m and m.group("name") else "unknown"
    elif is_socket:
        kind = "socket"
    else:
        kind = _KIND_BY_TYPE.get(typ or "unknown", (typ or "unknown").lower())
    target: str | None = row.name or None
    if target is not None and _UNREADABLE.search(target):
        target = None  # "(readlink: Permission denied)": lsof could not see it
    inode = _inode(row, is_socket, kind)
    fd_rec = {"pid": row.pid, "fd": fd, "kind": kind, "target": target, "inode": inode,
              "tool": "lsof"}
    if not is_socket or fd is None:
        return fd_rec, None
    sock = {"pid": row.pid, "fd": fd, "inode": inode, "tool": "lsof", "process": row.command,
            "proto": _proto(row), "state": "UNKNOWN"}
    if not cut and typ in _INET_TYPES:
        sock.update(_inet_name(row.name))
    elif not cut and typ == "unix":
        sock.update(_unix_name(row.name))
    return fd_rec, sock


def _split_paren(name: str) -> tuple[str, str | None]:
    """``text (INNER)`` -> (text, INNER); no regex, so a hostile NAME cannot make it slow."""
    s = name.rstrip()
    if not s.endswith(")"):
        return s, None
    i = s.rfind("(")
    if i <= 0 or not s[i - 1].isspace() or ")" in s[i + 1 : -1]:
        return s, None
    return s[:i].rstrip(), s[i + 1 : -1]


def _unix_name(name: str) -> dict:
    """``/run/x.sock type=STREAM (LISTEN)`` -> path as the local address, and the state
    when lsof (4.9x) prints one."""
    out: dict = {}
    name, inner = _split_paren(name)
    if inner is not None and " " not in inner.strip():
        out["state"] = normalize_state(inner)
    path = name.split(" type=", 1)[0].strip()
    if path and not path.startswith("type="):
        out["local_ip"] = path
    return out


def _inode(row: _Row, is_socket: bool, kind: str) -> int | None:
    if is_socket:
        if row.typ in ("IPv4", "IPv6", "inet", "pack") and _num(row.device) is not None:
            return _num(row.device)
        return _num(row.node)
    return _num(row.node) if kind == "pipe" else None


def _proto(row: _Row) -> str:
    if row.typ in _INET_TYPES:
        p = (row.node or "").lower()
        if not p or not p.isalpha():
            p = "ip"
        return p + "6" if row.typ == "IPv6" and p in ("tcp", "udp") else p
    return (row.typ or "unknown").lower()


def _inet_name(name: str) -> dict:
    """``local->remote (STATE QR=n QS=n)`` -> endpoint and state columns."""
    out: dict = {}
    text, inner = _split_paren(name)
    if inner is not None:
        for word in inner.split():
            key, eq, val = word.partition("=")
            if eq and _num(val) is not None:
                if key in ("QR", "TQR"):
                    out["recv_q"] = _num(val)
                elif key in ("QS", "TQS"):
                    out["send_q"] = _num(val)
            elif not eq:
                out["state"] = normalize_state(word)
    local, _, remote = text.strip().partition("->")
    local = local.split()[0] if local.split() else ""
    out["local_ip"], out["local_port"] = split_endpoint(local)
    if remote:
        out["remote_ip"], out["remote_port"] = split_endpoint(remote.split()[0])
    return out


# ---------------------------------------------------------------------------------------
# -F field output

_FIELD_LINE = re.compile(r"[pcfKMtDdinPToasglLRuGkCFNrSzZm0].*")


def _looks_like_fields(lines: list[str]) -> bool:
    if not lines:
        return False
    sample = lines[:200]
    p_lines = sum(1 for ln in sample if re.fullmatch(r"p\d+", ln.strip()))
    f_lines = sum(1 for ln in sample if re.fullmatch(r"f\S+", ln.strip()))
    if p_lines == 0 or f_lines == 0:
        return False
    good = sum(1 for ln in sample if _FIELD_LINE.fullmatch(ln))
    return good / len(sample) >= 0.9


def _parse_fields(lines: list[str], result: ParseResult) -> tuple[list[dict], list[dict]]:
    fds: list[dict] = []
    socks: list[dict] = []
    seen: set[tuple] = set()
    proc: dict = {}
    cur: dict | None = None

    def flush() -> None:
        if cur is None or "pid" not in cur:
            return
        key = (cur["pid"], cur["fd_raw"]) if cur["fd_raw"][:1].isdigit() else (
            cur["pid"], cur["fd_raw"], cur.get("n"))
        if key in seen:
            return
        seen.add(key)
        fd_rec, sock_rec = _field_records(cur)
        if fd_rec is not None:
            fds.append(fd_rec)
        if sock_rec is not None:
            socks.append(sock_rec)

    for i, raw in enumerate(lines):
        line = raw.rstrip("\n")
        if not line:
            continue
        tag, val = line[0], line[1:]
        if tag == "p":
            flush()
            cur = None
            if _num(val) is None:
                result.warn(f"bad pid field {line[:40]!r}", line=i + 1)
                proc = {}
                continue
            proc = {"pid": _num(val)}
        elif tag == "c" and cur is None:
            proc["command"] = val
        elif tag == "f":
            flush()
            cur = {**proc, "fd_raw": val, "T": {}}
        elif cur is None:
            continue
        elif tag == "T":
            key, _, v = val.partition("=")
            cur["T"][key] = v
        elif tag in "tdinPDso":
            cur[tag] = val
    flush()
    return fds, socks


def _field_records(cur: dict) -> tuple[dict | None, dict | None]:
    typ = cur.get("t")
    node = cur.get("i") or (cur.get("P") if typ in _INET_TYPES else None)
    device = cur.get("d") if typ in ("IPv4", "IPv6", "inet", "pack") else cur.get("D")
    row = _Row(cur.get("command", ""), cur["pid"], cur["fd_raw"], typ, device,
               cur.get("s") or cur.get("o"), node, cur.get("n", ""))
    if typ in _INET_TYPES and not cur.get("P") and "ST" in cur["T"]:
        row.node = "TCP"
    fd_rec, sock = _records(row, cut=False)
    if sock is not None:
        tcp = cur["T"]
        if "ST" in tcp:
            sock["state"] = normalize_state(tcp["ST"])
        for key, col in (("QR", "recv_q"), ("QS", "send_q")):
            if _num(tcp.get(key)) is not None:
                sock[col] = _num(tcp[key])
        if typ in _INET_TYPES and not cur.get("P") and "ST" not in tcp:
            sock["proto"] = None
    return fd_rec, sock


# ---------------------------------------------------------------------------------------
# BusyBox output

_BUSYBOX_ROW = re.compile(r"(\d{1,10})\t([^\t]*)\t([^\t]+)")


def _looks_like_busybox(lines: list[str]) -> bool:
    """Most lines are ``PID<TAB>EXE<TAB>TARGET``, and some target is a /proc fd link."""
    rows = [m for ln in lines[:200] if (m := _BUSYBOX_ROW.fullmatch(ln.rstrip("\r")))]
    return len(rows) * 2 > len(lines[:200]) and any(
        m.group(3).startswith(("socket:[", "pipe:[", "anon_inode:", "/")) for m in rows)


def _parse_busybox(lines: list[str], result: ParseResult) -> list[dict]:
    from .procfd import _classify  # one reading of /proc/PID/fd link targets

    fds = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = _BUSYBOX_ROW.fullmatch(line.rstrip("\r"))
        if m is None:
            _skip(line, lineno, result)
            continue
        kind, inode = _classify(m.group(3))
        fds.append({"pid": _num(m.group(1)), "fd": None, "kind": kind,
                    "target": m.group(3), "inode": inode, "tool": "lsof"})
    return fds
