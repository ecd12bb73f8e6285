"""``netstat`` connection tables from Linux (net-tools), BSD/macOS and Windows.

Why: netstat is what customers run when ss is missing (old distributions, busybox
containers, macOS laptops, Windows hosts), and ``netstat -anp | grep 5432`` is the most
common paste in a leak report. Its layouts differ per OS and per flag, and pastes lose
headers, so rows are read by *shape* (a protocol token, optional queue counters, two
endpoints, then state / user / inode / program / timer) and a header, when present, only
settles ambiguities. Accepted:

- Linux ``-tanp``, ``-anp``, ``-aeep`` (User, Inode), ``-W -neopa`` (Timer: ``off
  (0.00/0/0)``, ``keepalive (6.63/0/0)``, ``timewait (10.04/0/0)``), ``PID/Program name``
  with spaces (``328/sshd: /usr/sbin``) or ``-``, resolved and truncated host names
  (``ec2-52-40-144-163.:8827``), service names, headerless pastes and ``grep`` extracts,
  and the ``Active UNIX domain sockets`` section (proto ``unix``)::

      tcp   0   0 10.0.0.121:35100  10.0.0.119:3306  TIME_WAIT  0  0  -  timewait (10.04/0/0)
      unix  2   [ ACC ]  STREAM  LISTENING  22040  1220/dockerd-curren  /var/run/docker.sock

- BSD / macOS: ``a.b.c.d.port`` endpoints, ``tcp4``/``tcp6``/``tcp46``, ``-A`` (a leading
  PCB / Socket + Flowhash column), ``-T`` (Rexmit/OOORcv/0-win instead of queues, no
  state), ``-x`` and ``-b`` (extra counters after the endpoints);
- Windows ``-an``, ``-ano``, ``-aonb`` (the owning ``[exe]`` on the next line), localized
  headers (rows are recognised by shape, never by header words).

Non-connection outputs (``-i`` interface table, ``-r`` routing table, ``-s`` statistics,
``-g`` group memberships) raise :class:`ParseError` naming what they are; so does ``ss``
output handed to this parser.

Table: ``sockets`` with tool="netstat". States are kernel names; a UDP row without a state
is ``CLOSE`` when unconnected. ``proto`` is ``tcp``/``tcp6``/``udp``/``udp6``/``unix``
(``tcp4`` -> ``tcp``, ``tcp46`` -> ``tcp6``); raw/icmp/sctp rows are skipped. Inode 0
(TIME_WAIT rows) is null. For UNIX rows ``local_ip`` holds the path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..schema import COMMON, columns, conform
from .base import NotUsed, ParseContext, ParseError, ParseResult, decode_text
from .netaddr import host_of as _host
from .netaddr import int_field as _num
from .netaddr import normalize_state
from .netaddr import port_of as _port
from .netaddr import safe_endpoint as _endpoint

KIND = "netstat"
TABLES = ("sockets",)
_TCP_INFO = frozenset({"last_send_ms", "last_recv_ms", "bytes_sent", "bytes_received"})
DESCRIPTION = "netstat connection table (Linux, BSD/macOS, Windows; unix section)"
TOOL = "netstat"

_PROTO = re.compile(r"(?i)(tcp|udp)(4|6|46)?")
_SKIP_PROTO = re.compile(r"(?i)(raw|icm|icmp|sctp|udpl|divert|ipx|ax25|netrom|x25|ddp)\w*")
_STATE_WORD = re.compile(r"[A-Z][A-Z0-9_\-]{2,15}")
#: BSD -A's PCB address and macOS's Socket / Flowhash columns (Flowhash drops leading 0s).
_HEX_WORD = re.compile(r"[0-9a-fA-F]{1,16}")
_PIDPROG = re.compile(r"(\d+)/(.*)")
_TIMER = re.compile(r"(off|on|keepalive|timewait|probe|unkn)\s*\(([^()]{0,64})\)\s*$")
_WIN_EXE = re.compile(r"^\s*\[(.{1,260})\]\s*$")
_UNIX_ROW = re.compile(
    r"^unix\s+\d+\s+\[[^\]]{0,40}\]\s+(\S+)\s+(?:([A-Z_]+)\s+)?(\d+)(?:\s+(.*))?$"
)
_UNIX_STATES: dict[str, str] = {
    "LISTENING": "LISTEN",
    "CONNECTED": "ESTABLISHED",
    "CONNECTING": "SYN_SENT",
    "DISCONNECTING": "CLOSING",
    "FREE": "CLOSE",
}
#: Width of net-tools' PID/Program field: "pid/name" is cut to 19 characters.
_PROGNAME_WIDTH = 19

_SNIFF_ROW = re.compile(
    r"^\s*(?:[0-9a-f]{1,16}\s+){0,2}(?:tcp|udp)(?:4|6|46)?\s+\d+\s+\d+\s+\S+\s+\S+"
    r"|^\s*(?:TCP|UDP)\s+(?:\[[0-9a-fA-F:.%]+\]|[\w.\-*]+):[\w*]+\s+\S+",
    re.M,
)
_SNIFF_TITLE = re.compile(
    r"^(?:Active Internet connections|Active Connections|Active UNIX domain sockets)", re.M
)
_SNIFF_HEADER = re.compile(r"Proto\s+Recv-Q\s+Send-Q\s+Local Address\s+Foreign Address")
_SS_HINT = re.compile(r"^\s*(?:Netid\s+)?State\s+Recv-Q\s+Send-Q\s+Local Address:Port", re.M)

# What a non-connection netstat output is, for the rejection message.
_NOT_CONNECTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Kernel Interface table|^(?:Iface|Name)\s+(?:MTU|Mtu)\s", re.M),
     "netstat -i interface table: no connections"),
    (re.compile(r"^Kernel IP(?:v6)? routing table|^Routing tables|^Destination\s+Gateway\s",
                re.M),
     "netstat -r routing table: no connections"),
    (re.compile(r"^(?:Ip|Tcp|Udp|Icmp|IpExt|TcpExt):\s*$|^(?:tcp|ip|udp):\s*$", re.M),
     "netstat -s protocol statistics: no connections"),
    (re.compile(r"Group Memberships|^Interface\s+RefCnt\s+Group", re.M),
     "netstat -g multicast group memberships: no connections"),
)
#: The common Linux row in one match: proto, queues, host:port x2, [state], [user inode],
#: then program and timer (split in Python: a lazy group before ``$`` could backtrack).
_LINUX_ROW = re.compile(
    r"[ \t]*(tcp6?|udp6?)[ \t]+(\d{1,12})[ \t]+(\d{1,12})[ \t]+(\S*):([^\s:.]+)"
    r"[ \t]+(\S*):([^\s:.]+)(?:[ \t]+([A-Z][A-Z0-9_]{2,15}))?"
    r"(?:[ \t]+(?!\d+/)(\S+)[ \t]+(\d{1,20})(?=[ \t]|$))?[ \t]*(.*)$"
)
_MAX_LINE = 1 << 14
#: The sockets table's own columns, in contract order (rows are built as lists).
#: The sockets columns netstat fills (it has no tcp_info: those stay null).
_COLUMNS = tuple(name for name, _ in columns("sockets")
                 if name not in {n for n, _ in COMMON} and name not in _TCP_INFO)


@dataclass
class _Header:
    """What the current section's header line says about its columns (None: no header)."""

    queues: bool = True
    user_inode: bool = False
    program: bool = False
    win_pid: bool = False
    extra_after: bool = False  # BSD/macOS: counters after the endpoints, no owner columns


