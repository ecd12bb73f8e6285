"""Mask what identifies a customer's machines and people before a report goes into a ticket.

``forensics analyze --redact`` calls :func:`redact_analysis` after detection and before
anything is rendered or written, so the HTML/Markdown/JSON report, the terminal summary,
the warnings on stderr and the Parquet tables (``--tables``) all come from the same masked
analysis. Masking is *consistent*: one value always becomes one token (``10.0.0.7`` is
``ip-3`` in the lsof rows, the connection table, the finding summary and the artifact
message alike), so the report still reads ("12 sockets to ip-3:5432") and its tables still
join. The owner can keep the token -> value map (``--redact-map FILE``) to undo it.

What is masked:

- IP addresses (IPv4 and IPv6, also inside ``host:port``, URLs and free text; an
  IPv4-mapped IPv6 address shares its IPv4 address's token) -> ``ip-N``. Loopback and
  unspecified addresses (127.0.0.0/8, ::1, 0.0.0.0, ::) identify nobody and are kept, so a
  socket listening on 0.0.0.0 still says so.
- Host names -> ``host-N``: every name the bundle states as a host (manifest ``hostname``,
  DB addresses and URLs, resolved names in the address columns of lsof/ss/netstat rows),
  masked in those fields and wherever the same name appears in other text (member paths
  under a host-named folder, the bundle name, messages); a distinctive short name
  (``prod-pay-7`` of ``prod-pay-7.acme.internal``) too. ``localhost`` is kept. Names are
  not guessed from free text: Go module paths (``github.com/lib/pq``) look like host names.
- User names -> ``user-N``: the user part of home-directory paths (``/home/alice``,
  ``/Users/alice``, ``C:\\Users\\alice``), kept in the path so it stays a path; the same
  name is masked elsewhere in text too, unless it is a generic service account
  (``root``, ``app``, ``ubuntu``, ...), which identifies nobody and is common as a word.

Go symbols (function, module and ``created by`` names) only get IP and home-path masking:
a host called ``api`` must not turn ``main.(*api).ServeHTTP`` into nonsense.

Not masked: the raw bytes of the members (held in memory, never written by ``analyze``)
and ports, pids, fds, inodes and times, which the analysis needs and which identify no one.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

#: Columns holding one address (an IP literal or a resolved host name).
HOST_COLUMNS = frozenset({"local_ip", "remote_ip"})
#: Columns holding ``host:port``.
HOSTPORT_COLUMNS = frozenset({"peer"})
#: Columns (and evidence keys) holding Go symbols: IPs and home paths only.
SYMBOL_KEYS = frozenset({"function", "module", "created_by", "top_function"})
#: Manifest keys whose values are host names / host:port / URLs.
_MANIFEST_HOSTS = ("hostname", "host")

_KEEP_HOSTS = frozenset({"", "*", "localhost", "localhost.localdomain", "ip6-localhost",
                         "ip6-loopback", "localhost6", "localhost6.localdomain6"})
#: Service accounts: masked inside home paths, but not hunted as bare words in text.
_GENERIC_USERS = frozenset({
    "root", "app", "apps", "build", "builder", "runner", "ubuntu", "admin", "user", "users",
    "nobody", "daemon", "go", "golang", "docker", "ec2-user", "centos", "debian", "fedora",
    "vagrant", "postgres", "mysql", "www-data", "jenkins", "ci", "dev", "service", "svc",
    "test", "guest", "shared", "public", "default", "work", "home", "src",
})
_NOT_USERS = frozenset({"shared", "public", "default", "all users", "default user"})

# Home-directory paths: POSIX (/home/u, /Users/u, /export/home/u, /var/home/u) and
# Windows (C:\Users\u, C:/Users/u, C:\Documents and Settings\u). Group "user" is masked.
_HOME = re.compile(
    r"(?<![\w.\-/\\])(?P<root>(?:[A-Za-z]:)?[\\/](?:home|Users|export[\\/]home|var[\\/]home"
    r"|Documents and Settings)[\\/])(?P<user>[^\\/\s:;'\"<>|*?()\[\]{},]{1,64})",
    re.IGNORECASE)
# IPv6 first (it may embed an IPv4 tail), then IPv4. Bounded repetition only: linear.
_IPV6 = re.compile(
    r"(?<![\w:.])(?P<addr>(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4}))"
    r"(?P<zone>%[\w.\-]{1,32})?(?![\w:]|\.\d)")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\w)")
_TOKEN = re.compile(r"(?:ip|host|user)-\d+")
_HOSTPORT = re.compile(r"^\[(?P<b>[^\]]*)\](?::(?P<bp>\d{1,5}))?$"
                       r"|^(?P<h>.*?)(?::(?P<p>\d{1,5}|\*))?$", re.DOTALL)
_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_\-.]{0,252})$")


@dataclass
class Redactor:
    """Value -> token, per kind, stable for one analysis (numbered in order of discovery)."""

    tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    hosts: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    _cache: dict[tuple[str, bool], str] = field(default_factory=dict, repr=False)
    _ips: dict[str, str | None] = field(default_factory=dict, repr=False)
    _host_rx: re.Pattern[str] | None = field(default=None, repr=False)
    _user_rx: re.Pattern[str] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ tokens
    def token(self, kind: str, value: str) -> str:
        key = (kind, value)
        tok = self.tokens.get(key)
        if tok is None:
            n = self.counters.get(kind, 0) + 1
            self.counters[kind] = n
            tok = self.tokens[key] = f"{kind}-{n}"
        return tok

    def ip(self, value: str) -> str | None:
        """The token of an IP literal, the literal itself when it is not worth masking,
        None when ``value`` is no IP at all."""
        if value in self._ips:
            return self._ips[value]
        out = self._ip(value)
        if len(self._ips) < 100_000:
            self._ips[value] = out
        return out

    def _ip(self, value: str) -> str | None:
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            inner = self.ip(str(addr.ipv4_mapped))
            return value if inner == str(addr.ipv4_mapped) else f"::ffff:{inner}"
        if addr.is_loopback or addr.is_unspecified:
            return value
        return self.token("ip", addr.compressed)

    def host(self, value: str) -> str:
        """One address field: an IP literal or a host name (learned if new)."""
        v = value.strip()
        if not v or v.lower() in _KEEP_HOSTS or _TOKEN.fullmatch(v):
            return value
        addr, pct, zone = v.partition("%")
        masked = self.ip(addr)
        if masked is not None:
            return masked + pct + zone
        if not _HOSTNAME.match(v):
            return self.text(value)
        self.learn_host(v)
        return self.token("host", _host_key(v))

    def hostport(self, value: str) -> str:
        """``host:port``, ``[v6]:port``, a bare address or ``::1:5432`` (port after the last
        colon, as the connections table writes IPv6 peers)."""
        v = value.strip()
        if not v:
            return value
        head, _, port = v.rpartition(":")
        if port.isdigit() and head.count(":") and self.ip(head) is not None:
            return f"{self.host(head)}:{port}"  # an IPv6 peer written without brackets
        if self.ip(v) is not None:
            return self.host(v)
        m = _HOSTPORT.match(v)
        if m and m.group("b") is not None:
            port = f":{m.group('bp')}" if m.group("bp") else ""
            return f"[{self.host(m.group('b'))}]{port}"
        if m and m.group("p") is not None and m.group("h"):
            return f"{self.host(m.group('h'))}:{m.group('p')}"
        return self.host(v)

    # ----------------------------------------------------------------- learning
    def learn_host(self, name: str) -> None:
        name = name.strip()
        if name and _host_key(name) not in _KEEP_HOSTS and self.ip(name) is None \
                and _HOSTNAME.match(name) and not _TOKEN.fullmatch(name):
            if _host_key(name) not in self.hosts:
                self.hosts.add(_host_key(name))
                self._host_rx = None
                self._cache.clear()
            # The machine's short name ("prod-pay-7" of prod-pay-7.acme.internal) names
            # folders and bundles; learn it too when it is distinctive (a digit or dash).
            first = name.split(".", 1)[0]
            if "." in name and len(first) >= 4 and re.search(r"[\d-]", first) \
                    and not first.isdigit():
                self.learn_host(first)

    def learn_url(self, url: str) -> None:
        try:
            host = urlsplit(url).hostname
        except ValueError:
            return
        if host:
            self.learn_host(host)

    def learn_hostport(self, value: str) -> None:
        v = value.strip()
        if self.ip(v) is not None or "://" in v:
            if "://" in v:
                self.learn_url(v)
            return
        m = _HOSTPORT.match(v)
        if m and m.group("h"):
            self.learn_host(m.group("h"))

    def learn_users(self, text: str) -> None:
        for m in _HOME.finditer(text):
            self._learn_user(m.group("user"))

    def _learn_user(self, user: str) -> None:
        low = user.lower()
        if low in _NOT_USERS or _TOKEN.fullmatch(user):
            return
        if user not in self.users:
            self.users.add(user)
            self._user_rx = None
            self._cache.clear()

    # --------------------------------------------------------------------- text
    def text(self, value: str, symbol: bool = False) -> str:
        """Free text with every IP, home-path user, known host and known user masked."""
        key = (value, symbol)
        out = self._cache.get(key)
        if out is None:
            out = self._text(value, symbol)
            if len(self._cache) < 500_000:
                self._cache[key] = out
        return out

    def _text(self, s: str, symbol: bool) -> str:
        if not symbol:  # known names first: "11.189.182.202.st" is a host, not an IP
            rx = self._hosts_regex()
            if rx is not None:
                s = rx.sub(lambda m: self.token("host", _host_key(m.group(0))), s)
        if "/" in s or "\\" in s:
            s = _HOME.sub(self._home_sub, s)
        if ":" in s:
            s = _IPV6.sub(self._ipv6_sub, s)
        if "." in s:
            s = _IPV4.sub(lambda m: self.ip(m.group(0)) or m.group(0), s)
        if symbol:
            return s
        rx = self._users_regex()
        if rx is not None:
            s = rx.sub(lambda m: self.token("user", m.group(0)), s)
        return s

    def _home_sub(self, m: re.Match[str]) -> str:
        user = m.group("user")
        if user.lower() in _NOT_USERS or _TOKEN.fullmatch(user):
            return m.group(0)
        self._learn_user(user)
        return m.group("root") + self.token("user", user)

    def _ipv6_sub(self, m: re.Match[str]) -> str:
        addr, zone = m.group("addr"), m.group("zone") or ""
        masked = self.ip(addr)
        if masked is not None:
            return masked + zone
        # netstat writes "::1:5432" / ":::22": the port is glued on after a colon.
        head, _, tail = addr.rpartition(":")
        if tail.isdigit() and head:
            masked = self.ip(head)
            if masked is not None:
                return f"{masked}:{tail}{zone}"
        return m.group(0)

    def _hosts_regex(self) -> re.Pattern[str] | None:
        if self._host_rx is None and self.hosts:
            names = sorted(self.hosts, key=len, reverse=True)
            alt = "|".join(re.escape(n) for n in names)
            # Whole names only, and not a Go selector (db.Stats, (*api)) when the name is
            # a plain word that happens to be an identifier too.
            self._host_rx = re.compile(
                rf"(?<![A-Za-z0-9_.*])(?i:{alt})(?![A-Za-z0-9_]|\.[A-Z(*])")
        return self._host_rx

    def _users_regex(self) -> re.Pattern[str] | None:
        words = [u for u in self.users if u.lower() not in _GENERIC_USERS and len(u) >= 3]
        if self._user_rx is None and words:
            alt = "|".join(re.escape(u) for u in sorted(words, key=len, reverse=True))
            self._user_rx = re.compile(rf"(?<![A-Za-z0-9_])(?:{alt})(?![A-Za-z0-9_])")
        return self._user_rx

    # --------------------------------------------------------------- containers
    def walk(self, obj: Any, key: str = "") -> Any:
        """A copy of a JSON-like value with every string masked (dict keys too)."""
        if isinstance(obj, str):
            return self.field(key, obj)
        if isinstance(obj, dict):
            return {(self.text(k) if isinstance(k, str) else k): self.walk(v, str(k))
                    for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self.walk(v, key) for v in obj)
        return obj

    def field(self, name: str, value: str) -> str:
        """One named value: the name says whether it is an address, a symbol or text."""
        if name in HOST_COLUMNS or name in _MANIFEST_HOSTS:
            return self.host(value)
        if name in HOSTPORT_COLUMNS or name in ("db_addresses", "db_address", "address"):
            return self.hostport(value)
        return self.text(value, symbol=name in SYMBOL_KEYS)

    def series(self, name: str, s: pd.Series) -> pd.Series:
        """A table column, masked once per distinct value (200k rows, a few hundred values).
        String, Arrow-string, object and categorical columns; others pass through."""
        if isinstance(s.dtype, pd.CategoricalDtype):
            codes, uniques = s.cat.codes.to_numpy(), list(s.cat.categories)
        elif pd.api.types.is_string_dtype(s.dtype):
            codes, uniques = pd.factorize(s, use_na_sentinel=True)
        else:
            return s
        masked = [self.field(name, u) if isinstance(u, str) else u for u in uniques]
        if all(a == b for a, b in zip(masked, uniques, strict=True)):
            return s
        values = np.array(masked, dtype=object)[codes]
        values[codes < 0] = None
        if isinstance(s.dtype, pd.CategoricalDtype):
            return pd.Series(pd.Categorical(values), index=s.index, name=s.name)
        return pd.Series(values, index=s.index, dtype=s.dtype, name=s.name)

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy(deep=False)
        for col in out.columns:
            out[col] = self.series(str(col), out[col])
        return out

    def mapping(self) -> dict[str, Any]:
        """What ``--redact-map`` writes: every token and the value it hides."""
        entries = sorted(self.tokens.items(), key=lambda kv: (kv[0][0], int(kv[1].split("-")[1])))
        return {
            "format": "forensics-redaction-map/1",
            "note": "Token -> original value. Keep this file with the bundle's owner; do not "
                    "attach it to the ticket.",
            "tokens": {tok: {"kind": kind, "value": value} for (kind, value), tok in entries},
        }


def _host_key(name: str) -> str:
    """One token per host: case folded, and netstat's column-cut trailing dot dropped."""
    return name.lower().rstrip(".")


