"""Every corpus file through the whole job (``forensics analyze`` on one file): recognised
as its kind by content, or refused with a specific reason; never a crash, never an
internal error in a parser, the joins or a detector."""

from __future__ import annotations

import pytest
from conftest import CORPUS, corpus_files

from forensics.pipeline import analyze

FAMILY_KINDS = {
    "goroutines": {"goroutines"},
    "lsof": {"lsof"},
    "ss": {"ss"},
    "netstat": {"netstat"},
    "procfd": {"procfd", "proc_net_tcp"},
    "pprof": {"heap_pprof", "heap_text", "goroutines"},
    "dbstats": {"dbstats"},
}

#: Files that are, rightly, not artifacts we analyse: (kind we expect, why).
NOT_ANALYSED = {
    "goprofilernotes-1.runtime.goroutineprofile.json": "an example program's own JSON",
    "goprofilernotes-2.runtime.goroutineprofile.json": "an example program's own JSON",
    "gotfmt-traceback-issue9307.txt": "race/vet report, no goroutine headers",
    "gotfmt-traceback-race.txt": "race detector report",
    "gotfmt-traceback-race_test.txt": "race detector report",
    "issue-go-sql-driver-mysql-1342-delve-grs-listing.txt": "delve listing without stacks",
    "pyroscope-go_type_parameters-funcnames.txt": "a list of function names",
    "jc-linux-proc-pid_fdinfo.txt": "fdinfo: no socket or fd table",
    "jc-linux-proc-pid_fdinfo_epoll.txt": "fdinfo",
    "jc-linux-proc-pid_fdinfo_inotify.txt": "fdinfo",
    "jc-linux-proc-pid_fdinfo_timerfd.txt": "fdinfo",
}
#: Recognised, and refused with a reason naming what they are.
REFUSED = {
    "netstat": ("no connections",),
    "pprof": ("not used for leak analysis", "not a heap profile", "growth profile"),
}

FILES = [p for fam in FAMILY_KINDS for p in corpus_files(fam)]


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_file_through_the_pipeline(corpus, path):
    a = analyze(path)
    internal = [w for w in a.warnings if "internal error" in w["message"]]
    assert not internal, internal
    art = a.artifacts[0]
    if path.name in NOT_ANALYSED:
        assert art.kind == "unknown" and art.status in ("warning", "ignored")
        assert art.message
        return
    family = path.parent.name
    assert art.kind in FAMILY_KINDS[family], (art.kind, art.message)
    if art.status in ("failed", "ignored"):
        assert any(r in art.message for r in REFUSED.get(family, ())), art.message
        # recognised and deliberately unused: nothing to analyse, nothing wrong with it
        assert art.status == "ignored" and not a.warnings
        assert a.exit_code() == 4
    else:
        assert a.usable and a.exit_code() in (0, 3)


def test_corpus_is_there_when_it_should_be(corpus):
    assert len(FILES) > 100, f"only {len(FILES)} corpus files under {CORPUS}"
