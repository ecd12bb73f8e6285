"""heap_pprof: every corpus/pprof file either parses to known facts or is refused with a
known reason; synthetic profiles pin down inlining, labels, missing symbols, encodings,
the fast sample decoder and the speed on a big profile.

Facts for the real profiles (totals, top functions) were checked against
``go tool pprof -sample_index=inuse_space -unit=byte -top`` on the same files.
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import corpus_files

from forensics.parsers import heap_pprof as hp
from forensics.parsers import profile_proto as pb
from forensics.parsers.base import ParseContext, ParseError, ParseResult
from forensics.schema import COMMON, columns, conform
from forensics.stacks import Frame

CTX = ParseContext(path="heap.pb.gz")
ALL4 = "alloc_objects/count,alloc_space/bytes,inuse_objects/count,inuse_space/bytes"

# file -> (samples, period, sample_types, time_nanos, duration_nanos, total inuse_space,
#          total inuse_objects, top function by flat inuse_space, its inuse_space)
HEAP = {
    "pyroscope-pkg-pprof-testdata-heap.pb.gz": (
        11951, 524288, ALL4, 1659010242910169109, None, 541672846, 1911643,
        "bytes.makeSlice", 297979045),
    "pyroscope-og-convert-pprof-heap.pb": (
        1150, 524288, ALL4, 1640942110146179973, None, 1602645059, 22156072,
        "github.com/pyroscope-io/pyroscope/pkg/storage/tree.newNode", 480277120),
    "pyroscope-og-convert-pprof-heap.pb.gz": (
        1150, 524288, ALL4, 1640942110146179973, None, 1602645059, 22156072,
        "github.com/pyroscope-io/pyroscope/pkg/storage/tree.newNode", 480277120),
    "pyroscope-phlaredb-testdata-heap.pb.gz": (
        5647, 524288, ALL4, 1655998435023865949, None, 54169955, 380097,
        "github.com/prometheus/prometheus/tsdb.seriesHashmap.set", 5244180),
    "pyroscope-pkg-pprof-testdata-heap_delta.pb.gz": (
        38, 524288, ALL4, 1713929907415762305, 420000224714, 9992695, 101874,
        "k8s.io/apimachinery/pkg/apis/meta/v1.(*ObjectMeta).Unmarshal", 1048872),
    "pyroscope-gotruncatefix-heap_go_truncated_4.pb.gz": (
        6785, 1, "inuse_space/bytes", 1708315199999000000, 3599999000000, 14969264861622,
        None, "github.com/grafana/pyroscope/pkg/phlaredb/symdb.(*PartitionWriter).convertSamples",
        4536410064262),
}
# file -> (records, goroutines, records labelled test_label=test_value, time_nanos)
GOROUTINE = {
    "goprofilernotes-goroutine-1.net.http.pprof.goroutine.debug0.pb.gz": (
        9, 10, 6, 1610639113677929000),
    "goprofilernotes-goroutine-2.pprof.lookup.goroutine.debug0.pb.gz": (
        8, 9, 6, 1610639183697667000),
}
REJECTED = {
    "googlepprof-report-sample.cpu.pb.gz":
        "CPU profile (samples/count, cpu/nanoseconds): not used for leak analysis",
    "goprofilernotes-block-net-block.pb.gz":
        "block/mutex contention profile (contentions/count, delay/nanoseconds): "
        "not used for leak analysis",
    "pyroscope-malformed-no_addr_no_line.cpu.pb.gz":
        "CPU profile (cpu/nanoseconds): not used for leak analysis",
    "pyroscope-og-convert-invalid_utf8.cpu.pb.gz":
        "CPU profile (cpu/nanoseconds): not used for leak analysis",
    "googlepprof-go.crc32.cpu": "legacy binary CPU profile",
    "googlepprof-gobench.cpu": "legacy binary CPU profile",
    # Text files are not protobuf at all.
    "googlepprof-cppbench.growth": "truncated or corrupt profile.proto",
    "googlepprof-cppbench.heap": "truncated or corrupt profile.proto",
    "googlepprof-go.godoc.thread": "truncated or corrupt profile.proto",
    "googlepprof-gobench.heap": "truncated or corrupt profile.proto",
    "issue-golang-go-68136-heap-debug1-empty-heap-rate0-go1.23rc1-truncated.txt":
        "truncated or corrupt profile.proto",
    "landontclipp-blog-pgo-allocs-debug2-text-heap-memstats-go121-spaces.txt":
        "truncated or corrupt profile.proto",
    "landontclipp-blog-pgo-threadcreate-debug1-go121.txt":
        "truncated or corrupt profile.proto",
    "pyroscope-go_type_parameters-funcnames.txt": "truncated or corrupt profile.proto",
}


def _read(corpus: Path, name: str) -> bytes:
    return (corpus / "pprof" / name).read_bytes()


def test_every_corpus_file_is_classified(corpus: Path) -> None:
    names = {p.name for p in corpus_files("pprof")}
    assert names == set(HEAP) | set(GOROUTINE) | set(REJECTED)


@pytest.mark.parametrize("name", sorted(HEAP))
def test_heap_profiles(corpus: Path, name: str) -> None:
    samples, period, types, tnanos, dnanos, inuse, inuse_obj, top_fn, top_val = HEAP[name]
    res = hp.parse(_read(corpus, name), CTX)
    assert res.warnings == []
    assert res.meta["profile_kind"] == "heap"
    assert res.meta.get("time_nanos") == tnanos
    prof = res.tables["heap_profiles"].iloc[0]
    assert prof["format"] == "pprof"
    assert prof["samples"] == samples
    assert prof["period"] == period
    assert prof["period_type"] == "space/bytes"
    assert prof["sample_types"] == types
    assert prof["time_nanos"] == tnanos
    assert (None if pd.isna(prof["duration_nanos"]) else prof["duration_nanos"]) == dnanos
    assert prof["total_inuse_space"] == inuse
    assert (None if pd.isna(prof["total_inuse_objects"]) else prof["total_inuse_objects"]
            ) == inuse_obj
    hs = res.tables["heap_samples"]
    assert len(hs) == samples
    assert hs["sample_id"].tolist() == list(range(samples))
    assert hs["inuse_space"].sum() == inuse
    stacks = res.tables["stacks"]
    assert set(hs["stack_id"]) <= set(stacks["stack_id"])
    leaf = stacks[stacks["depth"] == 0].set_index("stack_id")["function"]
    flat = hs.groupby(hs["stack_id"].map(leaf))["inuse_space"].sum()
    assert flat.idxmax() == top_fn
    assert flat.max() == top_val


def test_heap_profile_details(corpus: Path) -> None:
    res = hp.parse(_read(corpus, "pyroscope-pkg-pprof-testdata-heap.pb.gz"), CTX)
    assert res.meta["default_sample_type"] == "alloc_space"
    hs, stacks = res.tables["heap_samples"], res.tables["stacks"]
    # Go labels every heap sample with its block size; bytes = objects x block size.
    assert hs["block_bytes"].notna().all()
    one = hs[hs["inuse_objects"] > 0].iloc[0]
    assert one["inuse_space"] == pytest.approx(one["inuse_objects"] * one["block_bytes"],
                                               rel=0.01)
    # Depths run 0..n-1 per stack; inlined lines of a location come before its caller.
    depth_ok = stacks.groupby("stack_id")["depth"].agg(lambda d: sorted(d) == list(range(len(d))))
    assert depth_ok.all()
    assert stacks["inlined"].sum() == 4735
    assert stacks["stack_id"].nunique() == 5289
    assert not stacks.duplicated(["stack_id", "depth"]).any()
    # The biggest in-use stack: bytes.makeSlice <- bytes.(*Buffer).grow <- ...
    sid = hs.loc[hs["inuse_space"].idxmax(), "stack_id"]
    top = stacks[stacks["stack_id"] == sid].sort_values("depth")
    assert top["function"].tolist()[:3] == [
        "bytes.makeSlice", "bytes.(*Buffer).grow", "bytes.(*Buffer).Write"]
    assert top["line"].tolist()[:3] == [229, 142, 172]
    assert top["frame_class"].tolist()[:3] == ["stdlib"] * 3


def test_raw_and_gzipped_copies_give_identical_tables(corpus: Path) -> None:
    raw = hp.parse(_read(corpus, "pyroscope-og-convert-pprof-heap.pb"), CTX)
    gz = hp.parse(_read(corpus, "pyroscope-og-convert-pprof-heap.pb.gz"), CTX)
    for table in ("heap_samples", "stacks", "heap_profiles"):
        pd.testing.assert_frame_equal(raw.tables[table], gz.tables[table])


def test_stack_ids_follow_the_frames(corpus: Path) -> None:
    res = hp.parse(_read(corpus, "pyroscope-og-convert-pprof-heap.pb"), CTX)
    stacks = res.tables["stacks"]
    for sid, g in list(stacks.groupby("stack_id"))[:200]:
        g = g.sort_values("depth")
        frames = [Frame(f, fl, None if pd.isna(ln) else int(ln))
                  for f, fl, ln in zip(g["function"], g["file"], g["line"], strict=True)]
        assert hp.folded_stack_hash(frames) == sid


@pytest.mark.parametrize("name", sorted(GOROUTINE))
def test_goroutine_profiles(corpus: Path, name: str) -> None:
    records, total, labelled, tnanos = GOROUTINE[name]
    res = hp.parse(_read(corpus, name), CTX)
    assert res.meta["profile_kind"] == "goroutine"
    assert res.meta["time_nanos"] == tnanos
    assert "heap_samples" not in res.tables
    g = res.tables["goroutines"]
    assert len(g) == records
    assert g["count"].sum() == total
    assert (g["format"] == "pprof").all()
    assert (g["labels"] == '{"test_label":"test_value"}').sum() == labelled
    stacks = res.tables["stacks"]
    first = stacks[stacks["stack_id"] == g["stack_id"].iloc[0]].sort_values("depth")
    assert first["function"].tolist() == ["runtime.gopark", "time.Sleep", "main.shortSleepLoop"]
    assert first["frame_class"].tolist() == ["runtime", "stdlib", "app"]
    assert g["count"].iloc[0] == 2


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected(corpus: Path, name: str) -> None:
    with pytest.raises(ParseError) as exc:
        hp.parse(_read(corpus, name), CTX)
    assert REJECTED[name] in str(exc.value)


@pytest.mark.parametrize("path", corpus_files("pprof"), ids=lambda p: p.name)
def test_sniff(corpus: Path, path: Path) -> None:
    head = path.read_bytes()[: 1 << 16]
    score = hp.sniff(head, path.name)
    if path.name in HEAP or path.name in GOROUTINE or "pb.gz" in path.name:
        assert score >= 0.9
        if head.startswith(b"\x1f\x8b"):  # what the inventory hands over: gunzipped
            assert hp.sniff(gzip.decompress(path.read_bytes())[: 1 << 16], path.name) >= 0.9
    elif "cpu" in path.name:
        assert score == 0.4  # legacy binary CPU: claimed to be refused clearly
    else:
        assert score == 0.0


def test_missing_symbols_and_invalid_utf8_keep_their_frames(corpus: Path) -> None:
    prof = hp.load_profile(_read(corpus, "pyroscope-malformed-no_addr_no_line.cpu.pb.gz"))
    assert prof.kind == "cpu"
    names = set(prof.stacks["function"])
    assert {"0x5e997", "0x0", "0x24ebd4"} <= names  # unsymbolized locations by address
    assert "PreparedRequest.prepare_cookies" in names
    prof = hp.load_profile(_read(corpus, "pyroscope-og-convert-invalid_utf8.cpu.pb.gz"))
    fn = prof.stacks.sort_values("depth")["function"].tolist()
    assert fn[0] == "my"
    assert "\ufffd" in fn[1] and fn[1].startswith("\x00\x01\x02")


@pytest.mark.parametrize("path", [p for p in corpus_files("pprof") if ".pb" in p.name],
                         ids=lambda p: p.name)
def test_fast_sample_decoder_matches_protobuf(corpus: Path, path: Path) -> None:
    data = path.read_bytes()
    raw = pb.RawProfile.FromString(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    n_types = len(raw.sample_type)
    fast = pb.decode_samples(raw.sample, n_types)
    slow = hp._decode_samples_slow(raw.sample, n_types, ParseResult())
    assert fast is not None
    for name in ("loc_ids", "offsets", "values", "label_sample", "label_key", "label_str",
                 "label_num"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))


# --------------------------------------------------------------------------- synthetic

class _Builder:
    """A tiny profile writer for tests (string table kept in order of first use)."""

    def __init__(self, types: tuple[tuple[str, str], ...] = (
            ("alloc_objects", "count"), ("alloc_space", "bytes"),
            ("inuse_objects", "count"), ("inuse_space", "bytes"))) -> None:
        self.p = pb.Profile()
        self.strings: list[bytes] = [b""]
        for t, u in types:
            self.p.sample_type.add(type=self.s(t), unit=self.s(u))
        self.p.period_type.type = self.s("space")
        self.p.period_type.unit = self.s("bytes")
        self.p.period = 524288
        self.p.time_nanos = 1_700_000_000_123_456_789

    def s(self, text: str | bytes) -> int:
        b = text if isinstance(text, bytes) else text.encode()
        if b not in self.strings:
            self.strings.append(b)
        return self.strings.index(b)

    def func(self, fid: int, name: str | bytes, file: str) -> None:
        self.p.function.add(id=fid, name=self.s(name), system_name=self.s(name),
                            filename=self.s(file))

    def loc(self, lid: int, address: int, *lines: tuple[int, int]) -> None:
        loc = self.p.location.add(id=lid, mapping_id=1, address=address)
        for fid, line in lines:
            loc.line.add(function_id=fid, line=line)

    def sample(self, locs: list[int], values: list[int], **labels: int | str) -> None:
        smp = self.p.sample.add(location_id=locs, value=values)
        for k, v in labels.items():
            if isinstance(v, int):
                smp.label.add(key=self.s(k), num=v)
            else:
                smp.label.add(key=self.s(k), str=self.s(v))

    def bytes(self) -> bytes:
        self.p.mapping.add(id=1, memory_start=0x400000, memory_limit=0x800000,
                           filename=self.s("/app/server"))
        del self.p.string_table[:]
        self.p.string_table.extend(self.strings)
        return self.p.SerializeToString()


def _small() -> _Builder:
    b = _Builder()
    b.func(1, "runtime.malg", "/go/src/runtime/proc.go")
    b.func(2, "database/sql.(*DB).queryDC", "/go/src/database/sql/sql.go")
    b.func(3, "database/sql.(*DB).query", "/go/src/database/sql/sql.go")
    b.func(4, "example.com/shop/store.(*Repo).List", "/src/shop/store/repo.go")
    b.func(5, "main.main", "/src/shop/main.go")
    # location 10: queryDC inlined into query (line[0] innermost), then List, then main
    b.loc(10, 0x4a3b2c, (2, 1796), (3, 1750))
    b.loc(11, 0x4a4000, (4, 42))
    b.loc(12, 0x4a5000, (5, 7))
    b.loc(13, 0x4a6000)  # no symbols at all
    b.sample([10, 11, 12], [5, 5 * 160, 3, 3 * 160], bytes=160)
    b.sample([13, 11, 12], [1, 64, 0, 0], bytes=64)
    b.sample([10, 11, 12], [2, 2 * 32, 2, 2 * 32], bytes=32)  # same stack, other size
    return b


def test_inlined_lines_labels_and_missing_symbols() -> None:
    res = hp.parse(_small().bytes(), CTX)
    assert res.warnings == []
    assert res.meta["time_nanos"] == 1_700_000_000_123_456_789
    hs, stacks = res.tables["heap_samples"], res.tables["stacks"]
    assert hs["block_bytes"].tolist() == [160, 64, 32]
    assert hs["inuse_objects"].tolist() == [3, 0, 2]
    assert hs["alloc_space"].tolist() == [800, 64, 64]
    assert hs["stack_id"].iloc[0] == hs["stack_id"].iloc[2]
    assert stacks["stack_id"].nunique() == 2
    first = stacks[stacks["stack_id"] == hs["stack_id"].iloc[0]].sort_values("depth")
    assert first["function"].tolist() == [
        "database/sql.(*DB).queryDC", "database/sql.(*DB).query",
        "example.com/shop/store.(*Repo).List", "main.main"]
    assert first["inlined"].tolist() == [True, False, False, False]
    assert first["line"].tolist() == [1796, 1750, 42, 7]
    assert first["frame_class"].tolist() == ["stdlib", "stdlib", "app", "app"]
    second = stacks[stacks["stack_id"] == hs["stack_id"].iloc[1]].sort_values("depth")
    assert second["function"].iloc[0] == "0x4a6000"
    assert second["file"].iloc[0] == "/app/server"  # the mapping's file stands in
    assert pd.isna(second["line"].iloc[0])
    prof = res.tables["heap_profiles"].iloc[0]
    assert prof["total_inuse_space"] == 3 * 160 + 2 * 32
    assert prof["total_inuse_objects"] == 5


def test_goroutine_profile_with_labels() -> None:
    b = _Builder(types=(("goroutine", "count"),))
    b.func(1, "runtime.gopark", "/go/src/runtime/proc.go")
    b.func(2, "database/sql.(*Tx).awaitDone", "/go/src/database/sql/sql.go")
    b.loc(1, 0x1000, (1, 398))
    b.loc(2, 0x2000, (2, 2202))
    b.sample([1, 2], [120], handler="/orders", worker="b")
    b.sample([1, 2], [3])
    res = hp.parse(b.bytes(), CTX)
    g = res.tables["goroutines"]
    assert g["count"].tolist() == [120, 3]
    assert g["labels"].iloc[0] == '{"handler":"/orders", "worker":"b"}'
    assert pd.isna(g["labels"].iloc[1])
    assert g["stack_id"].nunique() == 1


def test_goroutineleak_profile_goes_to_its_own_table() -> None:
    b = _Builder(types=(("goroutineleak", "count"),))
    b.func(1, "database/sql.(*Tx).awaitDone", "/go/src/database/sql/sql.go")
    b.loc(1, 0x1000, (1, 2202))
    b.sample([1], [7])
    res = hp.parse(b.bytes(), CTX)
    assert res.meta["profile_kind"] == "goroutineleak"
    assert res.tables["goroutine_leaks"]["count"].tolist() == [7]


def test_unpacked_repeated_fields_fall_back_to_protobuf() -> None:
    """Old writers emit one tag per location id; the fast decoder hands those over."""
    data = _small().bytes()
    prof = pb.Profile.FromString(data)
    # Re-encode samples with unpacked location ids by hand: tag 0x08 per id.
    out = pb.Profile()
    out.CopyFrom(prof)
    del out.sample[:]
    body = out.SerializeToString()
    extra = b""
    for s in prof.sample:
        msg = b"".join(b"\x08" + _varint(x) for x in s.location_id)
        values = b"".join(_varint(v) for v in s.value)
        msg += b"\x12" + _varint(len(values)) + values
        for lb in s.label:
            enc = lb.SerializeToString()
            msg += b"\x1a" + _varint(len(enc)) + enc
        extra += b"\x12" + _varint(len(msg)) + msg
    a = hp.parse(data, CTX)
    b = hp.parse(body + extra, CTX)
    for table in ("heap_samples", "stacks", "heap_profiles"):
        pd.testing.assert_frame_equal(a.tables[table], b.tables[table])


def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def test_truncated_and_garbage_input_is_a_parse_error() -> None:
    data = _small().bytes()
    for bad in (data[: len(data) // 2], b"\x0a\xff\xff\xff", gzip.compress(data)[:40], b""):
        with pytest.raises(ParseError):
            hp.parse(bad, CTX)


def test_decompression_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hp, "MAX_INFLATED", 1000)
    with pytest.raises(ParseError, match="inflates beyond"):
        hp.parse(gzip.compress(_small().bytes() + b"\x00" * 5000), CTX)


def test_sniff_rejects_text_and_accepts_a_profile_head() -> None:
    data = _small().bytes()
    assert hp.sniff(data, "x") >= 0.9
    assert hp.sniff(data[:30], "x") >= 0.9  # a head cut mid-field still reads as a profile
    assert hp.sniff(gzip.compress(data), "x") >= 0.9
    for text in (b"heap profile: 1: 2 [3: 4] @ heap/1048576\n", b'{"MaxOpenConnections": 1}',
                 b"goroutine 1 [running]:\n", b"COMMAND PID USER FD\n", b"", b"Hi"):
        assert hp.sniff(text, "x") == 0.0


def _big_profile(n_samples: int, n_stacks: int) -> bytes:
    """A heap profile with many samples, built from pre-encoded samples (fast)."""
    rng = np.random.default_rng(7)
    b = _Builder()
    n_funcs, n_locs = 2000, 8000
    for f in range(1, n_funcs + 1):
        b.func(f, f"example.com/svc/pkg{f % 40}.F{f}", f"/src/svc/pkg{f % 40}/f{f % 9}.go")
    for loc in range(1, n_locs + 1):
        fids = rng.integers(1, n_funcs + 1, 1 + (loc % 5 == 0))
        b.loc(loc, 0x400000 + 16 * loc, *[(int(f), int(loc % 900) + 1) for f in fids])
    head = b.bytes()
    key = b.strings.index(b"bytes")  # already there (a sample type unit)
    stacks = [b"".join(_varint(int(x)) for x in rng.integers(1, n_locs + 1, rng.integers(8, 30)))
              for _ in range(n_stacks)]
    tails = {}
    for count in range(1, 51):
        for size in (16, 64, 512, 4096):
            values = b"".join(_varint(v) for v in (count, count * size, 1, size))
            label = b"\x08" + _varint(key) + b"\x18" + _varint(size)
            tails[count, size] = (b"\x12" + _varint(len(values)) + values
                                  + b"\x1a" + _varint(len(label)) + label)
    parts = []
    for i in range(n_samples):
        locs = stacks[i % n_stacks]
        msg = b"\x0a" + _varint(len(locs)) + locs + tails[i % 50 + 1, (16, 64, 512, 4096)[i % 4]]
        parts.append(b"\x12" + _varint(len(msg)) + msg)
    return head + b"".join(parts)  # repeated fields may come in any order


def test_big_profile_is_fast_and_exact() -> None:
    """100k samples over 50k stacks: the numpy path must hold (no per-sample Python)."""
    data = gzip.compress(_big_profile(100_000, 50_000), 1)
    start = time.process_time()
    res = hp.parse(data, CTX)
    took = time.process_time() - start
    hs = res.tables["heap_samples"]
    assert len(hs) == 100_000
    assert hs["stack_id"].nunique() == 50_000
    assert hs["block_bytes"].tolist()[:4] == [16, 64, 512, 4096]
    assert hs["inuse_space"].sum() == sum((16, 64, 512, 4096)) * 25_000
    # Generous bound for a shared CI machine; the fast path takes ~1 s here.
    assert took < 20, f"parse took {took:.1f}s of CPU"


def test_tables_need_no_conversion_by_the_pipeline(corpus: Path) -> None:
    """Parser-own columns in contract order and dtypes: conform() has nothing to change."""
    for name in ("pyroscope-pkg-pprof-testdata-heap_delta.pb.gz",
                 "goprofilernotes-goroutine-1.net.http.pprof.goroutine.debug0.pb.gz"):
        res = hp.parse(_read(corpus, name), CTX)
        for table, df in res.tables.items():
            own = [c for c, _ in columns(table) if c not in {n for n, _ in COMMON}]
            assert list(df.columns) == own
            full = conform(df, table)
            for col in own:
                pd.testing.assert_series_equal(full[col], df[col])


def test_goroutine_signatures_match_the_goroutines_parser(corpus: Path) -> None:
    from forensics.parsers.goroutines import signature_id

    name = "goprofilernotes-goroutine-2.pprof.lookup.goroutine.debug0.pb.gz"
    g = hp.parse(_read(corpus, name), CTX).tables["goroutines"]
    assert g["signature_id"].tolist() == [signature_id(None, int(s), None)
                                          for s in g["stack_id"]]


def test_empty_packed_field_and_sample_without_locations() -> None:
    b = _small()
    data = b.bytes()
    # A sample with an explicit empty location list (0x0a 0x00) and one without any.
    values = b"".join(_varint(v) for v in (1, 8, 1, 8))
    empty_locs = b"\x0a\x00" + b"\x12" + _varint(len(values)) + values
    no_locs = b"\x12" + _varint(len(values)) + values
    extra = b"".join(b"\x12" + _varint(len(m)) + m for m in (empty_locs, no_locs))
    res = hp.parse(data + extra, CTX)
    hs = res.tables["heap_samples"]
    assert len(hs) == 5
    assert hs["inuse_space"].tolist()[-2:] == [8, 8]
    assert hs["stack_id"].iloc[-1] == hs["stack_id"].iloc[-2] == hp.folded_stack_hash([])
    raw = pb.RawProfile.FromString(data + extra)
    fast = pb.decode_samples(raw.sample, 4)
    slow = hp._decode_samples_slow(raw.sample, 4, ParseResult())
    assert fast is not None
    np.testing.assert_array_equal(fast.offsets, slow.offsets)
    np.testing.assert_array_equal(fast.loc_ids, slow.loc_ids)


# --------------------------------------------------------------------------- batches and ids

def _tables(data: bytes) -> dict[str, pd.DataFrame]:
    res = hp.parse(data, CTX)
    return {**res.tables, "warnings": pd.DataFrame({"w": [w.message for w in res.warnings]})}


def _assert_same_tables(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    """Equal tables, categories and their order included (compared by codes: pandas'
    own comparison of categorical columns takes seconds at 10^5 rows)."""
    assert a.keys() == b.keys()
    for name in a:
        x, y = a[name], b[name]
        assert list(x.columns) == list(y.columns), name
        for col in x.columns:
            if isinstance(x[col].dtype, pd.CategoricalDtype):
                assert x[col].dtype == y[col].dtype, (name, col)
                np.testing.assert_array_equal(x[col].cat.codes, y[col].cat.codes)
            else:
                pd.testing.assert_series_equal(x[col], y[col], obj=f"{name}.{col}")


@pytest.mark.parametrize("name", ["pyroscope-pkg-pprof-testdata-heap.pb.gz",
                                  "goprofilernotes-goroutine-1.net.http.pprof.goroutine.debug0.pb.gz"])
def test_tiny_batches_give_the_same_tables(corpus: Path, name: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding and stack building work a batch at a time; where the batches end must
    not show in the tables (samples, ids and frames cut anywhere)."""
    data = _read(corpus, name)
    whole = _tables(data)
    monkeypatch.setattr(pb, "BATCH_BYTES", 4099)
    monkeypatch.setattr(hp, "STACK_BATCH", 1009)
    _assert_same_tables(whole, _tables(data))


