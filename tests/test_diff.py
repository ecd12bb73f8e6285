"""forensics diff: two bundles, or two rounds of one, compared per site and signature.

Before/after are two goroutine dumps of the same example program taken a minute apart
(go-profiler-notes): the second has three more goroutines, among them an HTTP client
connection's ``persistConn.writeLoop`` that the first does not have.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import CORPUS
from test_batch import GP1, GP2, PGX, debug2_goroutines, tar_gz

HEAP = "pprof/pyroscope-pkg-pprof-testdata-heap.pb.gz"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, corpus):
    d = tmp_path_factory.mktemp("diff")
    return {
        "before": tar_gz(d / "before.tar.gz", {"goroutines.txt": (CORPUS / GP1).read_bytes()}),
        "after": tar_gz(d / "after.tar.gz", {"goroutines.txt": (CORPUS / GP2).read_bytes()}),
        "pgx": tar_gz(d / "pgx.tar.gz", {"goroutines.txt": (CORPUS / PGX).read_bytes()}),
        "rounds": tar_gz(d / "rounds.tar.gz", {
            "goroutines.1.txt": (CORPUS / GP1).read_bytes(),
            "goroutines.2.txt": (CORPUS / GP2).read_bytes(),
            "heap.2.pb.gz": (CORPUS / HEAP).read_bytes()}),
    }


@pytest.fixture(scope="module")
def analyses(bundles):
    from forensics.pipeline import analyze

    return {k: analyze(p) for k, p in bundles.items()}


def total(d, metric):
    (row,) = [r for r in d.totals if r["metric"] == metric]
    return row


def writeloop_frames(rel: str) -> int:
    text = (CORPUS / rel).read_text(encoding="utf-8")
    return len(re.findall(r"^net/http\.\(\*persistConn\)\.writeLoop\(", text, flags=re.M))


def test_bundle_totals_show_the_delta(analyses):
    from forensics.diff import diff_bundles

    d = diff_bundles(analyses["before"], analyses["after"])
    g = total(d, "goroutines")
    assert (g["before"], g["after"]) == (debug2_goroutines(GP1), debug2_goroutines(GP2))
    assert g["delta"] == 9 - 6


def test_new_signature_is_the_http_connection(analyses):
    from forensics.diff import diff_bundles

    d = diff_bundles(analyses["before"], analyses["after"])
    wl = [s for s in d.signatures if "persistConn).writeLoop" in s["top_frame"]]
    assert len(wl) == 1
    assert (wl[0]["goroutines_before"], wl[0]["goroutines_after"]) == (
        writeloop_frames(GP1), writeloop_frames(GP2)) == (0, 1)
    assert wl[0]["change"] == "new" and wl[0]["state"] == "select"
    assert wl[0]["created_by"] == "net/http.(*Transport).dialConn"
    # Movement first: nothing that stayed the same outranks what appeared.
    moved = [s["change"] != "same" for s in d.signatures]
    assert moved == sorted(moved, reverse=True) and any(moved) and not all(moved)


def test_call_sites_keep_their_counts(analyses):
    from forensics.diff import diff_bundles

    d = diff_bundles(analyses["before"], analyses["after"])
    by_fn = {s["function"]: s for s in d.sites}
    # Two goroutines sleep in main.shortSleepLoop in both dumps (goroutines 4 and 22).
    s = by_fn["main.shortSleepLoop"]
    assert (s["goroutines_before"], s["goroutines_after"], s["change"]) == (2, 2, "same")
    assert s["file"].endswith("examples/goroutine/main.go") and s["line"] == 165


def test_findings_appear_and_disappear(analyses):
    from forensics.diff import diff_bundles

    up = diff_bundles(analyses["before"], analyses["pgx"])
    down = diff_bundles(analyses["pgx"], analyses["before"])
    kinds_pgx = {f.kind for f in analyses["pgx"].findings}
    kinds_before = {f.kind for f in analyses["before"].findings}
    assert {f["kind"] for f in up.findings["appeared"]} == kinds_pgx - kinds_before
    assert {f["kind"] for f in down.findings["disappeared"]} == kinds_pgx - kinds_before
    g = total(up, "goroutines")
    assert g["after"] == 3252 and g["delta"] == 3252 - 6


def test_rounds_of_one_bundle(analyses):
    from forensics.diff import diff_rounds

    a = analyses["rounds"]
    assert a.rounds == [1, 2]
    d = diff_rounds(a, 1, 2)
    g = total(d, "goroutines")
    assert (g["before"], g["after"], g["delta"]) == (6, 9, 3)
    heap = total(d, "heap_inuse_objects")
    h = a.tables["heap_samples"]
    assert heap["before"] is None and heap["after"] == int(h["inuse_objects"].sum())
    grown = [s for s in d.sites if s["heap_inuse_objects_after"] > 0]
    assert grown and all(s["change"] == "new" for s in grown)
    assert d.findings == {"appeared": [], "disappeared": [], "persisted": []}
    with pytest.raises(ValueError, match="round 3 is not in this bundle"):
        diff_rounds(a, 1, 3)


def test_cli_json_and_table(bundles):
    from typer.testing import CliRunner

    from forensics.cli import app

    r = CliRunner().invoke(app, ["diff", str(bundles["before"]), str(bundles["after"]),
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert set(doc) >= {"mode", "before", "after", "totals", "sites", "signatures", "findings"}
    assert doc["before"]["bundle_id"] == "before" and doc["after"]["bundle_id"] == "after"
    assert {"metric": "goroutines", "before": 6, "after": 9, "delta": 3} in doc["totals"]

    r = CliRunner().invoke(app, ["diff", str(bundles["rounds"]), "--rounds", "1:2"])
    assert r.exit_code == 0, r.output
    assert "goroutines" in r.output and "+3" in r.output
    assert "[select]" not in r.output  # stack text is printed, never parsed as markup

    assert CliRunner().invoke(app, ["diff", str(bundles["before"])]).exit_code == 2
    assert CliRunner().invoke(app, ["diff", str(bundles["rounds"]), "--rounds",
                                    "x"]).exit_code == 2
    assert CliRunner().invoke(app, ["diff", "/nonexistent.tgz", "/x.tgz"]).exit_code == 4