# ---------------------------------------------------------------------- analysis
def redact_analysis(analysis: Any, redactor: Redactor | None = None) -> Redactor:
    """Mask the analysis in place (report, findings, call sites, tables, warnings) and
    return the :class:`Redactor` holding the token map."""
    r = redactor or Redactor()
    _learn(analysis, r)
    _redact_bundle(analysis, r)
    analysis.manifest = r.walk(analysis.manifest)
    analysis.warnings = [r.walk(w) for w in analysis.warnings]
    for name in list(analysis.tables.frames):
        analysis.tables.frames[name] = r.frame(analysis.tables.frames[name])
    for f in analysis.findings:
        _redact_finding(f, r)
    for c in analysis.call_sites:
        _redact_site(c, r)
        c.evidence = r.walk(c.evidence)
    analysis.series = {name: {rnd: r.walk(v) for rnd, v in by_round.items()}
                       for name, by_round in analysis.series.items()}
    return r


def _learn(analysis: Any, r: Redactor) -> None:
    """Every host and user name the bundle states, before any text is masked, so that the
    first message mentioning a host is masked as well as the last."""
    m = analysis.manifest or {}
    for key in _MANIFEST_HOSTS:
        if isinstance(m.get(key), str):
            r.learn_host(m[key])
    for addr in m.get("db_addresses") or []:
        if isinstance(addr, str):
            r.learn_hostport(addr)
    _learn_urls(m, r)
    for name in ("sockets", "connections"):
        df = analysis.tables.frames.get(name)
        if df is None:
            continue
        for col in HOST_COLUMNS & set(df.columns):
            for v in df[col].dropna().unique():
                if isinstance(v, str):
                    r.learn_host(v)
    for a in analysis.artifacts:
        r.learn_users(a.path)
    r.learn_users(str(analysis.bundle.source))