def sniff(head: bytes, name: str) -> float:
    text = decode_text(head[:65536])
    if _SS_HINT.search(text):
        return 0.0
    score = 0.0
    if _SNIFF_TITLE.search(text) or _SNIFF_HEADER.search(text):
        score = 0.9
    rows = len(_SNIFF_ROW.findall(text))
    if rows:
        score = max(score, 0.6 + min(rows, 20) * 0.0125)
    if score == 0.0 and any(p.search(text) for p, _ in _NOT_CONNECTIONS[:2]):
        score = 0.5  # claim it so the report says what it is instead of "unknown"
    if score and "netstat" in name.lower():
        score = min(score + 0.05, 0.95)
    return score


def parse(data: bytes, ctx: ParseContext) -> ParseResult:
    result = ParseResult()
    text = decode_text(data)
    rows, fmt, skipped = _parse_rows(text, result)
    result.meta["format"] = fmt
    result.meta["skipped"] = skipped
    if not rows:
        message, not_connections = _why_no_rows(text, skipped)
        raise (NotUsed if not_connections else ParseError)(message)
    df = pd.DataFrame.from_records(rows, columns=list(_COLUMNS))
    result.tables["sockets"] = _own(df, "sockets")
    return result


def _why_no_rows(text: str, skipped: dict[str, int]) -> tuple[str, bool]:
    """Why no row came out, and whether the text is a netstat table that simply holds no
    connections (interfaces, routes, statistics) rather than something broken."""
    if _SS_HINT.search(text):
        return "ss output, not netstat: parse it as ss", False
    for pattern, message in _NOT_CONNECTIONS:
        if pattern.search(text):
            return message, True
    if skipped:
        return ("netstat output without TCP/UDP/UNIX rows (only "
                + ", ".join(sorted(skipped)) + ")"), False
    return "no netstat connection rows found", False


