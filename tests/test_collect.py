"""The collector against a real Go process: layout, manifest, and missing tools recorded.

Why a real process: the collector's job is to talk to a real net/http/pprof and real
lsof/ss/ls output; canned pprof bytes would only test our own assumptions. The live part
builds the orders-api test service (tools/leakyservice) with Go 1.27 and runs it in
healthy mode against a throwaway PostgreSQL; it skips (fails under CI) without them.
The unit part (URL handling, build-info decoding, script syntax) needs nothing.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import ROOT, require

from forensics import collect
from forensics.parsers import load
from forensics.parsers.base import ParseContext

sys.path[:0] = [str(ROOT / "tools"), str(ROOT / "tools" / "leakyservice")]
import harness  # noqa: E402
import pgcluster  # noqa: E402

ROUND_FILES = {"goroutines.txt", "goroutineleak.txt", "heap.pb.gz", "procfd.txt", "ss.txt",
               "lsof.txt", "limits.txt", "dbstats.json"}
TOP_RE = re.compile(r"^[A-Za-z0-9._-]+-(\d+)-\d{8}T\d{6}Z$")


# -- unit: no service needed ----------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6060", "http://127.0.0.1:6060/", "http://127.0.0.1:6060/debug/pprof",
    "http://127.0.0.1:6060/debug/pprof/",
])
def test_pprof_base_normalizes(url: str) -> None:
    assert collect.pprof_base(url) == "http://127.0.0.1:6060/debug/pprof"


def test_pprof_base_rejects_non_http() -> None:
    with pytest.raises(collect.CollectError):
        collect.pprof_base("127.0.0.1:6060")


def test_missing_process_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(collect.CollectError, match="no process"):
        collect.run(2**22 + 12345, "http://127.0.0.1:1", tmp_path / "b.tar.gz")


def test_build_info_decoding(tmp_path: Path) -> None:
    # Go 1.18+ layout: 14-byte magic, ptr size, flags (2 = inline strings), 16 pad bytes,
    # then varint-prefixed version and modinfo strings.
    sentinel = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6"
    modinfo = sentinel + b"path\tgithub.com/x/svc\nmod\tgithub.com/x/svc\t(devel)\n" + sentinel
    blob = (b"\x00" * 5000 + b"\xff Go buildinf:" + b"\x08\x02" + b"\x00" * 16
            + bytes([len(b"go1.21.4")]) + b"go1.21.4" + bytes([len(modinfo)]) + modinfo)
    exe = tmp_path / "fake"
    exe.write_bytes(blob)
    assert collect.go_build_info(exe) == {"go_version": "go1.21.4",
                                          "go_main_module": "github.com/x/svc"}
    (tmp_path / "notgo").write_bytes(b"\x7fELF" + b"\x00" * 100)
    assert collect.go_build_info(tmp_path / "notgo") == {}
    assert collect.go_build_info(tmp_path / "absent") == {}


def test_script_text_is_the_shipped_posix_script() -> None:
    text = collect.script_text()
    assert text.startswith("#!/bin/sh")
    assert text == (ROOT / "forensics" / "collector" / "collect.sh").read_text()
    # Syntax check with the system sh (dash on Debian, which rejects bash-isms).
    res = subprocess.run(["sh", "-n"], input=text, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    for bashism in ("[[", "function ", "local ", "$'", "pipefail", "<<<", "${!"):
        assert bashism not in text, bashism
    assert not re.search(r"\[ [^]\n]* == ", text), "== in a test: bash-ism"
    if shutil.which("shellcheck"):
        res = subprocess.run(["shellcheck", "-s", "sh", "-"], input=text, capture_output=True,
                             text=True, check=False)
        assert res.returncode == 0, res.stdout


# -- live: the real service ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    """orders-api (Go 1.27, healthy mode, maxopen 7) on a throwaway PostgreSQL."""
    require(harness.missing_for_build("1.27") is None, str(harness.missing_for_build("1.27")))
    require(pgcluster.unavailable_reason() is None, str(pgcluster.unavailable_reason()))
    binary = harness.build(tmp_path_factory.mktemp("build"), "1.27")
    with pgcluster.PgCluster(max_connections=50) as pg:
        dsn = pg.create_database("shop", harness.SCHEMA)
        with harness.Service(binary, dsn, mode="healthy", maxopen=7,
                             memprofilerate=4096) as svc:
            svc.db_address = pg.address  # type: ignore[attr-defined]
            yield svc


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _manifest(members: dict[str, bytes]) -> tuple[str, dict]:
    (name,) = [n for n in members if n.endswith("/capture.json")]
    return name.split("/")[0], json.loads(members[name])


@pytest.mark.live
def test_python_collector_archive(service, tmp_path: Path) -> None:
    lines: list[str] = []
    out = collect.run(service.pid, service.pprof, tmp_path / "b.tar.gz",
                      dbstats_url=service.dbstats, rounds=2, interval=0.5,
                      db_addresses=[service.db_address], progress=lines.append)
    assert out == tmp_path / "b.tar.gz" and out.exists()
    assert not list(tmp_path.glob(".forensics-collect-*")), "staging dir left behind"
    members = _members(out)
    top, m = _manifest(members)
    assert TOP_RE.match(top) and TOP_RE.match(top).group(1) == str(service.pid)
    for r in (1, 2):
        assert {n.split("/", 2)[2] for n in members if n.startswith(f"{top}/round-{r}/")} \
            == ROUND_FILES
    # Manifest contract.
    assert m["format"] == "forensics-capture/1"
    assert m["pid"] == service.pid and m["hostname"]
    assert m["db_addresses"] == [service.db_address]
    assert m["tool_versions"]["collector"] == "python"
    assert m["go_version"].startswith("go1.27")
    assert m["go_main_module"] == "github.com/acme-retail/orders-api"
    assert [r["round"] for r in m["rounds"]] == [1, 2]
    for r in m["rounds"]:
        assert r["started_at"].endswith("Z") and r["finished_at"] >= r["started_at"]
        assert set(r["files"]) == {f"round-{r['round']}/{f}" for f in ROUND_FILES}
        assert {e["status"] for e in r["files"].values()} == {"ok"}, r["files"]
        assert all(e["captured_at"] >= r["started_at"] for e in r["files"].values())
    # The artifacts are what they claim to be.
    rd = f"{top}/round-2"
    assert members[f"{rd}/heap.pb.gz"][:2] == b"\x1f\x8b"
    assert gzip.decompress(members[f"{rd}/heap.pb.gz"])  # a real profile.proto
    assert members[f"{rd}/goroutines.txt"].startswith(b"goroutine ")
    assert members[f"{rd}/goroutineleak.txt"].startswith(b"goroutineleak profile: total")
    assert json.loads(members[f"{rd}/dbstats.json"])["MaxOpenConnections"] == 7
    assert b"Max open files" in members[f"{rd}/limits.txt"]
    assert members[f"{rd}/procfd.txt"].startswith(f"/proc/{service.pid}/fd:\ntotal ".encode())
    assert b"socket:[" in members[f"{rd}/procfd.txt"]
    assert members[f"{rd}/lsof.txt"].startswith(b"COMMAND")
    assert b"users:((\"orders-api-go1." in members[f"{rd}/ss.txt"]
    assert any("round 2/2" in line for line in lines)


@pytest.mark.live
def test_collected_artifacts_parse(service, tmp_path: Path) -> None:
    """The project's parsers read what the collector wrote (pid, listeners, goroutines)."""
    top = collect.run(service.pid, service.pprof, tmp_path / "folder", rounds=1, interval=0)
    assert top.parent == tmp_path / "folder" and (top / "capture.json").exists()
    rd = top / "round-1"
    ctx = ParseContext(pid=service.pid)
    lsof = load("lsof").parse((rd / "lsof.txt").read_bytes(), ctx).tables["sockets"]
    app_port = int(service.app.rsplit(":", 1)[1])
    listen = lsof[(lsof["state"] == "LISTEN")]
    assert app_port in set(listen["local_port"].dropna().astype(int))
    assert set(lsof["pid"].dropna().astype(int)) == {service.pid}
    # procfd.txt names its process itself (ls's directory header): no context needed.
    fds = load("procfd").parse((rd / "procfd.txt").read_bytes(), ParseContext())
    assert not fds.warnings, fds.warnings
    assert set(fds.tables["fds"]["pid"].astype(int)) == {service.pid}
    sockets = fds.tables["fds"][fds.tables["fds"]["kind"] == "socket"]
    assert set(sockets["inode"].dropna().astype(int)) >= set(
        lsof.loc[lsof["state"] == "LISTEN", "inode"].dropna().astype(int))
    g = load("goroutines").parse((rd / "goroutines.txt").read_bytes(), ctx)
    assert len(g.tables["goroutines"]) >= 5
    # Healthy: exactly one pool, so exactly one connectionOpener goroutine.
    stacks = g.tables["stacks"]
    opener = stacks[stacks["function"] == "database/sql.(*DB).connectionOpener"]
    ids = g.tables["goroutines"]["stack_id"]
    assert int(ids.isin(opener["stack_id"]).sum()) == 1


