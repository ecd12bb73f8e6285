"""The command line as users and scripts meet it: formats picked from the output name,
stdout reports, exit codes, Parquet tables that round-trip, no tracebacks on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, require
from typer.testing import CliRunner

from forensics.cli import app
from forensics.schema import TABLE_NAMES, Tables, arrow_schema

SAMPLE = ROOT / "sample_bundles" / "tx-go1.27.tar.gz"
HEALTHY = ROOT / "sample_bundles" / "healthy-go1.27.tar.gz"
runner = CliRunner()


@pytest.fixture(scope="module")
def sample():
    require(SAMPLE.exists() and HEALTHY.exists(), "sample bundles missing")
    return SAMPLE


def test_help_lists_commands_and_exit_codes():
    res = subprocess.run([sys.executable, "-m", "forensics.cli", "--help"], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0
    for cmd in ("analyze", "inspect", "tables", "collect", "batch", "query", "diff"):
        assert cmd in res.stdout
    assert "Exit codes" in res.stdout


def test_analyze_json_to_stdout_is_the_contract(sample):
    res = runner.invoke(app, ["analyze", str(sample), "--format", "json", "-o", "-"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["call_sites"][0]["function"].endswith("transferFundsLeakyTx")
    assert "report:" not in res.stdout  # stdout is the report, nothing else


@pytest.mark.parametrize("name,marker", [("r.html", "<!DOCTYPE html>"),
                                         ("r.md", "# Connection leak report"),
                                         ("r.json", '"call_sites"')])
def test_format_follows_the_extension(sample, tmp_path, name, marker):
    out = tmp_path / name
    res = runner.invoke(app, ["analyze", str(sample), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert marker in out.read_text()
    assert "transferFundsLeakyTx" in res.stdout  # terminal summary with the top site


def test_fail_on_high(sample, tmp_path):
    res = runner.invoke(app, ["analyze", str(sample), "-o", str(tmp_path / "r.md"),
                              "--fail-on", "high"])
    assert res.exit_code == 1
    res = runner.invoke(app, ["analyze", str(HEALTHY), "-o", str(tmp_path / "h.md"),
                              "--fail-on", "low"])
    assert res.exit_code == 0, res.output


def test_tables_round_trip_through_parquet(sample, tmp_path):
    res = runner.invoke(app, ["tables", str(sample), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    for name in TABLE_NAMES:
        assert pq.read_schema(tmp_path / f"{name}.parquet").equals(arrow_schema(name)), name
    t = Tables.read_parquet(tmp_path)
    g = t["goroutines"]
    assert set(g["round"]) == {1, 2, 3}
    assert g["captured_at"].notna().all()
    tx = t["stacks"][t["stacks"]["function"] == "database/sql.(*Tx).awaitDone"]
    assert len(tx) >= 1 and set(tx["frame_class"]) == {"stdlib"}


def test_exit_codes_for_warnings_and_nothing_usable(corpus, tmp_path):
    res = runner.invoke(app, ["inspect", str(corpus / "goroutines" /
                                             "issue-golang-go-23922-windows-rows-tx-awaitDone.txt")])
    assert res.exit_code == 3  # truncated paste: analyzed, with a warning
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(range(256)) * 10)
    res = runner.invoke(app, ["analyze", str(noise), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 4
    res = runner.invoke(app, ["inspect", str(tmp_path / "missing.tar.gz")])
    assert res.exit_code == 4
    assert "no such file" in res.output
    assert "Traceback" not in res.output


def test_inspect_json(sample):
    res = runner.invoke(app, ["inspect", str(sample), "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    kinds = {a["kind"] for a in doc["artifacts"]}
    assert {"manifest", "goroutines", "heap_pprof", "lsof", "ss", "procfd", "dbstats",
            "limits"} <= kinds
    assert {a["round"] for a in doc["artifacts"]} == {1, 2, 3}


def test_print_script_is_posix_shell():
    res = runner.invoke(app, ["collect", "--print-script"])
    assert res.exit_code == 0
    assert res.stdout.startswith("#!/bin/sh")
