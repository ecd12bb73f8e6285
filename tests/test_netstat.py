"""netstat parser against the real corpus: facts checked by reading each file by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from forensics.parsers import netstat, ss
from forensics.parsers.base import ParseContext, ParseError, ParseResult
from tests.conftest import corpus_files

#: Non-connection outputs and the kind of table the rejection must name.
REJECTED = {
    "jc-centos-7.7-netstat-i.out": "interface table",
    "jc-ubuntu-18.04-netstat-i.out": "interface table",
    "jc-freebsd12-netstat-i.out": "interface table",
    "jc-freebsd12-netstat-ib.out": "interface table",
    "jc-osx-10.14.6-netstat-i.out": "interface table",
    "jc-centos-7.7-netstat-r.out": "routing table",
    "jc-centos-7.7-netstat-rne.out": "routing table",
    "jc-centos-7.7-netstat-rnee.out": "routing table",
    "jc-ubuntu-18.04-netstat-r.out": "routing table",
    "jc-ubuntu-18.04-netstat-rne.out": "routing table",
    "jc-ubuntu-18.04-netstat-rnee.out": "routing table",
    "jc-freebsd12-netstat-r.out": "routing table",
    "jc-osx-10.14.6-netstat-r.out": "routing table",
    "jc-osx-10.14.6-netstat-rnl.out": "routing table",
}
_PROTO_TOKEN = re.compile(r"(?i)(tcp|udp)(4|6|46)?")


def _parse(corpus: Path, name: str) -> ParseResult:
    return netstat.parse((corpus / "netstat" / name).read_bytes(), ParseContext(path=name))


def _sockets(corpus: Path, name: str) -> pd.DataFrame:
    return _parse(corpus, name).tables["sockets"]


@pytest.mark.parametrize("path", corpus_files("netstat"), ids=lambda p: p.name)
def test_every_corpus_file_is_read_or_rejected_by_name(corpus: Path, path: Path) -> None:
    data = path.read_bytes()
    assert netstat.sniff(data[:65536], path.name) > ss.sniff(data[:65536], path.name)
    if path.name in REJECTED:
        with pytest.raises(ParseError, match=rf"netstat -[ir] {REJECTED[path.name]}: no conn"):
            netstat.parse(data, ParseContext(path=path.name))
        return
    result = netstat.parse(data, ParseContext(path=path.name))
    df = result.tables["sockets"]
    assert set(df["tool"]) == {"netstat"}
    # Every line holding a tcp/udp protocol token is a row or a warning: nothing is lost
    # silently; every Linux "unix" line is a row.
    lines = data.decode("utf-8", "replace").split("\n")
    inet_lines = sum(1 for ln in lines if any(_PROTO_TOKEN.fullmatch(t) for t in ln.split()[:3]))
    assert (df.proto != "unix").sum() + len(result.warnings) == inet_lines
    assert (df.proto == "unix").sum() == sum(1 for ln in lines if ln.startswith("unix "))
    assert set(df.proto) <= {"tcp", "tcp6", "udp", "udp6", "unix"}


def test_anp_grep_5432_counts_the_pool_connections(corpus: Path) -> None:
    df = _sockets(corpus, "issue-node-postgres-1741-netstat-anp-grep-5432.out")
    assert len(df) == 9
    assert set(df.remote_port) == {5432}
    assert set(df.remote_ip) == {"172.27.0.30"}
    assert set(df.state) == {"ESTABLISHED"}  # the last, cut row says "ESTAB"
    owned = df[df.pid.notna()]
    assert len(owned) == 8 and set(owned.pid) == {7} and set(owned.process) == {"node"}


def test_headerless_close_wait_of_a_go_router(corpus: Path) -> None:
    df = _sockets(corpus, "issue-cloudfoundry-gorouter-21-netstat-p-headerless-close_wait.out")
    assert len(df) == 15
    assert set(df.state) == {"CLOSE_WAIT"}
    assert set(df.pid) == {4868}
    assert df.iloc[0]["recv_q"] == 696 and df["recv_q"].max() == 48158
    assert df.iloc[-1]["process"] == "r"  # the paste ends inside "router"
    assert set(df.local_ip) == {"localhost"}


def test_resolved_and_truncated_host_names(corpus: Path) -> None:
    name = "issue-hackoregon-civic-devops-177-netstat-resolved-truncated-hostnames.out"
    result = _parse(corpus, name)
    df = result.tables["sockets"]
    assert len(df) == 13 and set(df.state) == {"ESTABLISHED"}
    assert set(df.local_port) == {5432}  # ":postgres"
    assert (df.remote_ip == "ec2-52-40-144-163.").sum() == 2
    indigo = df[df.remote_ip == "ec2-52-40"].iloc[0]  # "ec2-52-40:indigo-server"
    assert pd.isna(indigo["remote_port"])
    assert [w.line for w in result.warnings] == [17]  # the paste is cut mid-address


def test_headerless_truncated_reverse_dns(corpus: Path) -> None:
    result = _parse(corpus, "issue-kippo-173-netstat-headerless-truncated-resolved-hosts.out")
    df = result.tables["sockets"]
    assert len(df) == 17
    assert set(zip(df.local_ip, df.local_port, strict=True)) == {("192.168.1.2", 2222)}
    assert "11.189.182.202.st" in set(df.remote_ip)
    assert [w.line for w in result.warnings] == [18]


def test_timers_and_program_names_with_spaces(corpus: Path) -> None:
    df = _sockets(corpus, "issue-xluffy-til-118-netstat-antpdo-timers-program-with-space.out")
    assert df["pid"].tolist() == [9420, 9360, 9360]
    assert set(df.process) == {"Passenger Ruby"}
    assert df["timer"].tolist() == [
        "off (0.00/0/0)", "off (0.00/0/0)", "keepalive (6580.48/0/0)"]
    assert df["remote_port"].tolist() == [6379, 6379, 3306]


def test_vault_wide_extended_timers(corpus: Path) -> None:
    df = _sockets(corpus, "hotsos-vault-netstat_-W_-neopa.out")
    tcp = df[df.proto.str.startswith("tcp")]
    assert tcp.groupby("state").size().to_dict() == {
        "ESTABLISHED": 20, "LISTEN": 11, "TIME_WAIT": 105}
    tw = tcp[tcp.state == "TIME_WAIT"]
    assert set(tw.remote_port) == {3306}
    assert tw.pid.isna().all() and tw.inode.isna().all()  # "0  0  -": no owner, no inode
    assert tw[tw.local_port == 35100]["timer"].tolist() == ["timewait (10.04/0/0)"]
    sshd = tcp[(tcp.local_port == 22) & (tcp.state == "LISTEN")].iloc[0]
    assert (sshd["pid"], sshd["process"], sshd["inode"]) == (328, "sshd: /usr/sbin", 80701)
    router = tcp[tcp.inode == 10709129].iloc[0]
    assert (router["process"], router["remote_ip"], router["remote_port"]) == (
        "mysqlrouter", "10.0.0.119", 3306)
    assert router["timer"] == "keepalive (7199.75/0/0)"
    assert (df.proto == "unix").sum() == 206


def test_netstat_and_ss_agree_on_the_same_host(corpus: Path) -> None:
    """The coreos sosreport holds both tools' view of one host: inode 93720 is etcd's."""
    ns = _sockets(corpus, "sosreport-coreos-master1-netstat_-W_-neopa.out")
    sk = ss.parse((corpus / "ss" / "sosreport-coreos-master1-ss_-peaonmi.out").read_bytes(),
                  ParseContext()).tables["sockets"]
    a = ns[ns.inode == 93720].iloc[0]
    b = sk[sk.inode == 93720].iloc[0]
    for col in ("pid", "process", "state", "local_ip", "local_port", "remote_ip", "remote_port"):
        assert a[col] == b[col], col
    assert a["timer"] == "keepalive (6.63/0/0)"
    assert (ns[ns.proto.str.startswith("tcp")].groupby("state").size().to_dict()
            == {"ESTABLISHED": 13, "LISTEN": 15})


def test_aeep_user_inode_program_and_unix_section(corpus: Path) -> None:
    df = _sockets(corpus, "jc-centos-7.7-netstat-sudo-aeep.out")
    ssh = df[df.inode == 63129].iloc[0]
    assert (ssh["proto"], ssh["state"], ssh["pid"], ssh["process"]) == (
        "tcp6", "ESTABLISHED", 6492, "sshd: kbrazil")
    assert (ssh["local_ip"], ssh["local_port"], ssh["remote_port"]) == ("localhost", 22, 38134)
    docker = df[df.local_ip == "/var/run/docker.sock"].iloc[0]
    assert (docker["proto"], docker["state"], docker["inode"], docker["pid"],
            docker["process"]) == ("unix", "LISTEN", 22040, 1220, "dockerd-curren")


def test_listening_only_output_is_kept(corpus: Path) -> None:
    df = _sockets(corpus, "jc-ubuntu-18.04-netstat-sudo-lnp-space.out")
    assert df[df.local_port == 9000]["process"].tolist() == ["pgpool: watchd"]
    assert set(df[(df.local_port == 22) & (df.pid == 600)]["process"]) == {"sshd: /usr/sbin"}
    inet = df[df.proto != "unix"]
    assert set(inet.state) <= {"LISTEN", "CLOSE"}
    assert len(_sockets(corpus, "jc-centos-7.7-netstat-l.out")) == 40


def test_udp_rows_without_state_and_old_unix_layout(corpus: Path) -> None:
    df = _sockets(corpus, "jc-generic-netstat-no-state.out")
    assert df["proto"].tolist() == ["udp", "udp", "udp6", "udp6"]
    assert set(df.state) == {"CLOSE"} and set(df.process) == {"avahi-daemon: r"}
    old = _sockets(corpus, "jc-generic-netstat-old.out")
    lvm = old[old.inode == 18438].iloc[0]
    assert (lvm["pid"], lvm["process"], lvm["local_ip"]) == (
        1, "systemd", "/run/lvm/lvmpolld.socket")


def test_freebsd_pcb_column_and_dotted_endpoints(corpus: Path) -> None:
    df = _sockets(corpus, "jc-freebsd12-netstat-Aa.out")
    assert len(df) == 6
    est = df[df.state == "ESTABLISHED"].iloc[0]
    assert (est["local_ip"], est["local_port"], est["remote_ip"], est["remote_port"]) == (
        "192.168.71.1", 22, "192.168.71.1", 56321)
    assert df.groupby("proto").size().to_dict() == {"tcp": 3, "tcp6": 1, "udp": 1, "udp6": 1}
    # -T: retransmit counters instead of queues, and no state column.
    t = _sockets(corpus, "jc-freebsd12-netstat-AaT.out")
    tcp = t[t.proto.str.startswith("tcp")]
    assert tcp.state.isna().all() and tcp.recv_q.isna().all()
    assert _sockets(corpus, "jc-freebsd12-netstat-an.out")["local_port"].tolist()[:3] == [
        22, 25, 22]


def test_macos_socket_flowhash_columns_and_close_wait(corpus: Path) -> None:
    for name in ("jc-osx-10.14.6-netstat-An.out", "jc-osx-10.14.6-netstat-Abn.out"):
        df = _sockets(corpus, name)
        assert len(df) == 137  # 22 tcp4 + 27 tcp6 + 75 udp4 + 6 udp46 + 7 udp6
        assert (df.state == "CLOSE_WAIT").sum() == 6
        assert (df.proto == "udp6").sum() == 13  # udp46 counts as dual-stack
    plain = _sockets(corpus, "jc-osx-10.14.6-netstat.out")
    assert len(plain) == 157 and (plain.state == "CLOSE_WAIT").sum() == 5
    v6 = plain[plain.remote_ip == "2620:1ec:42::132"].iloc[0]
    assert (v6["proto"], v6["remote_port"], v6["local_ip"]) == ("tcp6", 443, "kbrazil-mac.attl")


def test_windows_pid_and_owning_executable(corpus: Path) -> None:
    df = _sockets(corpus, "jc-windows-10-netstat-aonb.out")
    rpc = df[(df.local_port == 135) & (df.proto == "tcp")].iloc[0]
    assert (rpc["pid"], rpc["process"], rpc["state"]) == (1712, "svchost.exe", "LISTEN")
    smb = df[(df.local_port == 445) & (df.proto == "tcp")].iloc[0]
    assert smb["pid"] == 4 and pd.isna(smb["process"])  # "Can not obtain ownership"
    assert (df.state == "CLOSE_WAIT").sum() == 6
    an = _sockets(corpus, "jc-windows-10-netstat-an.out")
    assert an.groupby(["proto", "state"]).size().to_dict() == {
        ("tcp", "ESTABLISHED"): 32, ("tcp", "LISTEN"): 33, ("tcp6", "LISTEN"): 15,
        ("udp", "CLOSE"): 140, ("udp6", "CLOSE"): 40}
    assert an.pid.isna().all()
    plain = _sockets(corpus, "jc-windows-10-netstat.out")
    assert len(plain) == 32 and set(plain.remote_ip) == {"api"}


def test_windows_localized_headers(corpus: Path) -> None:
    result = _parse(corpus, "issue-billfeller-174-windows-netstat-ano-chinese-localized.out")
    df = result.tables["sockets"]
    assert df["state"].tolist() == ["TIME_WAIT", "TIME_WAIT"]
    assert df["pid"].tolist() == [0, 0]
    assert df["remote_port"].tolist() == [58296, 58298]
    assert len(result.warnings) == 1  # the row cut at "127.0.0"


# --- inline variants ---------------------------------------------------------------------


def test_ss_output_is_refused_with_a_pointer() -> None:
    text = (b"State Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
            b"ESTAB 0 0 1.2.3.4:5 6.7.8.9:10\n")
    assert netstat.sniff(text, "netstat.txt") == 0.0
    with pytest.raises(ParseError, match="ss output"):
        netstat.parse(text, ParseContext())


def test_statistics_output_is_refused() -> None:
    text = b"Ip:\n    Forwarding: 1\nTcp:\n    12 active connection openings\n"
    with pytest.raises(ParseError, match="netstat -s"):
        netstat.parse(text, ParseContext())


def test_old_bracketless_ipv6_and_fast_path_equivalence() -> None:
    text = (
        "tcp6       0      0 :::22          :::*        LISTEN      1/sshd\n"
        "tcp6       0      0 ::1:5432       ::1:40000   ESTABLISHED 9/postgres\n"
        "tcp        0      0 10.0.0.1:40001 10.0.0.2:5432 FOO\n"
    )
    df = netstat.parse(text.encode(), ParseContext()).tables["sockets"]
    assert df["local_ip"].tolist() == ["::", "::1", "10.0.0.1"]
    assert df["local_port"].tolist() == [22, 5432, 40001]
    assert df["state"].tolist()[:2] == ["LISTEN", "ESTABLISHED"]
    assert pd.isna(df["state"].iloc[2])  # an unknown word is not a state


@pytest.mark.parametrize("junk", [
    b"", b"\x00\xff" * 1000, b"tcp\n", b"tcp 0 0\n", b"TCP 1.2.3.4:5\n", b"unix 2 [\n",
    b"tcp 0 0 1.2.3.4:5 6.7.8.9:10 " + b"(" * 100000, b"Active UNIX domain sockets\nunix x\n",
    b"tcp 0 0 1:2 3:4 ESTABLISHED root 12 " + b" " * 20000 + b"x\n",
    "tcp 0 0 1.2.3.4:² 5.6.7.8:9 ESTABLISHED\n".encode(), "tcp4 0 0 1.2.3.4.² *.*\n".encode(),
    b"tcp " + b"9" * 25 + b" 0 1.2.3.4:5 6.7.8.9:10 ESTABLISHED 0 " + b"9" * 25 + b" 1/x\n",
    b"  TCP    1.2.3.4:5   6.7.8.9:10   ESTABLISHED   " + b"9" * 25 + b"\n",
])
def test_hostile_input_never_crashes(junk: bytes) -> None:
    try:
        result = netstat.parse(junk, ParseContext())
    except ParseError:
        return
    assert len(result.warnings) <= 51
