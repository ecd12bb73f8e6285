"""forensics batch: reports + a hive-partitioned dataset from a folder of real bundles.

The bundles are built in tmp_path from corpus files (never copied into the repo); the
numbers asserted are read from those files independently of the parsers.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import zipfile
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from conftest import CORPUS, require

PGX = "goroutines/issue-jackc-pgx-713-debug1-double-header-puddle-acquire.txt"
GP1 = "goroutines/goprofilernotes-1.pprof.lookup.goroutine.debug2.txt"
GP2 = "goroutines/goprofilernotes-2.pprof.lookup.goroutine.debug2.txt"
LSOF = "lsof/issue-ably-go-89-lsof-redacted-placeholders-close_wait.out"
EVIL = "evil<img src=x onerror=alert(1)>"
CORRUPT = b"\x1f\x8b\x08\x00not really gzip"


def debug2_goroutines(rel: str) -> int:
    """Goroutine headers in a debug=2 dump, counted straight from the text."""
    text = (CORPUS / rel).read_text(encoding="utf-8")
    return len(re.findall(r"^goroutine \d+ \[", text, flags=re.M))


def debug1_goroutines(rel: str) -> int:
    """Sum of the 'N @ 0x...' record counts in a debug=1 profile."""
    text = (CORPUS / rel).read_text(encoding="utf-8")
    return sum(int(n) for n in re.findall(r"^(\d+) @ 0x", text, flags=re.M))


def close_wait_lines(rel: str) -> int:
    return (CORPUS / rel).read_text(encoding="utf-8").count("(CLOSE_WAIT)")


def tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return path


def make_bundles(src: Path) -> dict[str, Path]:
    """A small archive of customer captures: tar.gz, zip, a capture folder, a corrupt
    archive, and a tar.gz whose file name is hostile HTML."""
    c = CORPUS
    src.mkdir(parents=True, exist_ok=True)
    (src / "2026" / "q4").mkdir(parents=True)
    out = {
        "pool": tar_gz(src / "pool.tar.gz", {
            "goroutines.txt": (c / PGX).read_bytes(), "lsof.txt": (c / LSOF).read_bytes()}),
        "http": src / "2026" / "q4" / "http.zip",
        "folder": src / "2026" / "folder",
        "corrupt": src / "corrupt.tar.gz",
        "evil": src / f"{EVIL}.tgz",
    }
    with zipfile.ZipFile(out["http"], "w") as zf:
        zf.writestr("goroutines.txt", (c / GP2).read_bytes())
    out["folder"].mkdir()
    (out["folder"] / "capture.json").write_text(json.dumps({"pid": 4242, "hostname": "web-1"}))
    (out["folder"] / "goroutines.txt").write_bytes((c / GP1).read_bytes())
    out["corrupt"].write_bytes(CORRUPT)
    tar_gz(out["evil"], {"goroutines.txt": (c / GP1).read_bytes()})
    (src / "notes.txt").write_text("not a bundle: ignored by the folder scan\n")
    return out


def files_under(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns
            for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory, corpus):
    from forensics.batch import run_batch

    base = tmp_path_factory.mktemp("batch")
    make_bundles(base / "src")
    before = files_under(base)
    result = run_batch(str(base / "src"), base / "out", ("html", "md", "json"), workers=2)
    return base, result, before


def by_key(result) -> dict[str, dict]:
    return {r["key"]: r for r in result.results}


def test_every_bundle_has_a_result(batch_run):
    _, result, _ = batch_run
    res = by_key(result)
    assert set(res) == {"pool", "http", "folder", "corrupt", "evil_img_src_x_onerror_alert_1"}
    for key in ("pool", "http", "folder", "evil_img_src_x_onerror_alert_1"):
        assert res[key]["status"] == "ok", res[key]["reason"]
    assert result.counts() == {"ok": 4, "skipped": 0, "failed": 1}


def test_bad_bundle_is_recorded_with_its_reason(batch_run):
    base, result, _ = batch_run
    bad = by_key(result)["corrupt"]
    assert bad["status"] == "failed"
    assert "nothing usable" in bad["reason"] and "gzip" in bad["reason"]
    state = json.loads((base / "out" / "batch-state.json").read_text())
    entry = state["bundles"][str(base / "src" / "corrupt.tar.gz")]
    assert entry["status"] == "failed" and entry["reason"] == bad["reason"]


def test_reports_written_for_each_format(batch_run):
    base, result, _ = batch_run
    for key in ("pool", "http", "folder"):
        for fmt in ("html", "md", "json"):
            assert (base / "out" / "reports" / f"{key}.{fmt}").stat().st_size > 0
    doc = json.loads((base / "out" / "reports" / "pool.json").read_text())
    assert doc["bundle"]["id"] == "pool"
    assert doc["bundle"]["content_hash"] == by_key(result)["pool"]["content_hash"]


def test_partitions_carry_hash_and_version(batch_run):
    from forensics import __version__
    from forensics.schema import TABLE_NAMES

    base, result, _ = batch_run
    root = base / "out" / "dataset"
    for table in TABLE_NAMES:
        assert (root / table / "bundle=pool" / "part-0.parquet").is_file(), table
    part = ds.partitioning(flavor="hive")
    tbl = ds.dataset(root / "goroutines", format="parquet", partitioning=part).to_table()
    df = tbl.to_pandas()
    assert set(df["analyzer_version"]) == {__version__}
    hashes = df.groupby("bundle")["bundle_content_hash"].unique()
    for key, row in by_key(result).items():
        if key in hashes.index:
            assert list(hashes[key]) == [row["content_hash"]]
    counts = df.assign(n=df["count"].fillna(1)).groupby("bundle")["n"].sum()
    assert counts["pool"] == debug1_goroutines(PGX) == 3252
    assert counts["http"] == debug2_goroutines(GP2) == 9
    assert counts["folder"] == debug2_goroutines(GP1) == 6


def test_sockets_partition_holds_the_lsof_rows(batch_run):
    from forensics.dataset import read_table

    base, _, _ = batch_run
    s = read_table(base / "out" / "dataset", "sockets")
    pool = s[s["bundle"] == "pool"]
    assert (pool["state"] == "CLOSE_WAIT").sum() == close_wait_lines(LSOF) == 6
    assert set(pool["tool"]) == {"lsof"}


def test_index_ranks_and_escapes(batch_run):
    base, _, _ = batch_run
    html = (base / "out" / "index.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    keys = re.findall(r'href="reports/([^"]+)\.html"', html)
    assert set(keys) >= {"pool", "http", "folder", "evil_img_src_x_onerror_alert_1"}
    state = json.loads((base / "out" / "batch-state.json").read_text())["bundles"]
    level = {e["key"]: e["severity_level"] for e in state.values()}
    ordered = [level[k] for k in keys]
    assert ordered == sorted(ordered, reverse=True)
    assert "gzip" in html  # the failed bundle's reason
    assert "http://" not in html and "https://" not in html  # self-contained


def test_nothing_written_outside_out(batch_run):
    base, _, before = batch_run
    after = {k: v for k, v in files_under(base).items() if not k.startswith("out/")}
    assert after == before


def test_bundles_table(batch_run):
    import pyarrow.parquet as pq

    base, _, _ = batch_run
    t = pq.read_table(base / "out" / "bundles.parquet").to_pandas().set_index("bundle")
    assert t.loc["corrupt", "status"] == "failed"
    assert t.loc["pool", "status"] == "ok"
    assert json.loads(t.loc["pool", "reports"])["html"] == "reports/pool.html"


def test_rerun_skips_touch_rehashes_change_redoes_force_redoes(tmp_path, corpus):
    from forensics.batch import run_batch

    b = make_bundles(tmp_path / "src")
    out = tmp_path / "out"
    first = run_batch(str(tmp_path / "src"), out, ("json",), workers=2)
    assert first.counts()["ok"] == 4
    part = out / "dataset" / "goroutines" / "bundle=pool" / "part-0.parquet"
    stamp = part.stat().st_mtime_ns

    again = run_batch(str(tmp_path / "src"), out, ("json",), workers=2)
    assert again.counts() == {"ok": 0, "skipped": 5, "failed": 0}
    assert part.stat().st_mtime_ns == stamp

    # Same bytes, new mtime: read and hashed, still skipped. New bytes: redone.
    os.utime(b["pool"], ns=(stamp + 10**9, stamp + 10**9))
    tar_gz(b["evil"], {"goroutines.txt": (CORPUS / GP2).read_bytes()})
    third = run_batch(str(tmp_path / "src"), out, ("json",), workers=2)
    res = by_key(third)
    assert res["pool"]["status"] == "skipped" and res["pool"]["reason"] == "unchanged content"
    assert res["evil_img_src_x_onerror_alert_1"]["status"] == "ok"
    assert part.stat().st_mtime_ns == stamp

    forced = run_batch(str(tmp_path / "src"), out, ("json",), workers=2, force=True)
    assert forced.counts() == {"ok": 4, "skipped": 0, "failed": 1}
    assert part.stat().st_mtime_ns != stamp


def test_list_file_glob_and_missing_entries(tmp_path, corpus):
    from forensics.batch import discover, run_batch

    b = make_bundles(tmp_path / "src")
    lst = tmp_path / "bundles.lst"
    lst.write_text(f"# captures to redo\n{b['pool']}\nsrc/2026/q4/http.zip\n"
                   f"src/gone.tar.gz\n")
    assert sorted(s.name for s in discover(str(lst))) == ["gone", "http", "pool"]
    res = by_key(run_batch(str(lst), tmp_path / "out", ("json",), workers=1))
    assert res["pool"]["status"] == res["http"]["status"] == "ok"
    assert res["gone"]["status"] == "failed" and "no such file" in res["gone"]["reason"]

    names = sorted(s.name for s in discover(str(tmp_path / "src" / "**" / "*.zip")))
    assert names == ["http"]


def test_source_errors(tmp_path, corpus):
    from forensics.batch import BatchError, run_batch

    with pytest.raises(BatchError, match="no such file"):
        run_batch(str(tmp_path / "missing"), tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BatchError, match="no bundles found"):
        run_batch(str(tmp_path / "empty"), tmp_path / "out")
    dump = tmp_path / "dump.txt"  # a goroutine dump is not a list of bundles
    dump.write_bytes((CORPUS / GP1).read_bytes())
    with pytest.raises(BatchError, match="neither an archive nor a list file"):
        run_batch(str(dump), tmp_path / "out")
    with pytest.raises(BatchError, match="unknown report format"):
        run_batch(str(tmp_path), tmp_path / "out", ("pdf",))


def test_safe_keys_and_collisions():
    from forensics.batch import Source, State, assign_keys, report_path
    from forensics.dataset import safe_key

    assert safe_key("../../etc/passwd") == "etc_passwd"
    assert safe_key("..") == "bundle" and safe_key("") == "bundle"
    assert safe_key(".hidden") == "hidden" and safe_key("-rf") == "rf"
    assert safe_key("x" * 500) == "x" * 80
    assert safe_key("capture 2026/11/27 ü") == "capture_2026_11_27"
    st = State(Path("/nonexistent/state.json"))
    keys = assign_keys([Source("/a/capture.tgz", "capture"), Source("/b/capture.tgz", "capture")],
                       st)
    assert keys["/a/capture.tgz"] == "capture"
    assert re.fullmatch(r"capture-[0-9a-f]{8}", keys["/b/capture.tgz"])
    from forensics.batch import BatchError

    with pytest.raises(BatchError):
        report_path(Path("/tmp/out"), "../x", "html")


def test_cli_batch(tmp_path, corpus):
    from typer.testing import CliRunner

    from forensics.cli import app

    make_bundles(tmp_path / "src")
    r = CliRunner().invoke(app, ["batch", str(tmp_path / "src"), "--out", str(tmp_path / "o"),
                                 "--format", "md", "--workers", "2"])
    assert r.exit_code == 3, r.output  # one bundle failed
    assert "ok 4, skipped 0, failed 1" in r.output
    assert (tmp_path / "o" / "reports" / "pool.md").is_file()
    assert not (tmp_path / "o" / "reports" / "pool.html").exists()
    r = CliRunner().invoke(app, ["batch", str(tmp_path / "src"), "--out", str(tmp_path / "o"),
                                 "--format", "pdf"])
    assert r.exit_code == 2


def test_cli_batch_passes_per_bundle_limits(tmp_path, corpus):
    """--max-artifacts reaches every bundle: the pool bundle holds two artifacts, with a cap
    of one the second is reported as not parsed, in its JSON report."""
    from typer.testing import CliRunner

    from forensics.cli import app

    make_bundles(tmp_path / "src")
    r = CliRunner().invoke(app, ["batch", str(tmp_path / "src"), "--out", str(tmp_path / "o"),
                                 "--format", "json", "--workers", "1", "--max-artifacts", "1",
                                 "--parser-seconds", "60"])
    assert r.exit_code == 3, r.output
    doc = json.loads((tmp_path / "o" / "reports" / "pool.json").read_text())
    capped = [a for a in doc["artifacts"] if a["status"] == "failed"]
    parsed = [a for a in doc["artifacts"] if a["status"] in ("ok", "warning")]
    assert len(capped) == 1 and len(parsed) == 1, doc["artifacts"]
    assert "max-artifacts" in capped[0]["message"], capped[0]


def test_fsspec_url_source(tmp_path, corpus):
    try:
        import fsspec  # noqa: F401
    except ImportError:
        require(False, "fsspec is not installed")
    from forensics.batch import run_batch

    b = make_bundles(tmp_path / "src")
    url = "file://" + str(b["pool"])
    res = run_batch(url, tmp_path / "out", ("json",), workers=1)
    (row,) = res.results
    assert row["status"] == "ok" and row["bundle_id"] == "pool"
    doc = json.loads((tmp_path / "out" / "reports" / "pool.json").read_text())
    assert doc["bundle"]["source"] == url
    assert not (tmp_path / "out" / ".tmp").exists()  # the download is cleaned up


def test_dask_local_cluster(tmp_path, corpus):
    try:
        from distributed import LocalCluster
    except ImportError:
        require(False, "dask.distributed is not installed (pip install 'forensics[dask]')")
        return
    from forensics.batch import run_batch

    make_bundles(tmp_path / "src")
    with LocalCluster(n_workers=2, processes=True, host="127.0.0.1", threads_per_worker=1,
                      dashboard_address=None) as cluster:
        res = run_batch(str(tmp_path / "src"), tmp_path / "out", ("json",), executor="dask",
                        scheduler=cluster.scheduler_address)
    assert res.counts() == {"ok": 4, "skipped": 0, "failed": 1}
    assert by_key(res)["corrupt"]["status"] == "failed"
    from forensics.dataset import read_table

    g = read_table(tmp_path / "out" / "dataset", "goroutines")
    assert g.assign(n=g["count"].fillna(1)).groupby("bundle")["n"].sum()["pool"] == 3252


def die_on_poison(task):
    """Worker stand-in: a 'poison' bundle kills its process, as the OOM killer would."""
    if "poison" in task.source:
        os._exit(137)
    return {"source": task.source, "key": task.key, "status": "ok", "reason": ""}


def test_a_dying_worker_costs_only_its_own_bundle():
    from forensics.batch import Task, run_local

    keys = ["a", "b", "poison", "c", "d", "e"]
    got: list[dict] = []
    run_local([Task(f"/x/{k}.tgz", k, "/nonexistent") for k in keys], 2, got.append,
              fn=die_on_poison)
    res = {r["key"]: r for r in got}
    assert sorted(res) == sorted(keys) and len(got) == len(keys)
    assert res["poison"]["status"] == "failed" and "died" in res["poison"]["reason"]
    assert all(res[k]["status"] == "ok" for k in keys if k != "poison")
