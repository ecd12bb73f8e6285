"""Batch throughput: bundles per minute with one worker and with every core.

Why: a support team reprocessing years of captures needs to know what a batch costs and
whether more cores help. This replicates the sample bundles (sample_bundles/*.tar.gz, or
bundles built from the corpus when those are absent) to a few hundred copies in a temp
folder, each copy with one extra tiny member holding its copy number so every content
hash differs (nothing is skipped as unchanged), then times ``run_batch`` twice from a
cold output folder and prints the scaling. Not a test: run it by hand.

    python benchmarks/batch_throughput.py [--copies 200] [--workers N] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_bundles"
CORPUS = ROOT.parent / "shared" / "corpus"


def read_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path, "r:*") as tf:
        return [(m.name, tf.extractfile(m).read()) for m in tf.getmembers() if m.isfile()]


def corpus_templates() -> dict[str, list[tuple[str, bytes]]]:
    """Small bundles from the corpus, for machines without sample_bundles/."""
    c = CORPUS
    if not c.is_dir():
        sys.exit(f"neither {SAMPLES} nor the corpus at {c} is here")
    return {
        "pgx-pool": [
            ("goroutines.txt",
             (c / "goroutines/issue-jackc-pgx-713-debug1-double-header-puddle-acquire.txt")
             .read_bytes()),
            ("lsof.txt", (c / "lsof/issue-ably-go-89-lsof-redacted-placeholders-close_wait.out")
             .read_bytes())],
        "http-client": [
            ("goroutines.txt",
             (c / "goroutines/goprofilernotes-2.pprof.lookup.goroutine.debug2.txt").read_bytes()),
            ("heap.pb.gz", (c / "pprof/pyroscope-pkg-pprof-testdata-heap_delta.pb.gz")
             .read_bytes())],
        "capture": [
            ("capture.json", json.dumps({"pid": 4242, "hostname": "web-1"}).encode()),
            ("goroutines.txt",
             (c / "goroutines/goprofilernotes-1.pprof.lookup.goroutine.debug2.txt").read_bytes()),
            ("netstat.txt", (c / "netstat/hotsos-vault-netstat_-W_-neopa.out").read_bytes())],
    }


def templates() -> dict[str, list[tuple[str, bytes]]]:
    samples = sorted(SAMPLES.glob("*.tar.gz")) if SAMPLES.is_dir() else []
    if samples:
        return {p.name[: -len(".tar.gz")]: read_members(p) for p in samples}
    print("sample_bundles/ is empty or absent: using bundles built from the corpus")
    return corpus_templates()


def replicate(tpls: dict[str, list[tuple[str, bytes]]], copies: int, dest: Path) -> int:
    dest.mkdir(parents=True)
    names = sorted(tpls)
    for i in range(copies):
        name = names[i % len(names)]
        with tarfile.open(dest / f"{name}-{i:05d}.tar.gz", "w:gz", compresslevel=1) as tf:
            for member, data in [*tpls[name], ("replica.txt", f"{i}\n".encode())]:
                info = tarfile.TarInfo(member)
                info.size, info.mtime = len(data), 1_700_000_000
                tf.addfile(info, io.BytesIO(data))
    return copies


def timed_run(src: Path, out: Path, workers: int) -> tuple[float, dict[str, int]]:
    from forensics.batch import run_batch

    t0 = time.perf_counter()
    result = run_batch(str(src), out, ("html", "json"), workers=workers)
    return time.perf_counter() - t0, result.counts()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=200, help="bundles to process (default 200)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="the 'all cores' run (default: os.cpu_count())")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="forensics-bench-"))
    try:
        n = replicate(templates(), args.copies, tmp / "src")
        print(f"{n} bundles in {tmp / 'src'}")
        runs = []
        for workers in dict.fromkeys((1, args.workers)):
            secs, counts = timed_run(tmp / "src", tmp / f"out-{workers}", workers)
            rate = n / secs * 60
            runs.append((workers, secs, rate))
            print(f"workers={workers:<3} {secs:8.1f} s  {rate:8.1f} bundles/min  "
                  f"ok={counts['ok']} failed={counts['failed']} skipped={counts['skipped']}")
        if len(runs) == 2:
            (_, _, r1), (w, _, rn) = runs
            print(f"scaling: {rn / r1:.2f}x with {w} workers "
                  f"({rn / r1 / w:.0%} parallel efficiency)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
