"""Goroutine dump parser: facts read off the real corpus files, plus small hand-written
dumps for the forms the corpus lacks (Go 1.27 ``(leaked)``, the goroutineleak profile).

Every number asserted on a corpus file was checked by reading that file (and, for counts,
by grepping its ``goroutine N [`` headers or ``K @`` records).
"""

from __future__ import annotations

import gzip
import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from conftest import CORPUS, corpus_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics.parsers import goroutines as gr
from forensics.parsers.base import ParseContext, ParseError, ParseResult
from forensics.stacks import text_hash

GDIR = CORPUS / "goroutines"


def parse_bytes(data: bytes | str) -> ParseResult:
    if isinstance(data, str):
        data = data.encode()
    return gr.parse(data, ParseContext(path="test"))


def parse_file(name: str) -> ParseResult:
    return parse_bytes((GDIR / name).read_bytes())


def goroutine(res: ParseResult, gid: int) -> pd.Series:
    g = res.tables["goroutines"]
    rows = g[g["goroutine_id"] == gid]
    assert len(rows) == 1, f"goroutine {gid}: {len(rows)} rows"
    return rows.iloc[0]


def frames(res: ParseResult, stack_id) -> pd.DataFrame:
    st = res.tables["stacks"]
    return st[st["stack_id"] == stack_id].sort_values("depth").reset_index(drop=True)


def functions(res: ParseResult, stack_id) -> list[str]:
    return list(frames(res, stack_id)["function"])


def truncation_warned(res: ParseResult) -> bool:
    return any(w.message.startswith("the dump is truncated") for w in res.warnings)


# --- every corpus file: format, rows, goroutines counted -----------------------------------

#: file -> (meta format, table rows, sum of count, truncated?). Rows = ``goroutine N [``
#: headers (grep) + a headerless leading fragment where the paste starts mid-goroutine;
#: debug=1 rows = complete ``K @`` records.
EXPECTED: dict[str, tuple[str, int, int, bool]] = {
    "defacto2-server-docs-todo-major-freeze-go122-sigquit.txt": ("debug2", 15, 15, False),
    "goprofilernotes-1.net.http.pprof.goroutine.debug1.txt": ("debug1", 9, 10, False),
    "goprofilernotes-1.net.http.pprof.goroutine.debug2.txt": ("debug2", 10, 10, False),
    "goprofilernotes-1.pprof.lookup.goroutine.debug1.txt": ("debug1", 5, 6, False),
    "goprofilernotes-1.pprof.lookup.goroutine.debug2.txt": ("debug2", 6, 6, False),
    "goprofilernotes-1.runtime.stack.txt": ("debug2", 6, 6, False),
    "goprofilernotes-2.net.http.pprof.goroutine.debug1.txt": ("debug1", 9, 10, False),
    "goprofilernotes-2.net.http.pprof.goroutine.debug2.txt": ("debug2", 10, 10, False),
    "goprofilernotes-2.pprof.lookup.goroutine.debug1.txt": ("debug1", 8, 9, False),
    "goprofilernotes-2.pprof.lookup.goroutine.debug2.txt": ("debug2", 9, 9, False),
    "goprofilernotes-2.runtime.stack.txt": ("debug2", 9, 9, False),
    "goprofilernotes-runtime-stack-sigquit-session.txt": ("debug2", 11, 11, False),
    "gostackparse-ancestors.txt": ("debug2", 3, 3, False),
    "gostackparse-cgo.txt": ("debug2", 3, 3, False),
    "gostackparse-empty_stack.txt": ("debug2", 2, 2, False),
    "gostackparse-errorhandling.txt": ("debug2", 3, 3, False),
    "gostackparse-frameselided.txt": ("debug2", 1, 1, False),
    "gostackparse-frameselided_goroutine.txt": ("debug2", 2, 2, False),
    "gostackparse-go121_createdby.txt": ("debug2", 2, 2, False),
    "gostackparse-lockedm.txt": ("debug2", 1, 1, False),
    "gostackparse-partial_createdby.txt": ("debug2", 2, 2, True),
    "gostackparse-partial_stack.txt": ("debug2", 2, 2, True),
    "gostackparse-waitsince.txt": ("debug2", 9, 9, False),
    "gostackparse-windows.txt": ("debug2", 1, 1, False),
    "gotfmt-traceback-deadlock.txt": ("panic", 3, 3, False),
    "gotfmt-traceback-go7725.txt": ("panic", 134, 134, False),
    "gotfmt-traceback-issue9321.txt": ("panic", 4, 4, False),
    "gotfmt-traceback-nil.txt": ("panic", 2, 2, False),
    "gotfmt-traceback-sigabrt.txt": ("panic", 2, 2, False),
    "gotfmt-traceback-timeout.txt": ("panic", 3, 3, False),
    "gotfmt-traceback-timeout_early.txt": ("panic", 2, 2, False),
    "gotfmt-traceback-userdefined1.txt": ("debug2", 2, 2, False),
    "issue-ariga-atlas-1454-connectionOpener-spaces-indent.txt": ("debug2", 2, 2, True),
    "issue-cockroach-32582-lib-pq-recv1Buf-vendor.txt": ("debug2", 1, 1, True),
    "issue-go-sql-driver-mysql-1011-debug1-prefixed.txt": ("debug1", 4, 7, True),
    "issue-golang-go-22773-debug1-mangled-whitespace-persistConn.txt": ("debug1", 2, 1735, False),
    "issue-golang-go-23922-windows-rows-tx-awaitDone.txt": ("debug2", 5, 5, True),
    "issue-jackc-pgx-1999-debug1-elided-ctxwatch.txt": ("debug1", 1, 74, False),
    "issue-jackc-pgx-713-debug1-double-header-puddle-acquire.txt": ("debug1", 2, 3252, True),
    "issue-lib-pq-35-go1.0-log-prefixed-sigabrt.txt": ("panic", 1, 1, True),
    "issue-lib-pq-948-spaces-indent-tx-awaitDone-rollback.txt": ("debug2", 3, 3, True),
    "issue-matrixone-12731-mysql-startWatcher-select-6733-minutes.txt": ("debug2", 1, 1, False),
    "issue-mssqldb-78-fp-sp-pc-arm64-go1.19.txt": ("panic", 3, 3, True),
    "issue-pingcap-tidb-30332-jenkins-timestamped-goleak-mysql.txt": ("debug2", 2, 2, True),
    "issue-pingcap-tidb-43052-goleak-bazel-GOROOT-persistConn.txt": ("debug2", 2, 2, True),
    "issue-spidernet-spiderpool-917-persistConn-readLoop-io-wait-minutes.txt":
        ("debug2", 1, 1, False),
    "landontclipp-blog-pgo-goroutine-debug2-go121-spaces.txt": ("debug2", 5, 5, False),
    "rpc25519-play-buggy_test-comment-go124-gp-m-synctest-sigquit.txt": ("panic", 11, 11, False),
    "songgao-stacktraces-README-sigusr2-contention-goroutines-heap-threadcreate.txt":
        ("debug2", 4, 4, False),
}

