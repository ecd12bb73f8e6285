"""``ss`` (iproute2) socket listings and ``ss -s`` summaries.

Why: ``ss -tanpei`` is the one tool that ties a TCP connection to its owner
(``users:(("svc",pid=P,fd=F))``) *and* to its inode (``ino:N``) in one line, so it is the
strongest evidence joining a goroutine's fd to a socket to the database. Customers run it
in every variant, so the parser reads rows by shape, not by a fixed column layout:

- with or without the ``Netid`` column (``-t`` prints none), with the ``Process`` header
  glued to ``Peer Address:Port`` (newer iproute2) or without a header at all;
- all families (``-a``): ``tcp``/``udp`` and the ``u_str``/``u_dgr``/``u_seq`` UNIX
  sockets are kept, ``nl``, ``p_raw``, ``raw``, ``icmp6``, ``v_str``... are skipped quietly;
- extended fields on the row or on TAB-indented continuation lines (``-i``/``-m`` put
  ``skmem:`` and tcp_info there): ``users:(...)`` with several owners gives one row per
  owner, ``ino:N`` the inode, ``timer:(keepalive,10sec,0)`` the timer;
- service names instead of ports when ``-n`` was forgotten (``*:ssh``);
- ``ss -s``, old (``Total: N (kernel M)``, a ``*`` transport row) and new formats.

Example rows::

    Netid State Recv-Q Send-Q Local Address:Port  Peer Address:Port Process
    tcp   ESTAB 0      0      10.0.0.5:41234      10.0.0.9:5432     users:(("svc",pid=7,fd=12))
    \t timer:(keepalive,9.1sec,0) ino:93720 sk:9f <->
    u_str ESTAB 0      0      /run/app.sock 22658 * 22657           users:(("svc",pid=7,fd=3))

Tables: ``sockets`` (tool="ss"); ``socket_summary`` for ``ss -s``. Columns as in
:mod:`forensics.schema`; states are kernel names (``ESTAB`` -> ``ESTABLISHED``,
``UNCONN`` -> ``CLOSE``); ``proto`` is ``tcp``/``tcp6``/``udp``/``udp6``/``unix``;
``timer`` reads ``name (details)`` (``keepalive (9.1sec,0)``). For UNIX sockets
``local_ip`` holds the path (``*`` unnamed, ``@name`` abstract), ``local_port`` /
``remote_port`` the inode numbers ss prints in the port position (own and peer inode)
and ``remote_ip`` the peer path ss knows; unnamed (``*``) paths and inode 0 are null.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..schema import COMMON, columns, conform
from .base import ParseContext, ParseError, ParseResult, decode_text
from .netaddr import host_of as _host
from .netaddr import int_field as _num
from .netaddr import normalize_state
from .netaddr import port_of as _port
from .netaddr import safe_endpoint as _endpoint

KIND = "ss"
TABLES = ("sockets", "socket_summary")
DESCRIPTION = "ss socket listing (-tanpei, -a, wide) or ss -s summary"
TOOL = "ss"

#: ss's state column spellings (iproute2 sstate_name[]).
_SS_STATES = frozenset({
    "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "UNCONN",
    "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING", "UNKNOWN", "NEW-SYN-RECV", "BOUND",
    "CLOSED",
})
_INET_NETIDS = frozenset({"tcp", "udp", "mptcp"})
_UNIX_NETIDS = frozenset({"u_str", "u_dgr", "u_seq", "unix"})
#: Families ss lists that carry no TCP/UDP/UNIX connection: skipped without a warning.
_OTHER_NETIDS = frozenset({
    "nl", "p_raw", "p_dgr", "raw", "icmp", "icmp6", "v_str", "v_dgr", "sctp", "dccp",
    "tipc", "xdp", "ping", "udplite", "u_seqpacket",
})
_ALL_NETIDS = _INET_NETIDS | _UNIX_NETIDS | _OTHER_NETIDS

# users:(("name",pid=1,fd=3),("other",pid=2,fd=4)); iproute2 < 3.x printed ("name",1,3).
_USER = re.compile(r'\("([^"\n]{0,256})",(?:pid=)?(\d{1,10}),(?:fd=)?(\d{1,10})\)')
_DIGITS = re.compile(r"[0-9]+")
_TIMER = re.compile(r"timer:\(([a-z_]+),([^()]{0,64})\)")
#: tcp_info counters of ``ss -i`` (iproute2 4.x+; ``bytes_sent`` from 5.x).
_TRAFFIC = tuple(re.compile(rf"(?:^|\s){key}:(\d{{1,19}})(?=\s|$)") for key in (
    "lastsnd", "lastrcv", "bytes_sent", "bytes_received"))
_HEADER = re.compile(r"^\s*(?:Netid\s+)?State\s+Recv-Q\s+Send-Q\s+Local\s+Address")

# ss -s
_TOTAL = re.compile(r"^Total:\s+(\d+)(?:\s+\(kernel\s+(\d+)\))?", re.M)
_TCP_LINE = re.compile(r"^TCP:\s+(\d+)\s+\(([^)]{0,300})\)(?:,\s*ports\s+(\d+))?", re.M)
_TCP_COUNTERS: dict[str, str] = {
    "estab": "ESTABLISHED",
    "closed": "CLOSE",
    "orphaned": "orphaned",
    "synrecv": "SYN_RECV",
    "timewait": "TIME_WAIT",
}
_TRANSPORT_ROW = re.compile(r"^(\*|RAW|UDP|TCP|INET|FRAG)\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)\s*$",
                            re.M)
_SNIFF_ROW = re.compile(
    r"^(?:(?:tcp|udp|u_str|u_dgr|u_seq|nl|p_raw|raw|icmp6|v_str|mptcp|sctp)\s+)?"
    r"(?:ESTAB|LISTEN|UNCONN|TIME-WAIT|CLOSE-WAIT|SYN-SENT|SYN-RECV|FIN-WAIT-[12]|LAST-ACK"
    r"|CLOSING)\s+\d+\s+\d+\s+\S",
    re.M,
)
#: A TCP/UDP row in one match: [netid] state recv-q send-q host:port host:port [tail].
_FAST_ROW = re.compile(
    r"[ \t]*(?:(tcp|udp|mptcp)[ \t]+)?(ESTAB|LISTEN|UNCONN|TIME-WAIT|CLOSE-WAIT|SYN-SENT"
    r"|SYN-RECV|FIN-WAIT-1|FIN-WAIT-2|LAST-ACK|CLOSING|UNKNOWN|NEW-SYN-RECV)[ \t]+"
    r"(\d{1,12})[ \t]+(\d{1,12})[ \t]+(\S*):([^\s:]+)[ \t]+(\S*):([^\s:]+)(?:[ \t]+(.*))?$"
)
_MAX_LINE = 1 << 16
#: The sockets table's own columns, in contract order (rows are built as lists).
_COLUMNS = tuple(name for name, _ in columns("sockets") if name not in {n for n, _ in COMMON})


def sniff(head: bytes, name: str) -> float:
    text = decode_text(head[:65536])
    if _TOTAL.search(text) and _TCP_LINE.search(text):
        return 0.95
    if re.search(r"^\s*(?:Netid\s+)?State\s+Recv-Q\s+Send-Q\s+Local Address:Port\s+Peer",
                 text, re.M):
        return 0.95
    rows = len(_SNIFF_ROW.findall(text))
    if rows == 0:
        return 0.0
    score = 0.6 + min(rows, 20) * 0.015
    if "users:((" in text or "ino:" in text:
        score += 0.05
    return min(score, 0.92)


def parse(data: bytes, ctx: ParseContext) -> ParseResult:
    result = ParseResult()
    text = decode_text(data)
    summary = _parse_summary(text)
    if summary:
        result.tables["socket_summary"] = _own(pd.DataFrame(summary), "socket_summary")
        result.meta["format"] = "ss-s"
    rows, counts = _parse_listing(text, result)
    if rows:
        df = pd.DataFrame.from_records(rows, columns=list(_COLUMNS))
        result.tables["sockets"] = _own(df, "sockets")
        result.meta["format"] = "ss" if not summary else "ss+ss-s"
    result.meta["skipped_families"] = counts
    if not rows and not summary:
        if counts:
            raise ParseError("ss output without TCP, UDP or UNIX sockets (only "
                             + ", ".join(sorted(counts)) + ")")
        raise ParseError("no ss socket rows or ss -s summary found")
    return result


# --- listing ------------------------------------------------------------------------------


def _parse_listing(text: str, result: ParseResult) -> tuple[list[tuple], dict[str, int]]:
    """Rows of the ``sockets`` table and how many rows of other families were skipped.

    A row starts at a line whose first token is a netid or a state; indented lines that
    follow it (``-i``/``-m`` output) are its continuation. Most rows are TCP/UDP rows that
    :data:`_FAST_ROW` reads in one regex match; the rest go through token-wise reading.
    """
    rows: list[tuple] = []
    skipped: dict[str, int] = {}
    pending: _Pending | None = None
    for lineno, line in enumerate(text.split("\n"), 1):
        if line[:1] == "\t":  # iproute2 indents continuation lines with a TAB
            if pending is not None and _has_extra_keys(line):
                pending.extra.append(line)
            continue
        fast = _FAST_ROW.match(line) if len(line) <= _MAX_LINE else None
        if fast is None:
            if not line or line.isspace() or _HEADER.match(line):
                continue
            if len(line) > _MAX_LINE:
                result.warn("line too long; skipped", line=lineno)
                continue
            first = line.split(None, 1)[0]
            if first not in _ALL_NETIDS and first not in _SS_STATES:
                if pending is not None and line[0] == " " and _has_extra_keys(line):
                    pending.extra.append(line)
                continue
        if pending is not None:
            _emit(pending, rows, skipped, result)
        pending = _Pending(lineno, line, fast, [])
    if pending is not None:
        _emit(pending, rows, skipped, result)
    return rows, skipped


def _has_extra_keys(line: str) -> bool:
    """Whether a continuation line matters: owners, inode, timer, and the tcp_info line of
    ``-i`` for its traffic counters (skmem lines are dropped)."""
    return ("ino:" in line or "users:" in line or "timer:" in line or "v6only:" in line
            or "lastsnd:" in line or "bytes_" in line)


@dataclass
class _Pending:
    """A row being read: its line, the fast-path match if any, continuation lines."""

    lineno: int
    line: str
    fast: re.Match[str] | None
    extra: list[str]


def _emit(p: _Pending, rows: list[tuple], skipped: dict[str, int],
          result: ParseResult) -> None:
    if p.fast is not None:
        parsed = _fast_fields(p.fast)
    else:
        parsed = _token_fields(p, skipped, result)
    if parsed is None:
        return
    proto, state_tok, recv_q, send_q, local_ip, local_port, remote_ip, remote_port, tail = parsed
    if p.extra:
        tail = " ".join([tail, *p.extra])
    if proto == "tcp" and "v6only:" in tail:
        proto = "tcp6"  # "*:port" with v6only:0 is a dual-stack IPv6 socket
    inode, timer, owners = _extended(tail)
    traffic = _traffic(tail)
    if proto == "unix" and inode is None:
        inode = local_port
    state = normalize_state(state_tok)
    base = (proto, state, local_ip, local_port, remote_ip, remote_port, recv_q, send_q, timer,
            *traffic)
    if not owners:
        rows.append(_row(None, None, inode, base, None))
        return
    for name, pid, fd in owners:
        rows.append(_row(pid, fd, inode, base, name))


def _fast_fields(m: re.Match[str]) -> tuple[Any, ...]:
    netid, state_tok, rq, sq, lhost, lport, rhost, rport, tail = m.groups()
    v6 = lhost.startswith("[") or ":" in lhost
    proto = ("udp" if netid == "udp" or (netid is None and state_tok == "UNCONN") else "tcp")
    return (proto + ("6" if v6 else ""), state_tok, _num(rq), _num(sq), _host(lhost),
            _port(lport), _host(rhost), _port(rport), tail or "")


def _token_fields(p: _Pending, skipped: dict[str, int],
                  result: ParseResult) -> tuple[Any, ...] | None:
    tokens = p.line.split()
    if tokens[0] in _SS_STATES:  # no Netid column (ss -t, -u, -x)
        netid = None
        state_tok = tokens[0]
        rest = tokens[1:]
    else:
        netid = tokens[0]
        if netid in _OTHER_NETIDS:
            skipped[netid] = skipped.get(netid, 0) + 1
            return None
        if len(tokens) < 2 or tokens[1] not in _SS_STATES:
            result.warn(f"ss row without a state after {netid!r}", line=p.lineno)
            return None
        state_tok = tokens[1]
        rest = tokens[2:]
    if len(rest) < 3 or _num(rest[0]) is None or _num(rest[1]) is None:
        result.warn("ss row cut short (no queues or addresses)", line=p.lineno)
        return None
    addr = rest[2:]
    if netid is None:
        netid = _guess_netid(state_tok, addr)
    if netid in _UNIX_NETIDS:
        parsed = _unix_fields(addr)
    else:
        parsed = _inet_fields(netid, addr)
    if parsed is None:
        result.warn("ss row with unreadable addresses", line=p.lineno)
        return None
    proto, lip, lport, rip, rport, tail = parsed
    return proto, state_tok, _num(rest[0]), _num(rest[1]), lip, lport, rip, rport, " ".join(tail)



def _row(pid: int | None, fd: int | None, inode: int | None, base: tuple,
         process: str | None) -> tuple:
    proto, state, lip, lport, rip, rport, rq, sq, timer, *traffic = base
    return (pid, fd, inode, proto, state, lip, lport, rip, rport, rq, sq, timer, TOOL, process,
            *traffic)


def _guess_netid(state_tok: str, addr: list[str]) -> str:
    """No Netid column: a UNIX path or UNCONN tells what ``-x`` / ``-u`` listed."""
    if len(addr) >= 4 and _num(addr[1]) is not None and _num(addr[3]) is not None:
        return "u_str"
    return "udp" if state_tok == "UNCONN" else "tcp"


def _inet_fields(netid: str, addr: list[str]) -> tuple[Any, ...] | None:
    if len(addr) < 2:
        return None
    local, peer = addr[0], addr[1]
    lip, lport = _endpoint(local)
    rip, rport = _endpoint(peer)
    v6 = local.startswith("[") or local.count(":") > 1
    proto = ("udp" if netid == "udp" else "tcp") + ("6" if v6 else "")
    return proto, lip, lport, rip, rport, addr[2:]


def _unix_fields(addr: list[str]) -> tuple[Any, ...] | None:
    """``path inode peer peer_inode``: ss prints the inode where an inet row has a port."""
    ino = _num(addr[1]) if len(addr) >= 4 else None
    if ino is None:
        return None
    return ("unix", _unix_path(addr[0]), ino or None, _unix_path(addr[2]),
            _num(addr[3]) or None, addr[4:])


def _unix_path(s: str) -> str | None:
    return None if s == "*" else s


def _extended(text: str) -> tuple[int | None, str | None, list[tuple[str, int, int]]]:
    """inode, timer and owners from the extended part of a row (+ continuation lines)."""
    inode = None
    timer = None
    owners: list[tuple[str, int, int]] = []
    i = text.find("ino:")
    while i >= 0 and inode is None:
        if i == 0 or text[i - 1] in " \t":
            m = _DIGITS.match(text, i + 4)
            if m:
                inode = _num(m.group()) or None
                break
        i = text.find("ino:", i + 4)
    i = text.find("timer:(")
    if i >= 0:
        m = _TIMER.match(text, i)
        if m:
            timer = f"{m.group(1)} ({m.group(2)})"
    i = text.find("users:(")
    if i >= 0:
        owners = [(name, _num(pid), _num(fd)) for name, pid, fd in _USER.findall(text, i)]
    return inode, timer, owners


def _traffic(text: str) -> tuple[int | None, int | None, int | None, int | None]:
    """From ``-i``'s tcp_info: ms since the last send and receive, bytes sent and received.
    A connection checked out of a pool and forgotten is silent while it stays open."""
    if "lastsnd:" not in text and "bytes_" not in text:
        return None, None, None, None
    return tuple(_num(m.group(1)) if (m := rx.search(text)) else None
                 for rx in _TRAFFIC)  # type: ignore[return-value]


# --- ss -s --------------------------------------------------------------------------------


def _parse_summary(text: str) -> list[dict[str, Any]]:
    """``ss -s`` -> socket_summary rows (tool, proto, state, count).

    ``Total: N (kernel M)`` -> (all, total) and (all, kernel); the ``TCP:`` line -> (tcp,
    total) plus its estab/closed/orphaned/synrecv/timewait counters (states as kernel
    names) and (tcp, ports); the Transport table -> (proto, transport_total /
    transport_ip / transport_ipv6) with ``*`` read as proto ``all``.
    """
    total = _TOTAL.search(text)
    tcp = _TCP_LINE.search(text)
    if tcp is None and (total is None or _TRANSPORT_ROW.search(text) is None):
        return []  # a lone "Total: N" line is not an ss -s summary
    out: list[dict[str, Any]] = []

    def add(proto: str, state: str, count: str | None) -> None:
        value = _num(count) if count is not None else None
        if value is not None:
            out.append({"tool": TOOL, "proto": proto, "state": state, "count": value})

    if total is not None:
        add("all", "total", total.group(1))
        add("all", "kernel", total.group(2))
    if tcp is not None:
        add("tcp", "total", tcp.group(1))
        for part in tcp.group(2).split(","):
            words = part.split()
            if len(words) == 2 and words[0] in _TCP_COUNTERS:
                add("tcp", _TCP_COUNTERS[words[0]], words[1].split("/")[0])
        add("tcp", "ports", tcp.group(3))
    for m in _TRANSPORT_ROW.finditer(text):
        proto = "all" if m.group(1) == "*" else m.group(1).lower()
        add(proto, "transport_total", m.group(2))
        add(proto, "transport_ip", m.group(3))
        add(proto, "transport_ipv6", m.group(4))
    return out


def _own(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """``df`` cast to ``table``'s dtypes, without the context columns the pipeline adds."""
    return conform(df, table).drop(columns=[name for name, _ in COMMON])
