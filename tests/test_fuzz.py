"""Property tests over every parser module: whatever bytes arrive, ``sniff`` answers a
number in [0, 1] and ``parse`` returns tables the pipeline can conform, or raises the
project's own :class:`ParseError`; nothing else escapes, and every call is quick.

Why property tests and not only examples: customer bundles are untrusted, and the cases
that break parsers are the ones nobody thought to type (a CRLF inside a quoted lsof name,
a varint that never ends, a UTF-16 paste cut mid-character). The inputs are real files
(the shared corpus and the sample bundles), cut, spliced, re-encoded and sprinkled with
noise, plus pure noise and token soup, so the search starts close to each format.

Bounded for CI: ``max_examples`` and a per-example deadline keep the whole module well
under a minute on two cores; ``FUZZ_EXAMPLES=2000`` (environment) searches harder
locally, and ``tools/fuzz_parsers.py`` runs the same property under atheris for hours.
Under ``CI=true`` the search is derandomized so a red build is reproducible.
"""

from __future__ import annotations

import os
import tarfile
import time
from datetime import timedelta
from functools import lru_cache

import pandas as pd
import pytest
from conftest import CORPUS, IN_CI, ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics.bundle import gunzip_bounded
from forensics.parsers import PARSER_MODULES, load
from forensics.parsers.base import ParseContext, ParseError, ParseResult
from forensics.schema import TABLE_NAMES, conform

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
#: Per example; generous because CI machines are shared, but far below "hung".
DEADLINE = timedelta(seconds=5)
#: Seeds are cut to a window so an example costs milliseconds, not a 400 KB ss listing.
WINDOW = 12 * 1024
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    derandomize=IN_CI,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SAMPLE = ROOT / "sample_bundles" / "tx-go1.27.tar.gz"
MODULES = {name: load(name) for name in PARSER_MODULES}


@lru_cache(maxsize=1)
def seeds() -> tuple[bytes, ...]:
    """Real artifacts of every kind: corpus files (when present) and sample-bundle members
    (always in the repo), gzip members inflated as the bundle reader would."""
    out: list[bytes] = []
    if CORPUS.is_dir():
        for p in sorted(CORPUS.rglob("*")):
            if p.is_file() and p.suffix != ".md":
                out.append(_inflate(p.read_bytes()))
    with tarfile.open(SAMPLE) as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m) if m.isfile() else None
            if f is not None:
                out.append(_inflate(f.read()))
    return tuple(out)


def _inflate(data: bytes) -> bytes:
    if data.startswith(b"\x1f\x8b"):
        inflated, _ = gunzip_bounded(data, 64 << 20)
        return inflated or data
    return data


