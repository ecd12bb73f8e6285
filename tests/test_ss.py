"""ss parser against the real corpus: facts checked by reading each file by hand."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forensics.parsers import netstat, ss
from forensics.parsers.base import ParseContext, ParseError, ParseResult
from tests.conftest import corpus_files


def _parse(corpus: Path, name: str) -> ParseResult:
    return ss.parse((corpus / "ss" / name).read_bytes(), ParseContext(path=name))


def _sockets(corpus: Path, name: str) -> pd.DataFrame:
    return _parse(corpus, name).tables["sockets"]


def _summary(corpus: Path, name: str) -> dict[tuple[str, str], int]:
    df = _parse(corpus, name).tables["socket_summary"]
    assert set(df["tool"]) == {"ss"}
    return {(r.proto, r.state): r.count for r in df.itertuples()}


@pytest.mark.parametrize("path", corpus_files("ss"), ids=lambda p: p.name)
def test_every_corpus_file_parses_and_sniffs_as_ss(corpus: Path, path: Path) -> None:
    data = path.read_bytes()
    result = ss.parse(data, ParseContext(path=path.name))
    assert result.tables, path.name
    assert not result.warnings, result.warnings
    # Content wins over the name: ss output saved as netstat.txt is still ss.
    assert ss.sniff(data[:65536], "netstat.txt") > netstat.sniff(data[:65536], "netstat.txt")
    assert ss.sniff(data[:65536], path.name) >= 0.9


def test_ss_s_old_format_with_kernel_and_star_row(corpus: Path) -> None:
    s = _summary(corpus, "issue-netdata-743-ss-s-old-format-kernel-star-row.out")
    assert s[("all", "total")] == 4311
    assert s[("all", "kernel")] == 4355
    assert s[("tcp", "total")] == 4595
    assert s[("tcp", "ESTABLISHED")] == 3548
    assert s[("tcp", "CLOSE")] == 956
    assert s[("tcp", "orphaned")] == 8
    assert s[("tcp", "SYN_RECV")] == 0
    assert s[("tcp", "TIME_WAIT")] == 954
    assert s[("tcp", "ports")] == 0
    assert s[("all", "transport_total")] == 4355
    assert ("all", "transport_ip") not in s  # printed as "-"
    assert (s[("tcp", "transport_total")], s[("tcp", "transport_ip")],
            s[("tcp", "transport_ipv6")]) == (3639, 1859, 1780)
    assert s[("udp", "transport_ipv6")] == 40
    assert s[("inet", "transport_total")] == 3963


def test_ss_s_old_format_with_tabs(corpus: Path) -> None:
    s = _summary(corpus, "issue-toolkits-pkg-2-ss-s-centos6-7-old-format-tabs.out")
    assert (s[("all", "total")], s[("all", "kernel")]) == (2991, 7497)
    assert s[("tcp", "ESTABLISHED")] == 8
    assert s[("tcp", "TIME_WAIT")] == 4
    assert s[("all", "transport_total")] == 7497
    assert (s[("tcp", "transport_total")], s[("tcp", "transport_ip")]) == (27, 19)
    assert s[("udp", "transport_total")] == 18


def test_ss_s_new_format_without_kernel_or_synrecv(corpus: Path) -> None:
    s = _summary(corpus, "issue-toolkits-pkg-2-ss-s-centos8-new-format-tabs.out")
    assert s[("all", "total")] == 509
    assert ("all", "kernel") not in s
    assert s[("tcp", "total")] == 129
    assert s[("tcp", "ESTABLISHED")] == 32
    assert s[("tcp", "CLOSE")] == 79
    assert s[("tcp", "TIME_WAIT")] == 17
    assert ("tcp", "SYN_RECV") not in s
    assert ("all", "transport_total") not in s  # no "*" row in the new format
    assert (s[("inet", "transport_total")], s[("inet", "transport_ip")],
            s[("inet", "transport_ipv6")]) == (56, 29, 27)


def test_all_families_keeps_tcp_udp_unix_and_skips_the_rest(corpus: Path) -> None:
    result = _parse(corpus, "jc-centos-7.7-ss-sudo-a.out")
    df = result.tables["sockets"]
    assert result.meta["skipped_families"] == {"nl": 42, "p_raw": 1, "raw": 1}
    assert len(df) == 159  # 6 tcp + 3 udp + 122 u_str + 27 u_dgr + 1 u_seq
    assert set(df["tool"]) == {"ss"}
    assert (df["proto"] == "unix").sum() == 150
    counts = df[df.proto.str.startswith("tcp")].groupby(["proto", "state"]).size().to_dict()
    assert counts == {("tcp", "LISTEN"): 2, ("tcp6", "LISTEN"): 2, ("tcp6", "ESTABLISHED"): 2}
    # No -n: service names become ports.
    ssh = df[(df.proto == "tcp6") & (df.state == "ESTABLISHED") & (df.local_port == 22)]
    assert len(ssh) == 1
    assert (ssh.iloc[0]["local_ip"], ssh.iloc[0]["remote_port"]) == ("::1", 38134)
    smtp = df[(df.proto == "tcp") & (df.local_ip == "127.0.0.1")]
    assert smtp["local_port"].tolist() == [25]
    bootpc = df[(df.proto == "udp") & (df.local_port == 68)]
    assert bootpc["state"].tolist() == ["CLOSE"]
    # UNIX sockets: the path, and the inode ss prints where a port would be.
    docker = df[df.local_ip == "/var/run/docker.sock"].iloc[0]
    assert (docker["proto"], docker["state"], docker["inode"]) == ("unix", "LISTEN", 22040)


def test_ubuntu_all_families_interface_scoped_addresses(corpus: Path) -> None:
    result = _parse(corpus, "jc-ubuntu-18.04-ss-sudo-a.out")
    df = result.tables["sockets"]
    assert result.meta["skipped_families"] == {"nl": 39, "p_raw": 1, "icmp6": 1, "v_str": 1}
    assert len(df) == 116
    resolver = df[(df.proto == "tcp") & (df.local_port == 53)].iloc[0]
    assert (resolver["local_ip"], resolver["state"]) == ("127.0.0.53", "LISTEN")  # %lo dropped
    assert df[df.proto == "tcp"]["local_port"].tolist().count(22) == 1  # "0.0.0.0:ssh"


def test_wide_output_with_fused_process_header_and_many_owners(corpus: Path) -> None:
    df = _sockets(corpus, "jc-generic-ss-wide.out")
    # 155 socket lines; users:(...) lists 322 owners in total, one row each.
    assert len(df) == 322
    smtp = df[df.inode == 815320090]
    assert len(smtp) == 4  # master + three smtpd sharing the :587 listener
    assert set(smtp["local_port"]) == {587}
    assert sorted(zip(smtp.process, smtp.pid, smtp.fd, strict=True)) == [
        ("master", 1978854, 86),
        ("smtpd", 319370, 6),
        ("smtpd", 319502, 6),
        ("smtpd", 320188, 6),
    ]
    maria = df[df.process == "mariadbd"].iloc[0]
    assert (maria["pid"], maria["fd"], maria["inode"], maria["local_port"]) == (
        1978620, 15, 815317211, 3306)
    # "*:6556 ... v6only:0" is a dual-stack IPv6 listener.
    assert df[df.local_port == 6556]["proto"].tolist() == ["tcp6"]
    assert set(df.state) == {"LISTEN", "CLOSE"}


def test_tulpen_extended_fields_on_the_row(corpus: Path) -> None:
    df = _sockets(corpus, "jc-ubuntu-18.04-ss-sudo-tulpen.out")
    assert len(df) == 85  # 73 lines, some with several owners
    vxlan = df[df.local_port == 4789].iloc[0]  # no users:(...) on this row
    assert pd.isna(vxlan["pid"]) and pd.isna(vxlan["process"])
    assert vxlan["inode"] == 58296
    prom = df[df.process == "prometheus-post"].iloc[0]
    assert (prom["pid"], prom["fd"], prom["inode"], prom["local_port"]) == (1671, 3, 32721, 9187)


def test_sosreport_wrapped_rows_timers_and_owners(corpus: Path) -> None:
    result = _parse(corpus, "sosreport-coreos-master1-ss_-peaonmi.out")
    df = result.tables["sockets"]
    assert result.meta["skipped_families"] == {"nl": 49, "raw": 1}
    assert len(df) == 182
    est = df[df.state == "ESTABLISHED"]
    tcp_est = est[est.proto.str.startswith("tcp")]
    # 13 ESTAB lines; the sshd one has two owners.
    assert len(tcp_est) == 14
    assert tcp_est.groupby("proto").size().to_dict() == {"tcp": 8, "tcp6": 6}
    sshd = tcp_est[tcp_est.inode == 150882]
    assert sorted(sshd["pid"]) == [3002, 3016]
    assert set(sshd["timer"]) == {"keepalive (117min,0)"}
    etcd = df[df.inode == 93720].iloc[0]
    assert (etcd["pid"], etcd["fd"], etcd["process"]) == (1472, 17, "etcd")
    assert etcd["timer"] == "keepalive (6.535ms,0)"
    assert (etcd["remote_ip"], etcd["remote_port"]) == ("172.16.1.11", 2380)
    assert df.drop_duplicates("inode")["timer"].notna().sum() == 7  # 7 timer:(...) lines
    # [::ffff:a.b.c.d] is an IPv6 socket whose address compares as IPv4.
    mapped = df[df.inode == 94688].iloc[0]
    assert (mapped["proto"], mapped["local_ip"], mapped["local_port"]) == (
        "tcp6", "172.16.1.10", 2380)
    # tcp_info / skmem continuation lines never become rows.
    assert not df["local_ip"].fillna("").str.contains("skmem").any()
    # -i's tcp_info line: ms since the last send/receive and byte counters (this iproute2
    # prints bytes_acked, not bytes_sent). Read off the row 172.16.1.10:60094 -> :2380.
    peer = df[(df.local_port == 60094) & (df.remote_port == 2380)].iloc[0]
    assert (peer["last_send_ms"], peer["last_recv_ms"]) == (1253438, 132)
    assert peer["bytes_received"] == 29294 and pd.isna(peer["bytes_sent"])
    assert df[df.state == "LISTEN"]["last_send_ms"].isna().all()
    podman = df[df.inode == 155425].iloc[0]
    assert (podman["proto"], podman["state"], podman["remote_port"], podman["pid"]) == (
        "unix", "ESTABLISHED", 155426, 3199)


# --- inline variants the corpus does not cover ------------------------------------------


def _inline(text: str) -> pd.DataFrame:
    return ss.parse(text.encode(), ParseContext()).tables["sockets"]


def test_tanp_without_netid_column_and_tab_continuation() -> None:
    df = _inline(
        "State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\n"
        'ESTAB  0      0      10.0.0.5:41234      10.0.0.9:5432     users:(("svc",pid=7,fd=12))\n'
        "\t timer:(keepalive,9.1sec,0) uid:1000 ino:93721 sk:9f <->\n"
        "CLOSE-WAIT 1 0       10.0.0.5:41236      10.0.0.9:5432\n"
    )
    assert df["state"].tolist() == ["ESTABLISHED", "CLOSE_WAIT"]
    assert df["proto"].tolist() == ["tcp", "tcp"]
    first = df.iloc[0]
    assert (first["pid"], first["fd"], first["inode"], first["timer"]) == (
        7, 12, 93721, "keepalive (9.1sec,0)")
    assert df.iloc[1]["recv_q"] == 1


def test_old_iproute2_users_without_pid_labels() -> None:
    df = _inline('tcp ESTAB 0 0 1.2.3.4:5 6.7.8.9:5432 users:(("svc",4242,9))\n')
    assert (df.iloc[0]["pid"], df.iloc[0]["fd"], df.iloc[0]["process"]) == (4242, 9, "svc")


@pytest.mark.parametrize("junk", [
    b"", b"\x00\xff" * 1000, b"tcp\n", b"tcp ESTAB\n", b"ESTAB 0 0 a\n", b"nl UNCONN 0 0 x *\n",
    b"tcp ESTAB 0 0 1.2.3.4:5 " + b"x" * 200000, b"Total: 3\n",
    # "²" passes str.isdigit() but not int(); 25 digits do not fit int64.
    "tcp ESTAB 0 0 1.2.3.4:² 5.6.7.8:9 ino:²\n".encode(),
    b"tcp ESTAB " + b"9" * 25 + b" 0 1.2.3.4:5 6.7.8.9:10 ino:" + b"9" * 25 + b"\n",
    "u_str ESTAB 0 0 /x ² * ²\n".encode(),
])
def test_hostile_input_never_crashes(junk: bytes) -> None:
    try:
        result = ss.parse(junk, ParseContext())
    except ParseError:
        return
    assert len(result.warnings) <= 51