#: Corpus files that are expected to fail, and why (the ParseError must say so).
EXPECTED_FAILURES: dict[str, str] = {
    # runtime.GoroutineProfile() rendered as JSON by the author's example program: only
    # raw PCs, no symbols; not a format the Go runtime writes.
    "goprofilernotes-1.runtime.goroutineprofile.json": "JSON",
    "goprofilernotes-2.runtime.goroutineprofile.json": "JSON",
    # Race detector reports: indented stacks of memory accesses, not goroutine dumps.
    "gotfmt-traceback-issue9307.txt": "race detector",
    "gotfmt-traceback-race.txt": "race detector",
    "gotfmt-traceback-race_test.txt": "race detector",
    # Delve's `goroutines` listing: one line per goroutine, no stacks.
    "issue-go-sql-driver-mysql-1342-delve-grs-listing.txt": "Delve",
}


def test_every_corpus_file_is_accounted_for(corpus: Path) -> None:
    names = {p.name for p in corpus_files("goroutines")}
    assert names, "no corpus files"
    assert names == set(EXPECTED) | set(EXPECTED_FAILURES)


@pytest.mark.parametrize("path", corpus_files("goroutines"), ids=lambda p: p.name)
def test_corpus_file(corpus: Path, path: Path) -> None:
    data = path.read_bytes()
    if path.name in EXPECTED_FAILURES:
        assert gr.sniff(data[:65536], path.name) == 0.0
        with pytest.raises(ParseError, match=EXPECTED_FAILURES[path.name]):
            gr.parse(data, ParseContext(path=str(path)))
        return
    fmt, rows, total, truncated = EXPECTED[path.name]
    assert gr.sniff(data[:65536], path.name) >= 0.35
    res = gr.parse(data, ParseContext(path=str(path)))
    g = res.tables["goroutines"]
    assert res.meta["format"] == fmt
    assert len(g) == rows
    assert int(g["count"].sum()) == total == res.meta["goroutines"]
    assert res.meta["truncated"] is truncated
    assert truncation_warned(res) is truncated
    assert len(res.warnings) <= 51
    # Contract: parser-own columns only, typed; every stack id has its frames.
    assert list(g.columns[4:]) == [c for c, _ in gr_columns("goroutines")]
    stack_ids = set(g["stack_id"].dropna())
    assert stack_ids <= set(res.tables["stacks"]["stack_id"])
    assert len(res.tables["goroutine_leaks"]) == 0


