"""heap_text: the legacy text heap profiles in the corpus parse to the same numbers
``go tool pprof`` reports for them (unsampled totals checked with
``go tool pprof -sample_index=... -unit=byte -top``); the other legacy texts are refused
with a reason; unsampling, inlining, pasted whitespace and odd names are pinned down.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import corpus_files

from forensics.parsers import heap_pprof as hp
from forensics.parsers import heap_text as ht
from forensics.parsers.base import ParseContext, ParseError
from forensics.stacks import Frame

CTX = ParseContext(path="heap.txt")

# file -> (records, period, inuse_space, inuse_objects, alloc_space, alloc_objects)
PARSED = {
    "landontclipp-blog-pgo-allocs-debug2-text-heap-memstats-go121-spaces.txt":
        (15, 524288, 524300, 21845, 63150416728, 3214018669),
    "googlepprof-gobench.heap": (15, 524288, 7721316, 11445, 350314738, 83134),
    "googlepprof-cppbench.heap": (31, 524288, 80935293, 41063, 80935293, 41063),
    "issue-golang-go-68136-heap-debug1-empty-heap-rate0-go1.23rc1-truncated.txt":
        (0, 0, 0, 0, 0, 0),
}
REJECTED = {
    "googlepprof-cppbench.growth": "heap growth profile (gperftools growthz)",
    "googlepprof-go.godoc.thread": "threadcreate profile (legacy text): not a heap profile",
    "landontclipp-blog-pgo-threadcreate-debug1-go121.txt":
        "threadcreate profile (legacy text): not a heap profile",
    "pyroscope-go_type_parameters-funcnames.txt":
        "no 'heap profile:' header: not a legacy heap profile "
        "(starts with 'github.com/bufbuild/connect-go.(*Client[go.shape.struct { gi')",
}
BINARY_MESSAGE = "binary data (gzip, protobuf or a legacy binary profile), not a text heap profile"


def _read(corpus: Path, name: str) -> bytes:
    return (corpus / "pprof" / name).read_bytes()


def _is_binary(path: Path) -> bool:
    return ".pb" in path.name or path.name.endswith(".cpu")


def test_every_corpus_file_is_classified(corpus: Path) -> None:
    text = {p.name for p in corpus_files("pprof") if not _is_binary(p)}
    assert text == set(PARSED) | set(REJECTED)


@pytest.mark.parametrize("name", sorted(PARSED))
def test_parsed(corpus: Path, name: str) -> None:
    records, period, inuse, inuse_obj, alloc, alloc_obj = PARSED[name]
    res = ht.parse(_read(corpus, name), CTX)
    assert res.meta["profile_kind"] == "heap"
    assert res.meta["format"] == "text"
    assert "time_nanos" not in res.meta  # the legacy text has no clock of its own
    prof = res.tables["heap_profiles"].iloc[0]
    assert prof["format"] == "text"
    assert prof["samples"] == records
    assert prof["period"] == period
    assert prof["sample_types"] == ("alloc_objects/count,alloc_space/bytes,"
                                    "inuse_objects/count,inuse_space/bytes")
    assert prof["total_inuse_space"] == inuse
    assert prof["total_inuse_objects"] == inuse_obj
    hs = res.tables["heap_samples"]
    assert len(hs) == records
    assert hs["alloc_space"].sum() == alloc
    assert hs["alloc_objects"].sum() == alloc_obj
    assert hs["block_bytes"].isna().all()
    assert set(hs["stack_id"]) <= set(res.tables["stacks"]["stack_id"]) | {
        hp.folded_stack_hash([])}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected(corpus: Path, name: str) -> None:
    with pytest.raises(ParseError) as exc:
        ht.parse(_read(corpus, name), CTX)
    assert REJECTED[name] in str(exc.value)


@pytest.mark.parametrize("path", [p for p in corpus_files("pprof") if _is_binary(p)],
                         ids=lambda p: p.name)
def test_binary_files_are_refused(corpus: Path, path: Path) -> None:
    assert ht.sniff(path.read_bytes()[:65536], path.name) == 0.0
    with pytest.raises(ParseError, match="binary data"):
        ht.parse(path.read_bytes(), CTX)


@pytest.mark.parametrize("path", corpus_files("pprof"), ids=lambda p: p.name)
def test_sniff(corpus: Path, path: Path) -> None:
    score = ht.sniff(path.read_bytes()[:65536], path.name)
    if path.name in PARSED or path.name == "googlepprof-cppbench.growth":
        assert score >= 0.9
    elif "thread" in path.name:
        assert score == 0.4  # claimed so that it is refused with a reason, not ignored
    else:
        assert score == 0.0


def test_go121_allocs_text_with_spaces(corpus: Path) -> None:
    """Go 1.21 allocs?debug=1 pasted with tabs expanded: symbols, stacks and MemStats."""
    name = "landontclipp-blog-pgo-allocs-debug2-text-heap-memstats-go121-spaces.txt"
    res = ht.parse(_read(corpus, name), CTX)
    assert res.warnings == []
    assert res.meta["header_totals"] == {"inuse_objects": 1, "inuse_space": 24,
                                         "alloc_objects": 120369, "alloc_space": 65498176}
    ms = res.meta["memstats"]
    assert ms["Alloc"] == 2898784
    assert ms["HeapObjects"] == 140835
    assert ms["NumGC"] == 20665
    assert ms["MaxRSS"] == 12476416
    assert ms["GCCPUFraction"] == pytest.approx(0.004821695679555479)
    assert "PauseNs" not in ms
    hs, stacks = res.tables["heap_samples"], res.tables["stacks"]
    # First record: 1: 24 [66654: 1599696] @ ... -> unsampled at rate 524288.
    first = hs.iloc[0]
    assert (first["inuse_objects"], first["inuse_space"]) == ht.unsample_one(1, 24, 524288)
    assert (first["alloc_objects"], first["alloc_space"]) == ht.unsample_one(
        66654, 1599696, 524288)
    top = stacks[stacks["stack_id"] == first["stack_id"]].sort_values("depth")
    # The '#' lines are the stack (Go leaves the malloc frames and goexit out of them).
    assert top["function"].tolist() == ["syscall.Setenv", "os.Setenv", "main.isSquare",
                                        "main.findFactors", "main.main", "runtime.main"]
    assert top["line"].tolist() == [114, 120, 18, 33, 61, 267]
    assert top["file"].iloc[2].endswith("fermats-factorization/main.go")
    assert top["frame_class"].tolist() == ["stdlib", "stdlib", "app", "app", "app", "runtime"]
    leaf = stacks[stacks["depth"] == 0].set_index("stack_id")["function"]
    flat = hs.groupby(hs["stack_id"].map(leaf))["alloc_space"].sum()
    assert flat.idxmax() == "syscall.Setenv"
    assert flat.max() == 34946692206


def test_address_only_records(corpus: Path) -> None:
    res = ht.parse(_read(corpus, "googlepprof-gobench.heap"), CTX)
    assert res.meta["sampling"] == "heap"  # heap/1048576: rate 524288
    assert "memstats" not in res.meta
    hs, stacks = res.tables["heap_samples"], res.tables["stacks"]
    top = stacks[stacks["stack_id"] == hs["stack_id"].iloc[0]].sort_values("depth")
    assert top["function"].tolist()[:3] == ["0x420cef", "0x422151", "0x4221da"]
    assert len(top) == 10
    # "1: 288 [2: 296] @" has no addresses at all: an empty stack, kept as a sample.
    assert hs["stack_id"].iloc[11] == hp.folded_stack_hash([])


def test_empty_profile_with_rate_zero(corpus: Path) -> None:
    name = "issue-golang-go-68136-heap-debug1-empty-heap-rate0-go1.23rc1-truncated.txt"
    res = ht.parse(_read(corpus, name), CTX)
    assert [w.message for w in res.warnings] == [
        "no samples: the heap sampling rate is 0 (MemProfileRate = 0)"]
    assert res.meta["memstats"]["HeapObjects"] == 60087
    assert res.meta["memstats"]["LastGC"] == 1719137768078536586
    assert len(res.tables["heap_samples"]) == 0
    assert res.tables["heap_profiles"]["samples"].tolist() == [0]


def test_gperftools_heap(corpus: Path) -> None:
    res = ht.parse(_read(corpus, "googlepprof-cppbench.heap"), CTX)
    assert res.meta["sampling"] == "heapz_v2"
    assert "not a Go heap profile (heapz_v2" in res.warnings[0].message
    assert len(res.warnings) == 1  # the memory map after the records is not read as data
    assert res.tables["heap_samples"]["inuse_objects"].tolist()[:2] == [57, 3641]


def test_heap_section_inside_a_sigusr2_dump(corpus: Path) -> None:
    """Goroutine dump, then a heap profile, then a threadcreate profile, in one file."""
    path = (corpus / "goroutines"
            / "songgao-stacktraces-README-sigusr2-contention-goroutines-heap-threadcreate.txt")
    data = path.read_bytes()
    assert ht.sniff(data[:65536], path.name) == 0.5  # the goroutines parser claims it first
    res = ht.parse(data, CTX)
    assert res.warnings[0].line == 41
    hs, stacks = res.tables["heap_samples"], res.tables["stacks"]
    assert len(hs) == 1
    assert res.meta["memstats"]["Mallocs"] == 306
    fns = stacks.sort_values("depth")["function"].tolist()
    assert fns == ["runtime/pprof.writeGoroutineStacks", "runtime/pprof.writeGoroutine",
                   "runtime/pprof.(*Profile).WriteTo", "github.com/songgao/stacktraces.Set.func1"]


# --------------------------------------------------------------------------- inline

def test_unsampling_against_a_hand_computation() -> None:
    # 1 object of 24 bytes sampled at rate 524288:
    # scale = 1 / (1 - e^(-24/524288)) = 21845.83..., so 21845 objects and 524300 bytes.
    scale = 1 / (1 - math.exp(-24 / 524288))
    assert 21845 < scale < 21846
    assert ht.unsample_one(1, 24, 524288) == (21845, int(24 * scale)) == (21845, 524300)
    counts, sizes = ht.unsample(np.array([1, 4, 0, 7, 3]), np.array([24, 4 * 1 << 20, 0, 0, 96]),
                                524288)
    assert counts.tolist()[0] == 21845
    # 4 objects of 1 MiB: each object is almost surely sampled, scale = 1/(1-e^-2).
    assert counts[1] == int(4 / (1 - math.exp(-2)))
    assert sizes[1] == int((4 << 20) / (1 - math.exp(-2)))
    assert counts.tolist()[2:4] == [0, 0] and sizes.tolist()[2:4] == [0, 0]  # a zero side
    for c, s in zip(counts.tolist(), sizes.tolist(), strict=True):
        assert isinstance(c, int) and isinstance(s, int)
    # Rate 0 or 1: not sampled, nothing to undo.
    for rate in (0, 1):
        assert ht.unsample(np.array([3]), np.array([96]), rate)[1].tolist() == [96]


def _text(header: str, *records: str) -> bytes:
    return (header + "\n" + "\n".join(records) + "\n").encode()


def test_header_rates() -> None:
    rec = "1: 24 [1: 24] @ 0x1\n#\t0x0\tmain.f+0x1\t/src/main.go:3"
    for header, rate in (("@ heap/1048576", 524288), ("@ heap_v2/524288", 524288),
                         ("@ heap/2", 1), ("@ heap/0", 0)):
        res = ht.parse(_text(f"heap profile: 1: 24 [1: 24] {header}", rec), CTX)
        assert res.tables["heap_profiles"]["period"].tolist() == [rate]
        expect = ht.unsample_one(1, 24, rate)
        assert res.tables["heap_samples"]["inuse_space"].tolist() == [expect[1]]


def test_inlined_frames_share_a_pc() -> None:
    text = _text(
        "heap profile: 1: 48 [1: 48] @ heap_v2/1",
        "1: 48 [1: 48] @ 0x4a3b2d 0x4a5001",
        "#\t0x4a3b2c\tdatabase/sql.(*DB).queryDC+0x1c\t/go/src/database/sql/sql.go:1796",
        "#\t0x4a3b2c\tdatabase/sql.(*DB).query+0x3c\t/go/src/database/sql/sql.go:1750",
        "#\t0x4a5000\tmain.main+0x20\t/src/shop/main.go:7",
    )
    res = ht.parse(text, CTX)
    stacks = res.tables["stacks"].sort_values("depth")
    assert stacks["function"].tolist() == [
        "database/sql.(*DB).queryDC", "database/sql.(*DB).query", "main.main"]
    assert stacks["inlined"].tolist() == [True, False, False]
    assert res.tables["heap_samples"]["inuse_space"].tolist() == [48]  # heap_v2/1: as is


def test_tabs_and_spaces_read_the_same() -> None:
    tabs = _text(
        "heap profile: 2: 64 [9: 288] @ heap/1048576",
        "2: 64 [9: 288] @ 0x10 0x20",
        "#\t0xf\texample.com/shop/store.(*Repo).List+0x4f\t/src/shop/store/repo.go:42",
        "#\t0x1f\tmain.main+0x1e\t/src/shop/main.go:7",
    )
    spaces = tabs.replace(b"\t", b"        ")
    a, b = ht.parse(tabs, CTX), ht.parse(spaces, CTX)
    for table in ("heap_samples", "stacks", "heap_profiles"):
        pd.testing.assert_frame_equal(a.tables[table], b.tables[table])
    assert a.tables["stacks"]["function"].iloc[0] == "example.com/shop/store.(*Repo).List"


def test_generic_function_names_with_spaces(corpus: Path) -> None:
    """Real generic names (go.shape.struct { ... } with spaces, quotes, brackets)."""
    names = [ln for ln in _read(corpus, "pyroscope-go_type_parameters-funcnames.txt")
             .decode().splitlines() if ln.strip()]
    assert len(names) > 10
    lines = ["heap profile: 1: 8 [1: 8] @ heap/0"]
    for i, name in enumerate(names):
        lines.append(f"1: 8 [1: 8] @ 0x{i + 1:x}")
        lines.append(f"#  0x{i:x}  {name}+0x1b  /src/gen/g{i}.go:{i + 1}")
    res = ht.parse(("\n".join(lines) + "\n").encode(), CTX)
    assert res.warnings == []
    stacks = res.tables["stacks"]
    got = dict(zip(stacks["file"], stacks["function"], strict=True))
    assert [got[f"/src/gen/g{i}.go"] for i in range(len(names))] == names
    assert sorted(stacks["line"].tolist()) == list(range(1, len(names) + 1))


def test_same_stack_same_id_in_text_and_protobuf() -> None:
    """A stack keeps its id whichever heap format it came in."""
    text = _text(
        "heap profile: 1: 48 [1: 48] @ heap_v2/1",
        "1: 48 [1: 48] @ 0x4a3b2d 0x4a5001",
        "#\t0x4a3b2c\tdatabase/sql.(*DB).queryDC+0x1c\t/go/src/database/sql/sql.go:1796",
        "#\t0x4a5000\tmain.main+0x20\t/src/shop/main.go:7",
    )
    sid = ht.parse(text, CTX).tables["heap_samples"]["stack_id"].iloc[0]
    assert sid == hp.folded_stack_hash([
        Frame("database/sql.(*DB).queryDC", "/go/src/database/sql/sql.go", 1796),
        Frame("main.main", "/src/shop/main.go", 7)])


def test_bad_lines_are_warnings_not_failures() -> None:
    text = _text(
        "heap profile: 2: 64 [2: 64] @ heap_v2/1",
        "1: 32 [1: 32] @ 0x10 0xZZ",
        "this line is noise",
        "1: 32 [1: 32] @ 0x20",
        "#\tnot-a-pc\tmain.main+0x1\t/src/main.go:1",
    )
    res = ht.parse(text, CTX)
    assert len(res.tables["heap_samples"]) == 2
    assert [w.line for w in res.warnings] == [2, 3, 5]


def test_hostile_input_stays_linear() -> None:
    """A long symbol line full of near-misses parses quickly (no regex backtracking)."""
    body = "+0x1 " * 100_000
    text = _text("heap profile: 1: 8 [1: 8] @ heap/0", "1: 8 [1: 8] @ 0x1",
                 f"#\t0x0\t{body}:x")
    res = ht.parse(text, CTX)
    assert len(res.tables["heap_samples"]) == 1


def test_numbers_out_of_range_are_warnings() -> None:
    text = _text(
        "heap profile: 2: 64 [2: 64] @ heap_v2/1",
        "9999999999999999999: 32 [1: 32] @ 0x10",
        "1" * 5000 + ": 32 [1: 32] @ 0x10",
        "1: 32 [1: 32] @ 0x20",
        "#\t0x1f\tmain.main+0x1e\t/src/main.go:\u00b2",  # a superscript two is no line number
    )
    res = ht.parse(text, CTX)
    assert len(res.tables["heap_samples"]) == 1
    assert [w.line for w in res.warnings] == [2, 3]
    stacks = res.tables["stacks"]
    assert stacks["function"].tolist() == ["main.main"]
    assert stacks["file"].tolist() == ["/src/main.go:\u00b2"]
    assert stacks["line"].isna().all()
