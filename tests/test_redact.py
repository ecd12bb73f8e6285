"""``forensics analyze --redact``: IPs, host names, user names and home paths masked, one
value always the same token, in the report (HTML, Markdown, JSON), the terminal output and
the exported tables; the token map saved apart for the owner.

The end-to-end bundle is the tx sample capture (a real leaking Go service) given a private
face: its loopback addresses become 10.20.30.40, its host prod-pay-7.acme.internal, its
build paths /home/alice/build, and its lsof listing a resolved DB peer name. The corpus
tests use third-party captures that carry real resolved names and a real home path.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import stat
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from typer.testing import CliRunner

from forensics.cli import app
from forensics.parsers import profile_proto as pb
from forensics.pipeline import build_tables
from forensics.redact import Redactor, redact_analysis

SAMPLE = ROOT / "sample_bundles" / "tx-go1.27.tar.gz"
SECRETS = ("10.20.30.40", "prod-pay-7", "acme.internal", "alice", "db-primary")
BUILD = b"/tmp/leakyservice-build"
runner = CliRunner()


def _private(data: bytes, name: str) -> bytes:
    if name.endswith(".pb.gz"):
        prof = pb.Profile.FromString(gzip.decompress(data))
        strings = [s.replace(BUILD, b"/home/alice/build") for s in prof.string_table]
        del prof.string_table[:]
        prof.string_table.extend(strings)
        return gzip.compress(prof.SerializeToString())
    data = (data.replace(b"127.0.0.1", b"10.20.30.40").replace(BUILD, b"/home/alice/build")
            .replace(b'"hostname": "vm"', b'"hostname": "prod-pay-7.acme.internal"'))
    if name.endswith("lsof.txt"):
        data += (b"orders-ap 6926 root  98u  IPv4 999001 0t0 TCP "
                 b"prod-pay-7.acme.internal:50001->db-primary.acme.internal:34467 "
                 b"(ESTABLISHED)\n"
                 b"orders-ap 6926 root  99r  REG 254,0 0 42 /home/alice/.cache/orders.db\n")
    return data


@pytest.fixture(scope="module")
def private_bundle(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("priv") / "incident.tar.gz"
    with tarfile.open(SAMPLE) as src, tarfile.open(p, "w:gz") as out:
        for m in src.getmembers():
            if not m.isfile():
                continue
            data = _private(src.extractfile(m).read(), m.name)
            m.name = m.name.replace("vm-6926", "prod-pay-7-6926")
            m.size = len(data)
            out.addfile(m, io.BytesIO(data))
    return p


@pytest.fixture(scope="module")
def redacted(private_bundle, tmp_path_factory) -> dict:
    """One redacted run per report format, sharing the same tables folder and map."""
    d = tmp_path_factory.mktemp("out")
    runs = {}
    for fmt in ("json", "html", "md"):
        res = runner.invoke(app, ["analyze", str(private_bundle), "-o", str(d / f"r.{fmt}"),
                                  "--tables", str(d / "tables"),
                                  "--redact-map", str(d / "owner" / "map.json")])
        assert res.exit_code == 0, res.output
        runs[fmt] = {"text": (d / f"r.{fmt}").read_text(), "stdout": res.stdout,
                     "stderr": res.stderr}
    runs["map"] = json.loads((d / "owner" / "map.json").read_text())
    runs["map_mode"] = (d / "owner" / "map.json").stat().st_mode
    runs["tables"] = {p.stem: pd.read_parquet(p) for p in (d / "tables").glob("*.parquet")}
    return runs


def _token(mapping: dict, value: str) -> str:
    (tok,) = [t for t, e in mapping["tokens"].items() if e["value"] == value]
    return tok


def test_without_redact_the_secrets_are_there(private_bundle, tmp_path):
    """Control: the test bundle really carries every secret into an ordinary report and
    its tables."""
    res = runner.invoke(app, ["analyze", str(private_bundle), "-o", str(tmp_path / "r.json"),
                              "--tables", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "r.json").read_text()
    for secret in ("10.20.30.40", "prod-pay-7", "acme.internal", "alice"):
        assert secret in text, secret
    conns = pd.read_parquet(tmp_path / "t" / "connections.parquet")
    assert "db-primary.acme.internal:34467" in set(conns["peer"])


def test_no_secret_in_any_report_output_or_table(redacted):
    for fmt in ("json", "html", "md"):
        for part in ("text", "stdout", "stderr"):
            blob = redacted[fmt][part]
            for secret in SECRETS:
                assert secret not in blob, (fmt, part, secret)
    assert len(redacted["tables"]) >= 10
    for name, df in redacted["tables"].items():
        text = df.astype(str).to_csv()
        for secret in SECRETS:
            assert secret not in text, (name, secret)


def test_the_analysis_still_reads_and_tokens_are_consistent(redacted):
    m = redacted["map"]
    ip, user = _token(m, "10.20.30.40"), _token(m, "alice")
    host, short = _token(m, "prod-pay-7.acme.internal"), _token(m, "prod-pay-7")
    db = _token(m, "db-primary.acme.internal")
    doc = json.loads(redacted["json"]["text"])
    top = doc["call_sites"][0]
    assert top["function"].endswith("(*Store).transferFundsLeakyTx")  # still names the line
    assert top["file"] == f"/home/{user}/build/mod/src/github.com/acme-retail/orders-api/" \
                          "internal/store/tx.go"
    assert doc["bundle"]["hostname"] == host
    assert doc["bundle"]["db_addresses"] == [f"{ip}:34467"]
    assert all(a["path"].startswith(f"{short}-6926-") for a in doc["artifacts"])
    conns = redacted["tables"]["connections"]
    assert f"{ip}:34467" in set(conns.loc[conns["peer_role"] == "database", "peer"])
    assert f"{db}:34467" in set(conns["peer"])  # a resolved name the manifest did not give
    sockets = redacted["tables"]["sockets"]
    lsof = sockets[sockets["tool"] == "lsof"]
    assert set(lsof["remote_ip"].dropna()) <= {ip, db, "0.0.0.0", "*"}
    assert (lsof["local_ip"] == host).sum() == 3  # the added row, once per round
    fds = redacted["tables"]["fds"]
    assert (fds["target"] == f"/home/{user}/.cache/orders.db").sum() == 3
    # the same token in every format
    assert f"{ip}:34467" in redacted["html"]["text"] and f"{ip}:34467" in redacted["md"]["text"]
    assert "transferFundsLeakyTx" in redacted["json"]["stdout"]


def test_the_map_is_for_the_owner(redacted):
    m = redacted["map"]
    assert m["format"] == "forensics-redaction-map/1"
    assert {e["value"]: e["kind"] for e in m["tokens"].values()} == {
        "10.20.30.40": "ip", "alice": "user", "prod-pay-7.acme.internal": "host",
        "prod-pay-7": "host", "db-primary.acme.internal": "host"}
    assert stat.S_IMODE(redacted["map_mode"]) == 0o600


def test_the_map_never_lands_in_the_ticket(private_bundle, tmp_path):
    for extra in (["-o", str(tmp_path / "r.md"), "--redact-map", str(tmp_path / "r.md")],
                  ["-o", str(tmp_path / "r.md"), "--tables", str(tmp_path / "t"),
                   "--redact-map", str(tmp_path / "t" / "map.json")]):
        res = runner.invoke(app, ["analyze", str(private_bundle), *extra])
        assert res.exit_code == 2 and "--redact-map must not" in res.stderr
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "t").exists()


# --------------------------------------------------------------------- unit rules
@pytest.mark.parametrize("text,want", [
    ("10.0.0.7:5432", "ip-1:5432"),
    ("peer 10.0.0.7 and [10.0.0.7]:1 and ::ffff:10.0.0.7",
     "peer ip-1 and [ip-1]:1 and ::ffff:ip-1"),
    ("[2001:db8::7]:443 fe80::1%eth0", "[ip-1]:443 ip-2%eth0"),
    ("127.0.0.1:80 0.0.0.0:* [::1]:5432 :::22", "127.0.0.1:80 0.0.0.0:* [::1]:5432 :::22"),
    ("/home/alice/go/pkg/mod/github.com/lib/pq@v1.10.9/conn.go",
     "/home/user-1/go/pkg/mod/github.com/lib/pq@v1.10.9/conn.go"),
    ("C:\\Users\\Bob\\go\\x.go and C:/Users/Bob/go",
     "C:\\Users\\user-1\\go\\x.go and C:/Users/user-1/go"),
    ("/Users/carol/src/app/main.go:12", "/Users/user-1/src/app/main.go:12"),
    ("/srv/home/x /home/Public/y", "/srv/home/x /home/Public/y"),
    ("v1.2.3.4 go1.21.0 12:30:45 2026-11-27T19:30:34Z",
     "v1.2.3.4 go1.21.0 12:30:45 2026-11-27T19:30:34Z"),
    ("10.0.0.7. 1.2.3.4.st", "ip-1. 1.2.3.4.st"),
])
def test_text_rules(text, want):
    assert Redactor().text(text) == want


def test_known_hosts_users_and_go_symbols():
    r = Redactor()
    for h in ("prod-pay-7.acme.internal", "api", "ec2-54-93-54-143.", "localhost"):
        r.learn_host(h)
    r.learn_users("/home/alice/x /home/ubuntu/y")
    assert r.text("prod-pay-7.acme.internal:5432 prod-pay-7/round-1 api:8080") == \
        "host-1:5432 host-2/round-1 host-3:8080"
    assert r.text("ec2-54-93-54-143:1 EC2-54-93-54-143.:2") == "host-4:1 host-4.:2"
    assert r.text("main.(*api).ServeHTTP api.Handler localhost:6060") == \
        "main.(*api).ServeHTTP api.Handler localhost:6060"
    assert r.text("github.com/acme/api/v2.(*Server).Serve", symbol=True) == \
        "github.com/acme/api/v2.(*Server).Serve"
    assert r.text("alice ran it as ubuntu") == "user-1 ran it as ubuntu"
    assert r.text(r.text("/home/alice/z")) == "/home/user-1/z"  # idempotent
    assert r.hostport("api:5432") == "host-3:5432"
    assert r.hostport("2001:db8::7:5432") == "ip-1:5432"
    assert r.host("10.9.9.9") == "ip-2" and r.host("fe80::2%eth1") == "ip-3%eth1"
    assert r.host("*") == "*" and r.host("") == ""
    assert r.walk({"hostname": "api", "db_addresses": ["10.9.9.9:5432"],
                   "rounds": [{"files": {"prod-pay-7/ss.txt": {"command": "ss -tanp"}}}]}) == {
        "hostname": "host-3", "db_addresses": ["ip-2:5432"],
        "rounds": [{"files": {"host-2/ss.txt": {"command": "ss -tanp"}}}]}


# ------------------------------------------------------------------------ corpus
NETSTAT_NAMES = "netstat/issue-hackoregon-civic-devops-177-netstat-resolved-truncated-hostnames.out"
NETSTAT_IPS = "netstat/issue-kippo-173-netstat-headerless-truncated-resolved-hosts.out"
LSOF_HOME = "lsof/jc-ubuntu-18.04-lsof.out"


def test_real_resolved_names_ips_and_home_paths(corpus, tmp_path):
    for rel in (NETSTAT_NAMES, NETSTAT_IPS, LSOF_HOME):
        shutil.copy(corpus / rel, tmp_path)
    a = build_tables(tmp_path)
    before = a.tables["sockets"].copy()
    r = redact_analysis(a)
    s = a.tables["sockets"]
    names = s["source"].str.contains("hackoregon")
    tok = {e["value"]: t for t, e in r.mapping()["tokens"].items()}
    # netstat without -n: "ec2-52-40-144-163" and its column-cut "ec2-52-40-144-163." are
    # one host; "ec2-52-40" (cut shorter) cannot be told apart, so it is another.
    assert set(s.loc[names, "local_ip"]) == {tok["ip-172-31-4-20"]}
    assert set(s.loc[names, "remote_ip"]) == {tok["ec2-52-40-144-163"], tok["ec2-52-40"]}
    assert (before.loc[names, "remote_ip"] == "ec2-52-40-144-163.").sum() == 2
    # every row of one address carries one token, in each column
    kippo = s["source"].str.contains("kippo")
    pairs = pd.DataFrame({"raw": before.loc[kippo, "remote_ip"], "tok": s.loc[kippo, "remote_ip"]})
    assert (pairs.groupby("raw")["tok"].nunique() == 1).all()
    assert pairs["tok"].nunique() == pairs["raw"].nunique() == 12
    assert set(s.loc[kippo, "local_ip"]) == {tok["192.168.1.2"]}
    assert tok["11.189.182.202.st"].startswith("host-")  # a name, though it starts like an IP
    fds = a.tables["fds"]
    assert (fds["target"] == f"/home/{tok['kbrazil']}/testfiles").sum() == 9
    for name, df in a.tables.frames.items():
        text = df.astype(str).to_csv()
        for secret in ("kbrazil", "192.168.1.2", "124.117.248.12", "ec2-52-40", "ip-172-31"):
            assert secret not in text, (name, secret)


def test_big_tables_are_masked_per_distinct_value():
    n = 200_000
    df = pd.DataFrame({"remote_ip": pd.array([f"10.1.{i % 250}.{i % 7}" for i in range(n)],
                                             dtype="string"),
                       "target": pd.array(["/home/alice/x"] * n, dtype="string"),
                       "fd": pd.array(range(n), dtype="Int64")})
    r = Redactor()
    t0 = time.monotonic()
    out = r.frame(df)
    assert time.monotonic() - t0 < 5
    assert out["remote_ip"].nunique() == df["remote_ip"].nunique() == 1750
    assert set(out["target"]) == {"/home/user-1/x"}
    assert out["fd"].equals(df["fd"]) and str(out["remote_ip"].dtype) == "string"