@pytest.mark.live
def test_missing_tools_are_recorded_not_fatal(service, tmp_path: Path, monkeypatch) -> None:
    bin_dir = harness.tool_dir_without(tmp_path / "bin", "lsof", "ss")
    monkeypatch.setenv("PATH", str(bin_dir))
    top = collect.run(service.pid, service.pprof, tmp_path / "out", rounds=1, interval=0)
    m = json.loads((top / "capture.json").read_text())
    files = m["rounds"][0]["files"]
    assert files["round-1/lsof.txt"]["status"] == "failed"
    assert files["round-1/lsof.txt"]["error"] == "lsof not found"
    assert files["round-1/ss.txt"] == {**files["round-1/ss.txt"], "status": "failed",
                                       "error": "ss not found"}
    assert files["round-1/netstat.txt"]["status"] == "ok"  # the fallback
    assert "lsof" not in m["tool_versions"] and "ss" not in m["tool_versions"]
    assert not (top / "round-1" / "lsof.txt").exists()
    assert (top / "round-1" / "netstat.txt").read_text().startswith("Active Internet")
    assert files["round-1/goroutines.txt"]["status"] == "ok"


@pytest.mark.live
def test_no_socket_tool_falls_back_to_proc(service, tmp_path: Path, monkeypatch) -> None:
    bin_dir = harness.tool_dir_without(tmp_path / "bin", "lsof", "ss", "netstat")
    monkeypatch.setenv("PATH", str(bin_dir))
    top = collect.run(service.pid, service.pprof, tmp_path / "out", rounds=1, interval=0)
    files = json.loads((top / "capture.json").read_text())["rounds"][0]["files"]
    assert [files[f"round-1/{n}"]["status"] for n in ("ss.txt", "netstat.txt")] == \
        ["failed", "failed"]
    for name in ("proc-net-tcp.txt", "proc-net-tcp6.txt"):
        assert files[f"round-1/{name}"]["status"] == "ok"
        assert (top / "round-1" / name).read_text().lstrip().startswith("sl")


