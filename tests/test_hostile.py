"""Hostile and broken bundles, built here by the tests themselves: the tool must stay safe
(nothing read through a link, nothing written outside the output path), bounded (bytes,
members, nesting, artifacts, parser time) and loud (every skipped member and every limit
hit named in the report, and an exit code that says what happened).

Real text comes from the shared corpus and the sample bundles wherever a test needs a
real artifact (a goroutine block, an lsof listing, a heap profile); the hostile part is
the wrapping: the names, links, bombs, encodings and sizes customers' archives really
arrive with.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import random
import re
import signal
import stat
import tarfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from forensics.bundle import MAX_WARNINGS, BundleWarning, Limits, Member, read_bundle
from forensics.cli import app
from forensics.inventory import Artifact
from forensics.parsers import PARSER_MODULES, available, load
from forensics.parsers import profile_proto as pb
from forensics.parsers.base import ParseContext, ParseError, ParseResult
from forensics.pipeline import analyze, build_tables, parse_artifact

MiB = 1024 * 1024
SAMPLE = ROOT / "sample_bundles" / "tx-go1.27.tar.gz"
TX_DUMP = "goroutines/issue-golang-go-23922-windows-rows-tx-awaitDone.txt"
LSOF = "lsof/jc-ubuntu-18.04-lsof.out"
runner = CliRunner()


# --------------------------------------------------------------------------- helpers
def tar_bundle(path: Path, members: list[tuple[str, bytes]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_764_237_300
            tf.addfile(info, io.BytesIO(data))
    return path


def tar_bytes(members: list[tuple[str, bytes]], mode: str = "w") -> bytes:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode=mode) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return bio.getvalue()


def zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return bio.getvalue()


def sample_members() -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(SAMPLE) as tf:
        return [(m, tf.extractfile(m).read()) for m in tf.getmembers() if m.isfile()]


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def warnings_text(analysis) -> str:
    return "\n".join(f"{w['path']}: {w['message']}" for w in analysis.warnings)


def cli(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def dump(corpus) -> bytes:
    """A real goroutine dump (Go 1.10 on Windows, leaked Rows/Tx), cut at its end by the
    reporter: 5 goroutines (4 chan receive, 1 semacquire), parsed with a truncation warning."""
    return (corpus / TX_DUMP).read_bytes()


def count_goroutines(data: bytes) -> Counter:
    """Goroutines per state in a debug=2 dump (one row per goroutine)."""
    res = load("goroutines").parse(data, ParseContext(path="g.txt"))
    return Counter(res.tables["goroutines"]["state"])


# ------------------------------------------------------------------------- archives
def test_climbing_and_absolute_names_never_leave_the_output_path(tmp_path, monkeypatch, dump):
    """``..`` and absolute member names are refused by name; ``analyze -o --tables`` then
    writes exactly its two outputs and nothing anywhere else, whatever the names say."""
    tag = uuid.uuid4().hex[:8]
    victims = [f"../../escape-{tag}.txt", f"/tmp/abs-{tag}.txt", f"r/../../../up-{tag}.txt",
               f"C:/win-{tag}.txt", f"..\\..\\win-{tag}.txt"]
    src = tmp_path / "in"
    src.mkdir()
    bundle = tar_bundle(src / "b.tar.gz", [(n, dump) for n in victims]
                        + [("host/round-1/goroutines.txt", dump)], "w:gz")
    zipped = src / "b.zip"
    zipped.write_bytes(zip_bytes([(n, dump) for n in victims]
                                 + [("host/goroutines.txt", dump)]))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    for b in (bundle, zipped):
        code, _, err = cli("analyze", str(b), "-o", "out/report.html", "--tables", "out/t")
        assert code == 3, err  # analysed, with warnings about the refused members
        for name in victims:
            assert f"{name}: skipped: absolute path or '..' in member name" in err
    after = tree(tmp_path)
    new = after - before
    assert all(p.startswith("work/out") for p in new), sorted(new)
    assert "work/out/report.html" in new and "work/out/t/goroutines.parquet" in new
    assert not list(tmp_path.rglob(f"*{tag}*")) and not Path(f"/tmp/abs-{tag}.txt").exists()
    html = (work / "out" / "report.html").read_text()
    assert f"escape-{tag}.txt" in html and "absolute path or" in html  # named in the report


def test_links_to_passwd_and_to_members_are_never_followed(tmp_path, dump):
    passwd = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").exists() else b"root:x:0:0"
    p = tmp_path / "links.tar"
    with tarfile.open(p, "w") as tf:
        info = tarfile.TarInfo("real/goroutines.txt")
        info.size = len(dump)
        tf.addfile(info, io.BytesIO(dump))
        for name, typ, target in [("sym-passwd", tarfile.SYMTYPE, "/etc/passwd"),
                                  ("hard-passwd", tarfile.LNKTYPE, "/etc/passwd"),
                                  ("sym-member", tarfile.SYMTYPE, "real/goroutines.txt"),
                                  ("hard-member", tarfile.LNKTYPE, "real/goroutines.txt"),
                                  ("sym-up", tarfile.SYMTYPE, "../../../../etc/shadow")]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = typ, target
            tf.addfile(info)
    b = read_bundle(p)
    assert [m.path for m in b.members] == ["real/goroutines.txt"]
    reasons = {w.path: w.message for w in b.warnings}
    assert reasons["sym-passwd"] == "skipped: symbolic link to '/etc/passwd'"
    assert reasons["hard-passwd"] == "skipped: hard link to '/etc/passwd'"
    assert reasons["hard-member"] == "skipped: hard link to 'real/goroutines.txt'"
    assert "symbolic link" in reasons["sym-member"] and "symbolic link" in reasons["sym-up"]

    # zip: a symlink entry is a file whose *content* is the target path
    z = tmp_path / "links.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("passwd-link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
        zf.writestr("goroutines.txt", dump)
    bz = read_bundle(z)
    assert [m.path for m in bz.members] == ["goroutines.txt"]
    assert {w.path: w.message for w in bz.warnings} == {"passwd-link": "skipped: symbolic link"}

    # folder: links to a system file and to a sibling are both passed over
    d = tmp_path / "dir"
    d.mkdir()
    (d / "goroutines.txt").write_bytes(dump)
    (d / "passwd").symlink_to("/etc/passwd")
    (d / "again.txt").symlink_to(d / "goroutines.txt")
    (d / "loop").symlink_to(d)
    bd = read_bundle(d)
    assert [m.path for m in bd.members] == ["goroutines.txt"]
    assert sorted(w.path for w in bd.warnings) == ["again.txt", "loop", "passwd"]
    for bundle in (b, bz, bd):
        assert all(passwd[:64] not in m.data for m in bundle.members)


def test_devices_and_fifos_are_skipped_without_blocking(tmp_path):
    p = tmp_path / "dev.tar"
    with tarfile.open(p, "w") as tf:
        for name, typ in [("dev/zero", tarfile.CHRTYPE), ("dev/sda", tarfile.BLKTYPE),
                          ("fifo", tarfile.FIFOTYPE)]:
            info = tarfile.TarInfo(name)
            info.type, info.devmajor, info.devminor = typ, 1, 5
            tf.addfile(info)
    b = read_bundle(p)
    assert not b.members
    assert {w.path for w in b.warnings} == {"dev/zero", "dev/sda", "fifo"}
    assert all("not a regular file" in w.message for w in b.warnings)
    d = tmp_path / "d"
    d.mkdir()
    os.mkfifo(d / "goroutines.txt")  # opening it for reading would block forever
    t0 = time.monotonic()
    bd = read_bundle(d)
    assert time.monotonic() - t0 < 5
    assert not bd.members and bd.warnings[0].message == "skipped: not a regular file"


def test_duplicate_names_are_all_kept_under_distinct_names(tmp_path):
    p = tar_bundle(tmp_path / "dup.tar", [("a.txt", b"1"), ("a.txt#2", b"x"), ("a.txt", b"2"),
                                          ("a.txt", b"3"), ("a.txt", b"4")])
    b = read_bundle(p)
    assert [(m.path, m.data) for m in b.members] == [
        ("a.txt", b"1"), ("a.txt#2", b"x"), ("a.txt#3", b"2"), ("a.txt#4", b"3"),
        ("a.txt#5", b"4")]
    assert [w.message for w in b.warnings] == [
        f"duplicate member name: later copy kept as a.txt#{n}" for n in (3, 4, 5)]


def test_tens_of_thousands_of_tiny_members_stay_bounded(tmp_path, dump):
    """30,000 members (half empty, half a real goroutine block): reading stops at the member
    limit, parsing at the artifact limit, both said out loud, in seconds."""
    block = dump.split(b"\n\n")[1] + b"\n"
    p = tar_bundle(tmp_path / "many.tar",
                   [(f"r/{i:05}.txt", block if i % 2 else b"") for i in range(30_000)])
    t0 = time.monotonic()
    a = analyze(p, Limits(max_members=20_000, max_artifacts=40))
    assert time.monotonic() - t0 < 60
    assert len(a.bundle.members) == 20_000
    states = Counter((x.kind, x.status) for x in a.artifacts)
    assert states == {("unknown", "warning"): 10_000, ("goroutines", "failed"): 9_960,
                      ("goroutines", "ok"): 40}
    text = warnings_text(a)
    assert "reading stopped at 20000 members (member limit)" in text
    assert "the first 40 (in path order) are analysed (artifact limit, --max-artifacts)" in text
    assert "r/00000.txt: empty file" in text
    assert a.exit_code() == 3


def _gzip_bomb(gib: int) -> bytes:
    """``gib`` GiB of zeros in ~1 KB per MiB: concatenated gzip members, as gzip allows."""
    one = gzip.compress(b"\0" * MiB, compresslevel=9)
    return one * (gib * 1024)


def test_gzip_bomb_inflating_to_16_gib_is_cut_at_the_member_limit(tmp_path, dump):
    bomb = _gzip_bomb(16)
    assert len(bomb) < 20 * MiB
    p = tar_bundle(tmp_path / "bomb.tar", [("round-1/heap.pb.gz", bomb),
                                           ("round-1/goroutines.txt", dump)])
    t0 = time.monotonic()
    a = analyze(p, Limits(max_member_bytes=32 * MiB))
    assert time.monotonic() - t0 < 30
    assert [m.path for m in a.bundle.members] == ["round-1/goroutines.txt"]
    assert "round-1/heap.pb.gz: skipped: inflates to more than 32 MiB (member size limit: a " \
           "gzip bomb, or a capture too big to read)" in warnings_text(a)
    assert a.exit_code() == 3


def test_declared_giant_tar_member_is_not_read(tmp_path, dump):
    """A header claiming 7 GiB (and the bytes not even there): skipped by its declared
    size, the members after it still read."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo("huge.txt")
        info.size = 7 << 30  # the most a plain ustar header holds
        tf.addfile(info)  # header only
    p = tmp_path / "giant.tar"
    p.write_bytes(raw.getvalue()[:512] + tar_bytes([("goroutines.txt", dump)]))
    b = read_bundle(p, Limits(max_member_bytes=64 * MiB))
    assert b.warnings[0] == BundleWarning(
        "huge.txt", "skipped: 7168 MiB exceeds the member size limit (64 MiB)")