# --- the line loop ------------------------------------------------------------------------


def _parse_rows(text: str, result: ParseResult) -> tuple[list[list[Any]], str, dict[str, int]]:
    rows: list[list[Any]] = []
    skipped: dict[str, int] = {}
    flavours: set[str] = set()
    header: _Header | None = None
    unix_header: _Header | None = None
    section = "inet"
    last_windows: list[Any] | None = None
    for lineno, line in enumerate(text.split("\n"), 1):
        if section == "inet" and len(line) <= _MAX_LINE:
            fast = _LINUX_ROW.match(line)
            if fast is not None:
                row = _fast_row(fast)
                if row is not None:
                    rows.append(row)
                    flavours.add("linux")
                    last_windows = None
                    continue
        stripped = line.strip()
        if not stripped:
            continue
        if len(line) > _MAX_LINE:
            result.warn("line too long; skipped", line=lineno)
            continue
        if stripped.startswith("Active ") or stripped.startswith("Registered "):
            section = _section_of(stripped)
            header = None
            continue
        if "Local Address" in stripped and ("Proto" in stripped or "Tcpcb" in stripped
                                            or "Socket" in stripped):
            header = _read_header(stripped)
            if section == "unix":  # an Internet header after UNIX rows, without a title
                section = "inet"
            continue
        if stripped.startswith("Proto") and "RefCnt" in stripped:
            section = "unix"
            unix_header = _Header(program="PID/Program" in stripped)
            continue
        if section == "skip":
            continue
        if stripped.startswith("unix "):
            row = _unix_row(stripped, unix_header)
            if row is None:
                result.warn("unreadable unix socket row", line=lineno)
            else:
                rows.append(row)
                flavours.add("linux-unix")
            continue
        if last_windows is not None:
            exe = _WIN_EXE.match(line)
            if exe:
                last_windows[13] = exe.group(1)
                continue
        if section != "inet":
            continue
        row, flavour = _inet_row(line, header, skipped)
        if row is None:
            if flavour == "bad":
                result.warn("netstat row cut short or unreadable", line=lineno)
            continue
        rows.append(row)
        flavours.add(flavour)
        last_windows = row if flavour == "windows" else None
    return rows, "+".join(sorted(flavours)), skipped


def _section_of(title: str) -> str:
    """Which rows follow an ``Active ...`` title: inet, unix or something to skip."""
    low = title.lower()
    if "multipath" in low or "bluetooth" in low or "kernel" in low or "registered" in low:
        return "skip"
    if "unix" in low:
        return "unix"
    return "inet"


def _read_header(line: str) -> _Header:
    return _Header(
        queues="Recv-Q" in line,
        user_inode="User" in line and "Inode" in line,
        program="PID/Program" in line,
        win_pid=line.rstrip().endswith("PID"),
        extra_after=any(w in line for w in ("rxbytes", "R-MBUF", "Log ID", "rexmt")),
    )