def test_tiny_batches_with_inlining_duplicates_and_labels(monkeypatch: pytest.MonkeyPatch,
                                                          ) -> None:
    data = _big_profile(3_000, 1_000)
    whole = _tables(data)
    assert whole["stacks"]["inlined"].any()
    monkeypatch.setattr(pb, "BATCH_BYTES", 301)
    monkeypatch.setattr(hp, "STACK_BATCH", 37)
    _assert_same_tables(whole, _tables(data))


def _renumbered(b: _Builder, new_id: dict[int, int]) -> bytes:
    """``b``'s profile with its location ids replaced (definitions and references)."""
    p = pb.Profile.FromString(b.bytes())
    for loc in p.location:
        loc.id = new_id[loc.id]
    for smp in p.sample:
        ids = [new_id.get(i, i) for i in smp.location_id]
        del smp.location_id[:]
        smp.location_id.extend(ids)
    return p.SerializeToString()


@pytest.mark.parametrize(("ids", "fast"), [
    ({10: 2**30, 11: 7, 12: 2**32 - 1, 13: 3 * 10**8}, True),  # 5-byte varints, 32 bits
    ({10: 10**12, 11: 7, 12: 2**40 + 3, 13: 5 * 10**9}, False),  # beyond 32 bits
], ids=["32-bit", "64-bit"])
def test_sparse_location_ids_give_the_same_tables(ids: dict[int, int], fast: bool) -> None:
    """Ids far beyond the number of locations are looked up by search, not by table;
    ids beyond 32 bits are decoded by protobuf."""
    sparse = _renumbered(_small(), ids)
    decoded = pb.decode_samples(pb.RawProfile.FromString(sparse).sample, 4)
    assert (decoded is not None) == fast
    if fast:
        assert sorted(set(decoded.loc_ids.tolist())) == sorted(ids.values())
    _assert_same_tables(_tables(_small().bytes()), _tables(sparse))


