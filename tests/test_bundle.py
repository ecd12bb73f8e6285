"""Bundle reading: every container format, and the safety rules on hostile members."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from forensics.bundle import BundleError, Limits, gunzip_bounded, read_bundle, safe_member_path


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_764_237_300
            tf.addfile(info, io.BytesIO(data))
    return path


def test_tar_gz_members_in_memory(tmp_path):
    p = _tar(tmp_path / "b.tar.gz", {"host/round-1/goroutines.txt": b"goroutine 1 [running]:\n",
                                     "host/round-1/heap.pb.gz": gzip.compress(b"\x0a\x00")})
    b = read_bundle(p)
    assert b.bundle_id == "b"
    paths = {m.path: m for m in b.members}
    assert set(paths) == {"host/round-1/goroutines.txt", "host/round-1/heap.pb.gz"}
    # gzip members are inflated so parsers see the protobuf itself
    assert paths["host/round-1/heap.pb.gz"].data == b"\x0a\x00"
    assert paths["host/round-1/heap.pb.gz"].encoding == "gzip"
    assert not b.warnings
    assert len(b.content_hash) == 64


def test_zip_folder_and_single_file(tmp_path):
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/lsof.txt", "COMMAND PID\n")
    assert [m.path for m in read_bundle(z).members] == ["a/lsof.txt"]
    d = tmp_path / "dir"
    (d / "r1").mkdir(parents=True)
    (d / "r1" / "ss.txt").write_text("State\n")
    assert [m.path for m in read_bundle(d).members] == ["r1/ss.txt"]
    f = tmp_path / "goroutines.txt"
    f.write_text("goroutine 1 [running]:\n")
    assert [m.path for m in read_bundle(f).members] == ["goroutines.txt"]


def test_same_content_same_hash_across_containers(tmp_path):
    members = {"x/heap.txt": b"abc", "x/g.txt": b"def"}
    a = read_bundle(_tar(tmp_path / "a.tar.gz", members)).content_hash
    b = read_bundle(_tar(tmp_path / "b.tar", members, "w")).content_hash
    assert a == b


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "a/../../x", "C:/win.ini"])
def test_climbing_paths_refused(name):
    assert safe_member_path(name) is None


def test_links_devices_and_traversal_skipped_with_reasons(tmp_path):
    p = tmp_path / "evil.tar"
    with tarfile.open(p, "w") as tf:
        for name, typ, link in [("sym", tarfile.SYMTYPE, "/etc/passwd"),
                                ("hard", tarfile.LNKTYPE, "ok.txt"),
                                ("dev", tarfile.CHRTYPE, "")]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = typ, link
            tf.addfile(info)
        for name in ("../escape.txt", "/abs.txt", "ok.txt"):
            info = tarfile.TarInfo(name)
            info.size = 2
            tf.addfile(info, io.BytesIO(b"hi"))
    b = read_bundle(p)
    assert [m.path for m in b.members] == ["ok.txt"]
    reasons = {w.path: w.message for w in b.warnings}
    assert "symbolic link" in reasons["sym"] and "/etc/passwd" in reasons["sym"]
    assert "hard link" in reasons["hard"]
    assert "not a regular file" in reasons["dev"]
    assert "'..'" in reasons["../escape.txt"]
    assert "absolute" in reasons["/abs.txt"]


def test_folder_symlink_not_followed(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "link").symlink_to("/etc/passwd")
    (d / "real.txt").write_text("x")
    b = read_bundle(d)
    assert [m.path for m in b.members] == ["real.txt"]
    assert any("symbolic link" in w.message for w in b.warnings)


def test_gzip_bomb_is_bounded(tmp_path):
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)  # 64 MiB -> ~64 KiB
    p = _tar(tmp_path / "bomb.tar.gz", {"heap.pb.gz": bomb, "g.txt": b"goroutine 1 [running]:\n"})
    b = read_bundle(p, Limits(max_member_bytes=8 * 1024 * 1024))
    assert [m.path for m in b.members] == ["g.txt"]
    assert any(w.path == "heap.pb.gz" and "gzip bomb" in w.message for w in b.warnings)


def test_truncated_gzip_keeps_head():
    data = gzip.compress(b"goroutine 1 [running]:\n" * 1000)
    out, problem = gunzip_bounded(data[: len(data) // 2], 10**7)
    assert out is not None and out.startswith(b"goroutine 1 [running]:")
    assert "truncated" in problem


def test_nested_archives_are_opened(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("deep/goroutines.txt", "goroutine 1 [running]:\n")
    inner_tar = io.BytesIO()
    with tarfile.open(fileobj=inner_tar, mode="w:gz") as tf:
        info = tarfile.TarInfo("inner.zip")
        info.size = len(inner.getvalue())
        tf.addfile(info, io.BytesIO(inner.getvalue()))
    p = _tar(tmp_path / "outer.tar", {"nested.tar.gz": inner_tar.getvalue()}, "w")
    b = read_bundle(p)
    assert [m.path for m in b.members] == ["nested.tar.gz/inner.zip/deep/goroutines.txt"]


def test_truncated_archive_keeps_complete_members(tmp_path):
    p = _tar(tmp_path / "t.tar", {"a.txt": b"a" * 5000, "b.txt": b"b" * 5000}, "w")
    raw = p.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(raw[:7000])
    b = read_bundle(cut)
    assert b.members[0].path == "a.txt" and b.members[0].data == b"a" * 5000
    assert any("truncated" in w.message for w in b.warnings)


def test_member_count_limit(tmp_path):
    p = _tar(tmp_path / "many.tar.gz", {f"f{i}.txt": b"x" for i in range(50)})
    b = read_bundle(p, Limits(max_members=10))
    assert len(b.members) == 10
    assert any("member limit" in w.message for w in b.warnings)


def test_missing_or_unreadable_bundle(tmp_path):
    with pytest.raises(BundleError, match="no such file"):
        read_bundle(tmp_path / "nope.tar.gz")


SAMPLE = Path(__file__).resolve().parent.parent / "sample_bundles" / "tx-go1.27.tar.gz"


def _sample_member(suffix: str) -> bytes:
    """A real artifact (gzip bytes as captured) from a sample bundle."""
    with tarfile.open(SAMPLE) as tf:
        member = next(m for m in tf.getmembers() if m.name.endswith(suffix))
        return tf.extractfile(member).read()  # type: ignore[union-attr]


def test_http_responses_saved_with_headers_yield_their_body(tmp_path):
    """``curl -i`` keeps the status line and headers; ``curl -iL`` one block per hop."""
    heap = _sample_member("round-3/heap.pb.gz")
    dump = _sample_member("round-3/goroutines.txt")
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
    hop = b"HTTP/1.1 301 Moved Permanently\r\nLocation: /debug/pprof/heap\r\n\r\n"
    h2 = b"HTTP/2 200 \ncontent-type: text/plain; charset=utf-8\n\n"
    p = _tar(tmp_path / "b.tar.gz", {"r1/heap.pb.gz": ok + heap,
                                     "r1/goroutines.txt": hop + h2 + dump,
                                     "r2/heap.pb.gz": heap})
    b = read_bundle(p)
    got = {m.path: m for m in b.members}
    assert got["r1/heap.pb.gz"].data == got["r2/heap.pb.gz"].data == gzip.decompress(heap)
    assert got["r1/heap.pb.gz"].encoding == "http+gzip"
    assert got["r1/goroutines.txt"].data == dump
    assert got["r1/goroutines.txt"].encoding == "http"
    assert not b.warnings


def test_http_error_responses_are_skipped_with_the_servers_words(tmp_path):
    p = _tar(tmp_path / "b.tar.gz", {
        "r1/heap.pb.gz": b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\n"
                         b"404 page not found\n",
        "r1/notes.txt": b"HTTP/1.1 is the protocol we use\n\nnot a response\n"})
    b = read_bundle(p)
    assert [m.path for m in b.members] == ["r1/notes.txt"]  # no status line: left alone
    (w,) = b.warnings
    assert w.path == "r1/heap.pb.gz"
    assert "HTTP 404" in w.message and "404 page not found" in w.message
