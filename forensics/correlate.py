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

from typing import Any

import pandas as pd

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


def _fill_from_fds(sockets: pd.DataFrame, fds: pd.DataFrame) -> pd.DataFrame:
    """Give each socket row the inode of its (pid, fd), and the (pid, fd) of its inode."""
    if not len(fds):
        return sockets
    fd_socks = fds[fds["inode"].notna() & (fds["kind"] == "socket")]
    if not len(fd_socks):
        return sockets
    by_pidfd = fd_socks.drop_duplicates(["round", "pid", "fd"]).set_index(
        ["round", "pid", "fd"])["inode"]
    by_inode = fd_socks.drop_duplicates(["round", "inode"]).set_index(["round", "inode"])
    s = sockets.copy()
    need_inode = s["inode"].isna() & s["pid"].notna() & s["fd"].notna()
    if need_inode.any():
        keys = pd.MultiIndex.from_frame(s.loc[need_inode, ["round", "pid", "fd"]])
        s.loc[need_inode, "inode"] = by_pidfd.reindex(keys).to_numpy()
    need_owner = s["pid"].isna() & s["inode"].notna()
    if need_owner.any():
        keys = pd.MultiIndex.from_frame(s.loc[need_owner, ["round", "inode"]])
        found = by_inode.reindex(keys)
        s.loc[need_owner, "pid"] = found["pid"].to_numpy()
        s.loc[need_owner, "fd"] = found["fd"].to_numpy()
    return s


def build_connections(tables: Tables, manifest: dict[str, Any]) -> pd.DataFrame:
    sockets = tables["sockets"]
    if not len(sockets):
        return conform(pd.DataFrame(), "connections")
    s = sockets[sockets["proto"].astype("string").str.startswith(("tcp", "udp"), na=False)]
    s = _fill_from_fds(s, tables["fds"])
    s = s.assign(local_ip=s["local_ip"].map(_norm_ip), remote_ip=s["remote_ip"].map(_norm_ip),
                 family=s["proto"].astype("string").str[:3],
                 order=s["tool"].map(TOOL_ORDER).fillna(9))
    inode_key = s["inode"].astype("string")
    tuple_key = (s["family"] + "|" + s["local_ip"].astype("string") + "|"
                 + s["local_port"].astype("string") + "|" + s["remote_ip"].astype("string")
                 + "|" + s["remote_port"].astype("string"))
    # Prefer the inode when known and non-zero (TIME_WAIT sockets have inode 0).
    use_inode = s["inode"].notna() & (s["inode"] != 0)
    s = s.assign(key=tuple_key.where(~use_inode, "i" + inode_key))
    # Tools that know the inode and tools that know only the tuple must meet: map tuples of
    # inode-keyed rows onto their inode key.
    tuple_to_inode = dict(zip(tuple_key[use_inode], s.loc[use_inode, "key"], strict=False))
    if tuple_to_inode:
        s["key"] = [k if inode else tuple_to_inode.get(t, k) for k, t, inode
                    in zip(s["key"], tuple_key, use_inode, strict=False)]
    s = s.sort_values(["round", "key", "order"])
    tools = s.groupby(["round", "key"], sort=False)["tool"].agg(
        lambda t: ",".join(sorted(set(map(str, t)))))
    first = s.groupby(["round", "key"], sort=False).first()
    conns = first.reset_index()
    conns["tools"] = tools.to_numpy()
    pid = target_pid(tables, manifest)
    _label_peers(conns, manifest, pid)
    return conform(conns, "connections")


def _label_peers(conns: pd.DataFrame, manifest: dict[str, Any], pid: int | None) -> None:
    exact, db_ports = _db_targets(manifest)
    listen = conns["state"] == "LISTEN"
    if pid is not None:
        conns["owned"] = conns["pid"] == pid
        mine = conns["owned"].fillna(False)
    else:
        conns["owned"] = pd.NA
        mine = pd.Series(True, index=conns.index)
    listen_ports = set(conns.loc[listen & mine, "local_port"].dropna().astype(int))
    role, peer = [], []

    def plain(col: str) -> list:
        # Python values with None for missing: pd.NA refuses to be compared or hashed.
        return [None if pd.isna(v) else v for v in conns[col].astype(object)]

    for lip, lport, rip, rport, st in zip(plain("local_ip"), plain("local_port"),
                                          plain("remote_ip"), plain("remote_port"),
                                          plain("state"), strict=False):
        rport_i = int(rport) if rport is not None else None
        if st == "LISTEN":
            role.append("listen")
            peer.append(f"{lip}:{lport}")
        elif rport_i is not None and ((rip, rport_i) in exact or rport_i in db_ports):
            role.append("database")
            peer.append(f"{rip}:{rport_i}")
        elif lport is not None and int(lport) in listen_ports:
            role.append("inbound")
            peer.append(f"{lip}:{lport}")
        elif not exact and rport_i in DB_PORTS:
            role.append("database")
            peer.append(f"{rip}:{rport_i}")
        elif (not listen_ports and lport is not None and rport_i is not None
              and int(lport) < EPHEMERAL_START <= rport_i):
            # No LISTEN rows (a filtered listing): a fixed local port facing an ephemeral
            # remote one is the server side of a client's connection.
            role.append("inbound")
            peer.append(f"{lip}:{lport}")
        elif rport_i:
            role.append("upstream")
            peer.append(f"{rip}:{rport_i}")
        else:
            role.append("unknown")
            peer.append("")
    conns["peer_role"] = role
    conns["peer"] = peer


def round_facts(tables: Tables, conns: pd.DataFrame, pid: int | None) -> dict[str, dict]:
    """Per-round series: owned connections by state, and the DB/fd check numbers."""
    by_state: dict[int, dict[str, float]] = {}
    check: dict[int, dict[str, float]] = {}
    owned = conns if pid is None else conns[conns["owned"].fillna(False).astype(bool)]
    for rnd, g in owned.groupby("round"):
        by_state[int(rnd)] = {str(k): int(v) for k, v in g["state"].value_counts().items()}
        db = g[g["peer_role"] == "database"]
        check[int(rnd)] = {
            "db_established": int((db["state"] == "ESTABLISHED").sum()),
            "db_close_wait": int((db["state"] == "CLOSE_WAIT").sum()),
            "close_wait": int((g["state"] == "CLOSE_WAIT").sum()),
            "established": int((g["state"] == "ESTABLISHED").sum()),
        }
    stats = tables["dbstats"]
    for rnd, g in stats.groupby("round"):
        c = check.setdefault(int(rnd), {})
        c["pool_open"] = int(g["open"].sum(min_count=1)) if g["open"].notna().any() else None
        c["pool_max_open"] = int(g["max_open"].max()) if g["max_open"].notna().any() else None
        c["pool_in_use"] = int(g["in_use"].sum()) if g["in_use"].notna().any() else None
    fds = tables["fds"]
    if len(fds):
        mine = fds if pid is None else fds[fds["pid"] == pid]
        for rnd, g in mine.groupby("round"):
            tool = "procfd" if (g["tool"] == "procfd").any() else "lsof"
            g = g[(g["tool"] == tool) & g["fd"].notna()]
            check.setdefault(int(rnd), {})["fds_open"] = int(g.drop_duplicates(
                ["pid", "fd"]).shape[0])
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


def correlate(tables: Tables, manifest: dict[str, Any]) -> dict[str, dict]:
    """Fill ``connections`` in place; return the per-round series the report charts."""
    conns = build_connections(tables, manifest)
    tables["connections"] = conns
    return round_facts(tables, tables["connections"], target_pid(tables, manifest))
