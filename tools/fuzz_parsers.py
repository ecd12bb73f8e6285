"""Coverage-guided fuzzing of every parser with atheris (libFuzzer), for long runs.

The CI property tests (tests/test_fuzz.py) search a few hundred inputs per parser; this
harness runs the same contract for hours, guided by coverage: ``sniff`` returns a number
in [0, 1]; ``parse`` returns tables the pipeline can conform (known table names, bounded
warnings) or raises ``ParseError``; nothing else escapes. A crash input is written by
libFuzzer as ``crash-<sha1>`` in the current folder: add it to a test.

    pip install atheris
    python tools/fuzz_parsers.py goroutines -max_total_time=3600 -timeout=10 \\
        -rss_limit_mb=4096 /tmp/fuzz-corpus/goroutines ../shared/corpus/goroutines
    python tools/fuzz_parsers.py all -max_total_time=600      # one byte picks the parser

The first corpus folder collects new interesting inputs; any further ones are seeds
(the shared corpus, or ``--seed-samples DIR`` to unpack the sample bundles' members there
first).
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import atheris

# Parser modules are imported lazily by forensics.parsers.load: load them all here, inside
# the instrumentation block, or libFuzzer sees no coverage in them.
with atheris.instrument_imports(include=["forensics"]):
    from forensics.bundle import gunzip_bounded
    from forensics.parsers import PARSER_MODULES, load
    from forensics.parsers.base import ParseContext, ParseError, ParseResult
    from forensics.schema import TABLE_NAMES, conform

    MODULES = [load(name) for name in PARSER_MODULES]

ROOT = Path(__file__).resolve().parent.parent


def check(mod, data: bytes) -> None:
    """The parser contract; an AssertionError or any other exception is a finding."""
    score = mod.sniff(data[:65536], "fuzz.txt")
    assert 0.0 <= float(score) <= 1.0, f"{mod.KIND}.sniff -> {score!r}"
    try:
        res = mod.parse(data, ParseContext(path="fuzz.txt"))
    except ParseError:
        return
    assert isinstance(res, ParseResult)
    assert len(res.warnings) <= 51, f"{mod.KIND}: {len(res.warnings)} warnings"
    for table, df in res.tables.items():
        assert table in TABLE_NAMES and table in mod.TABLES, f"{mod.KIND}: table {table!r}"
        conform(df, table)


def one_parser(kind: str):
    mod = load(kind)

    def test_one_input(data: bytes) -> None:
        check(mod, data)

    return test_one_input


def any_parser(data: bytes) -> None:
    if not data:
        return
    check(MODULES[data[0] % len(MODULES)], data[1:])


def seed_samples(out: Path) -> None:
    """Unpack every sample-bundle member (gzip inflated) into ``out`` as seeds."""
    out.mkdir(parents=True, exist_ok=True)
    for bundle in sorted((ROOT / "sample_bundles").glob("*.tar.gz")):
        with tarfile.open(bundle) as tf:
            for m in tf.getmembers():
                f = tf.extractfile(m) if m.isfile() else None
                if f is None:
                    continue
                data = f.read()
                if data.startswith(b"\x1f\x8b"):
                    data = gunzip_bounded(data, 64 << 20)[0] or data
                name = f"{bundle.name}-{m.name}".replace("/", "_")
                (out / name).write_bytes(data)


def main() -> None:
    args = sys.argv[1:]
    if "--seed-samples" in args:
        i = args.index("--seed-samples")
        seed_samples(Path(args[i + 1]))
        del args[i:i + 2]
    if not args or (args[0] != "all" and args[0] not in PARSER_MODULES):
        sys.exit(f"usage: fuzz_parsers.py {{all|{'|'.join(PARSER_MODULES)}}} [libFuzzer args]")
    target = any_parser if args[0] == "all" else one_parser(args[0])
    atheris.Setup([sys.argv[0], *args[1:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
