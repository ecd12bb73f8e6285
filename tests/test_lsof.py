"""lsof parser and the shared address helpers (netaddr), against the real corpus.

Every number asserted on a corpus file was counted in the file itself (grep/awk), not
taken from the parser's output.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import corpus_files, require_tool
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.parsers import lsof
from forensics.parsers.base import ParseContext, ParseError
from forensics.parsers.netaddr import (
    KERNEL_STATES,
    hex_endpoint,
    normalize_state,
    service_port,
    split_endpoint,
)
from forensics.pipeline import build_tables


def _parse(corpus: Path, name: str):
    return lsof.parse((corpus / "lsof" / name).read_bytes(), ParseContext(path=name))


# --------------------------------------------------------------------------- netaddr


@pytest.mark.parametrize(
    ("spelling", "state"),
    [
        ("ESTAB", "ESTABLISHED"),
        ("ESTABLISHED", "ESTABLISHED"),
        ("(ESTABLISHED)", "ESTABLISHED"),
        ("01", "ESTABLISHED"),
        ("CLOSE-WAIT", "CLOSE_WAIT"),
        ("close_wait", "CLOSE_WAIT"),
        ("08", "CLOSE_WAIT"),
        ("TIME-WAIT", "TIME_WAIT"),
        ("06", "TIME_WAIT"),
        ("FIN-WAIT-1", "FIN_WAIT1"),
        ("FIN_WAIT_2", "FIN_WAIT2"),
        ("SYN-RECV", "SYN_RECV"),
        ("SYN_RCVD", "SYN_RECV"),
        ("0C", "SYN_RECV"),
        ("LISTEN", "LISTEN"),
        ("LISTENING", "LISTEN"),
        ("0A", "LISTEN"),
        ("CLOSED", "CLOSE"),
        ("UNCONN", "CLOSE"),
        ("LAST-ACK", "LAST_ACK"),
        ("CLOSING", "CLOSING"),
        ("", "UNKNOWN"),
        ("bogus", "UNKNOWN"),
        ("FF", "UNKNOWN"),
    ],
)
def test_normalize_state(spelling: str, state: str) -> None:
    assert normalize_state(spelling) == state
    assert state in KERNEL_STATES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.121:35714", ("10.0.0.121", 35714)),
        ("[::1]:5432", ("::1", 5432)),
        ("[fe80::1]%eth0:22", ("fe80::1", 22)),
        ("fe80::1%eth0.100:22", ("fe80::1", 22)),
        (":::80", ("::", 80)),
        ("::1:5432", ("::1", 5432)),
        ("*:*", (None, None)),
        ("*:22", (None, 22)),
        ("0.0.0.0:*", ("0.0.0.0", None)),
        ("10.0.0.1.5432", ("10.0.0.1", 5432)),  # BSD netstat
        ("*.*", (None, None)),
        ("fe80::1%lo0.123", ("fe80::1", 123)),
        ("[::ffff:10.1.2.3]:3306", ("10.1.2.3", 3306)),  # IPv4-mapped -> IPv4
        ("db.internal:postgresql", ("db.internal", 5432)),
        ("localhost:mysql", ("localhost", 3306)),
        ("ec2-52-0-70-16.compute-1.amazonaws.com:https", ("ec2-52-0-70-16.compute-1.amazonaws.com",
                                                          443)),
        ("localhost:search-agent", ("localhost", None)),  # unknown service name
        ("", (None, None)),
        ("x" * 5000, (None, None)),
    ],
)
def test_split_endpoint(text: str, expected: tuple) -> None:
    assert split_endpoint(text) == expected


def test_hex_endpoint_and_services() -> None:
    assert hex_endpoint("0100007F:0CEA") == ("127.0.0.1", 3306)
    assert hex_endpoint("00000000000000000000000001000000:0016") == ("::1", 22)
    assert hex_endpoint("0000000000000000FFFF00000100007F:1538") == ("127.0.0.1", 5432)
    assert hex_endpoint("zz:zz") == (None, None)
    assert service_port("redis") == 6379
    assert service_port("6379") == 6379
    assert service_port("*") is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_netaddr_total_on_any_text(s: str) -> None:
    _ip, port = split_endpoint(s)
    assert port is None or 0 <= port <= 65535
    assert normalize_state(s) in KERNEL_STATES
    hex_endpoint(s)


# --------------------------------------------------------------------------- corpus


@pytest.mark.parametrize("path", corpus_files("lsof"), ids=lambda p: p.name)
def test_every_corpus_file_parses_and_sniffs(corpus: Path, path: Path) -> None:
    data = path.read_bytes()
    assert lsof.sniff(data[:65536], path.name) >= 0.8
    res = lsof.parse(data, ParseContext(path=path.name))
    fds = res.tables["fds"]
    assert len(fds) > 0
    # One row per descriptor: per-thread repeats are gone.
    numbered = fds[fds["fd"].notna()]
    assert not numbered.duplicated(["pid", "fd"]).any()
    assert set(fds["tool"]) == {"lsof"}
    socks = res.tables["sockets"]
    if len(socks):
        assert set(socks["state"]) <= set(KERNEL_STATES)


def test_vault_established_to_mysql_after_tid_dedupe(corpus: Path) -> None:
    # 34 ESTABLISHED lines to :3306 in the file (one per Go/mysqlrouter thread), 3 sockets.
    res = _parse(corpus, "hotsos-vault-lsof_-b_+M_-n_-l_-P.out")
    fds, socks = res.tables["fds"], res.tables["sockets"]
    assert len(fds) == 2585
    assert len(socks) == 321
    to_db = socks[(socks["state"] == "ESTABLISHED") & (socks["remote_port"] == 3306)]
    assert sorted(zip(to_db["pid"], to_db["fd"], strict=True)) == [(302, 10), (302, 16), (8589, 5)]
    row = to_db[to_db["fd"] == 10].iloc[0]
    assert row["inode"] == 10700171  # Linux lsof: socket inode in DEVICE
    assert (row["local_ip"], row["local_port"]) == ("10.0.0.121", 35714)
    assert row["remote_ip"] == "10.0.0.119"
    assert row["proto"] == "tcp" and row["process"] == "mysqlrout"
    assert (socks["state"] == "LISTEN").sum() == 11


def test_vault_service_names_resolve_to_mysql_port(corpus: Path) -> None:
    # lsof without -P prints ":mysql"; the same three sockets as the -P capture.
    socks = _parse(corpus, "hotsos-vault-lsof_+M_-n_-l_-c.out").tables["sockets"]
    to_db = socks[(socks["state"] == "ESTABLISHED") & (socks["remote_port"] == 3306)]
    assert sorted(zip(to_db["pid"], to_db["fd"], strict=True)) == [(302, 10), (302, 16), (8589, 5)]


def test_kubernetes_header_after_330_spaces(corpus: Path) -> None:
    res = _parse(corpus, "hotsos-kubernetes-lsof_-b_+M_-n_-l_-P.out")
    fds, socks = res.tables["fds"], res.tables["sockets"]
    assert len(fds) == 3489 and len(socks) == 537
    inet = socks[socks["proto"].isin(["tcp", "tcp6", "udp", "udp6"])]
    assert (inet["state"] == "ESTABLISHED").sum() == 139
    assert (inet["state"] == "LISTEN").sum() == 15
    assert res.warnings == []


def test_non_root_unknown_rows(corpus: Path) -> None:
    # 639 lines = header + 133 NOFD ("opendir: Permission denied") + 505 descriptors.
    res = _parse(corpus, "jc-centos-7.7-lsof.out")
    fds = res.tables["fds"]
    assert len(fds) == 505
    assert len(res.tables["sockets"]) == 0
    cwd = fds[(fds["pid"] == 1) & (fds["kind"] == "cwd")].iloc[0]
    assert pd_isna(cwd["fd"]) and pd_isna(cwd["target"])  # "(readlink: Permission denied)"


def test_thread_rows_with_thread_command(corpus: Path) -> None:
    # centos lsof prints the thread name as COMMAND (NetworkMa / gmain / gdbus): one fd.
    fds = _parse(corpus, "jc-centos-7.7-lsof-sudo.out").tables["fds"]
    nm = fds[(fds["pid"] == 865) & (fds["fd"] == 20)]
    assert len(nm) == 1
    assert nm.iloc[0]["kind"] == "socket" and nm.iloc[0]["inode"] == 24206  # raw6: NODE
    assert len(fds) == 1758


def test_ably_redacted_close_wait(corpus: Path) -> None:
    res = _parse(corpus, "issue-ably-go-89-lsof-redacted-placeholders-close_wait.out")
    socks = res.tables["sockets"]
    assert list(socks["fd"]) == list(range(12, 20))
    assert (socks["state"] == "CLOSE_WAIT").sum() == 6
    assert (socks["state"] == "ESTABLISHED").sum() == 1
    assert set(socks["process"]) == {"{service}"} and set(socks["pid"]) == {27085}
    assert set(socks["remote_port"].dropna()) == {443}  # ":https"
    assert socks[socks["fd"] == 12].iloc[0]["inode"] == 42056997
    # The excerpt ends mid-NAME: that row keeps its fd/inode, not a half endpoint.
    last = socks[socks["fd"] == 19].iloc[0]
    assert last["state"] == "UNKNOWN" and pd_isna(last["remote_ip"])
    assert any("cut off" in w.message for w in res.warnings)


def test_kubo_headerless_close_wait(corpus: Path) -> None:
    res = _parse(corpus, "issue-ipfs-kubo-5046-lsof-headerless-close_wait.out")
    socks = res.tables["sockets"]
    cw = socks[socks["state"] == "CLOSE_WAIT"]
    assert len(cw) == 14
    assert set(cw["local_port"]) == {5001} and set(cw["local_ip"]) == {"127.0.0.1"}
    assert res.meta["pid"] == 1208
    fds = res.tables["fds"]
    assert len(fds) == 15 and fds[fds["fd"] == 248].iloc[0]["kind"] == "unknown"


def test_macos_hex_device_is_not_an_inode(corpus: Path) -> None:
    socks = _parse(corpus, "issue-crystal-8626-macos-lsof-hex-device-closed.out").tables["sockets"]
    assert socks["inode"].isna().all()
    assert (socks["state"] == "CLOSE_WAIT").sum() == 6
    assert (socks["state"] == "ESTABLISHED").sum() == 3
    assert socks[socks["fd"] == 53].iloc[0]["state"] == "CLOSE"  # "(CLOSED)"


def test_gorilla_tid_and_cant_identify_protocol(corpus: Path) -> None:
    res = _parse(corpus, "issue-gorilla-websocket-91-lsof-tid-cant-identify-protocol.out")
    socks = res.tables["sockets"].set_index("fd")
    assert socks.loc[89, "inode"] == 58104830  # sock row: inode from NODE
    assert socks.loc[89, "proto"] == "sock"
    assert socks.loc[85, "remote_port"] == 6379 and socks.loc[85, "inode"] == 58003277
    assert list(socks.loc[[86, 91], "state"]) == ["CLOSE_WAIT", "CLOSE_WAIT"]
    assert list(socks.loc[[86, 91], "proto"]) == ["tcp6", "tcp6"]
    assert set(socks["pid"]) == {18582}  # 22332 is the TID, not the pid


def test_polipo_sockets_and_ellipsis(corpus: Path) -> None:
    res = _parse(corpus, "issue-polipo-34-lsof-sock-cant-identify-ellipsis.out")
    fds = res.tables["fds"]
    assert len(fds) == 6 and set(fds["kind"]) == {"socket"}
    assert fds[fds["fd"] == 661].iloc[0]["inode"] == 3066108598
    assert res.warnings == []  # the "…" line is paste noise, not a problem


def test_oauth2_proxy_prompt_and_named_fds(corpus: Path) -> None:
    res = _parse(corpus, "issue-oauth2_proxy-44-lsof-p-go-binary.out")
    fds = res.tables["fds"]
    assert res.meta["pid"] == 2340 and res.meta["command_pid"] == 2340
    named = fds[fds["fd"].isna()]
    assert list(named["kind"]) == ["cwd", "rtd", "txt"] + ["mem"] * 6
    assert fds[fds["fd"] == 0].iloc[0]["kind"] == "dev"
    assert fds[fds["fd"] == 3].iloc[0]["inode"] == 98542
    assert [w.message for w in res.warnings if "not an lsof row" in w.message] == []


# --------------------------------------------------------------------------- -F output

FIELD_OUTPUT = """p4242
g4242
R1
cleakysvc
u1000
Lapp
fcwd
a\x20
l\x20
tDIR
D0xfe01
s4096
i2
n/
f3
au
l\x20
tIPv4
G0x80002;0x0
d81234
o0t0
PTCP
n10.0.0.5:41234->10.0.0.9:5432
TST=ESTABLISHED
TQR=0
TQS=17
f4
au
tIPv6
d81240
PTCP
n*:8080
TST=LISTEN
TQR=0
TQS=0
f5
au
tunix
D0x0
i81299
n/run/app.sock type=STREAM
TST=CONNECTED
f7
ar
tFIFO
D0xf
i81300
npipe
f9
au
tsock
D0x9
i99001
ncan't identify protocol
"""


def test_lsof_field_output() -> None:
    data = FIELD_OUTPUT.encode()
    assert lsof.sniff(data, "lsof.txt") >= 0.9
    for blob in (data, data.replace(b"\n", b"\0")):  # -F and -F0
        res = lsof.parse(blob, ParseContext())
        assert res.meta["format"] == "lsof-F" and res.meta["pid"] == 4242
        fds = res.tables["fds"].set_index("fd", drop=False)
        assert len(fds) == 6
        assert fds.loc[7, "kind"] == "pipe" and fds.loc[7, "inode"] == 81300
        socks = res.tables["sockets"].set_index("fd")
        assert socks.loc[3, "inode"] == 81234  # Linux: the d (device character) field
        assert socks.loc[3, "state"] == "ESTABLISHED" and socks.loc[3, "send_q"] == 17
        assert (socks.loc[3, "remote_ip"], socks.loc[3, "remote_port"]) == ("10.0.0.9", 5432)
        assert socks.loc[4, "proto"] == "tcp6" and socks.loc[4, "state"] == "LISTEN"
        assert socks.loc[5, "local_ip"] == "/run/app.sock"
        assert socks.loc[9, "inode"] == 99001


def test_lsof_field_output_minimal_fields() -> None:
    # lsof -F pcftDn -nP: no inode, protocol or TCP state: endpoints only, proto unknown.
    data = b"p4242\ncleakysvc\nf3\ntIPv4\nn10.0.0.5:41234->10.0.0.9:5432\n"
    socks = lsof.parse(data, ParseContext()).tables["sockets"]
    assert socks.iloc[0]["remote_port"] == 5432
    assert pd_isna(socks.iloc[0]["proto"]) and socks.iloc[0]["state"] == "UNKNOWN"


# --------------------------------------------------------------------------- robustness


def test_not_lsof_raises_parse_error() -> None:
    with pytest.raises(ParseError):
        lsof.parse(b"goroutine 1 [running]:\nmain.main()\n", ParseContext())
    assert lsof.sniff(b"Proto Recv-Q Send-Q Local Address Foreign Address State\n", "x") < 0.3


def test_hostile_lines_stay_fast() -> None:
    header = b"COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME\n"
    evil = (b"a 1 u 3u IPv4 1 0t0 TCP " + b" " * 200_000 + b"(\n"
            + b"a 1 u 4u IPv4 2 0t0 TCP 1.2.3.4:5" + b"(" * 100_000 + b"\n")
    start = time.monotonic()
    res = lsof.parse(header + evil, ParseContext())
    assert time.monotonic() - start < 2.0
    assert len(res.tables["fds"]) == 2


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_parse_never_crashes(blob: bytes) -> None:
    try:
        lsof.parse(blob, ParseContext())
    except ParseError:
        pass


def pd_isna(v: object) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


# --- BusyBox lsof (Alpine images) -------------------------------------------------------


def _busybox_lsof_of_self() -> str:
    """What BusyBox's lsof prints for this process: it walks /proc/PID/fd and writes
    ``printf("%d\\t%s\\t%s\\n", pid, exe, link)`` per entry (busybox procps/lsof.c).
    Debian's busybox is built without that applet, so the lines are written here from
    the same kernel links it would read."""
    pid = os.getpid()
    exe = os.readlink(f"/proc/{pid}/exe")
    lines = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            lines.append(f"{pid}\t{exe}\t{os.readlink(f'/proc/{pid}/fd/{fd}')}\n")
        except OSError:  # the listing's own descriptor, closed by now
            continue
    return "".join(lines)


def test_busybox_lsof_gives_descriptors_and_socket_inodes(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    served, _ = listener.accept()
    try:
        text = _busybox_lsof_of_self()
        assert lsof.sniff(text.encode(), "lsof.txt") > 0.5
        res = lsof.parse(text.encode(), ParseContext(path="lsof.txt"))
        fds = res.tables["fds"]
        assert res.meta["format"] == "busybox-lsof" and res.meta["pid"] == os.getpid()
        assert len(fds) == text.count("\n") and fds["fd"].isna().all()
        inodes = set(fds.loc[fds["kind"] == "socket", "inode"].dropna().astype(int))
        # For a socket, fstat's inode is the socket inode the link names.
        for s in (listener, client, served):
            assert os.fstat(s.fileno()).st_ino in inodes
        assert res.tables["sockets"].empty  # BusyBox prints no endpoints
    finally:
        for s in (served, client, listener):
            s.close()


def test_busybox_lsof_joins_ss_by_inode_and_counts_descriptors(tmp_path: Path) -> None:
    """With a real ``ss`` of the same moment, the sockets get their owner, and the
    descriptors are counted although none has a number."""
    ss = require_tool("ss")
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    served, _ = listener.accept()
    try:
        (tmp_path / "lsof.txt").write_text(text := _busybox_lsof_of_self())
        out = subprocess.run([ss, "-tanpie"], capture_output=True, text=True, check=True)
        (tmp_path / "ss.txt").write_text(out.stdout)
        analysis = build_tables(tmp_path)
        conns = analysis.tables["connections"]
        port = client.getsockname()[1]
        mine = conns[(conns["local_port"] == port) & (conns["state"] == "ESTABLISHED")]
        assert list(mine["pid"]) == [os.getpid()]
        check = analysis.series["db_check"]
        assert [v["fds_open"] for v in check.values()] == [text.count("\n")]
    finally:
        for s in (served, client, listener):
            s.close()
