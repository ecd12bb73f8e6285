"""The paths that make big inputs fast stay correct: the benchmark generator's dumps and
profiles parse to the goroutines its plan parked, the lazy stack index and the
categorical stacks table give the same answers as plain tables, and the pipeline lists a
stack shared by several artifacts once. (Speed itself is measured by benchmarks/run.py,
never asserted here.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, require

from forensics import evidence, schema
from forensics.parsers import goroutines, heap_pprof
from forensics.parsers.base import ParseContext
from forensics.pipeline import analyze, build_tables

HEAP = "pprof/pyroscope-pkg-pprof-testdata-heap.pb.gz"  # 11951 samples (go tool pprof -raw)


def _go() -> str | None:
    sys.path.insert(0, str(ROOT / "tools" / "leakyservice"))
    try:
        from harness import find_go
    finally:
        sys.path.pop(0)
    for cand in (shutil.which("go"), find_go("1.27"), find_go("1.19")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


@pytest.fixture(scope="module")
def bigdump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tools/bigdump run with 3000 goroutines, 8 leaked HTTP bodies and 3000 generated
    allocation stacks: its debug=2 dump and heap profile, in one folder."""
    go = _go()
    require(go is not None, "no Go toolchain to build tools/bigdump")
    out = tmp_path_factory.mktemp("bigdump")
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod", GOPROXY="off")
    subprocess.run([go, "build", "-o", str(out / "bigdump"), "."], cwd=ROOT / "tools" / "bigdump",
                   env=env, check=True, timeout=600)
    bundle = out / "bundle"
    bundle.mkdir()
    subprocess.run([str(out / "bigdump"), "-goroutines", "3000", "-variants", "2", "-http", "8",
                    "-dump", str(bundle / "goroutines.txt"), "-heap-stacks", "3000",
                    "-heap", str(bundle / "heap.pb.gz")], check=True, timeout=300,
                   capture_output=True)
    return bundle


def _goroutines_calling(res, function: str) -> pd.DataFrame:
    st, gr = res.tables["stacks"], res.tables["goroutines"]
    return gr[gr["stack_id"].isin(set(st.loc[st["function"] == function, "stack_id"]))]


def test_bigdump_dump_holds_its_plan(bigdump: Path) -> None:
    # 3000 goroutines less 3 per HTTP leak leave 2976: 30% wait on the exhausted pool,
    # 25% are leaked Tx (plus the 10 that exhausted it), 20% leaked Rows, the rest runtime
    # waits in 8 kinds (sleepers get the odd one).
    res = goroutines.parse((bigdump / "goroutines.txt").read_bytes(), ParseContext(path="g"))
    assert res.meta["goroutines"] == 3014 and res.meta["distinct_stacks"] == 22
    expect = {
        "database/sql.(*DB).conn": (892, "select"),
        "main.(*service).listOrders": (298, "select"),
        "database/sql.(*Tx).awaitDone": (754, "chan receive"),
        "database/sql.(*Rows).awaitDone": (595, "select"),
        "net/http.(*persistConn).readLoop": (8, "select"),
        "net/http.(*persistConn).writeLoop": (8, "select"),
        "main.sleeper": (94, "sleep"),
    }
    for function, (count, state) in expect.items():
        g = _goroutines_calling(res, function)
        assert len(g) == count, function
        assert set(g["state"]) == {state}, function


def test_bigdump_heap_has_one_stack_per_generated_allocation(bigdump: Path) -> None:
    res = heap_pprof.parse((bigdump / "heap.pb.gz").read_bytes(), ParseContext(path="h"))
    st, hs = res.tables["stacks"], res.tables["heap_samples"]
    leaf = set(st.loc[(st["depth"] == 0) & (st["function"] == "main.allocate"), "stack_id"])
    mine = hs[hs["stack_id"].isin(leaf)]
    # MemProfileRate 1: every allocation is in the profile; every other one is kept.
    assert len(leaf) == len(mine) == 3000
    assert mine["alloc_objects"].sum() == 3000 and mine["inuse_objects"].sum() == 1500