# --------------------------------------------------------------------------- inputs
TOKENS = [
    "goroutine 1 [running]:\n", "goroutine 7 [chan receive, 12 minutes]:\n",
    "goroutine 18446744073709551616 [select]:\n", "created by main.main in goroutine 1\n",
    "database/sql.(*DB).conn(0xc000, {0x0, 0x0})\n", "\t/src/x.go:12 +0x1d\n",
    "\t/src/x.go:99999999999999999999999 +0x\n", "...additional frames elided...\n",
    "COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME\n",
    "svc 42 root 7u IPv4 1234 0t0 TCP 10.0.0.1:5432->10.0.0.2:5 (CLOSE_WAIT)\n",
    "State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n",
    "ESTAB 0 0 [::ffff:10.0.0.1]:5432 10.0.0.2:99999 users:((\"x\",pid=1,fd=9)) ino:7\n",
    "Proto Recv-Q Send-Q Local Address Foreign Address State PID/Program name\n",
    "tcp 0 0 0.0.0.0:22 0.0.0.0:* LISTEN 1/sshd\n",
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n",
    "   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 99\n",
    "lrwx------ 1 root root 64 Nov 27 19:30 7 -> socket:[117955]\n", "/proc/42/fd:\n",
    "Limit Soft Limit Hard Limit Units\n", "Max open files 1024 4096 files\n",
    "heap profile: 3: 4096 [9: 8192] @ heap/1048576\n",
    "1: 4096 [3: 12288] @ 0x1 0x2 0x3\n", "#\t0x1\tmain.f+0x1\t/x.go:3\n",
    "# runtime.MemStats\n", "# HeapAlloc = 99999999999999999999999\n",
    '{"MaxOpenConnections": 10, "OpenConnections": 1e309, "InUse": -1}\n',
    '{"format": "forensics-capture/1", "pid": "x", "rounds": [{"files": null}]}\n',
    "{sql.DBStats{MaxOpenConnections:0, OpenConnections:3}}\n", "\r\n", "\x00", "\ufeff",
    "\u202e", "\udcff", "[" * 64, "(" * 64, "{" * 64, " " * 300, "\t" * 40,
    "[" * 5000, '{"a":' * 3000, "\x80" * 20,  # recursion bombs for JSON readers
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real artifact (or a window of one), damaged by a few random edits."""
    pool = seeds()
    data = draw(st.sampled_from(pool))
    if len(data) > WINDOW:
        start = draw(st.integers(0, len(data) - WINDOW))
        data = data[start:start + WINDOW] if draw(st.booleans()) else data[:WINDOW]
    for _ in range(draw(st.integers(0, 4))):
        data = draw(st.sampled_from(_EDITS))(draw, data)
    return data


def _cut(draw: st.DrawFn, data: bytes) -> bytes:
    return data[: draw(st.integers(0, len(data)))]


def _flip(draw: st.DrawFn, data: bytes) -> bytes:
    if not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    return data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]


def _insert(draw: st.DrawFn, data: bytes) -> bytes:
    i = draw(st.integers(0, len(data)))
    noise = draw(st.one_of(st.binary(max_size=64),
                           st.sampled_from(TOKENS).map(lambda t: t.encode("utf-8",
                                                                          "surrogatepass")),
                           st.just(b"\xff" * 40), st.just(b"\x80" * 11 + b"\x01")))
    return data[:i] + noise + data[i:]


def _repeat(draw: st.DrawFn, data: bytes) -> bytes:
    if not data:
        return data
    i = draw(st.integers(0, len(data) - 1))
    j = draw(st.integers(i, min(len(data), i + 512)))
    return data[:j] + data[i:j] * draw(st.integers(1, 20)) + data[j:]


def _splice(draw: st.DrawFn, data: bytes) -> bytes:
    other = draw(st.sampled_from(seeds()))[:2048]
    i = draw(st.integers(0, len(data)))
    return data[:i] + other + data[i:]


def _reencode(draw: st.DrawFn, data: bytes) -> bytes:
    text = data.decode("latin-1")
    how = draw(st.sampled_from(["crlf", "utf16", "utf16be", "cr", "nul"]))
    if how == "crlf":
        return text.replace("\n", "\r\n").encode("latin-1")
    if how == "cr":
        return text.replace("\n", "\r").encode("latin-1")
    if how == "nul":
        return data.replace(b" ", b"\x00", 5)
    return text.encode("utf-16" if how == "utf16" else "utf-16-be")


_EDITS = [_cut, _flip, _insert, _repeat, _splice, _reencode]

token_soup = st.lists(st.sampled_from(TOKENS), max_size=60).map(
    lambda ts: "".join(ts).encode("utf-8", "surrogatepass"))
ANY_INPUT = st.one_of(mutated(), st.binary(max_size=2048), token_soup)


# ------------------------------------------------------------------------ properties
def check_sniff(mod, data: bytes, name: str) -> None:
    score = mod.sniff(data[:64 * 1024], name)
    assert isinstance(score, (int, float)), f"{mod.KIND}.sniff returned {score!r}"
    assert 0.0 <= float(score) <= 1.0, f"{mod.KIND}.sniff returned {score}"


def check_parse(mod, data: bytes) -> ParseResult | None:
    """The parser contract: a conformable result with bounded warnings, or ParseError."""
    t0 = time.perf_counter()
    try:
        res = mod.parse(data, ParseContext(path="fuzz/input.txt"))
    except ParseError as exc:
        assert str(exc), f"{mod.KIND}: ParseError without a reason"
        return None
    elapsed = time.perf_counter() - t0
    assert elapsed < DEADLINE.total_seconds(), f"{mod.KIND}.parse took {elapsed:.1f} s"
    assert isinstance(res, ParseResult)
    assert len(res.warnings) <= 51, f"{mod.KIND}: {len(res.warnings)} warnings"
    assert isinstance(res.meta, dict)
    for table, df in res.tables.items():
        assert table in TABLE_NAMES, f"{mod.KIND} made an unknown table {table!r}"
        assert table in mod.TABLES, f"{mod.KIND} made {table!r}, not in its TABLES"
        assert isinstance(df, pd.DataFrame)
        conform(df, table)  # what the pipeline does next: must not raise either
    return res


@pytest.mark.parametrize("kind", PARSER_MODULES)
@FUZZ
@given(data=ANY_INPUT)
def test_parse_never_escapes(kind: str, data: bytes) -> None:
    check_parse(MODULES[kind], data)


@settings(FUZZ, max_examples=EXAMPLES * 8)
@given(data=ANY_INPUT, name=st.sampled_from(
    ["goroutines.txt", "heap.pb.gz", "lsof.txt", "ss.txt", "x", "", "..", "a" * 300,
     "capture.json", "\x00.txt", "ÿ.bin"]))
def test_sniff_is_a_probability_for_every_parser(data: bytes, name: str) -> None:
    for mod in MODULES.values():
        check_sniff(mod, data, name)


@pytest.mark.parametrize("kind", PARSER_MODULES)
@pytest.mark.parametrize("size", [0, 1, 7, 100_000])
def test_noise_and_nothing(kind: str, size: int) -> None:
    """Empty input, a stray byte, a short and a long run of deterministic binary noise."""
    import random

    data = random.Random(size).randbytes(size)
    check_sniff(MODULES[kind], data, "goroutines.txt")
    check_parse(MODULES[kind], data)


@pytest.mark.parametrize("kind", PARSER_MODULES)
def test_every_real_seed_parses_within_contract(kind: str) -> None:
    """Each parser on every real artifact of every other kind (names lie): no escape."""
    mod = MODULES[kind]
    for data in seeds():
        check_parse(mod, data[: 256 * 1024])