def _learn_urls(obj: Any, r: Redactor) -> None:
    if isinstance(obj, str):
        if "://" in obj:
            r.learn_url(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _learn_urls(v, r)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _learn_urls(v, r)


def _redact_bundle(analysis: Any, r: Redactor) -> None:
    from .bundle import BundleWarning

    b = analysis.bundle
    b.source = r.text(str(b.source))
    b.bundle_id = r.text(b.bundle_id)
    b.warnings = [BundleWarning(r.text(w.path), r.text(w.message)) for w in b.warnings]
    for m in b.members:
        m.path = r.text(m.path)
    for a in analysis.artifacts:
        a.message = r.text(a.message)
        if a.result is not None:
            a.result.meta = r.walk(a.result.meta)
            # The per-artifact frames were joined into analysis.tables (masked below);
            # unmasked copies must not linger for a custom template to print.
            a.result.tables = {}


def _redact_site(s: Any, r: Redactor) -> None:
    s.function = r.text(s.function, symbol=True)
    s.file = r.text(s.file)
    s.stacks = [r.walk(st) for st in s.stacks]


def _redact_finding(f: Any, r: Redactor) -> None:
    f.summary = r.text(f.summary)
    f.advice = r.text(f.advice)
    f.evidence = r.walk(f.evidence)
    for s in f.sites:
        _redact_site(s, r)
        s.note = r.text(s.note)
    for c in f.checks:
        c.detail = r.text(c.detail)


def write_map(redactor: Redactor, path: Path, source: str = "") -> None:
    """Save the token map for the bundle's owner (owner-only permissions where possible)."""
    doc = redactor.mapping()
    if source:
        doc["bundle"] = source
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", opener=_private_opener) as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")


def _private_opener(path: str, flags: int) -> int:
    import os

    return os.open(path, flags, 0o600)


__all__ = ["Redactor", "redact_analysis", "write_map"]