def test_bigdump_bundle_ranks_a_planted_leak_and_builds_few_stack_infos(bigdump: Path) -> None:
    analysis = analyze(bigdump)
    planted = {"main.(*service).beginOrder", "main.(*service).listOrders",
               "main.(*service).payOrder", "main.(*service).updateUser",
               "main.(*service).searchUsers", "main.fetchUpstream"}
    assert analysis.call_sites and analysis.call_sites[0].function in planted
    ev = evidence.build(analysis.tables, analysis.rounds, {}, analysis.manifest)
    index = ev.stacks
    assert isinstance(index, evidence.StackIndex)
    # Thousands of heap stacks, but StackInfo objects only for those the rules looked at.
    assert len(index) > 3000 and len(index._infos) < 200


@pytest.fixture(scope="module")
def heap_tables(corpus: Path) -> dict[str, pd.DataFrame]:
    return heap_pprof.parse((corpus / HEAP).read_bytes(), ParseContext(path=HEAP)).tables


def test_heap_stacks_are_categorical_and_round_trip_parquet(heap_tables, tmp_path: Path) -> None:
    st = heap_tables["stacks"]
    assert len(heap_tables["heap_samples"]) == 11951
    assert st["stack_id"].nunique() == 5289 and len(st) == 95530
    for name in ("function", "file", "frame_class", "module"):
        assert isinstance(st[name].dtype, pd.CategoricalDtype), name
    assert schema.conform(st, "stacks") is st  # already the contract: nothing rebuilt
    import pyarrow.parquet as pq

    pq.write_table(schema.to_arrow(st, "stacks"), tmp_path / "stacks.parquet")
    back = schema.from_arrow(pq.read_table(tmp_path / "stacks.parquet"), "stacks")
    pd.testing.assert_frame_equal(back.astype({"function": "string", "file": "string"}),
                                  st.astype({"function": "string", "file": "string"}),
                                  check_categorical=False)


def test_stack_index_matches_plain_lists_even_when_rows_are_shuffled(heap_tables) -> None:
    st = heap_tables["stacks"]
    ordered = evidence.StackIndex(st)
    shuffled = evidence.StackIndex(
        st.sample(frac=1.0, random_state=7).reset_index(drop=True))
    some = [int(s) for s in st["stack_id"].drop_duplicates().iloc[::97]]
    for sid in some:
        rows = st[st["stack_id"] == sid].sort_values("depth")
        want = [str(f) for f in rows["function"]]
        assert ordered[sid].functions == want
        assert shuffled[sid].functions == want
        assert ordered[sid].lines == [int(x) if pd.notna(x) else None for x in rows["line"]]
    assert len(ordered) == 5289 and some[0] in ordered and -5 not in ordered


def test_stack_index_selects_stacks_by_function(heap_tables) -> None:
    st = heap_tables["stacks"]
    index = evidence.StackIndex(st)
    got = index.with_function(lambda fn: fn.startswith("runtime.malg"))
    want = set(st.loc[st["function"].astype(str).str.startswith("runtime.malg"), "stack_id"])
    assert got == {int(x) for x in want} and got


def test_concat_keeps_categoricals(corpus: Path) -> None:
    a = heap_pprof.parse((corpus / HEAP).read_bytes(), ParseContext(path="a")).tables["stacks"]
    other = "pprof/pyroscope-og-convert-pprof-heap.pb.gz"
    b = heap_pprof.parse((corpus / other).read_bytes(), ParseContext(path="b")).tables["stacks"]
    both = schema.concat([a, b], "stacks")
    assert len(both) == len(a) + len(b)
    assert isinstance(both["function"].dtype, pd.CategoricalDtype)
    assert both["function"].astype(str).tolist() == \
        a["function"].astype(str).tolist() + b["function"].astype(str).tolist()


def test_a_stack_shared_by_two_rounds_is_listed_once(corpus: Path, tmp_path: Path) -> None:
    data = (corpus / HEAP).read_bytes()
    for r in (1, 2):
        (tmp_path / f"heap.{r}.pb.gz").write_bytes(data)
    tables = build_tables(tmp_path).tables
    assert len(tables["heap_samples"]) == 2 * 11951
    assert sorted(tables["heap_samples"]["round"].unique()) == [1, 2]
    st = tables["stacks"]
    assert len(st) == 95530 and not st.duplicated(["stack_id", "depth"]).any()
    assert np.isin(tables["heap_samples"]["stack_id"].to_numpy(dtype=np.int64),
                   st["stack_id"].to_numpy(dtype=np.int64)).all()