def test_zip_bombs_honest_and_lying_sizes(tmp_path, dump):
    zeros = b"\0" * (64 * MiB)
    honest = tmp_path / "honest.zip"
    with zipfile.ZipFile(honest, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("heap.pb", zeros)
        zf.writestr("goroutines.txt", dump)
    b = read_bundle(honest, Limits(max_member_bytes=8 * MiB))
    assert [m.path for m in b.members] == ["goroutines.txt"]
    assert b.warnings[0].path == "heap.pb"
    assert b.warnings[0].message == "skipped: 64 MiB exceeds the member size limit (8 MiB)"
    # The same archive with the sizes in both headers rewritten to 100 bytes: the declared
    # size passes, the read is still bounded and the member refused with a reason.
    raw = bytearray(honest.read_bytes())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = raw.find(sig)
        raw[i + off:i + off + 4] = (100).to_bytes(4, "little")
    lying = tmp_path / "lying.zip"
    lying.write_bytes(bytes(raw))
    t0 = time.monotonic()
    bl = read_bundle(lying, Limits(max_member_bytes=8 * MiB))
    assert time.monotonic() - t0 < 10
    assert [m.path for m in bl.members] == ["goroutines.txt"]
    assert bl.warnings and bl.warnings[0].path == "heap.pb"
    assert bl.warnings[0].message.startswith(("unreadable member", "skipped"))


def test_truncated_archives_keep_what_is_whole(tmp_path, dump):
    noise = random.Random(3).randbytes
    members = [("round-1/goroutines.txt", dump), ("round-2/heap.pb", noise(60_000)),
               ("round-3/heap.pb", noise(60_000))]
    full = tar_bytes(members, "w:gz")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(full[: int(len(full) * 0.7)])
    a = build_tables(cut)
    assert [m.path for m in a.bundle.members] == ["round-1/goroutines.txt", "round-2/heap.pb"]
    assert any("truncated" in w["message"] or "damaged" in w["message"] for w in a.warnings)
    assert a.exit_code() == 3

    z = zip_bytes(members)
    zcut = tmp_path / "cut.zip"
    zcut.write_bytes(z[: len(z) // 2])  # no central directory any more
    code, _, err = cli("analyze", str(zcut), "-o", str(tmp_path / "r.json"))
    assert code == 4
    assert "nested archive unreadable" in err or "not a readable archive" in err

    # Cut inside the second member's header: tarfile itself ends quietly there.
    first = 512 + -(-len(dump) // 512) * 512
    mid_header = tmp_path / "mid.tar"
    mid_header.write_bytes(tar_bytes(members)[: first + 100])
    b = read_bundle(mid_header)
    assert [(m.path, m.data) for m in b.members] == [("round-1/goroutines.txt", dump)]
    assert [w.message for w in b.warnings] == [
        "archive truncated inside a member header (1 members read)"]


def test_tar_in_zip_in_tar_and_the_nesting_limit(tmp_path, dump):
    inner_tar = tar_bytes([("round-1/goroutines.txt", dump)], "w:gz")
    middle_zip = zip_bytes([("capture.tar.gz", inner_tar)])
    p = tar_bundle(tmp_path / "outer.tar", [("upload/ticket.zip", middle_zip)])
    a = build_tables(p)
    art = next(x for x in a.artifacts if x.kind == "goroutines")
    assert art.path == "upload/ticket.zip/capture.tar.gz/round-1/goroutines.txt"
    assert len(a.tables["goroutines"]) == 5
    assert [w["message"] for w in a.warnings] == [art.message]  # only the dump's own cut

    inner: bytes = tar_bytes([("g.txt", dump)])
    for level in (4, 3, 2):
        inner = tar_bytes([(f"l{level}.tar", inner)])
    p2 = tar_bundle(tmp_path / "deep.tar", [("l1.tar", inner)])
    a2 = build_tables(p2)
    assert not a2.bundle.members
    assert a2.warnings == [{"path": "l1.tar/l2.tar/l3.tar/l4.tar", "message":
                            "skipped: archive nested more than 3 levels deep (nesting limit)"}]
    assert a2.exit_code() == 4


def test_wrong_extensions_content_decides(tmp_path, corpus, dump):
    lsof = (corpus / LSOF).read_bytes()
    inner = tar_bytes([("round-1/heap.pb.gz", dump), ("round-1/netstat.txt", lsof),
                       ("round-1/notes.zip", b"just text, not a zip\n")], "w:gz")
    p = tmp_path / "bundle.zip"  # a .tar.gz under a .zip name
    p.write_bytes(inner)
    a = build_tables(p)
    kinds = {x.path: (x.kind, x.status) for x in a.artifacts}
    assert kinds["round-1/heap.pb.gz"][0] == "goroutines"
    assert kinds["round-1/netstat.txt"][0] == "lsof"
    assert kinds["round-1/notes.zip"][0] == "unknown"
    assert len(a.tables["goroutines"]) == 5


def test_empty_members_and_empty_bundles(tmp_path, dump):
    p = tar_bundle(tmp_path / "e.tar", [("goroutines.txt", dump), ("lsof.txt", b""),
                                        ("heap.pb.gz", b""), ("ss.txt", b"   \n\n")])
    a = build_tables(p)
    st = {x.path: (x.status, x.message) for x in a.artifacts}
    for name in ("lsof.txt", "heap.pb.gz", "ss.txt"):
        assert st[name] == ("warning", "empty file"), name
    assert a.exit_code() == 3
    empty_tar = tar_bundle(tmp_path / "none.tar", [])
    code, _, _ = cli("analyze", str(empty_tar), "-o", str(tmp_path / "r.md"))
    assert code == 4
    zero = tmp_path / "zero.tar.gz"
    zero.write_bytes(b"")
    code, _, err = cli("analyze", str(zero), "-o", str(tmp_path / "r2.md"))
    assert code == 4 and "warning: zero.tar.gz: empty file" in err


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le-bom", "utf-16-be-bom", "crlf",
                                      "latin1-byte", "crlf-utf16"])
def test_encodings_parse_like_the_original(dump, encoding):
    want = count_goroutines(dump)
    assert want == {"chan receive": 4, "semacquire": 1}
    text = dump.decode("utf-8")
    data = {
        "utf-16": lambda: text.encode("utf-16"),
        "utf-16-le-bom": lambda: b"\xff\xfe" + text.encode("utf-16-le"),
        "utf-16-be-bom": lambda: b"\xfe\xff" + text.encode("utf-16-be"),
        "crlf": lambda: text.replace("\n", "\r\n").encode(),
        "latin1-byte": lambda: dump.replace(b"database/sql.(*Tx)", b"database/sql.(*T\xe9x)"),
        "crlf-utf16": lambda: text.replace("\n", "\r\n").encode("utf-16"),
    }[encoding]()
    mod = next(m for m in available() if m.KIND == "goroutines")
    assert mod.sniff(data[:65536], "goroutines.txt") >= 0.3
    assert count_goroutines(data) == want


def test_lsof_in_utf16_with_crlf_and_a_latin1_name(corpus):
    raw = (corpus / LSOF).read_bytes()
    lsof = load("lsof")
    want = lsof.parse(raw, ParseContext(path="lsof.txt"))
    got = lsof.parse(raw.decode("utf-8").replace("\n", "\r\n").encode("utf-16"),
                     ParseContext(path="lsof.txt"))
    for t in ("fds", "sockets"):
        assert len(got.tables[t]) == len(want.tables[t]) > 0
    # A latin-1 byte in a NAME: the row is kept, the byte shown as U+FFFD, never a crash.
    mangled = raw.replace(b"/dev/pts/0", b"/dev/pt\xfcs/0", 1)
    res = lsof.parse(mangled, ParseContext(path="lsof.txt"))
    assert len(res.tables["fds"]) == len(want.tables["fds"]) == 774
    assert (res.tables["fds"]["target"] == "/dev/pt\ufffds/0").sum() == 1


# -------------------------------------------------------------------------- parsers
@pytest.fixture(scope="module")
def heap_pb() -> bytes:
    """The round-1 heap profile of the tx sample bundle (a real Go 1.27 profile.proto)."""
    with tarfile.open(SAMPLE) as tf:
        m = next(m for m in tf.getmembers() if m.name.endswith("round-1/heap.pb.gz"))
        return gzip.decompress(tf.extractfile(m).read())


def _contract(kind: str, data: bytes) -> ParseResult | None:
    try:
        return load(kind).parse(data, ParseContext(path="x"))
    except ParseError as exc:
        assert str(exc)
        return None


def test_malformed_protobuf_and_huge_varints(heap_pb):
    good = _contract("heap_pprof", heap_pb)
    assert good is not None and len(good.tables["heap_samples"]) > 0
    cases = {
        "cut in a sample": heap_pb[: len(heap_pb) // 3],
        "cut in the string table": heap_pb[:-7],
        "11-byte varint": b"\x48" + b"\xff" * 10 + b"\x01" + heap_pb,
        "endless varint": heap_pb + b"\x48" + b"\xff" * 5000,
        "length 2**62": b"\x12" + b"\x80" * 8 + b"\x40" + heap_pb,
        "sample with 64-bit ids": b"\x12\x0b\x0a\x09" + b"\xff" * 8 + b"\x01" + heap_pb,
        "wire type 7": b"\x0f" + heap_pb,
        "string index out of range": _profile_with_bad_indexes(),
    }
    for label, data in cases.items():
        res = _contract("heap_pprof", data)
        art = Artifact(Member("heap.pb", data), "heap_pprof")
        parse_artifact(art)
        assert art.status in ("ok", "warning", "failed"), label
        if res is None:
            assert art.status == "failed" and art.message, label


def _profile_with_bad_indexes() -> bytes:
    p = pb.Profile()
    p.string_table.extend([b"", b"inuse_space", b"bytes"])
    p.sample_type.add(type=1, unit=2)
    p.sample_type.add(type=99, unit=-5)
    p.function.add(id=1, name=10_000, filename=-1)
    p.location.add(id=1, line=[pb.Line(function_id=77, line=-3)])
    p.sample.add(location_id=[1, 2, 2**63], value=[1, -1])
    return p.SerializeToString()


def test_recursion_and_cycles_in_stacks():
    # 100,000 frames of one recursive function (a real stack overflow looks like this)
    frame = b"main.recurse(0x1)\n\t/src/app/r.go:7 +0x1d\n"
    deep = b"goroutine 1 [running]:\n" + frame * 100_000 + b"created by main.main\n\t/m.go:1\n"
    res = _contract("goroutines", deep)
    assert res is not None
    st = res.tables["stacks"]
    assert st["depth"].max() == 99_999 and set(st["function"]) == {"main.recurse"}
    # Parent cycles: a goroutine created by itself, two created by each other.
    cyc = (b"goroutine 5 [select]:\nmain.a()\n\t/a.go:1 +0x1\ncreated by main.b in goroutine 6\n"
           b"\t/b.go:2 +0x2\n\ngoroutine 6 [select]:\nmain.b()\n\t/b.go:1 +0x1\n"
           b"created by main.a in goroutine 5\n\t/a.go:2 +0x2\n\n"
           b"goroutine 7 [select]:\nmain.c()\n\t/c.go:1 +0x1\ncreated by main.c in goroutine 7\n"
           b"\t/c.go:2 +0x2\n")
    res = _contract("goroutines", cyc)
    g = res.tables["goroutines"].set_index("goroutine_id")
    assert g.loc[5, "parent_goroutine_id"] == 6 and g.loc[6, "parent_goroutine_id"] == 5
    assert g.loc[7, "parent_goroutine_id"] == 7
    # A pprof location that names itself through its function, and a sample 50k deep.
    p = pb.Profile()
    p.string_table.extend([b"", b"inuse_objects", b"count", b"main.loop", b"/l.go"])
    p.sample_type.add(type=1, unit=2)
    p.function.add(id=1, name=3, filename=4)
    p.location.add(id=1, line=[pb.Line(function_id=1, line=3)])
    p.sample.add(location_id=[1] * 50_000, value=[9])
    res = _contract("heap_pprof", p.SerializeToString())
    assert res is not None
    assert res.tables["stacks"]["depth"].max() == 49_999
    # JSON nested thousands deep (manifest, dbstats): a clean ParseError, no RecursionError
    for kind in ("manifest", "dbstats"):
        for data in (b"[" * 100_000, b'{"a":' * 50_000):
            assert _contract(kind, data) is None


def test_a_50_mb_single_line_in_every_parser():
    line = b"goroutine 1 [running]:\n" + b"a(" * (25 * MiB)
    assert len(line) > 50 * MiB
    for kind in PARSER_MODULES:
        mod = load(kind)
        t0 = time.monotonic()
        score = mod.sniff(line[:65536], "goroutines.txt")
        assert 0 <= score <= 1
        _contract(kind, line)
        assert time.monotonic() - t0 < 30, kind


def test_a_million_goroutines(dump):
    """1,000,000 goroutines (~200 MB) made of the corpus dump's two real blocks, ids
    renumbered: counted exactly, in bounded time."""
    blocks = [b for b in dump.split(b"\n\n") if b.startswith(b"goroutine ")]
    tx = next(b for b in blocks if b"[chan receive]" in b)
    rows = next(b for b in blocks if b"[semacquire]" in b)
    tails = [tx.split(b" ", 2)[2] + b"\n\n", rows.split(b" ", 2)[2] + b"\n\n"]
    n = 1_000_000
    data = b"".join(b"goroutine %d %s" % (i + 1, tails[i % 2]) for i in range(n))
    t0 = time.monotonic()
    res = load("goroutines").parse(data, ParseContext(path="g.txt"))
    elapsed = time.monotonic() - t0
    g = res.tables["goroutines"]
    assert len(g) == n and g["goroutine_id"].max() == n
    assert Counter(g["state"]) == {"chan receive": n // 2, "semacquire": n // 2}
    assert len(res.tables["stacks"]["stack_id"].unique()) == 2
    assert elapsed < 60, f"{elapsed:.1f} s"


@pytest.mark.parametrize("name", ["goroutines.txt", "lsof.txt", "ss.txt", "netstat.txt",
                                  "heap.pb.gz", "heap.txt", "capture.json", "dbstats.json",
                                  "limits.txt", "procfd.txt", "tcp.txt"])
def test_binary_noise_under_a_text_name(tmp_path, name):
    noise = random.Random(name).randbytes(200_000)
    p = tar_bundle(tmp_path / "noise.tar", [(f"round-1/{name}", noise)])
    code, _, err = cli("analyze", str(p), "-o", str(tmp_path / "r.json"))
    assert code == 4  # nothing usable, and the member is named with why
    assert f"round-1/{name}" in err
    doc = json.loads((tmp_path / "r.json").read_text())
    (art,) = doc["artifacts"]
    assert art["status"] in ("warning", "failed") and art["message"]


# -------------------------------------------------------------------------- reports
HOSTILE_FN = "transferFunds<svg onload=alert(1)>|x`y`[a](javascript:alert(2)){{7*7}}"
HOSTILE_FILE = "/src/<script>alert(3)</script>|t/tx.go"
HOSTILE_HOST = "<img src=x onerror=alert(4)>"
HOSTILE_LSOF = "/tmp/<iframe src=javascript:alert(5)>|`x`"
REAL_FN = b"transferFundsLeakyTx"
REAL_FILE = (b"/tmp/leakyservice-build/mod/src/github.com/acme-retail/orders-api/internal/"
             b"store/tx.go")


def _injected(data: bytes, name: str) -> bytes:
    fn, path = HOSTILE_FN.encode(), HOSTILE_FILE.encode()
    if name.endswith(".pb.gz"):
        prof = pb.Profile.FromString(gzip.decompress(data))
        strings = [s.replace(REAL_FN, fn).replace(REAL_FILE, path) for s in prof.string_table]
        del prof.string_table[:]
        prof.string_table.extend(strings)
        return gzip.compress(prof.SerializeToString())
    data = data.replace(REAL_FN, fn).replace(REAL_FILE, path)
    data = data.replace(b'"hostname": "vm"', json.dumps({"hostname": HOSTILE_HOST})[1:-1].encode())
    if name.endswith("lsof.txt"):
        data += f"orders-ap 6926 root 99w REG 254,0 0 42 {HOSTILE_LSOF}\n".encode()
    return data


@pytest.fixture(scope="module")
def injected_reports(tmp_path_factory) -> dict[str, str]:
    """The tx sample bundle with attacker text in a function name (goroutine dump and heap
    profile), its file path, the manifest hostname and an lsof NAME; analysed by the CLI
    into HTML, Markdown and JSON."""
    d = tmp_path_factory.mktemp("inject")
    p = d / "inject.tar.gz"
    with tarfile.open(p, "w:gz") as tf:
        for info, data in sample_members():
            data = _injected(data, info.name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out = {}
    for fmt in ("html", "md", "json"):
        code, _, err = cli("analyze", str(p), "-o", str(d / f"r.{fmt}"), "--tables",
                           str(d / "tables"))
        assert code == 0, err
        out[fmt] = (d / f"r.{fmt}").read_text()
    import pandas as pd

    fds = pd.read_parquet(d / "tables" / "fds.parquet")
    assert (fds["target"] == HOSTILE_LSOF).any()  # the NAME reached the tables intact
    return out


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_injection_strings_are_inert_in_html(injected_reports):
    html = injected_reports["html"]
    doc = json.loads(injected_reports["json"])
    assert doc["call_sites"][0]["function"].endswith(HOSTILE_FN)  # the site *is* hostile
    assert doc["call_sites"][0]["file"] == HOSTILE_FILE
    assert doc["bundle"]["hostname"] == HOSTILE_HOST
    parser = _Tags()
    parser.feed(html)
    names = [t for t, _ in parser.tags]
    assert "iframe" not in names and "img" not in names
    assert names.count("script") == 1  # ours, pinned by hash in the CSP
    for tag, attrs in parser.tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        for k in ("src", "href", "action", "xlink:href"):
            v = (attrs.get(k) or "").strip().lower()
            assert not v.startswith(("javascript:", "http:", "https:", "//")), (tag, attrs)
        if tag == "svg":
            assert "onload" not in attrs
    csp = next(a["content"] for t, a in parser.tags
               if t == "meta" and (a.get("http-equiv") or "").lower()
               == "content-security-policy")
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "&lt;svg onload=alert(1)&gt;" in html and "&lt;script&gt;alert(3)" in html
    assert "&lt;img src=x onerror=alert(4)&gt;" in html
    assert "{{7*7}}" in html  # shown as typed, never evaluated by the template engine


def test_injection_strings_are_inert_in_markdown(injected_reports):
    md = injected_reports["md"]
    # Fenced stack blocks show text literally (CommonMark does not parse HTML in them);
    # no line inside may close the fence early. Outside them, no raw HTML or link at all.
    fences = re.findall(r"^```text\n(.*?)\n```$", md, re.M | re.S)
    assert any("<svg onload=alert(1)>" in f for f in fences)
    for body in fences:
        assert not re.search(r"^\s*(```|~~~)", body, re.M)
    prose = re.sub(r"^```text\n.*?\n```$", "", md, flags=re.M | re.S)
    for raw in ("<svg", "<script", "<img", "<iframe"):
        assert raw not in prose, raw
    assert "\\[a\\](javascript:" in prose  # brackets escaped: text, not a link
    assert not re.search(r"(?<!\\)\]\(javascript:", prose)
    assert "&lt;svg onload=alert(1)&gt;" in md and "&lt;img src=x onerror=alert(4)&gt;" in md
    table = md.split("## Ranked call sites", 1)[1].split("\n\n", 2)[1]
    rows = [ln for ln in table.splitlines() if ln.startswith("|")]
    assert len(rows) >= 3
    for row in rows:  # 11 columns: exactly 12 unescaped pipes, whatever the cells held
        assert len(re.findall(r"(?<!\\)\|", row)) == 12, row
    assert HOSTILE_FN.split("|")[0].replace("<", "&lt;").replace(">", "&gt;") in rows[2]


def test_injection_strings_survive_exactly_in_json(injected_reports):
    doc = json.loads(injected_reports["json"])
    assert any(HOSTILE_FN in f["function"] for c in doc["call_sites"] for s in c["stacks"]
               for f in s["frames"])


# ------------------------------------------------------------- outputs and exit codes
def test_batch_outputs_stay_in_the_output_folder(tmp_path, dump):
    src = tmp_path / "src"
    src.mkdir()
    tag = uuid.uuid4().hex[:8]
    hostile = [(f"../../batch-escape-{tag}.txt", dump), (f"/tmp/batch-abs-{tag}.txt", dump),
               ("round-1/goroutines.txt", dump)]
    for name in ("..tar.gz", "-rf.tar.gz", "$(touch pwned).tar.gz", "a b;c.tgz",
                 "x" * 200 + ".tar"):
        tar_bundle(src / name, hostile, "w:gz" if name.endswith("gz") else "w")
    out = tmp_path / "out"
    before = tree(tmp_path)
    code, _, err = cli("batch", str(src), "--out", str(out), "--workers", "1")
    assert code == 0, err
    new = tree(tmp_path) - before
    assert new and all(p == "out" or p.startswith("out/") for p in new), sorted(new)
    assert not list(tmp_path.rglob(f"*{tag}*")) and not (tmp_path / "pwned").exists()
    reports = sorted(p.name for p in (out / "reports").iterdir())
    assert len(reports) == 10  # 5 bundles x html+json, every name made safe
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*\.(html|json)", r) for r in reports)


def test_exit_codes_say_what_happened(tmp_path, dump):
    good = next(d for i, d in sample_members() if i.name.endswith("round-1/goroutines.txt"))
    clean = tar_bundle(tmp_path / "clean.tar", [("round-1/goroutines.txt", good)])
    code, _, err = cli("analyze", str(clean), "-o", str(tmp_path / "a.md"))
    assert code == 0, err
    warned = tar_bundle(tmp_path / "warned.tar", [("round-1/goroutines.txt", good),
                                                   ("../x", b"y")])
    assert cli("analyze", str(warned), "-o", str(tmp_path / "b.md"))[0] == 3
    useless = tar_bundle(tmp_path / "useless.tar", [("notes.txt", b"hello\n")])
    assert cli("analyze", str(useless), "-o", str(tmp_path / "c.md"))[0] == 4
    assert cli("analyze", str(tmp_path / "missing.tar"), "-o", str(tmp_path / "d.md"))[0] == 4
    # An output path that cannot be written is a usage error with a message, no traceback.
    (tmp_path / "file").write_text("")
    for bad in (tmp_path, tmp_path / "file" / "x.md"):
        code, _, err = cli("analyze", str(clean), "-o", str(bad))
        assert code == 2 and "cannot write" in err, err
    code, _, err = cli("analyze", str(clean), "-o", str(tmp_path / "e.md"), "--tables",
                       str(tmp_path / "file" / "t"))
    assert code == 2 and "cannot write" in err


def test_terminal_output_cannot_be_styled_or_escaped(tmp_path, dump):
    """Member names reach the terminal too (inspect's table, warnings on stderr): rich
    markup in them is shown as typed (it used to crash ``inspect``), and escape sequences
    (recolour, hyperlink, retitle) never reach the reader's terminal."""
    esc = "x\x1b[31mred\x1b]8;;http://evil.example\x1b\\link\x1b]0;title\x07.txt"
    p = tar_bundle(tmp_path / "term.tar", [("[/yellow].txt", b"abc"), ("round-1/" + esc, b""),
                                           ("[red]goroutines[/red].txt", dump),
                                           ("../[bold]up.txt", b"x")])
    code, out, err = cli("inspect", str(p))
    assert code == 3
    assert "[/yellow].txt" in out and "[red]goroutines[/red].txt" in out
    assert "warning ../[bold]up.txt: skipped: absolute path or '..' in member name" in out
    code2, out2, err2 = cli("analyze", str(p), "-o", str(tmp_path / "r.md"))
    assert code2 == 3 and "round-1/x\ufffd[31mred" in err2
    for text in (out, err, out2, err2):
        assert "\x1b" not in text and "\x07" not in text


# --------------------------------------------------------------------------- limits
def _spin(data: bytes, ctx: ParseContext) -> ParseResult:
    """A pure-Python parser stuck in a loop that even swallows its own exceptions."""
    n = 0
    while True:
        try:
            n += 1
        except Exception:  # the point: a parser's catch-all must not help
            continue


def test_parser_time_budget_stops_pure_python(monkeypatch):
    monkeypatch.setattr(load("lsof"), "parse", _spin)
    art = Artifact(Member("lsof.txt", b"COMMAND PID\n"), "lsof")
    t0 = time.monotonic()
    parse_artifact(art, seconds=0.3)
    assert time.monotonic() - t0 < 5
    assert art.status == "failed" and art.result is None
    assert art.message == ("lsof parser stopped after 0.3 s (per-parser time budget, "
                           "--parser-seconds); nothing of this artifact was used")
    assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None) or \
        callable(signal.getsignal(signal.SIGALRM))
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_parser_budget_restores_an_outer_timer_and_skips_other_threads(monkeypatch):
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        art = Artifact(Member("g.txt", b"goroutine 1 [running]:\nmain.main()\n\t/m.go:1 +0x1\n"),
                       "goroutines")
        parse_artifact(art, seconds=5)
        assert art.status == "ok"
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 20 < left <= 30  # the outer timer is back, with its remaining time
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    # Off the main thread no signal can be delivered: the parse simply runs unbudgeted.
    out: list[Artifact] = []

    def work() -> None:
        a = Artifact(Member("g.txt", b"goroutine 1 [running]:\nmain.main()\n\t/m.go:1\n"),
                     "goroutines")
        parse_artifact(a, seconds=0.001)
        out.append(a)

    t = threading.Thread(target=work)
    t.start()
    t.join(30)
    assert out and out[0].status in ("ok", "warning") and not fired


def test_every_limit_hit_is_reported(tmp_path, dump):
    """Each bound, when hit, leaves a warning that names it; the CLI flags reach them."""
    nested = tar_bytes([("a.tar", tar_bytes([("b.tar", tar_bytes([("c.tar", tar_bytes(
        [("g.txt", dump)]))]))]))])
    members = [("round-1/goroutines.txt", dump), ("round-2/goroutines.txt", dump),
               ("round-3/goroutines.txt", dump), ("big.txt", b"x" * (3 * MiB)),
               ("nest.tar", nested)]
    members += [(f"links/{i}", b"") for i in range(3)]
    p = tmp_path / "limits.tar"
    with tarfile.open(p, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for i in range(MAX_WARNINGS + 20):
            info = tarfile.TarInfo(f"sym/{i}")
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(info)
    code, _, err = cli("analyze", str(p), "-o", str(tmp_path / "r.json"),
                       "--max-member-bytes", str(2 * MiB), "--max-artifacts", "2")
    assert code == 3
    assert "big.txt: skipped: 3 MiB exceeds the member size limit (2 MiB)" in err
    assert "skipped: archive nested more than 3 levels deep (nesting limit)" in err
    assert "round-3/goroutines.txt: not parsed: the bundle holds 3 recognised artifacts" in err
    assert "more warnings about members not listed (first 500 shown)" in err
    code, _, err = cli("analyze", str(p), "-o", str(tmp_path / "r2.json"),
                       "--max-total-bytes", str(MiB // 2))
    assert "big.txt: skipped: 3 MiB would pass the total size limit (524,288 bytes," in err
    code, out, _ = cli("inspect", str(p), "--json", "--parser-seconds", "0.000001")
    assert code == 4  # every parser ran out of time: nothing usable, and each one says so
    arts = json.loads(out)["artifacts"]
    assert [a["message"] for a in arts if a["kind"] == "goroutines"] == [
        "goroutines parser stopped after 1e-06 s (per-parser time budget, --parser-seconds); "
        "nothing of this artifact was used"] * 3
    res = json.loads((tmp_path / "r.json").read_text())
    assert any("nesting limit" in w["message"] for w in res["warnings"])
