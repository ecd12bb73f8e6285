"""/proc parsers: ``ls -l /proc/PID/fd`` (procfd), /proc/net tables (proc_net_tcp) and
/proc/PID/limits (limits), against the real corpus files.

Counts asserted on corpus files were taken from the files with grep/awk (st column, link
targets), independently of the parsers.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import corpus_files
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.parsers import limits, proc_net_tcp, procfd
from forensics.parsers.base import ParseContext, ParseError
from forensics.parsers.netaddr import KERNEL_STATES

MINE = (procfd, proc_net_tcp, limits)


def _read(corpus: Path, name: str) -> bytes:
    return (corpus / "procfd" / name).read_bytes()


def _best(data: bytes, name: str) -> tuple[float, str]:
    return max((m.sniff(data[:65536], name), m.KIND) for m in MINE)


# --------------------------------------------------------------------------- every file


@pytest.mark.parametrize("path", corpus_files("procfd"), ids=lambda p: p.name)
def test_every_corpus_file_goes_to_the_right_parser(corpus: Path, path: Path) -> None:
    data = path.read_bytes()
    score, kind = _best(data, path.name)
    if "fdinfo" in path.name:
        # /proc/PID/fdinfo/N is not a listing of descriptors: no parser of ours claims it.
        assert score < 0.3
        for mod in MINE:
            with pytest.raises(ParseError):
                mod.parse(data, ParseContext())
        return
    expected = "procfd" if "ls-l-proc-fd" in path.name else "proc_net_tcp"
    assert kind == expected and score >= 0.8
    mod = procfd if expected == "procfd" else proc_net_tcp
    res = mod.parse(data, ParseContext(path=path.name))
    assert any(len(df) for df in res.tables.values())
    if "sockets" in res.tables:
        socks = res.tables["sockets"]
        assert set(socks["state"]) <= set(KERNEL_STATES)
        assert socks["pid"].isna().all() and socks["fd"].isna().all()


# --------------------------------------------------------------------------- procfd


def test_junos_socket_leak_listing(corpus: Path) -> None:
    res = procfd.parse(_read(corpus, "issue-junos_exporter-170-ls-l-proc-fd-socket-leak-part1.txt"),
                       ParseContext(pid=1234))
    fds = res.tables["fds"]
    assert len(fds) == 13 and set(fds["kind"]) == {"socket"}
    assert sorted(fds["fd"]) == [36, *range(350, 362)]  # ls sorted them as text
    assert fds[fds["fd"] == 36].iloc[0]["inode"] == 21663249
    assert fds[fds["fd"] == 36].iloc[0]["target"] == "socket:[21663249]"
    assert set(fds["pid"]) == {1234} and set(fds["tool"]) == {"procfd"}
    assert any("cut off" in w.message for w in res.warnings)  # the trailing "lrwx------"


def test_junos_part2(corpus: Path) -> None:
    fds = procfd.parse(_read(corpus, "issue-junos_exporter-170-ls-l-proc-fd-socket-leak-part2.txt"),
                       ParseContext(pid=1234)).tables["fds"]
    assert sorted(fds["fd"]) == [8, 80, *range(797, 808)]
    assert fds[fds["fd"] == 8].iloc[0]["inode"] == 33285


def test_selinux_dot_and_localized_month(corpus: Path) -> None:
    data = _read(corpus, "issue-evilsocket-ftrace-2-ls-l-proc-fd-selinux-dot-localized-month.txt")
    fds = procfd.parse(data, ParseContext(pid=77)).tables["fds"].set_index("fd")
    assert sorted(fds.index) == [15, 16, 17, 18, 19]
    assert fds.loc[16, "inode"] == 7004576 and fds.loc[18, "inode"] == 7004816
    assert fds.loc[15, "kind"] == "file"
    assert fds.loc[15, "target"] == "/sys/kernel/debug/tracing/trace_pipe"
    assert fds.loc[15, "pid"] == 77  # "$(pgrep ...)" in the prompt: the context's pid


def test_procfd_inline_variants() -> None:
    text = """$ ls -la /proc/4242/fd
