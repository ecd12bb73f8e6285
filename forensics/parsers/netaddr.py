"""Socket address and TCP state helpers shared by every connection-table parser.

Why one module: lsof, ss, netstat and /proc/net/tcp spell the same facts differently
(``ESTAB`` / ``ESTABLISHED`` / ``01``; ``[::1]:5432`` / ``::1.5432`` / ``0100007F:1538``).
The correlation step joins their rows on (ip, port, state), so every parser must reduce
them to one spelling, and that spelling must not drift between parsers. Kernel names
(include/net/tcp_states.h) are the canonical states because /proc/net/tcp is the ground
truth every tool reads from.

Stable API (other parsers import these): :func:`normalize_state`, :func:`split_endpoint`,
:func:`hex_endpoint`, :func:`hex_ip`, :func:`service_port`, :data:`KERNEL_STATES`.
All functions are total: bad input gives ``UNKNOWN`` / ``(None, None)``, never an
exception, because every argument comes from an untrusted paste.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

#: Canonical state names, as the Linux kernel calls them.
KERNEL_STATES: tuple[str, ...] = (
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "UNKNOWN",
)

#: /proc/net/tcp ``st`` codes (hex). 0x0C is TCP_NEW_SYN_RECV, a request socket that
#: tools report as SYN_RECV.
_HEX_STATES: dict[int, str] = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
    0x0C: "SYN_RECV",
}

# Spellings after upper-casing and folding "-" / " " to "_" (ss, netstat, BSD, macOS,
# Windows, lsof). UNCONN (ss), CLOSED (BSD/lsof), IDLE/BOUND (macOS lsof) all describe a
# socket in the kernel's CLOSE state: not connected.
_ALIASES: dict[str, str] = {
    "ESTAB": "ESTABLISHED",
    "SYN_RCVD": "SYN_RECV",
    "SYN_RECEIVED": "SYN_RECV",
    "NEW_SYN_RECV": "SYN_RECV",
    "FIN_WAIT_1": "FIN_WAIT1",
    "FIN_WAIT_2": "FIN_WAIT2",
    "FINWAIT1": "FIN_WAIT1",
    "FINWAIT2": "FIN_WAIT2",
    "TIMEWAIT": "TIME_WAIT",
    "TIME_WAIT2": "TIME_WAIT",
    "CLOSEWAIT": "CLOSE_WAIT",
    "LASTACK": "LAST_ACK",
    "CLOSED": "CLOSE",
    "UNCONN": "CLOSE",
    "IDLE": "CLOSE",
    "BOUND": "CLOSE",
    "LISTENING": "LISTEN",
    "LISTENER": "LISTEN",
    # AF_UNIX socket states as lsof 4.9x and -F TST= print them (ss says ESTAB/UNCONN).
    "CONNECTED": "ESTABLISHED",
    "UNCONNECTED": "CLOSE",
    "CONNECTING": "SYN_SENT",
    "DISCONNECTING": "CLOSING",
}

_HEX_CODE = re.compile(r"(?:0x)?[0-9A-Fa-f]{1,2}")


@lru_cache(maxsize=1024)
def normalize_state(s: str | None) -> str:
    """Any tool's spelling of a TCP state -> the kernel name, else ``UNKNOWN``.

    Accepts ``ESTAB``, ``CLOSE-WAIT``, ``FIN-WAIT-1``, ``(ESTABLISHED)``, hex ``01``/``0A``,
    BSD ``CLOSED``/``SYN_RCVD``, Windows ``LISTENING``; case-insensitive.
    """
    if not s:
        return "UNKNOWN"
    t = s.strip().strip("()").strip()
    if not t:
        return "UNKNOWN"
    if _HEX_CODE.fullmatch(t):
        code = _HEX_STATES.get(int(t.removeprefix("0x"), 16))
        if code:
            return code
    key = re.sub(r"[\s\-]+", "_", t.upper())
    if key in _HEX_STATES.values():
        return key
    return _ALIASES.get(key, "UNKNOWN")


#: Service names tools print when not run with -n/-P (from /etc/services, plus the
#: names database users meet). Small on purpose: the analysis must not depend on the
#: /etc/services of the machine that reads the bundle.
SERVICE_PORTS: dict[str, int] = {
    "ftp": 21,
    "ssh": 22,
    "telnet": 23,
    "smtp": 25,
    "domain": 53,
    "dns": 53,
    "bootps": 67,
    "bootpc": 68,
    "http": 80,
    "www": 80,
    "www-http": 80,
    "kerberos": 88,
    "pop3": 110,
    "sunrpc": 111,
    "ntp": 123,
    "imap": 143,
    "imap2": 143,
    "snmp": 161,
    "ldap": 389,
    "https": 443,
    "microsoft-ds": 445,
    "submission": 587,
    "ldaps": 636,
    "imaps": 993,
    "pop3s": 995,
    "ms-sql-s": 1433,
    "mssql": 1433,
    "ncube-lm": 1521,
    "oracle": 1521,
    "nfs": 2049,
    "etcd-client": 2379,
    "etcd-server": 2380,
    "mysql": 3306,
    "postgresql": 5432,
    "postgres": 5432,
    "amqp": 5672,
    "x11": 6000,
    "redis": 6379,
    "http-alt": 8080,
    "webcache": 8080,
    "memcache": 11211,
    "memcached": 11211,
    "cockroach": 26257,
    "mongodb": 27017,
    "mongod": 27017,
    "cassandra": 9042,
    "mdns": 5353,
}


def service_port(name: str | None) -> int | None:
    """A port given as digits or a known service name -> int; ``*`` or unknown -> None."""
    if not name:
        return None
    n = name.strip()
    if n.isascii() and n.isdigit():
        p = int(n)
        return p if p <= 65535 else None
    return SERVICE_PORTS.get(n.lower())


_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


@lru_cache(maxsize=65536)
def canonical_ip(host: str | None) -> str | None:
    """An address as the tools should compare it: IPv6 compressed and lower-case,
    IPv4-mapped IPv6 (``::ffff:1.2.3.4``) as plain IPv4, scope (``%eth0``) dropped,
    ``*`` / empty as None. Host names pass through unchanged."""
    if host is None:
        return None
    h = host.strip().strip("[]")
    if "%" in h:
        h = h.split("%", 1)[0]
    if h in ("", "*"):
        return None
    if ":" in h:
        try:
            addr = ipaddress.IPv6Address(h)
        except ValueError:
            return h
        mapped = addr.ipv4_mapped
        return str(mapped) if mapped is not None else addr.compressed
    return h


def _drop_scope(t: str) -> str:
    """Remove an IPv6 zone (``%eth0``, ``%eth0.100``) wherever the tool put it: up to the
    next ``:`` or ``]`` in colon forms, up to the last ``.`` (the port) in BSD forms."""
    i = t.find("%")
    rest = t[i + 1 :]
    ends = [j for j in (rest.find("]"), rest.find(":")) if j >= 0]
    if ends:
        return t[:i] + rest[min(ends) :]
    dot = rest.rfind(".")
    return t[:i] + (rest[dot:] if dot >= 0 else "")


def _port_token(tok: str) -> bool:
    return tok == "*" or (tok.isascii() and tok.isdigit()) or tok.lower() in SERVICE_PORTS


def _valid_v6(h: str) -> bool:
    try:
        ipaddress.IPv6Address(h)
    except ValueError:
        return False
    return True


def _split_bsd(s: str) -> tuple[str, str] | None:
    """``a.b.c.d.port`` / ``*.port`` / ``::1.port`` (BSD netstat) -> (host, port) or None."""
    head, sep, tail = s.rpartition(".")
    if not sep or not head or not _port_token(tail):
        return None
    if head == "*" or _IPV4.fullmatch(head):
        return head, tail
    if ":" in head:
        return (head, tail) if _valid_v6(head) else None
    # "host.domain.ssh": a name with a service-name or numeric suffix.
    if _IPV4.fullmatch(s):
        return None
    return head, tail


@lru_cache(maxsize=65536)
def split_endpoint(s: str | None) -> tuple[str | None, int | None]:
    """``host:port`` in any tool's spelling -> (ip, port).

    Handles ``1.2.3.4:5432``, ``[::1]:5432``, ``[fe80::1]%eth0:22``, ``fe80::1%eth0:22``,
    netstat's bracketless ``:::80`` / ``::1:5432``, ``*:*``, ``*:80``, BSD
    ``10.0.0.1.5432`` / ``*.*``, service names (``db:postgresql`` -> 5432), IPv4-mapped
    IPv6 (returned as IPv4). ip is None for ``*``; port is None for ``*`` or an unknown
    service name.
    """
    if not s or len(s) > 512:
        return None, None  # no address is that long: not worth a cache slot or a parse
    t = s.strip()
    if not t:
        return None, None
    if "%" in t:
        t = _drop_scope(t)
    host: str
    port: str
    if t.startswith("["):
        end = t.find("]")
        if end < 0:
            return canonical_ip(t), None
        host, rest = t[1:end], t[end + 1 :]
        port = rest[1:] if rest.startswith(":") or rest.startswith(".") else ""
    elif ":" in t and "." in t.rpartition(":")[2] and not _valid_v6(t):
        # BSD IPv6 "fe80::1.123": the port follows the last dot.
        bsd = _split_bsd(t)
        if bsd is None:
            return canonical_ip(t), None
        host, port = bsd
    elif ":" in t:
        host, _, port = t.rpartition(":")
        if t.count(":") > 1 and (not _port_token(port) or not _valid_v6(host)):
            if _valid_v6(t):
                # A bare IPv6 address with no port at all.
                return canonical_ip(t), None
        if not host and t.count(":") == 1:
            host = "*"
    else:
        bsd = _split_bsd(t)
        if bsd is None:
            return canonical_ip(t), None
        host, port = bsd
    return canonical_ip(host), service_port(port)


@lru_cache(maxsize=65536)
def _hex_ip(h: str) -> str | None:
    """Hex address as printed by /proc/net/{tcp,udp}{,6}: 32-bit words in host byte
    order (little-endian on x86/arm64, which is what captures come from)."""
    try:
        raw = bytes.fromhex(h)
    except ValueError:
        return None
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    if len(raw) == 16:
        swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        return canonical_ip(ipaddress.IPv6Address(swapped).compressed)
    return None


def hex_ip(h: str) -> str | None:
    """A /proc/net hex address (8 or 32 hex digits) -> canonical IP text, or None."""
    return _hex_ip(h.strip())


def hex_endpoint(s: str | None) -> tuple[str | None, int | None]:
    """``0100007F:1538`` -> ("127.0.0.1", 5432); IPv6 32-hex-digit form too. The port
    is printed big-endian (already ntohs'd) by the kernel."""
    if not s:
        return None, None
    h, sep, p = s.strip().partition(":")
    ip = _hex_ip(h)
    port: int | None = None
    if sep:
        try:
            port = int(p, 16)
        except ValueError:
            port = None
    return ip, port


# --- shielded helpers for line parsers (ss, netstat) ----------------------------------------


def safe_endpoint(s: str) -> tuple[str | None, int | None]:
    """:func:`split_endpoint` that never raises: one odd token must not fail a parse."""
    try:
        return split_endpoint(s)
    except ValueError:
        return None, None


@lru_cache(maxsize=65536)
def host_of(host: str) -> str | None:
    """The address part of a ``host:port`` endpoint as :func:`split_endpoint` spells it,
    cached per host (ephemeral ports make whole endpoints unique; hosts repeat)."""
    try:
        return split_endpoint(host + ":0")[0]
    except ValueError:  # one odd token must not fail the parse
        return None


def port_of(port: str) -> int | None:
    """A port column: ASCII digits up to 65535, or a known service name; else None."""
    if port.isascii() and port.isdigit():
        value = int(port) if len(port) <= 5 else 65536
        return value if value <= 65535 else None
    return service_port(port) if port.isascii() else None


def int_field(s: str) -> int | None:
    """A counter, inode, pid or fd: ASCII digits that fit an int64 column, else None."""
    return int(s) if s.isascii() and s.isdigit() and len(s) <= 18 else None