# --- Internet rows --------------------------------------------------------------------------


def _inet_row(line: str, header: _Header | None,
              skipped: dict[str, int]) -> tuple[list[Any] | None, str]:
    """One sockets row (or None) and the flavour: linux / bsd / windows / bad / other."""
    parts = line.split(None, 8)
    if not parts:
        return None, "other"
    i = _proto_index(parts)
    if i < 0:
        for tok in parts[:3]:
            if _SKIP_PROTO.fullmatch(tok):
                skipped[tok.lower()] = skipped.get(tok.lower(), 0) + 1
                return None, "other"
            if _PROTO.fullmatch(tok):
                return None, "bad"  # a row we cannot place: say so rather than drop it
        return None, "other"
    raw_proto = parts[i]
    nums = 0
    while nums < 3 and i + 1 + nums < len(parts) and _num(parts[i + 1 + nums]) is not None:
        nums += 1
    k = i + 1 + nums  # index of the local endpoint
    head = line.split(None, k + 2)
    if len(head) < k + 2:
        return None, "bad"
    local, foreign = head[k], head[k + 1]
    rest = head[k + 2] if len(head) > k + 2 else ""
    flavour = _flavour(raw_proto, i, nums, local, foreign)
    if not _endpoints_fit(flavour, local, foreign):
        return None, "bad"
    lip, lport = _endpoint(local)
    rip, rport = _endpoint(foreign)
    recv_q = send_q = None
    if nums == 2 and (header is None or header.queues):
        recv_q, send_q = _num(parts[i + 1]), _num(parts[i + 2])
    state, user_inode, owner, timer = _tail(rest, header, flavour)
    proto = _proto_name(raw_proto, local)
    if state is None and proto.startswith("udp") and not rport:
        state = "CLOSE"
    inode = user_inode or None
    pid, process = owner
    return [pid, None, inode, proto, state, lip, lport, rip, rport, recv_q, send_q, timer,
            TOOL, process], flavour


def _fast_row(m: re.Match[str]) -> list[Any] | None:
    """A :data:`_LINUX_ROW` match as a sockets row; None sends the line the general way."""
    proto, rq, sq, lhost, lport, rhost, rport, state_word, _user, inode_s, rest = m.groups()
    state = None
    if state_word is not None:
        state = normalize_state(state_word)
        if state == "UNKNOWN" and state_word != "UNKNOWN":
            return None
    timer = None
    rest = rest.rstrip().rstrip("\\").rstrip()
    if rest.endswith(")"):
        t = _TIMER.search(rest)
        if t:
            timer = f"{t.group(1)} ({t.group(2)})"
            rest = rest[: t.start()].rstrip()
    pid = process = None
    if rest and rest != "-":
        pm = _PIDPROG.fullmatch(rest)
        if pm is None:
            return None
        pid, process = _num(pm.group(1)), pm.group(2).strip() or None
    remote_port = _port(rport)
    if state is None and proto.startswith("udp") and not remote_port:
        state = "CLOSE"
    inode = _num(inode_s) if inode_s else None
    return [pid, None, inode or None, proto, state, _host(lhost), _port(lport), _host(rhost),
            remote_port, _num(rq), _num(sq), timer, TOOL, process]



def _proto_index(parts: list[str]) -> int:
    """Where the protocol token is: first, or after BSD -A's PCB / macOS Socket+Flowhash."""
    for i in range(min(3, len(parts))):
        if _PROTO.fullmatch(parts[i]):
            return i
        if not _HEX_WORD.fullmatch(parts[i]):
            return -1
    return -1


def _flavour(raw_proto: str, i: int, nums: int, local: str, foreign: str) -> str:
    if raw_proto.isupper() and nums == 0:
        return "windows"
    if i > 0 or raw_proto.lower() in ("tcp4", "udp4", "tcp46", "udp46"):
        return "bsd"
    return "bsd" if _bsd_style(local) else "linux"