@pytest.mark.parametrize("ids", [{10: 10, 11: 11, 12: 12, 13: 13},
                                 {10: 10**12, 11: 11, 12: 12, 13: 13}],
                         ids=["table", "search"])
def test_undefined_location_ids_are_dropped_with_a_warning(ids: dict[int, int]) -> None:
    b = _small()
    b.sample([10, 99, 11, 12], [1, 8, 1, 8], bytes=8)  # 99: never defined
    b.sample([98], [1, 8, 1, 8], bytes=8)
    res = hp.parse(_renumbered(b, ids), CTX)
    assert [w.message for w in res.warnings] == [
        "2 sample frames reference undefined location ids; dropped"]
    hs, stacks = res.tables["heap_samples"], res.tables["stacks"]
    assert hs["stack_id"].iloc[3] == hs["stack_id"].iloc[0]  # the same frames
    assert hs["stack_id"].iloc[4] == hp.folded_stack_hash([])
    assert stacks["stack_id"].nunique() == 2


def test_duplicate_location_ids_use_the_first_definition() -> None:
    b = _small()
    b.loc(11, 0x4a7000, (1, 99))  # a second location 11: ignored
    res = hp.parse(b.bytes(), CTX)
    assert [w.message for w in res.warnings] == [
        "duplicate location ids; the first definition is used"]
    plain = _tables(_small().bytes())
    pd.testing.assert_frame_equal(plain["heap_samples"], res.tables["heap_samples"])
    # Its function is a category of the column, but no row uses it.
    pd.testing.assert_frame_equal(plain["stacks"].astype(object),
                                  res.tables["stacks"].astype(object))