@pytest.mark.parametrize("path", corpus_files("goroutines"), ids=lambda p: p.name)
def test_chunked_normalization_changes_nothing(corpus: Path, path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Big dumps are normalized in line-aligned chunks by a worker thread: cut every few
    lines instead of every few MB, each corpus file must parse exactly as in one piece."""
    if path.name in EXPECTED_FAILURES:
        return
    data = path.read_bytes()
    whole = gr.parse(data, ParseContext(path=str(path)))
    monkeypatch.setattr(gr, "_CHUNK_CHARS", 300)
    chunked = gr.parse(data, ParseContext(path=str(path)))
    assert chunked.meta == whole.meta
    assert [str(w) for w in chunked.warnings] == [str(w) for w in whole.warnings]
    for name, table in whole.tables.items():
        pd.testing.assert_frame_equal(chunked.tables[name], table)


def gr_columns(table: str):
    from forensics.schema import _TABLES

    return _TABLES[table]


def test_pprof_text_files_are_not_goroutine_dumps(corpus: Path) -> None:
    """corpus/pprof holds heap, threadcreate and binary profiles: none is ours."""
    for path in corpus_files("pprof"):
        assert gr.sniff(path.read_bytes()[:65536], path.name) == 0.0, path.name


# --- debug=2 facts ------------------------------------------------------------------------


def test_go122_sigquit_states_minutes_and_creators(corpus: Path) -> None:
    res = parse_file("defacto2-server-docs-todo-major-freeze-go122-sigquit.txt")
    g1 = goroutine(res, 1)
    assert (g1.state, g1.wait_minutes) == ("chan receive", 171)
    assert pd.isna(g1.created_by) and pd.isna(g1.parent_goroutine_id)
    opener = goroutine(res, 7)
    assert (opener.state, opener.wait_minutes) == ("select", 171)
    assert opener.created_by == "database/sql.OpenDB"
    assert opener.created_by_file == "/usr/local/go/src/database/sql/sql.go"
    assert opener.created_by_line == 824
    assert opener.parent_goroutine_id == 1
    assert functions(res, opener.stack_id) == ["database/sql.(*DB).connectionOpener"]
    assert (goroutine(res, 11).state, goroutine(res, 11).wait_minutes) == ("IO wait", 12)
    assert goroutine(res, 14).state == "syscall"
    assert pd.isna(goroutine(res, 18691).wait_minutes)
    # The dumping goroutine is kept: excluding it is detection's business.
    assert goroutine(res, 18685).state == "running"
    serve = goroutine(res, 19622)
    assert (serve.created_by, serve.parent_goroutine_id) == ("net/http.(*Server).Serve", 11)
    # Six conn.serve goroutines blocked in the same read share a stack.
    g = res.tables["goroutines"]
    assert (g["stack_id"] == serve.stack_id).sum() == 6


def test_go121_created_by_in_goroutine(corpus: Path) -> None:
    res = parse_file("gostackparse-go121_createdby.txt")
    g18 = goroutine(res, 18)
    assert g18.state == "running"
    assert g18.created_by == "main.main"
    assert g18.parent_goroutine_id == 1
    assert g18.created_by_file.endswith("test-fixtures/go121_createdby.go")
    assert g18.created_by_line == 14
    assert functions(res, g18.stack_id) == ["main.printStack", "main.main.func1"]
    g1 = goroutine(res, 1)
    assert g1.state == "semacquire" and pd.isna(g1.created_by)
    assert functions(res, g1.stack_id) == ["sync.runtime_Semacquire",
                                           "sync.(*WaitGroup).Wait", "main.main"]
    # The file ends without a newline after a complete frame: not truncated.
    assert not res.meta["truncated"]


def test_frames_elided(corpus: Path) -> None:
    res = parse_file("gostackparse-frameselided.txt")
    g1 = goroutine(res, 1)
    assert bool(g1.frames_elided)
    assert len(frames(res, g1.stack_id)) == 100  # 100 frames, then the elision marker
    res = parse_file("gostackparse-frameselided_goroutine.txt")
    g18, g1 = goroutine(res, 18), goroutine(res, 1)
    assert bool(g18.frames_elided) and g18.created_by == "main.main"
    assert not bool(g1.frames_elided)


def test_locked_to_thread_cgo_and_inlined(corpus: Path) -> None:
    assert bool(goroutine(parse_file("gostackparse-lockedm.txt"), 7).locked_to_thread)
    res = parse_file("gostackparse-cgo.txt")
    g7 = goroutine(res, 7)
    assert (g7.state, bool(g7.locked_to_thread)) == ("sleep", True)
    assert goroutine(res, 6).state == "syscall"
    f = frames(res, g7.stack_id)
    inlined = f[f["function"] == "main.goSleep"].iloc[0]
    assert bool(inlined.inlined) and inlined.line == 53
    assert f[f["function"] == "main._Cfunc_c_go_sleep_loop"].iloc[0].file == "_cgo_gotypes.go"
    assert not bool(goroutine(res, 1).locked_to_thread)


def test_waitsince_minutes(corpus: Path) -> None:
    res = parse_file("gostackparse-waitsince.txt")
    g = res.tables["goroutines"]
    assert (g["wait_minutes"] == 1).sum() == 8
    assert goroutine(res, 6).state == "chan receive"
    assert pd.isna(goroutine(res, 1).wait_minutes)


def test_leaked_driver_watcher_minutes_and_library_class(corpus: Path) -> None:
    res = parse_file("issue-matrixone-12731-mysql-startWatcher-select-6733-minutes.txt")
    g = goroutine(res, 2669528)
    assert (g.state, g.wait_minutes) == ("select", 6733)
    assert g.created_by == "github.com/go-sql-driver/mysql.(*mysqlConn).startWatcher"
    f = frames(res, g.stack_id).iloc[0]
    assert (f.function, f.line) == ("github.com/go-sql-driver/mysql.(*mysqlConn)"
                                    ".startWatcher.func1", 614)
    assert (f.frame_class, f.module) == ("library", "github.com/go-sql-driver/mysql")


def test_persistconn_readloop_io_wait(corpus: Path) -> None:
    res = parse_file("issue-spidernet-spiderpool-917-persistConn-readLoop-io-wait-minutes.txt")
    g = goroutine(res, 361)
    assert (g.state, g.wait_minutes) == ("IO wait", 106)
    assert g.created_by == "net/http.(*Transport).dialConn"
    fns = functions(res, g.stack_id)
    assert len(fns) == 10  # 23 lines: header, 10 frame pairs, the creator pair
    assert fns[0] == "internal/poll.runtime_pollWait"
    assert fns[-1] == "net/http.(*persistConn).readLoop"


def test_connection_opener_is_stdlib_with_space_indent(corpus: Path) -> None:
    res = parse_file("issue-ariga-atlas-1454-connectionOpener-spaces-indent.txt")
    g = goroutine(res, 823)
    assert (g.state, g.wait_minutes, g.created_by_line) == ("select", 6, 791)
    f = frames(res, g.stack_id).iloc[0]
    assert f.function == "database/sql.(*DB).connectionOpener"
    assert (f.frame_class, f.module) == ("stdlib", "std")
    assert f.file == "/usr/local/go/src/database/sql/sql.go" and f.line == 1218
    # The paste is cut inside goroutine 5629 ("os/exec.(*Cmd).Start.func2"): its
    # complete frames are kept, the cut one is not.
    cut = functions(res, goroutine(res, 5629).stack_id)
    assert cut[-1] == "os/exec.(*Cmd).writerDescriptor.func1"
    assert len(cut) == 10


def test_windows_paths_and_tx_awaitdone_signatures(corpus: Path) -> None:
    res = parse_file("issue-golang-go-23922-windows-rows-tx-awaitDone.txt")
    rows = goroutine(res, 4621161)
    assert rows.state == "semacquire"
    assert rows.created_by == "database/sql.(*Rows).initContextClose"
    f = frames(res, rows.stack_id)
    assert list(f["function"]) == ["sync.runtime_SemacquireMutex", "sync.(*Mutex).Lock",
                                   "sync.(*RWMutex).Lock", "database/sql.(*Rows).close",
                                   "database/sql.(*Rows).awaitDone"]
    assert (f.iloc[4].file, f.iloc[4].line) == ("C:/Go/src/database/sql/sql.go", 2430)
    txs = [goroutine(res, i) for i in (4598680, 4618455, 4589766)]
    assert {t.state for t in txs} == {"chan receive"}
    assert {t.created_by for t in txs} == {"database/sql.(*DB).beginDC"}
    assert len({t.signature_id for t in txs}) == 1  # same stack, state and creator
    last = goroutine(res, 4583925)  # its "created by database/sql.(*DB" line is cut
    assert last.stack_id == txs[0].stack_id and pd.isna(last.created_by)
    assert last.signature_id != txs[0].signature_id


def test_ancestor_blocks_are_not_goroutines(corpus: Path) -> None:
    res = parse_file("gostackparse-ancestors.txt")
    assert sorted(res.tables["goroutines"]["goroutine_id"]) == [1, 25, 29]
    assert res.meta["ancestor_blocks"] == 10
    g25 = goroutine(res, 25)
    assert functions(res, g25.stack_id) == ["main.bar", "main.foo.func2"]
    assert g25.created_by == "main.d1" and g25.created_by_line == 69


def test_go124_gp_m_headers_fp_sp_pc_and_synctest(corpus: Path) -> None:
    res = parse_file("rpc25519-play-buggy_test-comment-go124-gp-m-synctest-sigquit.txt")
    assert sorted(res.tables["goroutines"]["goroutine_id"]) == list(range(11))
    assert goroutine(res, 0).state == "idle"
    assert goroutine(res, 6).state == "synctest.Run"  # ", synctest group 6" dropped
    g8 = goroutine(res, 8)
    assert g8.state == "sync.Cond.Wait" and g8.parent_goroutine_id == 7
    f = frames(res, goroutine(res, 1).stack_id)
    assert len(f) == 11
    assert (f.iloc[8].function, f.iloc[8].file, f.iloc[8].line) == ("main.main",
                                                                     "_testmain.go", 45)
    assert f.iloc[-1].function == "runtime.goexit"
    gowrap = functions(res, goroutine(res, 3).stack_id)
    assert "runtime.gcenable.gowrap1" in gowrap


def test_glued_header_and_two_dumps_in_one_session(corpus: Path) -> None:
    res = parse_file("goprofilernotes-runtime-stack-sigquit-session.txt")
    g = res.tables["goroutines"]
    # "...dumping all stacksgoroutine 1 [running]:" is a header glued to program output.
    assert g.iloc[0].goroutine_id == 1 and g.iloc[0].state == "running"
    assert functions(res, g.iloc[0].stack_id) == ["main.main"]
    assert res.meta["repeated_ids"] == 5  # runtime.Stack dump, then the SIGQUIT dump
    g1 = g[g["goroutine_id"] == 1]
    assert list(g1["state"]) == ["running", "chan receive"]
    assert list(g1["wait_minutes"].fillna(-1)) == [-1, 3]
    assert any("more than one dump" in w.message for w in res.warnings)


def test_runtime_stack_section_and_unavailable_stack(corpus: Path) -> None:
    res = parse_file("gotfmt-traceback-issue9321.txt")
    st = res.tables["stacks"]
    assert "runtime.throw" not in set(st["function"])  # "runtime stack:" is not a goroutine
    g18 = goroutine(res, 18)
    assert g18.state == "running" and pd.isna(g18.stack_id)
    assert res.meta["stacks_unavailable"] == 1
    assert g18.created_by == "_/home/rina/repro.TestRepro"
    dumper = goroutine(res, 17)
    assert "runtime/pprof.writeGoroutineStacks" in functions(res, dumper.stack_id)
    f = frames(res, goroutine(res, 5).stack_id)
    # A package built outside GOPATH and modules is the user's code.
    assert f[f["function"] == "_/home/rina/repro.TestRepro"].iloc[0].frame_class == "app"


def test_nil_chan_states_and_go12_paths(corpus: Path) -> None:
    res = parse_file("gotfmt-traceback-deadlock.txt")
    assert goroutine(res, 3).state == "chan receive (nil chan)"
    assert goroutine(res, 4).state == "chan send (nil chan)"
    assert functions(res, goroutine(res, 4).stack_id) == [
        "github.com/t-yuki/gotracetools/traceback/testdata.func\u00b7001"]


def test_go12_crash_c_frames_are_runtime(corpus: Path) -> None:
    res = parse_file("gotfmt-traceback-go7725.txt")
    g = res.tables["goroutines"]
    assert (g["state"] == "sleep").sum() == 117
    assert goroutine(res, 0).state == "idle"
    f = frames(res, goroutine(res, 0).stack_id)
    assert (f.iloc[0].function, f.iloc[0].frame_class) == ("scanblock", "runtime")
    assert f.iloc[0].file.endswith("runtime/mgc0.c") and f.iloc[0].line == 969
    # Known-malformed lines in this file are skipped with line-numbered warnings.
    assert any(w.line == 1507 for w in res.warnings)


def test_interleaved_log_line_inside_a_frame(corpus: Path) -> None:
    res = parse_file("gotfmt-traceback-userdefined1.txt")
    f = frames(res, goroutine(res, 4).stack_id)
    assert (f.iloc[0].function, f.iloc[0].line) == ("runtime.panic", 266)
    assert [w.line for w in res.warnings] == [7]  # the "[INFO] YYY" line


def test_mixed_stream_stops_before_the_heap_profile(corpus: Path) -> None:
    res = parse_file(
        "songgao-stacktraces-README-sigusr2-contention-goroutines-heap-threadcreate.txt")
    g6 = goroutine(res, 6)
    assert (g6.state, bool(g6.locked_to_thread)) == ("select", True)
    assert functions(res, g6.stack_id)[-1] == "runtime.goexit"
    assert len(frames(res, g6.stack_id)) == 5
    assert goroutine(res, 7).created_by == "github.com/songgao/stacktraces.Set"


def test_empty_stacks_and_broken_function_line(corpus: Path) -> None:
    res = parse_file("gostackparse-empty_stack.txt")
    assert res.tables["goroutines"]["stack_id"].isna().all()
    assert len(res.tables["stacks"]) == 0
    res = parse_file("gostackparse-errorhandling.txt")
    assert pd.isna(goroutine(res, 2).stack_id)  # "main.main)(" is not a frame
    assert [w.line for w in res.warnings] == [6]
    assert goroutine(res, 3).created_by_line == 110


# --- pastes: prefixes, spaces, fragments, truncation -------------------------------------


def test_jenkins_prefixed_double_spaced_paste(corpus: Path) -> None:
    res = parse_file("issue-pingcap-tidb-30332-jenkins-timestamped-goleak-mysql.txt")
    assert res.meta["line_prefix"].startswith(r"\[\d+")
    opener = goroutine(res, 1296)
    assert opener.state == "select" and opener.created_by == "database/sql.OpenDB"
    assert opener.created_by_line == 740
    assert functions(res, opener.stack_id) == ["database/sql.(*DB).connectionOpener"]
    watcher = goroutine(res, 4852)  # its "created by" line is cut mid-name
    assert pd.isna(watcher.created_by)
    assert functions(res, watcher.stack_id) == [
        "github.com/go-sql-driver/mysql.(*mysqlConn).startWatcher.func1"]


def test_foreman_prefixed_go10_paste(corpus: Path) -> None:
    res = parse_file("issue-lib-pq-35-go1.0-log-prefixed-sigabrt.txt")
    g = goroutine(res, 1)
    assert g.state == "chan receive"
    fns = functions(res, g.stack_id)
    # "(_pollServer)" was markdown's mangling of "(*pollServer)".
    assert fns[0] == "net.(*pollServer).WaitRead"
    assert fns[-1] == "net/http.(*Server).ListenAndServe"
    assert len(fns) == 6  # the 7th frame is cut in its file line ("server.go:1074 +")


def test_headerless_fragment_with_vendored_driver(corpus: Path) -> None:
    res = parse_file("issue-cockroach-32582-lib-pq-recv1Buf-vendor.txt")
    g = res.tables["goroutines"].iloc[0]
    assert pd.isna(g.goroutine_id) and pd.isna(g.state)
    f = frames(res, g.stack_id)
    assert len(f) == 6
    assert f.iloc[0].function.endswith("vendor/github.com/lib/pq.(*conn).recv1Buf")
    assert (f.iloc[0].frame_class, f.iloc[0].module) == ("library", "github.com/lib/pq")
    assert (f.iloc[5].function, f.iloc[5].frame_class) == ("database/sql.ctxDriverQuery",
                                                          "stdlib")


def test_paste_starting_mid_goroutine_with_fp_annotations(corpus: Path) -> None:
    res = parse_file("issue-mssqldb-78-fp-sp-pc-arm64-go1.19.txt")
    g = res.tables["goroutines"]
    head = g.iloc[0]
    assert pd.isna(head.goroutine_id)
    f = frames(res, head.stack_id)
    assert list(f["function"]) == ["database/sql.(*Tx).Query", "main.main", "runtime.main",
                                   "runtime.goexit"]
    assert bool(f.iloc[0].inlined) and f.iloc[1].line == 73
    g2 = goroutine(res, 2)
    assert (g2.state, g2.created_by, g2.created_by_line) == ("force gc (idle)",
                                                            "runtime.init.6", 290)
    assert pd.isna(goroutine(res, 3).stack_id)  # cut right after its header


def test_paste_starting_with_a_file_line(corpus: Path) -> None:
    res = parse_file("issue-lib-pq-948-spaces-indent-tx-awaitDone-rollback.txt")
    head = res.tables["goroutines"].iloc[0]
    assert pd.isna(head.goroutine_id)
    assert functions(res, head.stack_id) == ["database/sql.(*Tx).rollback",
                                             "database/sql.(*Tx).awaitDone"]
    assert head.created_by == "database/sql.(*DB).beginDC"
    assert goroutine(res, 4590).state == "chan receive"


TRUNCATED = [name for name, exp in EXPECTED.items() if exp[3]]


@pytest.mark.parametrize("name", TRUNCATED)
def test_truncated_pastes_warn_once(corpus: Path, name: str) -> None:
    res = parse_file(name)
    assert sum(w.message.startswith("the dump is truncated") for w in res.warnings) == 1


def _prefix_every_line(text: str) -> str:
    return "".join(f"[2024-05-0{i % 9 + 1}T10:{i % 60:02d}:07.{i % 1000:03d}Z] {line}"
                   for i, line in enumerate(text.splitlines(keepends=True)))


@pytest.mark.parametrize("name", [
    "defacto2-server-docs-todo-major-freeze-go122-sigquit.txt",
    "gostackparse-go121_createdby.txt",
    "goprofilernotes-2.net.http.pprof.goroutine.debug1.txt",
])
def test_prefixed_and_space_indented_pastes_parse_the_same(corpus: Path, name: str) -> None:
    text = (GDIR / name).read_text()
    plain = parse_bytes(text)
    cols = ["goroutine_id", "count", "state", "wait_minutes", "stack_id", "created_by",
            "created_by_line", "parent_goroutine_id", "signature_id", "labels"]
    for mangled in (_prefix_every_line(text), text.replace("\t", "        "),
                    _prefix_every_line(text.replace("\t", "    ")),
                    "\n".join("[INFO] " + ln for ln in text.split("\n"))):
        res = parse_bytes(mangled)
        pd.testing.assert_frame_equal(res.tables["goroutines"][cols],
                                      plain.tables["goroutines"][cols])
        pd.testing.assert_frame_equal(res.tables["stacks"], plain.tables["stacks"])


def _docker_json_log(text: str) -> str:
    """``/var/lib/docker/containers/<id>/<id>-json.log``: a record per line, ``\\n`` kept."""
    return "".join(json.dumps({"log": line, "stream": "stderr",
                               "time": f"2026-11-27T10:15:{i // 1000:02d}.{i:09d}Z"}) + "\n"
                   for i, line in enumerate(text.splitlines(keepends=True)))


def _journald_json(text: str) -> str:
    """``journalctl -o json``: a record per message, no line end, microsecond clock."""
    start = 1795774500_000000  # 2026-11-27T10:15:00Z
    return "".join(json.dumps({"MESSAGE": line, "_PID": "4242",
                               "__REALTIME_TIMESTAMP": str(start + i)}) + "\n"
                   for i, line in enumerate(text.split("\n")))


def _cri_log(text: str) -> str:
    """A Kubernetes node's container log: time, stream, partial flag, then the line."""
    return "".join(f"2026-11-27T10:15:00.{i:09d}Z stderr F {line}\n"
                   for i, line in enumerate(text.split("\n")))


@pytest.mark.parametrize("wrap", [_docker_json_log, _journald_json, _cri_log])
@pytest.mark.parametrize("name", [
    "defacto2-server-docs-todo-major-freeze-go122-sigquit.txt",
    "gostackparse-go121_createdby.txt",
])
def test_dumps_taken_from_container_logs_parse_the_same(corpus: Path, name: str,
                                                        wrap) -> None:
    text = (GDIR / name).read_text()
    plain = parse_bytes(text)
    res = parse_bytes(wrap(text))
    cols = ["goroutine_id", "state", "wait_minutes", "stack_id", "created_by",
            "created_by_line", "parent_goroutine_id", "signature_id"]
    pd.testing.assert_frame_equal(res.tables["goroutines"][cols],
                                  plain.tables["goroutines"][cols])
    pd.testing.assert_frame_equal(res.tables["stacks"], plain.tables["stacks"])
    assert not [w for w in res.warnings if w not in plain.warnings]
    # The log's clock says when the dump was printed: the minute of every record here.
    when = datetime.fromtimestamp(res.meta["time_nanos"] / 1e9, tz=timezone.utc)
    assert when.replace(second=0, microsecond=0) == datetime(2026, 11, 27, 10, 15,
                                                             tzinfo=timezone.utc)


def test_json_nested_past_the_decoders_depth_is_not_a_log() -> None:
    """Found by the fuzz test: a line of 100k open brackets made json.loads recurse out."""
    with pytest.raises(ParseError):
        parse_bytes("{" + '"a":[' * 100_000 + "\n")


def test_json_that_is_not_a_log_of_a_dump_is_left_alone() -> None:
    text = '{"log": "listening on :8080\\n", "time": "2026-11-27T10:15:00Z"}\n'
    with pytest.raises(ParseError):
        parse_bytes(text)
    assert "time_nanos" not in parse_bytes("goroutine 1 [running]:\nmain.main()\n"
                                           "\t/app/main.go:5 +0x1d\n").meta


def test_tabs_expanded_by_the_author(corpus: Path) -> None:
    res = parse_file("landontclipp-blog-pgo-goroutine-debug2-go121-spaces.txt")
    dumper = goroutine(res, 96)
    fns = functions(res, dumper.stack_id)
    assert fns[0] == "runtime/pprof.writeGoroutineStacks" and len(fns) == 9
    assert (dumper.created_by, dumper.parent_goroutine_id) == ("net/http.(*Server).Serve", 6)
    f = frames(res, goroutine(res, 1).stack_id)
    assert (f.iloc[0].function, bool(f.iloc[0].inlined)) == ("sync.(*Mutex).Unlock", True)


# --- debug=1 ------------------------------------------------------------------------------


def test_debug1_records_sum_to_total_with_labels(corpus: Path) -> None:
    res = parse_file("goprofilernotes-1.net.http.pprof.goroutine.debug1.txt")
    g = res.tables["goroutines"]
    assert res.meta["profile_total"] == 10 == int(g["count"].sum())
    assert g["goroutine_id"].isna().all() and g["state"].isna().all()
    assert (g["format"] == "debug1").all()
    assert list(g["count"]) == [2, 1, 1, 1, 1, 1, 1, 1, 1]
    assert (g["labels"] == '{"test_label":"test_value"}').sum() == 6
    assert functions(res, g.iloc[0].stack_id) == ["time.Sleep", "main.shortSleepLoop"]
    assert not res.warnings


def test_debug1_prefixed_first_line_and_cut_record(corpus: Path) -> None:
    res = parse_file("issue-go-sql-driver-mysql-1011-debug1-prefixed.txt")
    g = res.tables["goroutines"]
    assert res.meta["profile_total"] == 11
    assert list(g["count"]) == [2, 2, 2, 1]  # the cut "1 @ 0x4" record is dropped
    f = frames(res, g.iloc[0].stack_id).iloc[0]
    assert (f.function, f.line, f.frame_class) == ("database/sql.(*DB).connectionOpener",
                                                   1052, "stdlib")
    assert functions(res, g.iloc[2].stack_id) == [
        "github.com/go-sql-driver/mysql.(*mysqlConn).startWatcher.func1"]
    assert any("add up to 7" in w.message for w in res.warnings)


def test_debug1_lost_hash_marks(corpus: Path) -> None:
    res = parse_file("issue-golang-go-22773-debug1-mangled-whitespace-persistConn.txt")
    g = res.tables["goroutines"]
    assert list(g["count"]) == [869, 866]
    assert functions(res, g.iloc[0].stack_id) == ["net/http.(*persistConn).writeLoop"]
    assert frames(res, g.iloc[1].stack_id).iloc[0].line == 1654


def test_debug1_double_header_and_human_comment(corpus: Path) -> None:
    res = parse_file("issue-jackc-pgx-713-debug1-double-header-puddle-acquire.txt")
    g = res.tables["goroutines"]
    assert list(g["count"]) == [3251, 1]
    assert res.meta["profile_total"] == 3259  # the empty "total 51" header is ignored
    f = frames(res, g.iloc[0].stack_id)
    assert list(f["function"]) == ["sync.runtime_notifyListWait", "sync.(*Cond).Wait",
                                   "github.com/jackc/puddle.(*Pool).Acquire",
                                   "github.com/jackc/pgx/v4/pgxpool.(*Pool).Acquire"]
    assert f.iloc[2].module == "github.com/jackc/puddle"
    assert pd.isna(g.iloc[1].stack_id)  # its only frame line is cut
    assert any("no records" in w.message for w in res.warnings)


def test_debug1_human_elision_line(corpus: Path) -> None:
    res = parse_file("issue-jackc-pgx-1999-debug1-elided-ctxwatch.txt")
    g = res.tables["goroutines"].iloc[0]
    assert g["count"] == 74 and res.meta["profile_total"] == 318
    f = frames(res, g.stack_id).iloc[0]
    assert f.function == ("github.com/jackc/pgx/v5/pgconn/internal/ctxwatch."
                          "(*ContextWatcher).Watch.func1")
    assert (f.frame_class, f.module) == ("library", "github.com/jackc/pgx/v5")


# --- forms the corpus lacks: hand-written from the runtime's output format ----------------

GO127 = """\
goroutine 77 [chan receive (leaked), 5 minutes]:
database/sql.(*Tx).awaitDone(0x3a1c8f2e4b00)
\t/usr/local/go/src/database/sql/sql.go:2217 +0x4c
created by database/sql.(*DB).beginDC in goroutine 70
\t/usr/local/go/src/database/sql/sql.go:1930 +0x1f4

goroutine 81 [chan receive (leaked)]:
database/sql.(*Tx).awaitDone(0x3a1c8f2e4c80)
\t/usr/local/go/src/database/sql/sql.go:2217 +0x4c
created by database/sql.(*DB).beginDC in goroutine 79
\t/usr/local/go/src/database/sql/sql.go:1930 +0x1f4

goroutine 90 [chan receive]:
database/sql.(*Tx).awaitDone(0x3a1c8f2e4d00)
\t/usr/local/go/src/database/sql/sql.go:2217 +0x4c
created by database/sql.(*DB).beginDC in goroutine 88
\t/usr/local/go/src/database/sql/sql.go:1930 +0x1f4

goroutine 1 gp=0xc000002380 m=nil [select, 12 minutes, locked to thread]:
main.main.gowrap2()
\t/app/main.go:41 +0x25 fp=0xc000111fe0 sp=0xc000111fc8 pc=0x5eb55fb
runtime.goexit({})
\t/usr/local/go/src/runtime/asm_amd64.s:1700 +0x1 fp=0xc000111fe8 sp=0xc000111fe0 pc=0x5df27e1

goroutine 0 gp=0x60b99a0 m=0 mp=0x60ba880 [idle]:
runtime.mcall()
\t/usr/local/go/src/runtime/asm_amd64.s:459 +0x4e fp=0x7ff7bb184cb0 sp=0x7ff7bb184c98 pc=0x1
"""


def test_go127_leaked_state_and_gp_m_header() -> None:
    res = parse_bytes(GO127)
    a, b, c = goroutine(res, 77), goroutine(res, 81), goroutine(res, 90)
    assert (a.state, bool(a.leaked), a.wait_minutes, a.parent_goroutine_id) == (
        "chan receive", True, 5, 70)
    assert (b.state, bool(b.leaked)) == ("chan receive", True)
    assert (c.state, bool(c.leaked)) == ("chan receive", False)
    # Arguments and parent ids differ; stack, state and creator do not.
    assert a.stack_id == b.stack_id == c.stack_id
    assert a.signature_id == b.signature_id == c.signature_id
    assert a.signature_id == gr.signature_id("chan receive", a.stack_id,
                                             "database/sql.(*DB).beginDC")
    g1 = goroutine(res, 1)
    assert (g1.state, g1.wait_minutes, bool(g1.locked_to_thread)) == ("select", 12, True)
    assert functions(res, g1.stack_id) == ["main.main.gowrap2", "runtime.goexit"]
    assert goroutine(res, 0).state == "idle"
    assert res.meta["format"] == "panic"  # gp=/m= headers only come from crash traces
    assert not res.warnings


def test_elided_middle_frames_go121() -> None:
    body = "".join(f"main.recurse({i})\n\t/app/r.go:{10 + i} +0x1\n" for i in range(3))
    dump = (f"goroutine 5 [running]:\n{body}...12 frames elided...\n{body}"
            "created by main.main in goroutine 1\n\t/app/main.go:3 +0x2\n")
    g = goroutine(parse_bytes(dump), 5)
    assert bool(g.frames_elided) and g.parent_goroutine_id == 1


def test_signature_depends_on_state_and_creator() -> None:
    base = "database/sql.(*DB).conn(0x{p:x})\n\t/go/src/database/sql/sql.go:1318 +0x8d\n"
    dump = "".join(
        f"goroutine {i} [{state}]:\n" + base.format(p=0xC000 + i) +
        f"created by {creator} in goroutine {i + 1000}\n\t/app/x.go:9 +0x1\n\n"
        for i, (state, creator) in enumerate([("select", "main.a"), ("select", "main.a"),
                                              ("select", "main.b"), ("IO wait", "main.a")],
                                             start=10))
    res = parse_bytes(dump)
    g = res.tables["goroutines"]
    assert g["stack_id"].nunique() == 1
    assert g["signature_id"].nunique() == 3
    assert g.iloc[0].signature_id == g.iloc[1].signature_id
    assert list(g["parent_goroutine_id"]) == [1010, 1011, 1012, 1013]


LEAK_PROFILE = """\
goroutineleak profile: total 3
2 @ 0x100eb475c 0x100e946d4 0x1010516db 0x101051a3f 0x100eb5c68
#\t0x1010516da\tdatabase/sql.(*Tx).awaitDone+0x7a\t/usr/local/go/src/database/sql/sql.go:2217

1 @ 0x100eb475c 0x100e946d4 0x101051680 0x100ec2ff0
# labels: {"handler":"checkout"}
#\t0x10105167f\tmain.(*Stats).Record+0x20\t\t./main.go:56
#\t0x101051a3e\tmain.worker+0x6f\t\t\t./main.go:108
"""


def test_goroutineleak_profile_fills_goroutine_leaks_only() -> None:
    data = LEAK_PROFILE.encode()
    assert gr.sniff(data, "goroutineleak.txt") > 0.9
    res = parse_bytes(data)
    assert res.meta["format"] == "goroutineleak"
    assert res.meta["leak_total"] == 3 == res.meta["leaked_goroutines"]
    assert len(res.tables["goroutines"]) == 0
    leaks = res.tables["goroutine_leaks"]
    assert list(leaks["count"]) == [2, 1]
    assert list(leaks["labels"].fillna("")) == ["", '{"handler":"checkout"}']
    assert functions(res, leaks.iloc[0].stack_id) == ["database/sql.(*Tx).awaitDone"]
    f = frames(res, leaks.iloc[1].stack_id)
    assert list(f["function"]) == ["main.(*Stats).Record", "main.worker"]
    assert list(f["frame_class"]) == ["app", "app"]
    assert leaks.iloc[0].signature_id == gr.signature_id(None, leaks.iloc[0].stack_id, None)
    assert not res.warnings


def test_empty_goroutineleak_profile_is_usable() -> None:
    res = parse_bytes("goroutineleak profile: total 0\n")
    assert res.meta["format"] == "goroutineleak" and res.meta["leak_total"] == 0
    assert len(res.tables["goroutine_leaks"]) == 0


def test_debug1_and_leak_stacks_match_debug2_stacks() -> None:
    """The same stack seen in debug=1, debug=2 and the leak profile gets one stack_id."""
    d2 = parse_bytes(GO127)
    d1 = parse_bytes(LEAK_PROFILE.replace("goroutineleak", "goroutine"))
    leak = parse_bytes(LEAK_PROFILE)
    sid = goroutine(d2, 77).stack_id
    assert d1.tables["goroutines"].iloc[0].stack_id == sid
    assert leak.tables["goroutine_leaks"].iloc[0].stack_id == sid


# --- state normalization and sniffing ----------------------------------------------------


@pytest.mark.parametrize("bracket,expected", [
    ("running", ("running", None, False, False)),
    ("IO wait, 171 minutes", ("IO wait", 171, False, False)),
    ("select, 6 minutes, locked to thread", ("select", 6, True, False)),
    ("chan receive (leaked)", ("chan receive", None, False, True)),
    ("chan receive (leaked), 3 minutes", ("chan receive", 3, False, True)),
    ("runnable (scan)", ("runnable", None, False, False)),
    ("chan receive (nil chan)", ("chan receive (nil chan)", None, False, False)),
    ("sleep, synctest group 6", ("sleep", None, False, False)),
    ("GC  worker (idle)", ("GC worker (idle)", None, False, False)),
])
def test_parse_state(bracket: str, expected: tuple) -> None:
    assert tuple(gr.parse_state(bracket)) == expected


def test_sniff_rejects_binary_and_foreign_text() -> None:
    assert gr.sniff(gzip.compress(b"goroutine 1 [running]:\n"), "goroutines.txt") == 0.0
    assert gr.sniff(b"\x0a\x04\x08\x01\x10\x02\x00\x00" * 100, "goroutine.pb") == 0.0
    assert gr.sniff(b"COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME\n", "x") == 0.0
    assert gr.sniff(b"heap profile: 1: 2 [3: 4] @ heap/1048576\n", "heap.txt") == 0.0
    assert gr.sniff(b"goroutine 1 [running]:\nmain.main()\n", "x") > 0.9


def test_header_far_into_the_file_is_found() -> None:
    head = ("log line\n" * 5000 + "goroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1\n")
    assert gr.sniff(head.encode()[:65536], "out.log") > 0.9


# --- untrusted input ----------------------------------------------------------------------


def test_garbage_raises_parse_error_only() -> None:
    for data in (b"", b"\x00\xff" * 1000, b"hello world\n", "\u2603".encode() * 100):
        with pytest.raises(ParseError):
            gr.parse(data, ParseContext())


@pytest.mark.parametrize("line", [
    "a" * 300_000,
    "(" * 300_000,
    "goroutine 1 [" + "x" * 300_000,
    ":1" * 150_000,
    "main.f(" + "0x1, " * 60_000 + ")",
    "#\t0x1\t" + "f+0x1 " * 50_000 + "\t/a.go:1",
    "1 @" + " 0x1" * 100_000 + " zz",
])
def test_long_hostile_lines_stay_linear(line: str) -> None:
    dump = f"goroutine profile: total 1\ngoroutine 1 [running]:\nmain.main()\n{line}\n{line}\n"
    start = time.process_time()
    res = parse_bytes(dump)
    assert time.process_time() - start < 5.0
    assert len(res.warnings) <= 51


TOKENS = st.sampled_from([
    "goroutine 1 [running]:\n", "goroutine 2 gp=0x1 m=nil [select, 3 minutes]:\n",
    "main.main()\n", "main.f(0x1, {...})\n", "pkg.(*T).m(...)\n", "\t/a/b.go:12 +0x1f\n",
    "\t/a/b.go:12 +0x1f fp=0x1 sp=0x2 pc=0x3\n", "created by main.main in goroutine 1\n",
    "created by x\n", "...additional frames elided...\n", "[originating from goroutine 3]:\n",
    "goroutine profile: total 5\n", "goroutineleak profile: total 2\n", "3 @ 0x1 0x2\n",
    "#\t0x1\tmain.f+0x1\t/a.go:3\n", "# labels: {\"a\":\"b\"}\n", "\n", "  ", "\t", ")",
    "(", ":", "garbage", "runtime stack:\n", "panic: boom\n", "\u00b7", "\x00",
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TOKENS, max_size=60))
def test_fuzzed_dumps_never_crash(tokens: list[str]) -> None:
    data = "".join(tokens).encode()
    try:
        res = gr.parse(data, ParseContext())
    except ParseError:
        return
    g = res.tables["goroutines"]
    assert len(res.warnings) <= 51
    assert set(g["stack_id"].dropna()) <= set(res.tables["stacks"]["stack_id"])
    assert (g["count"] >= 0).all()


def test_signature_is_a_stable_text_hash() -> None:
    assert gr.signature_id("select", 42, "main.f") == text_hash("select\n42\nmain.f")


def test_big_dump_shares_parses_between_goroutines() -> None:
    """20k goroutines with per-goroutine arguments and parents, three distinct stacks."""
    stacks = [
        ("database/sql.(*DB).conn", "database/sql.(*DB).query", "main.handler"),
        ("database/sql.(*Tx).awaitDone",),
        ("internal/poll.runtime_pollWait", "net/http.(*persistConn).readLoop"),
    ]
    parts = []
    for i in range(20_000):
        fns = stacks[i % 3]
        parts.append(f"goroutine {i + 100} [select, {i % 7} minutes]:\n")
        for d, fn in enumerate(fns):
            parts.append(f"{fn}(0x{0xc000000000 + i * 64:x}, {{0x{i:x}, 0x2}})\n"
                         f"\t/src/{fn.split('.')[0]}.go:{100 + d} +0x{d + 16:x}\n")
        parts.append(f"created by main.spawn in goroutine {i + 1}\n\t/app/main.go:9 +0x1\n\n")
    res = parse_bytes("".join(parts))
    g = res.tables["goroutines"]
    assert len(g) == 20_000 and res.meta["distinct_stacks"] == 3
    assert g["parent_goroutine_id"].iloc[-1] == 20_000
    assert g["signature_id"].nunique() == 3
    assert int(g["wait_minutes"].sum()) == sum(i % 7 for i in range(20_000))


def test_ids_keep_63_bits() -> None:
    res = parse_bytes(GO127)
    sid = goroutine(res, 77).stack_id
    assert sid in set(res.tables["stacks"]["stack_id"])
    assert isinstance(int(sid), int) and int(sid) > 2**40


def test_no_regex_catastrophe_on_profile_word_runs() -> None:
    start = time.process_time()
    with pytest.raises(ParseError):
        parse_bytes("profile: " + "a" * 200_000 + " profile: x\n")
    assert time.process_time() - start < 5.0


def test_module_docstring_lists_formats() -> None:
    assert gr.__doc__ is not None
    for fmt in ("debug2", "debug1", "panic", "goroutineleak"):
        assert re.search(rf"``{fmt}``", gr.__doc__)