def _bsd_style(endpoint: str) -> bool:
    """BSD puts the port after the last dot (``::1.631``, ``*.*``); Linux after a colon."""
    return endpoint.rfind(".") > endpoint.rfind(":")


def _endpoints_fit(flavour: str, local: str, foreign: str) -> bool:
    """Both endpoints complete: a pasted row cut at ``122.22`` must not become a socket."""
    if flavour == "bsd":
        return all("." in e or e == "*" for e in (local, foreign))
    return all(":" in e and not e.endswith(":") for e in (local, foreign))


def _proto_name(raw: str, local: str) -> str:
    m = _PROTO.fullmatch(raw)
    assert m is not None
    base, fam = m.group(1).lower(), m.group(2) or ""
    if fam == "4":
        fam = ""
    elif fam == "46":
        fam = "6"
    elif not fam and (local.startswith("[") or local.count(":") > 1):
        fam = "6"  # Windows prints TCP/UDP for both families
    return base + fam


def _tail(rest: str, header: _Header | None,
          flavour: str) -> tuple[str | None, int | None, tuple[int | None, str | None], str | None]:
    """(state, inode, (pid, program), timer) from what follows the two endpoints."""
    rest = rest.strip().rstrip("\\").rstrip()
    timer = None
    if "(" in rest:
        m = _TIMER.search(rest)
        if m:
            timer = f"{m.group(1)} ({m.group(2)})"
            rest = rest[: m.start()].rstrip()
    state = None
    words = rest.split(None, 1)
    if words and _STATE_WORD.fullmatch(words[0]):
        norm = normalize_state(words[0])
        if norm != "UNKNOWN" or words[0] == "UNKNOWN":
            state = norm
            rest = words[1] if len(words) > 1 else ""
    if flavour == "bsd" or (header is not None and header.extra_after):
        return state, None, (None, None), timer
    inode = None
    words = rest.split(None, 2)
    if _has_user_inode(words, header):
        inode = _num(words[1])
        rest = words[2] if len(words) > 2 else ""
    return state, inode, _owner(rest.strip(), header, flavour), timer


def _has_user_inode(words: list[str], header: _Header | None) -> bool:
    if len(words) < 2 or _num(words[1]) is None:
        return False
    if header is not None:
        return header.user_inode
    # Headerless -e: "root 63129 6492/sshd" (a user name, then digits), never "9420/Ruby x".
    return words[0] != "-" and _PIDPROG.fullmatch(words[0]) is None


def _owner(rest: str, header: _Header | None, flavour: str) -> tuple[int | None, str | None]:
    if not rest or rest == "-":
        return None, None
    m = _PIDPROG.fullmatch(rest)
    if m:
        name = m.group(2).strip()
        return _num(m.group(1)), name or None
    if _num(rest) is not None and (flavour == "windows" or (header is not None
                                                            and header.win_pid)):
        return _num(rest), None
    return None, None


# --- UNIX-domain rows (Linux) ---------------------------------------------------------------


def _unix_row(stripped: str, header: _Header | None) -> list[Any] | None:
    m = _UNIX_ROW.match(stripped)
    if m is None:
        return None
    _type, state_word, inode_s, rest = m.groups()
    state = _UNIX_STATES.get(state_word or "", "CLOSE" if not state_word else "UNKNOWN")
    pid = process = path = None
    rest = rest or ""
    has_prog = header.program if header is not None else bool(
        _PIDPROG.match(rest) or rest.startswith("- ") or rest == "-")
    if has_prog:
        field, path = rest[:_PROGNAME_WIDTH].strip(), rest[_PROGNAME_WIDTH:].strip()
        pm = _PIDPROG.fullmatch(field)
        if pm:
            pid, process = _num(pm.group(1)), pm.group(2).strip() or None
        elif field != "-":
            path = rest.strip()  # compressed spacing: no fixed-width program field
    else:
        path = rest.strip()
    return [pid, None, _num(inode_s) or None, "unix", state, path or None, None, None, None,
            None, None, None, TOOL, process]


def _own(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """``df`` cast to ``table``'s dtypes, without the context columns the pipeline adds."""
    return conform(df, table).drop(columns=[name for name, _ in COMMON])
