"""Rounds and times from every layout customers use (content decides the kind)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from forensics.bundle import Member
from forensics.inventory import Artifact, assign_times_and_rounds, round_hint, time_from_path
from forensics.parsers.base import ParseResult


def _arts(paths_kinds, mtimes=None):
    arts = []
    for i, (path, kind) in enumerate(paths_kinds):
        m = Member(path, b"x", (mtimes or {}).get(path, 1_764_000_000.0 + i))
        a = Artifact(m, kind)
        a.result = ParseResult()
        arts.append(a)
    return arts


def _rounds(arts):
    return {a.path: a.round for a in arts}


def test_time_from_path_forms():
    t = datetime(2026, 11, 27, 10, 15, 0, tzinfo=timezone.utc)
    assert time_from_path("bundle/20261127T101500Z/heap.pb.gz") == t
    assert time_from_path("goroutines-2026-11-27T10:15:00Z.txt") == t
    assert time_from_path("x/2026-11-27_10-15-00/lsof.txt") == t
    assert time_from_path("ss.2026-11-27T12:15:00+02:00.txt") == t
    assert time_from_path("heap-1764238500.pb.gz") == datetime.fromtimestamp(1764238500,
                                                                                 timezone.utc)
    assert time_from_path("lsof-1234.txt") is None


def test_round_hints():
    assert round_hint("host/round-2/heap.pb.gz") == ("host/round-2", 2)
    assert round_hint("heap.3.pb.gz") == ("", 3)
    assert round_hint("goroutines-2.txt") == ("", 2)
    assert round_hint("goroutines_10.txt") == ("", 10)
    assert round_hint("proc-net-tcp6.txt") == ("", None)
    assert round_hint("lsof-12345.txt") == ("", None)


def test_folder_per_round_ordered_by_time_not_name():
    arts = _arts([("h/20261127T101600Z/goroutines.txt", "goroutines"),
                  ("h/20261127T101600Z/heap.pb.gz", "heap_pprof"),
                  ("h/20261127T101500Z/goroutines.txt", "goroutines"),
                  ("h/20261127T101500Z/heap.pb.gz", "heap_pprof")])
    assign_times_and_rounds(arts)
    r = _rounds(arts)
    assert r["h/20261127T101500Z/heap.pb.gz"] == 1
    assert r["h/20261127T101600Z/goroutines.txt"] == 2
    assert all(a.time_source == "path" for a in arts)


def test_suffix_rounds_and_static_limits():
    arts = _arts([("heap.1.pb.gz", "heap_pprof"), ("goroutines-1.txt", "goroutines"),
                  ("heap.2.pb.gz", "heap_pprof"), ("goroutines-2.txt", "goroutines"),
                  ("limits.txt", "limits")])
    assign_times_and_rounds(arts)
    r = _rounds(arts)
    assert r["heap.1.pb.gz"] == r["goroutines-1.txt"] == 1
    assert r["heap.2.pb.gz"] == r["goroutines-2.txt"] == 2
    assert r["limits.txt"] in (1, 2)
    assert max(r.values()) == 2


def test_flat_folder_repeated_kinds_split_by_time():
    mt = {"g-a.txt": 100.0, "lsof-a.txt": 101.0, "g-b.txt": 200.0, "lsof-b.txt": 201.0}
    arts = _arts([("g-b.txt", "goroutines"), ("lsof-b.txt", "lsof"),
                  ("g-a.txt", "goroutines"), ("lsof-a.txt", "lsof")], mt)
    assign_times_and_rounds(arts)
    r = _rounds(arts)
    assert r["g-a.txt"] == r["lsof-a.txt"] == 1
    assert r["g-b.txt"] == r["lsof-b.txt"] == 2
    assert all(a.time_source == "mtime" for a in arts)


def test_manifest_wins_over_names_and_content_time():
    man = Artifact(Member("cap/capture.json", b"{}"), "manifest")
    man.result = ParseResult(meta={"pid": 4242, "db_addresses": ["127.0.0.1:5432"], "rounds": [
        {"round": 1, "started_at": "2026-11-27T10:00:00Z",
         "files": {"x/heap.pb.gz": {"captured_at": "2026-11-27T10:00:01Z"}}},
        {"round": 2, "started_at": "2026-11-27T10:05:00Z",
         "files": {"y/heap.pb.gz": {"captured_at": "2026-11-27T10:05:01Z"}}},
    ]})
    arts = [man, *_arts([("cap/y/heap.pb.gz", "heap_pprof"), ("cap/x/heap.pb.gz", "heap_pprof")])]
    arts[1].result.meta["time_nanos"] = 1  # content time loses to the manifest
    meta = assign_times_and_rounds(arts)
    r = _rounds(arts)
    assert r["cap/x/heap.pb.gz"] == 1 and r["cap/y/heap.pb.gz"] == 2
    assert arts[1].captured_at == datetime(2026, 11, 27, 10, 5, 1, tzinfo=timezone.utc)
    assert arts[1].time_source == "manifest"
    assert arts[1].pid == 4242 and meta["db_addresses"] == ["127.0.0.1:5432"]


def test_manifest_parser_reads_collector_and_hand_written_forms():
    from forensics.parsers import manifest

    doc = {"format": "forensics-capture/1", "pid": 7, "hostname": "db1",
           "db_addresses": ["10.0.0.5:5432"],
           "rounds": [{"round": 1, "started_at": "2026-11-27T10:00:00Z",
                       "files": {"round-1/lsof.txt": {"status": "failed", "error": "no lsof"}}}]}
    raw = json.dumps(doc).encode()
    assert manifest.sniff(raw, "capture.json") == 1.0
    meta = manifest.parse(raw, None).meta
    assert meta["pid"] == 7 and meta["rounds"][0]["files"]["round-1/lsof.txt"]["error"] == "no lsof"
    hand = json.dumps({"pid": "12", "dsn": "postgres://u:p@db.internal:6432/app",
                       "rounds": [{"time": 1764237300, "files": ["a/heap.pb.gz"]}]}).encode()
    assert manifest.sniff(hand, "meta.json") >= 0.9
    meta = manifest.parse(hand, None).meta
    assert meta["pid"] == 12 and meta["db_addresses"] == ["db.internal:6432"]
    # db.Stats JSON is not a manifest
    assert manifest.sniff(b'{"MaxOpenConnections": 10, "OpenConnections": 3}', "meta.json") == 0


def test_variants_of_one_kind_stay_in_one_round(corpus, tmp_path):
    """/proc/net/tcp and tcp6 are both proc_net_tcp artifacts, taken together: one round."""
    import shutil

    from forensics.pipeline import build_tables

    for name in ("hotsos-vault-proc-net-tcp.txt", "hotsos-vault-proc-net-tcp6.txt",
                 "hotsos-vault-proc-net-sockstat.txt"):
        shutil.copy(corpus / "procfd" / name, tmp_path / name)
    a = build_tables(tmp_path)
    assert {art.kind for art in a.artifacts} == {"proc_net_tcp"}
    assert a.rounds == [1]
    protos = set(a.tables["sockets"]["proto"].dropna())
    assert {"tcp", "tcp6"} <= protos
    # /proc/net/tcp lists the namespace: its rows never inherit a pid
    assert a.tables["sockets"]["pid"].isna().all()