total 0
dr-x------ 2 app app  0 Nov 27 19:09 .
dr-xr-xr-x 9 app app  0 Nov 27 19:09 ..
lr-x------ 1 app app 64 2024-10-24 12:19 0 -> /dev/null
l-wx------ 1 app app 64 2024-10-24 12:19 2 -> '/tmp/log file (deleted)'
lrwx------ 1 app app 64 2024-10-24 12:19 10 -> 'socket:[81234]'
lr-x------ 1 app app 64 2024-10-24 12:19 7 -> pipe:[11084]
lrwx------ 1 app app 64 2024-10-24 12:19 9 -> anon_inode:[eventpoll]
lrwx------ 1 app app 64 2024-10-24 12:19 11 -> anon_inode:inotify
/proc/99/fd:
lrwx------ 1 app app 64 10月 24 12:19 3 -> socket:[555]
"""
    res = procfd.parse(text.encode(), ParseContext())
    fds = res.tables["fds"]
    main = fds[fds["pid"] == 4242].set_index("fd")
    assert main.loc[10, "kind"] == "socket" and main.loc[10, "inode"] == 81234
    assert main.loc[10, "target"] == "socket:[81234]"  # shell quoting removed
    assert main.loc[2, "target"] == "/tmp/log file (deleted)"
    assert main.loc[0, "kind"] == "dev"
    assert main.loc[7, "kind"] == "pipe" and main.loc[7, "inode"] == 11084
    assert main.loc[9, "kind"] == "anon_inode" and pd.isna(main.loc[9, "inode"])
    assert main.loc[11, "kind"] == "anon_inode"
    other = fds[fds["pid"] == 99]
    assert list(other["inode"]) == [555]
    assert res.warnings == []


# --------------------------------------------------------------------------- /proc/net


def _sockets(corpus: Path, name: str) -> pd.DataFrame:
    return proc_net_tcp.parse(_read(corpus, name), ParseContext(path=name)).tables["sockets"]


@pytest.mark.parametrize(
    ("name", "proto", "counts"),
    [
        ("hotsos-vault-proc-net-tcp.txt", "tcp",
         {"ESTABLISHED": 18, "TIME_WAIT": 105, "LISTEN": 8}),
        ("hotsos-vault-proc-net-tcp6.txt", "tcp6", {"ESTABLISHED": 2, "LISTEN": 3}),
        ("hotsos-kubernetes-proc-net-tcp.txt", "tcp",
         {"ESTABLISHED": 86, "TIME_WAIT": 6, "LISTEN": 5}),
        ("hotsos-kubernetes-proc-net-tcp6.txt", "tcp6",
         {"ESTABLISHED": 55, "TIME_WAIT": 70, "LISTEN": 5}),
        ("jc-linux-proc-net_tcp.txt", "tcp",
         {"ESTABLISHED": 1, "FIN_WAIT1": 6, "TIME_WAIT": 15, "CLOSE_WAIT": 1, "LISTEN": 4}),
        ("jc-linux-proc-net_tcp6.txt", "tcp6", {"TIME_WAIT": 7, "LISTEN": 1}),
    ],
)
def test_proc_net_tcp_state_counts(corpus: Path, name: str, proto: str, counts: dict) -> None:
    socks = _sockets(corpus, name)
    assert set(socks["proto"]) == {proto}
    assert socks["state"].value_counts().to_dict() == counts
    assert set(socks["tool"]) == {"proc_net_tcp"}


def test_proc_net_tcp_row_values(corpus: Path) -> None:
    vault = _sockets(corpus, "hotsos-vault-proc-net-tcp.txt")
    first = vault.iloc[0]  # 0100007F:0CEA ... 0A ... inode 337245
    assert (first["local_ip"], first["local_port"], first["state"]) == ("127.0.0.1", 3306,
                                                                       "LISTEN")
    assert first["inode"] == 337245 and pd.isna(first["remote_port"])
    # TIME_WAIT sockets have inode 0 in the kernel table: null, so joins cannot match them.
    assert vault[vault["state"] == "TIME_WAIT"]["inode"].isna().all()

    jc = _sockets(corpus, "jc-linux-proc-net_tcp.txt")
    cw = jc[jc["state"] == "CLOSE_WAIT"].iloc[0]
    assert (cw["local_ip"], cw["local_port"]) == ("192.168.42.128", 54352)
    assert (cw["remote_ip"], cw["remote_port"]) == ("152.199.4.33", 443)
    assert cw["recv_q"] == 82 and cw["inode"] == 149098  # rx_queue 0x52
    assert cw["timer"].startswith("keepalive (")

    v6 = _sockets(corpus, "jc-linux-proc-net_tcp6.txt")
    tw = v6.iloc[1]  # 4606012600F1019E000000004C3A0000:E700 -> ...:0050, timer 03:000003D1
    assert tw["local_ip"] == "2601:646:9e01:f100::3a4c" and tw["local_port"] == 59136
    assert tw["remote_ip"] == "2a03:2880:f131:83:face:b00c:0:25de" and tw["remote_port"] == 80
    assert tw["timer"] == "timewait (9.77/0/0)"


def test_proc_net_unix(corpus: Path) -> None:
    socks = _sockets(corpus, "jc-linux-proc-net_unix.txt")
    assert len(socks) == 130 and set(socks["proto"]) == {"unix"}
    # awk: Flags 00010000 -> 25 listening; St 03 -> 69 connected; St 01 -> 36.
    assert socks["state"].value_counts().to_dict() == {"ESTABLISHED": 69, "CLOSE": 36,
                                                       "LISTEN": 25}
    first = socks.iloc[0]
    assert first["inode"] == 42776
    assert first["local_ip"] == "/var/snap/lxd/common/lxd/unix.socket"


def _summary(corpus: Path, name: str) -> dict[tuple[str, str], int]:
    df = proc_net_tcp.parse(_read(corpus, name), ParseContext()).tables["socket_summary"]
    assert set(df["tool"]) == {"sockstat"}
    return {(p, s): int(c) for p, s, c in zip(df["proto"], df["state"], df["count"],
                                             strict=True)}


def test_sockstat_numbers(corpus: Path) -> None:
    vault = _summary(corpus, "hotsos-vault-proc-net-sockstat.txt")
    assert vault[("all", "used")] == 259
    assert vault[("tcp", "inuse")] == 25 and vault[("tcp", "alloc")] == 314
    assert vault[("tcp", "TIME_WAIT")] == 105  # = st 06 rows of the same host's net/tcp
    assert vault[("tcp", "orphaned")] == 0 and vault[("tcp", "mem_pages")] == 84
    k8s = _summary(corpus, "hotsos-kubernetes-proc-net-sockstat.txt")
    k8s6 = _summary(corpus, "hotsos-kubernetes-proc-net-sockstat6.txt")
    assert k8s[("tcp", "TIME_WAIT")] == 76  # = 6 (tcp) + 70 (tcp6) TIME_WAIT rows
    assert k8s6[("tcp6", "inuse")] == 60 and k8s6[("raw6", "inuse")] == 1
    both = _summary(corpus, "issue-netdata-743-proc-net-sockstat-and-sockstat6.txt")
    assert both[("all", "used")] == 4205 and both[("tcp", "TIME_WAIT")] == 800
    assert both[("tcp", "orphaned")] == 6 and both[("tcp6", "inuse")] == 1772
    assert both[("frag6", "memory")] == 0


def test_udp_section_by_header_and_echo() -> None:
    text = """# cat /proc/net/udp
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 34000 2 0000000000000000 0
# cat /proc/net/tcp
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0500000A:A1B2 0900000A:1538 01 00000000:00000000 02:00000BB8 00000000  1000        0 81234 1 0000000000000000 20 4 30 10 -1
"""  # noqa: E501
    socks = proc_net_tcp.parse(text.encode(), ParseContext()).tables["sockets"]
    udp, tcp = socks.iloc[0], socks.iloc[1]
    assert (udp["proto"], udp["state"], udp["local_port"]) == ("udp", "CLOSE", 53)
    assert (tcp["proto"], tcp["state"]) == ("tcp", "ESTABLISHED")
    assert (tcp["remote_ip"], tcp["remote_port"], tcp["inode"]) == ("10.0.0.9", 5432, 81234)
    assert tcp["timer"] == "keepalive (30.00/0/0)"


def test_big_proc_net_tcp_is_vectorised(corpus: Path) -> None:
    data = _read(corpus, "hotsos-vault-proc-net-tcp.txt")
    lines = data.split(b"\n")
    big = b"\n".join([lines[0], *(lines[1:-1] * 400)]) + b"\n"  # 52 400 rows
    start = time.monotonic()
    socks = proc_net_tcp.parse(big, ParseContext()).tables["sockets"]
    assert len(socks) == 131 * 400
    assert time.monotonic() - start < 10.0  # generous: the CI box is shared


# --------------------------------------------------------------------------- limits

PROC_LIMITS = """Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             63536                63536                processes 
Max open files            1024                 4096                 files     
Max locked memory         65536                65536                bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       63536                63536                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
"""  # noqa: W291


def test_proc_limits() -> None:
    data = ("$ cat /proc/4242/limits\n" + PROC_LIMITS).encode()
    assert limits.sniff(data, "limits.txt") >= 0.9
    res = limits.parse(data, ParseContext())
    df = res.tables["limits"].set_index("resource")
    assert len(df) == 16 and set(df["pid"]) == {4242}
    assert (df.loc["Max open files", "soft"], df.loc["Max open files", "hard"]) == (1024, 4096)
    assert df.loc["Max open files", "unit"] == "files"
    assert pd.isna(df.loc["Max cpu time", "soft"]) and pd.isna(df.loc["Max cpu time", "hard"])
    assert df.loc["Max stack size", "soft"] == 8388608 and pd.isna(df.loc["Max stack size",
                                                                          "hard"])
    assert df.loc["Max nice priority", "soft"] == 0 and pd.isna(df.loc["Max nice priority",
                                                                         "unit"])
    assert res.meta["max_open_files"] == 1024 and res.warnings == []


def test_prlimit_output_uses_kernel_names() -> None:
    text = """RESOURCE   DESCRIPTION                             SOFT      HARD UNITS
