"""Joins across artifacts: (pid, fd) <-> inode <-> socket rows of every tool, and each
connection's peer role.

The fd listing is the hub: ``ls -l /proc/PID/fd`` and lsof map (pid, fd) to a socket inode,
``ss -e``/``netstat -e`` and /proc/net/tcp map inodes to endpoints. One connection seen by
three tools is one row of ``connections``, with the tools that saw it listed, so counts do
not triple and the report can show where the tools disagree.

A peer is the database when its address is one the bundle names (manifest, DSN) or, failing
that, when its port is a well-known database port; never by guess when better evidence
exists. Inbound connections are those whose local port is one the process listens on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .schema import Tables, conform

#: Well-known database and cache ports (DESIGN.md); a manifest's DB address wins over these.
DB_PORTS: dict[int, str] = {
    5432: "postgres", 3306: "mysql", 6379: "redis", 1433: "mssql", 1521: "oracle",
    26257: "cockroach", 9042: "cassandra", 27017: "mongo", 6432: "pgbouncer", 4000: "tidb",
    9000: "clickhouse", 11211: "memcached",
}
#: Start of the ephemeral port range (Linux 32768-60999, IANA 49152-65535).
EPHEMERAL_START = 32768
#: Tool trust order when tools disagree about a field: richer and more exact tools first.
TOOL_ORDER = {"ss": 0, "netstat": 1, "proc_net_tcp": 2, "lsof": 3}


def _norm_ip(ip: Any) -> Any:
    if not isinstance(ip, str):
        return ip
    ip = ip.strip("[]")
    if ip.lower().startswith("::ffff:") and "." in ip:
        return ip[7:]
    return ip


def _db_targets(manifest: dict[str, Any]) -> tuple[set[tuple[str, int]], set[int]]:
    """(exact ip:port pairs, ports of named hosts) from the manifest's DB addresses."""
    exact: set[tuple[str, int]] = set()
    ports: set[int] = set()
    for addr in manifest.get("db_addresses") or []:
        host, _, port = str(addr).rpartition(":")
        if not port.isdigit():
            continue
        host = host.strip("[]")
        if host and (host.replace(".", "").isdigit() or ":" in host):
            exact.add((_norm_ip(host), int(port)))
            if host in ("127.0.0.1", "localhost", "::1"):
                exact.add(("::1" if host != "::1" else "127.0.0.1", int(port)))
        else:
            ports.add(int(port))  # a hostname: we cannot resolve it offline, match its port
    return exact, ports


def target_pid(tables: Tables, manifest: dict[str, Any]) -> int | None:
    """The Go service's pid: the manifest's, else the one whose fds were listed."""
    if manifest.get("pid"):
        return int(manifest["pid"])
    fds = tables["fds"]
    if len(fds):
        procfd = fds[fds["tool"] == "procfd"]["pid"].dropna()
        if len(procfd):
            return int(procfd.mode().iloc[0])
    return None


