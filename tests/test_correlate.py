"""Joins across tools on real captures: one connection per socket whatever number of tools
listed it, peers labelled, and the DB/fd comparison the on-call engineer reads first."""

from __future__ import annotations

import shutil

from conftest import ROOT, require

from forensics.pipeline import build_tables

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