NOFILE     max number of open files                1024    524288 files
NPROC      max number of processes                63536     63536 processes
AS         address space limit                unlimited unlimited bytes
"""
    df = limits.parse(text.encode(), ParseContext(pid=9)).tables["limits"].set_index("resource")
    assert df.loc["Max open files", "hard"] == 524288
    assert pd.isna(df.loc["Max address space", "soft"])
    assert set(df["pid"]) == {9}


def test_limits_does_not_claim_other_tables(corpus: Path) -> None:
    for name in ("hotsos-vault-proc-net-tcp.txt", "hotsos-vault-proc-net-sockstat.txt",
                 "issue-junos_exporter-170-ls-l-proc-fd-socket-leak-part1.txt"):
        assert limits.sniff(_read(corpus, name), name) < 0.3
    assert proc_net_tcp.sniff(PROC_LIMITS.encode(), "limits") < 0.3
    assert procfd.sniff(PROC_LIMITS.encode(), "limits") < 0.3


# --------------------------------------------------------------------------- robustness


def test_hostile_lines_stay_fast() -> None:
    start = time.monotonic()
    with pytest.raises(ParseError):
        limits.parse(b"Max " + b" a" * 100_000 + b"\n", ParseContext())
    with pytest.raises(ParseError):
        procfd.parse(b"lrwx------ " + b"1" * 100_000 + b" x\n", ParseContext())
    with pytest.raises(ParseError):
        proc_net_tcp.parse(b"  0: " + b"0" * 200_000 + b"\n", ParseContext())
    assert time.monotonic() - start < 3.0


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_parsers_never_crash(blob: bytes) -> None:
    for mod in MINE:
        try:
            mod.parse(blob, ParseContext())
        except ParseError:
            pass