def _int_columns(df: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``cols`` of ``df`` as one int64 row per record, and which records have no null."""
    values = np.column_stack([df[c].to_numpy(dtype=np.int64, na_value=0) for c in cols])
    complete = np.logical_and.reduce([df[c].notna().to_numpy() for c in cols])
    return values, complete


def _first_match(keys: pd.DataFrame, table: pd.DataFrame) -> np.ndarray:
    """For each row of ``keys``, the position of the first row of ``table`` with the same
    values in every column of ``keys`` (integer columns), or -1; nulls match nothing."""
    cols = list(keys.columns)
    left, left_ok = _int_columns(keys, cols)
    right, right_ok = _int_columns(table, cols)
    right_rows = np.flatnonzero(right_ok)
    # One id per distinct key across both sides, then the first table row of each id.
    _, ids = np.unique(np.concatenate([right[right_rows], left]), axis=0,
                       return_inverse=True)
    ids = ids.reshape(-1)
    first = np.full(len(ids) + 1, -1, np.int64)
    seen, at = np.unique(ids[:len(right_rows)], return_index=True)
    first[seen] = right_rows[at]
    return np.where(left_ok, first[ids[len(right_rows):]], -1)


def _fill_from_fds(sockets: pd.DataFrame, fds: pd.DataFrame) -> pd.DataFrame:
    """Give each socket row the inode of its (pid, fd), and the (pid, fd) of its inode
    (the first fd listing row that names them)."""
    if not len(fds):
        return sockets
    fd_socks = fds[fds["inode"].notna() & (fds["kind"] == "socket")]
    if not len(fd_socks):
        return sockets
    inode, pid, fd = (sockets[c].array for c in ("inode", "pid", "fd"))
    need_inode = inode.isna() & ~pid.isna() & ~fd.isna()
    if need_inode.any():
        at = _first_match(sockets.loc[need_inode, ["round", "pid", "fd"]], fd_socks)
        inode = inode.copy()
        inode[need_inode] = fd_socks["inode"].array.take(at, allow_fill=True)
    need_owner = pid.isna() & ~inode.isna()
    if need_owner.any():
        keys = pd.DataFrame({"round": sockets["round"].array[need_owner],
                             "inode": inode[need_owner]})
        at = _first_match(keys, fd_socks)
        pid, fd = pid.copy(), fd.copy()
        pid[need_owner] = fd_socks["pid"].array.take(at, allow_fill=True)
        fd[need_owner] = fd_socks["fd"].array.take(at, allow_fill=True)
    return sockets.assign(inode=inode, pid=pid, fd=fd)


def _norm_ips(col: pd.Series) -> pd.Series:
    """:func:`_norm_ip` of every address, worked out once per distinct address."""
    codes, uniques = pd.factorize(col)
    normal = pd.array([_norm_ip(u) for u in uniques] + [None], dtype="string")
    return pd.Series(normal[codes], index=col.index)  # code -1 (null) takes the None


#: Columns of ``connections`` taken from the socket rows: of the rows of one connection,
#: the first non-null value in tool trust order (:data:`TOOL_ORDER`).
_MERGED = ("bundle_id", "captured_at", "source", "pid", "fd", "inode", "proto", "state",
           "local_ip", "local_port", "remote_ip", "remote_port", "last_send_ms",
           "last_recv_ms", "bytes_sent", "bytes_received")
#: A connection to the database with no traffic either way for this long is not running a
#: query: idle in the pool, or checked out and forgotten (a leaked Rows, Tx or Conn).
QUIET_MS = 5000


def build_connections(tables: Tables, manifest: dict[str, Any]) -> pd.DataFrame:
    """One row per connection per round, ordered by round and key: the socket rows of
    every tool that listed it merged, with the tools named in ``tools``."""
    sockets = tables["sockets"]
    if not len(sockets):
        return conform(pd.DataFrame(), "connections")
    s = sockets[sockets["proto"].astype("string").str.startswith(("tcp", "udp"), na=False)]
    s = _fill_from_fds(s, tables["fds"])
    s = s.assign(local_ip=_norm_ips(s["local_ip"]), remote_ip=_norm_ips(s["remote_ip"]))
    key = _connection_keys(s)
    # Rows sorted by (round, key, tool trust): a group per connection, its best row first.
    rnd = s["round"].to_numpy(dtype=np.int64, na_value=0)
    key_rank, _ = pd.factorize(key, sort=True)
    trust = s["tool"].map(TOOL_ORDER).fillna(9).to_numpy(dtype=np.float64)
    rows = np.flatnonzero(key.notna().to_numpy() & s["round"].notna().to_numpy())
    rows = rows[np.lexsort((trust[rows], key_rank[rows], rnd[rows]))]
    r, k = rnd[rows], key_rank[rows]
    new_group = np.ones(len(rows), bool)
    new_group[1:] = (r[1:] != r[:-1]) | (k[1:] != k[:-1])
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    conns = pd.DataFrame({"round": s["round"].array.take(rows[starts])}
                         | {c: _first_valid(s[c], rows, group, len(starts)) for c in _MERGED},
                         copy=False)
    conns["tools"] = _tool_lists(s["tool"], rows, starts)
    pid = target_pid(tables, manifest)
    _label_peers(conns, manifest, pid)
    return conform(conns, "connections")


def _label_peers(conns: pd.DataFrame, manifest: dict[str, Any], pid: int | None) -> None:
    """``owned``, ``peer_role`` and ``peer`` of every connection, decided per row in this
    order: listening socket; remote end a database the manifest names (or on a database
    port of a named host); local port one the process listens on (inbound); remote port a
    well-known database port when the manifest names none; without LISTEN rows, a fixed
    local port facing an ephemeral remote one (inbound); any other remote port (upstream);
    else unknown."""
    exact, db_ports = _db_targets(manifest)
    state = conns["state"]
    listen = (state == "LISTEN").fillna(False).to_numpy(dtype=bool)
    if pid is not None:
        conns["owned"] = conns["pid"] == pid
        mine = conns["owned"].fillna(False).to_numpy(dtype=bool)
    else:
        conns["owned"] = pd.NA
        mine = np.ones(len(conns), bool)
    lport, rport = conns["local_port"], conns["remote_port"]
    listen_ports = set(lport[listen & mine].dropna().astype(int))
    has_lport, has_rport = lport.notna().to_numpy(), rport.notna().to_numpy()
    lp = lport.to_numpy(dtype=np.int64, na_value=0)
    rp = rport.to_numpy(dtype=np.int64, na_value=0)
    rip = conns["remote_ip"]
    named_db = np.isin(rp, list(db_ports)) & has_rport
    for ip, port in exact:
        named_db |= ((rip == ip).fillna(False).to_numpy(dtype=bool) & (rp == port)
                     & has_rport)
    inbound = has_lport & np.isin(lp, list(listen_ports))
    known_db = (not exact) & np.isin(rp, list(DB_PORTS)) & has_rport
    served = ((not listen_ports) & has_lport & has_rport & (lp < EPHEMERAL_START)
              & (rp >= EPHEMERAL_START))
    upstream = has_rport & (rp != 0)
    # The first condition that holds decides (np.select takes them in order).
    cases = [listen, named_db, inbound, known_db, served, upstream]
    roles = ["listen", "database", "inbound", "database", "inbound", "upstream"]
    conns["peer_role"] = np.select(cases, roles, "unknown")
    local = _endpoint(conns["local_ip"], lport)
    remote = _endpoint(rip, rport)
    conns["peer"] = np.select(cases, [local, remote, local, remote, local, remote], "")


def _endpoint(ip: pd.Series, port: pd.Series) -> np.ndarray:
    """``ip:port`` text of every row, "None" standing for a missing part."""
    parts = (pc.fill_null(_text(col), _str("None")) for col in (ip, port))
    return pc.binary_join_element_wise(*parts, _str(":")).to_numpy(zero_copy_only=False)


def _text(col: pd.Series) -> pa.Array:
    """A column as Arrow text, numbers written in decimal, nulls kept."""
    return pa.array(col.array).cast(pa.large_string())


def _str(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _connection_keys(s: pd.DataFrame) -> pd.Series:
    """The identity of each socket row's connection: ``i<inode>`` when the inode is known
    and non-zero (TIME_WAIT sockets have inode 0), else the address tuple
    ``family|local ip|local port|remote ip|remote port``; null when neither is known."""
    family = pc.utf8_slice_codeunits(_text(s["proto"]), 0, 3)
    tuple_key = pc.binary_join_element_wise(  # null when any part is
        family, *(_text(s[c]) for c in ("local_ip", "local_port", "remote_ip",
                                       "remote_port")), _str("|"))
    use_inode = (s["inode"].notna() & (s["inode"] != 0)).to_numpy(dtype=bool)
    inode_key = pc.binary_join_element_wise(_str("i"), _text(s["inode"]), _str(""))
    key = pd.Series(pd.arrays.ArrowStringArray(pc.if_else(use_inode, inode_key, tuple_key)),
                    index=s.index)
    if not use_inode.any():
        return key
    # Tools that know the inode and tools that know only the tuple must meet: a row
    # without inode takes the key of the last inode-keyed row with the same tuple.
    tuples, _ = pd.factorize(pd.arrays.ArrowStringArray(tuple_key), use_na_sentinel=False)
    keyed = np.flatnonzero(use_inode)[::-1]  # last row of each tuple first
    seen, at = np.unique(tuples[keyed], return_index=True)
    holder = np.full(tuples.max() + 1, -1, np.int64)
    holder[seen] = keyed[at]
    source = np.where(use_inode, -1, holder[tuples])
    source = np.where(source >= 0, source, np.arange(len(key)))
    return pd.Series(key.array.take(source), index=key.index)


def _first_valid(col: pd.Series, rows: np.ndarray, group: np.ndarray,
                 groups: int) -> pd.api.extensions.ExtensionArray:
    """Per group of ``rows`` (in that order), the first non-null value of ``col``."""
    values = col.array.take(rows)
    valid = np.flatnonzero(~np.asarray(values.isna(), dtype=bool))
    first = np.full(groups, -1, np.int64)
    seen, at = np.unique(group[valid], return_index=True)
    first[seen] = valid[at]
    return values.take(first, allow_fill=True)


def _tool_lists(tool: pd.Series, rows: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per group of ``rows`` (starting at ``starts``), the tools that listed it: sorted
    names joined by commas. Tools are parser names (a handful), one bit each."""
    codes, names = pd.factorize(tool.array.take(rows), use_na_sentinel=False)
    names = [str(n) for n in names]
    bits = np.left_shift(np.uint64(1), codes.astype(np.uint64))
    masks = np.bitwise_or.reduceat(bits, starts) if len(rows) else bits
    distinct, which = np.unique(masks, return_inverse=True)
    text = [",".join(sorted(n for i, n in enumerate(names) if int(m) >> i & 1))
            for m in distinct]
    return np.array(text, dtype=object)[which.reshape(-1)]


def round_facts(tables: Tables, conns: pd.DataFrame, pid: int | None) -> dict[str, dict]:
    """Per-round series: owned connections by state, and the DB/fd check numbers.

    Rounds are few and rows many: each table's columns are read into arrays once and
    every round takes its rows by a mask, not by a pandas group per round."""
    by_state: dict[int, dict[str, float]] = {}
    check: dict[int, dict[str, float]] = {}
    owned = conns if pid is None else conns[conns["owned"].fillna(False).astype(bool)]
    state = owned["state"]
    established = _is(state, "ESTABLISHED")
    close_wait = _is(state, "CLOSE_WAIT")
    database = _is(owned["peer_role"], "database")
    quiet_ms = np.minimum(owned["last_send_ms"].to_numpy(dtype=np.float64, na_value=np.nan),
                          owned["last_recv_ms"].to_numpy(dtype=np.float64, na_value=np.nan))
    timed = ~np.isnan(quiet_ms)
    quiet = timed & (np.nan_to_num(quiet_ms) >= QUIET_MS)
    for rnd, rows in _rounds(owned):
        by_state[rnd] = {str(k): int(v) for k, v in state[rows].value_counts().items()}
        db_open = database & established & rows
        check[rnd] = {
            "db_established": int(db_open.sum()),
            "db_close_wait": int((database & close_wait & rows).sum()),
            "close_wait": int((close_wait & rows).sum()),
            "established": int((established & rows).sum()),
        }
        if (db_open & timed).any():  # ss -i: traffic timers of the DB connections
            check[rnd]["db_quiet"] = int((db_open & quiet).sum())
            check[rnd]["db_quiet_max_s"] = int(quiet_ms[db_open & timed].max() // 1000)
    stats = tables["dbstats"]
    pool = {name: (stats[name].to_numpy(dtype=np.int64, na_value=0), stats[name].notna()
                   .to_numpy()) for name in ("open", "max_open", "in_use")}
    for rnd, rows in _rounds(stats):
        c = check.setdefault(rnd, {})
        for key, name, reduce in (("pool_open", "open", np.sum), ("pool_max_open", "max_open",
                                  np.max), ("pool_in_use", "in_use", np.sum)):
            values, known = pool[name]
            c[key] = int(reduce(values[rows & known])) if (rows & known).any() else None
    fds = tables["fds"]
    if len(fds):
        mine = fds if pid is None else fds[fds["pid"] == pid]
        procfd, lsof = _is(mine["tool"], "procfd"), _is(mine["tool"], "lsof")
        has_fd = mine["fd"].notna().to_numpy()
        unnumbered = unnumbered_descriptors(mine)
        # (pid, fd) pairs; a null pid (-1) is one value of its own, as drop_duplicates has it
        pairs = np.column_stack([mine["pid"].to_numpy(dtype=np.int64, na_value=-1),
                                 mine["fd"].to_numpy(dtype=np.int64, na_value=-1)])
        for rnd, rows in _rounds(mine):
            tool = (procfd if (procfd & rows).any() else lsof) & rows
            check.setdefault(rnd, {})["fds_open"] = (
                len(np.unique(pairs[tool & has_fd], axis=0)) + int((tool & unnumbered).sum()))
    lim = tables["limits"]
    if len(lim):
        nofile = lim[lim["resource"].astype("string").str.contains("open files", case=False,
                                                                   na=False)]
        soft = nofile["soft"].dropna()
        if len(soft):
            # /proc/PID/limits is taken once per bundle, often: it holds for every round.
            for rnd in set(check) | {int(r) for r in tables["artifacts"]["round"].dropna()}:
                check.setdefault(rnd, {})["fd_soft_limit"] = int(soft.iloc[0])
    return {"sockets_by_state": by_state, "db_check": check}


#: Kinds of ``fds`` rows that are open descriptors even without a number (BusyBox lsof
#: prints them so, once each); lsof's cwd/rtd/txt/mem rows have a null fd too, and their
#: own name as kind: they are not descriptors.
DESCRIPTOR_KINDS = ("socket", "pipe", "anon_inode", "file", "dev", "ns", "other")


def unnumbered_descriptors(fds: pd.DataFrame) -> np.ndarray:
    """Rows of ``fds`` that are descriptors listed without their number."""
    return (fds["fd"].isna() & fds["kind"].isin(DESCRIPTOR_KINDS)).fillna(False).to_numpy(
        dtype=bool)


def _is(col: pd.Series, value: str) -> np.ndarray:
    """Rows equal to ``value`` (nulls: no)."""
    return (col == value).fillna(False).to_numpy(dtype=bool)


def _rounds(df: pd.DataFrame) -> Iterator[tuple[int, np.ndarray]]:
    """Each round of ``df`` in order, with the mask of its rows (null rounds: none)."""
    rnd = df["round"].to_numpy(dtype=np.float64, na_value=np.nan)
    for r in np.unique(rnd[~np.isnan(rnd)]).tolist():
        yield int(r), rnd == r


def correlate(tables: Tables, manifest: dict[str, Any]) -> dict[str, dict]:
    """Fill ``connections`` in place; return the per-round series the report charts."""
    conns = build_connections(tables, manifest)
    tables["connections"] = conns
    return round_facts(tables, tables["connections"], target_pid(tables, manifest))