def test_samples_without_any_location_defined() -> None:
    b = _Builder()
    b.sample([1, 2], [1, 8, 1, 8], bytes=8)
    res = hp.parse(b.bytes(), CTX)
    assert [w.message for w in res.warnings] == [
        "samples reference locations but the profile defines none"]
    assert res.tables["heap_samples"]["stack_id"].tolist() == [hp.folded_stack_hash([])]
    assert len(res.tables["stacks"]) == 0


def test_labels_with_repeated_fields_and_unusual_layouts_decode_like_protobuf() -> None:
    """The last of a repeated Label field wins; a Label of many fields goes to protobuf."""
    b = _small()
    data = b.bytes()
    values = b"".join(_varint(v) for v in (1, 8, 1, 8))
    key = b.strings.index(b"bytes")
    label = b"\x08" + _varint(key) + b"\x18\x05" + b"\x18" + _varint(96)  # num twice
    long_label = b"".join(b"\x18" + _varint(i) for i in range(1, 40))  # 39 nums
    samples = []
    for lab in (label, b"\x08" + _varint(key) + long_label):
        msg = b"\x0a\x02\x0a\x0b" + b"\x12" + _varint(len(values)) + values
        msg += b"\x1a" + _varint(len(lab)) + lab
        samples.append(b"\x12" + _varint(len(msg)) + msg)
    extra = b"".join(samples)
    for tail, fast in ((samples[0], True), (extra, False)):
        raw = pb.RawProfile.FromString(data + tail)
        assert (pb.decode_samples(raw.sample, 4) is not None) == fast
    hs = hp.parse(data + extra, CTX).tables["heap_samples"]
    assert hs["block_bytes"].tolist()[-2:] == [96, 39]