@pytest.mark.live
def test_unserved_endpoint_and_bad_dbstats_url(service, tmp_path: Path) -> None:
    top = collect.run(service.pid, service.pprof, tmp_path / "out", rounds=1, interval=0,
                      dbstats_url=service.pprof + "/no/such/endpoint")
    files = json.loads((top / "capture.json").read_text())["rounds"][0]["files"]
    assert files["round-1/dbstats.json"] == {**files["round-1/dbstats.json"],
                                             "status": "failed", "error": "HTTP 404"}
    assert not (top / "round-1" / "dbstats.json").exists()


@pytest.mark.live
def test_shell_collector_same_layout(service, tmp_path: Path, monkeypatch) -> None:
    require(shutil.which("curl") is not None or shutil.which("wget") is not None,
            "curl or wget needed by collect.sh")
    script = tmp_path / "collect.sh"
    script.write_text(collect.script_text())
    bin_dir = harness.tool_dir_without(tmp_path / "bin", "lsof")
    env = dict(os.environ, PATH=str(bin_dir))
    res = subprocess.run(
        ["sh", str(script), "-p", str(service.pid), "-u", service.pprof, "-d", service.dbstats,
         "-n", "2", "-i", "1", "-a", service.db_address, "-o", str(tmp_path / "b.tar.gz")],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(tmp_path / "b.tar.gz")
    members = _members(tmp_path / "b.tar.gz")
    top, m = _manifest(members)
    assert TOP_RE.match(top)
    assert m["format"] == "forensics-capture/1" and m["pid"] == service.pid
    assert m["tool_versions"]["collector"] == "sh" and "lsof" not in m["tool_versions"]
    assert m["db_addresses"] == [service.db_address]
    assert [r["round"] for r in m["rounds"]] == [1, 2]
    for r in m["rounds"]:
        n = r["round"]
        assert set(r["files"]) == {f"round-{n}/{f}" for f in ROUND_FILES}
        assert r["files"][f"round-{n}/lsof.txt"] == {**r["files"][f"round-{n}/lsof.txt"],
                                                     "status": "failed",
                                                     "error": "lsof not found"}
        ok = {f for f, e in r["files"].items() if e["status"] == "ok"}
        assert ok == {f"round-{n}/{f}" for f in ROUND_FILES - {"lsof.txt"}}
        written = {p.split("/", 1)[1] for p in members if p.startswith(f"{top}/round-{n}/")}
        assert written == ok
    assert json.loads(members[f"{top}/round-2/dbstats.json"])["MaxOpenConnections"] == 7
    assert members[f"{top}/round-2/procfd.txt"].startswith(f"/proc/{service.pid}/fd:\n".encode())
    assert members[f"{top}/round-2/heap.pb.gz"][:2] == b"\x1f\x8b"
