"""Joins across tools on real captures: one connection per socket whatever number of tools
listed it, peers labelled, and the DB/fd comparison the on-call engineer reads first."""

from __future__ import annotations

import shutil

import pandas as pd
from conftest import ROOT, require

from forensics.correlate import _first_match, build_connections
from forensics.pipeline import build_tables
from forensics.schema import Tables

SAMPLES = ROOT / "sample_bundles"


def test_grep_5432_netstat_is_all_database(corpus):
    a = build_tables(corpus / "netstat" / "issue-node-postgres-1741-netstat-anp-grep-5432.out")
    c = a.tables["connections"]
    assert len(c) == 9
    assert set(c["peer_role"]) == {"database"}
    assert set(c["peer"]) == {"172.27.0.30:5432"}


def test_vault_lsof_threads_collapse_to_three_mysql_sockets(corpus):
    a = build_tables(corpus / "lsof" / "hotsos-vault-lsof_-b_+M_-n_-l_-P.out")
    c = a.tables["connections"]
    mysql = c[(c["remote_port"] == 3306) & (c["state"] == "ESTABLISHED")]
    assert len(mysql) == 3
    assert set(mysql["peer_role"]) == {"database"}


def test_ss_and_netstat_of_one_host_join_on_inode(corpus, tmp_path):
    """The coreos sosreport has ss -peaonmi and netstat -W -neopa of the same moment."""
    for sub, name in (("ss", "sosreport-coreos-master1-ss_-peaonmi.out"),
                      ("netstat", "sosreport-coreos-master1-netstat_-W_-neopa.out")):
        shutil.copy(corpus / sub / name, tmp_path / name)
    a = build_tables(tmp_path)
    assert a.rounds == [1]
    c = a.tables["connections"]
    both = c[c["tools"] == "netstat,ss"]
    assert len(both) > 0
    row = c[c["inode"] == 93720]
    assert len(row) == 1 and row["tools"].iloc[0] == "netstat,ss"
    assert int(row["pid"].iloc[0]) == 1472


def test_sample_bundle_tools_agree_and_db_check(tmp_path):
    bundles = sorted(SAMPLES.glob("tx-go1.27*.tar.gz"))
    require(bool(bundles), "sample bundle tx-go1.27 missing")
    a = build_tables(bundles[0])
    c = a.tables["connections"]
    db = c[(c["peer_role"] == "database") & c["owned"].fillna(False).astype(bool)]
    # ss, lsof and /proc/PID/fd all saw the service's database sockets, joined by inode
    assert (db["tools"].str.contains("lsof") & db["tools"].str.contains("ss")).all()
    check = a.series["db_check"]
    for r in (1, 2, 3):
        # every pool connection is a socket to the database, and vice versa
        assert check[r]["db_established"] == check[r]["pool_open"]
        assert check[r]["fds_open"] < check[r]["fd_soft_limit"]
    assert check[3]["db_established"] > check[1]["db_established"]


# ---- the joins on small hand-made tables ------------------------------------------------

def _tables(sockets: list[dict], fds: list[dict] | None = None) -> Tables:
    t = Tables()
    base = {"bundle_id": "b", "round": 1, "source": "s"}
    t["sockets"] = pd.DataFrame([base | s for s in sockets])
    if fds:
        t["fds"] = pd.DataFrame([base | f for f in fds])
    return t


def _sock(tool: str, **kw) -> dict:
    return {"tool": tool, "proto": "tcp", "state": "ESTABLISHED", "local_ip": "10.0.0.1",
            "local_port": 40000, "remote_ip": "10.0.0.2", "remote_port": 5432} | kw


def test_tuple_only_rows_join_the_inode_row_with_their_tuple():
    """netstat without -e knows no inode: its row joins ss's row for the same tuple."""
    t = _tables([_sock("ss", inode=7, pid=10, fd=3), _sock("netstat"),
                 _sock("netstat", local_port=40001)])
    c = build_connections(t, {})
    assert len(c) == 2
    joined = c[c["inode"] == 7]
    assert joined["tools"].tolist() == ["netstat,ss"]
    assert c[c["local_port"] == 40001]["tools"].tolist() == ["netstat"]


def test_fields_come_from_the_most_trusted_tool_that_has_them():
    t = _tables([_sock("lsof", inode=7, pid=10, fd=3, state="CLOSE_WAIT"),
                 _sock("ss", inode=7, state="ESTABLISHED", pid=None, fd=None)])
    c = build_connections(t, {})
    assert len(c) == 1
    row = c.iloc[0]
    assert row["state"] == "ESTABLISHED"  # ss before lsof
    assert (row["pid"], row["fd"]) == (10, 3)  # only lsof knew them
    assert row["tools"] == "lsof,ss"


def test_fd_listing_gives_inode_and_owner():
    fds = [{"pid": 10, "fd": 3, "kind": "socket", "inode": 7, "tool": "procfd"},
           {"pid": 10, "fd": 4, "kind": "socket", "inode": 8, "tool": "procfd"}]
    t = _tables([_sock("lsof", pid=10, fd=3), _sock("ss", inode=8, local_port=40001)], fds)
    c = build_connections(t, {"pid": 10}).sort_values("local_port")
    assert c["inode"].tolist() == [7, 8]
    assert c["fd"].tolist() == [3, 4]
    assert c["owned"].tolist() == [True, True]


def test_peer_roles_in_order_of_evidence():
    t = _tables([
        _sock("ss", state="LISTEN", local_ip="0.0.0.0", local_port=8080, remote_ip="0.0.0.0",
              remote_port=None, inode=1),
        _sock("ss", local_port=8080, remote_ip="10.0.0.9", remote_port=51000, inode=2),
        _sock("ss", remote_ip="10.0.0.3", remote_port=6000, inode=3),
        _sock("ss", remote_ip="10.0.0.4", remote_port=443, inode=4),
        _sock("ss", inode=5),
    ])
    c = build_connections(t, {"db_addresses": ["10.0.0.3:6000"]}).sort_values("inode")
    assert c["peer_role"].tolist() == ["listen", "inbound", "database", "upstream", "upstream"]
    assert c["peer"].tolist() == ["0.0.0.0:8080", "10.0.0.1:8080", "10.0.0.3:6000",
                                  "10.0.0.4:443", "10.0.0.2:5432"]
    # Without a manifest address the well-known port decides.
    c = build_connections(t, {}).sort_values("inode")
    assert c["peer_role"].tolist()[-1] == "database"


def test_first_match_finds_first_row_and_ignores_nulls():
    table = pd.DataFrame({"a": pd.array([1, 1, 2, None], dtype="Int64"),
                          "b": pd.array([5, 5, 6, 7], dtype="Int64")})
    keys = pd.DataFrame({"a": pd.array([1, 2, 3, None], dtype="Int64"),
                         "b": pd.array([5, 6, 5, 7], dtype="Int64")})
    assert _first_match(keys, table).tolist() == [0, 2, -1, -1]
