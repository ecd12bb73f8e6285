"""The HTML and Markdown incident reports: sections, ranking order, and that text from a
hostile bundle (function names, file paths, hostnames, member names) cannot inject markup.

The analysis is a real :class:`forensics.pipeline.Analysis` built from a tiny bundle in
tmp_path (a real corpus goroutine dump, a real lsof excerpt and a member whose *name* is an
XSS payload), with findings, ranked sites and series attached the way the detectors attach
them. The stack frames of the leaked-Tx site are those of the corpus dump
``issue-golang-go-23922-windows-rows-tx-awaitDone.txt`` (Go 1.10 on Windows).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pytest
from conftest import CORPUS

from forensics import charts, render
from forensics.findings import CallSite, Check, Finding, SiteEvidence
from forensics.pipeline import build_tables
from forensics.report import document
from forensics.report import render as render_report

XSS = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
TICKS = "a|b`c`"
FENCE = "```"
GO_DUMP = "goroutines/issue-golang-go-23922-windows-rows-tx-awaitDone.txt"
LSOF = "lsof/issue-ably-go-89-lsof-redacted-placeholders-close_wait.out"
HOSTILE_MEMBER = f"{IMG}.txt"

SQL_GO = "C:/Go/src/database/sql/sql.go"
TX_AWAIT = {"function": "database/sql.(*Tx).awaitDone", "file": SQL_GO, "line": 1695,
            "frame_class": "stdlib"}
HANDLER = {"function": "main.(*api).handleTransfer", "file": "/src/orders/handlers.go",
           "line": 77, "frame_class": "app"}
HOSTILE_FN = f"main.{XSS}{IMG}{TICKS}{FENCE}evil"
HOSTILE_FILE = f"/src/{IMG}/{FENCE}x|y.go"


def _stack(stack_id: int, count: int, state: str, frames: list[dict], **kw) -> dict:
    return {"stack_id": stack_id, "source": kw.pop("source", "goroutines"), "count": count,
            "state": state, "wait_minutes_min": kw.pop("lo", None),
            "wait_minutes_max": kw.pop("hi", None), "inuse_objects": kw.pop("objs", 0),
            "inuse_bytes": kw.pop("nbytes", 0), "frames": frames}


def sample_call_sites() -> list[CallSite]:
    begin = {"function": "database/sql.(*DB).beginDC", "file": SQL_GO, "line": 1451,
             "frame_class": "stdlib"}
    tx_stack = _stack(11, 4, "chan receive", [TX_AWAIT, begin, HANDLER], lo=12, hi=95)
    heap_stack = _stack(12, 1, "", [begin, HANDLER], source="heap", objs=4, nbytes=1536)
    victim_frames = [
        {"function": "database/sql.(*DB).conn", "file": SQL_GO, "line": 1301,
         "frame_class": "stdlib"},
        {"function": "github.com/acme-retail/orders-api/internal/store.(*Store).RecentOrders",
         "file": "/src/orders/internal/store/store.go", "line": 41, "frame_class": "app"},
        {"function": "main.(*api).handleOrders", "file": "/src/orders/handlers.go",
         "line": 44, "frame_class": "app"},
    ]
    hostile_frames = [{"function": HOSTILE_FN, "file": HOSTILE_FILE, "line": 9,
                       "frame_class": "app"}]
    return [
        CallSite(1, HANDLER["function"], HANDLER["file"], 77, "leaked_tx", 91.5, "cause",
                 {"goroutines": 4, "heap_inuse_objects": 4, "heap_inuse_bytes": 1536,
                  "growth": 3.0, "sockets": 4, "wait_minutes_max": 95},
                 stack_ids=[11, 12], stacks=[tx_stack, heap_stack]),
        CallSite(2, victim_frames[1]["function"], victim_frames[1]["file"], 41,
                 "pool_exhaustion", 40.25, "victim",
                 {"goroutines": 812, "heap_inuse_objects": 0, "heap_inuse_bytes": 0,
                  "growth": 0.0, "sockets": 0},
                 inferred=True, stack_ids=[13],
                 # The same stack reported once per round: must come out merged.
                 stacks=[_stack(13, 500, "select", victim_frames, lo=1, hi=7),
                         _stack(13, 312, "select", victim_frames, lo=3, hi=17)]),
        CallSite(3, HOSTILE_FN, HOSTILE_FILE, 9, f"{XSS}kind", 1.0, f"{IMG}",
                 {"goroutines": 1, "heap_inuse_objects": 0, "heap_inuse_bytes": 0,
                  "growth": 0.0, "sockets": 0},
                 # Stack 11 again: shown once, under site #1.
                 stacks=[_stack(14, 1, f"{XSS}", hostile_frames),
                         _stack(11, 4, "chan receive", [TX_AWAIT, HANDLER])]),
    ]


def sample_findings() -> list[Finding]:
    leak = Finding(
        "leaked_tx", "high", 0.85,
        "4 transactions begun in main.(*api).handleTransfer are never committed or rolled "
        "back; their awaitDone goroutines grew from 1 to 4 between rounds.",
        evidence={"goroutines": {"awaitDone": 4, "wait_minutes_max": 95},
                  "heap": {"inuse_objects": 4, "types": ["*sql.Tx"]}},
        sites=[SiteEvidence(HANDLER["function"], HANDLER["file"], 77, goroutines=4,
                            heap_inuse_objects=4, growth=3.0, note="BeginTx without Rollback")],
        checks=[Check("heap", "supports", "4 live *sql.Tx allocated under handleTransfer"),
                Check("goroutines", "supports", "4 x database/sql.(*Tx).awaitDone, up to 95 min"),
                Check("sockets", "silent", "no socket listing in round 2"),
                Check("dbstats", "absent", "no db.Stats in the bundle"),
                Check("goroutineleak", "absent", "no goroutineleak profile")],
        advice="Capture db.Stats() with each round.")
    hostile = Finding(
        f"{XSS}", "low", 0.2, f"summary {IMG} {TICKS} {FENCE}",
        evidence={f"{XSS}": {f"{IMG}": f"{TICKS}"}},
        sites=[SiteEvidence(HOSTILE_FN, HOSTILE_FILE, 9, role=IMG, note=XSS)],
        checks=[Check(f"{IMG}", f"{XSS}", f"detail {XSS} | {TICKS}\n# not a heading")],
        advice=f"advice {IMG}")
    return [leak, hostile]


def sample_series() -> dict:
    return {
        "goroutines_by_state": {1: {"chan receive": 1, "select": 300, "IO wait": 20},
                                2: {"chan receive": 4, "select": 812, "IO wait": 21,
                                    XSS: 2}},
        "sockets_by_state": {1: {"ESTABLISHED": 10, "CLOSE_WAIT": 2},
                             2: {"ESTABLISHED": 14, "CLOSE_WAIT": 6}},
        "dbstats": {1: {"max_open": 10, "open": 10, "in_use": 7, "idle": 3, "wait_count": 90},
                    2: {"max_open": 10, "open": 10, "in_use": 10, "idle": 0,
                        "wait_count": 4100}},
    }


def hostile_bundle(root: Path) -> Path:
    """A folder bundle of two rounds, each a real goroutine dump and a real lsof excerpt,
    plus a member whose name is an XSS payload."""
    bundle = root / "bundle"
    for stamp in ("20261127T101500Z", "20261127T103000Z"):
        (bundle / stamp).mkdir(parents=True)
        shutil.copy(CORPUS / GO_DUMP, bundle / stamp / "goroutines.txt")
        shutil.copy(CORPUS / LSOF, bundle / stamp / "lsof.txt")
    (bundle / HOSTILE_MEMBER).write_text(f"{XSS}\n", encoding="utf-8")
    return bundle


def sample_analysis(root: Path):
    analysis = build_tables(hostile_bundle(root))
    analysis.manifest["hostname"] = f"db-{IMG}"
    analysis.findings = sample_findings()
    analysis.call_sites = sample_call_sites()
    analysis.series = sample_series()
    analysis.warnings = [*analysis.warnings, {"path": HOSTILE_MEMBER, "message": f"bad {XSS}"}]
    return analysis


@pytest.fixture(scope="module")
def analysis(corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    return sample_analysis(tmp_path_factory.mktemp("render"))


@pytest.fixture(scope="module")
def html(analysis) -> str:
    return render_report(analysis, "html")


@pytest.fixture(scope="module")
def md(analysis) -> str:
    return render_report(analysis, "md")


# ------------------------------------------------------------------------ HTML
def test_html_sections_in_order(html: str) -> None:
    marks = ['id="verdict"', 'id="sites"', 'id="findings"', 'id="trends"', 'id="stacks"',
             'id="artifacts"', 'id="warnings"']
    positions = [html.index(m) for m in marks]
    assert positions == sorted(positions)
    assert 'class="verdict sev-high"' in html
    assert "Connection leak detected (high)." in html


def test_html_sites_ranked(html: str) -> None:
    body = html[html.index('id="sites"'):html.index('id="findings"')]
    row = r'<td class="num" data-v="(\d+)">\1</td>\s*<td class="fn-cell">'
    ranks = [int(r) for r in re.findall(row, body)]
    assert ranks == [1, 2, 3]
    assert body.index("handleTransfer") < body.index("RecentOrders")
    assert body.count('class="badge inferred"') == 2  # the legend and site #2
    assert "1.5 KiB" in body and "812" in body


def test_html_findings_checks_and_advice(html: str) -> None:
    body = html[html.index('id="findings"'):html.index('id="trends"')]
    assert body.count('<article class="finding') == 2
    for verdict in ("supports", "silent", "absent"):
        assert f'class="badge v-{verdict}"' in body
    assert 'class="badge v-unknown"' in body  # the hostile check's verdict
    assert "Capture db.Stats() with each round." in body
    assert "85%" in body
    order = [body.index(f"<tr><td>{src}</td>") for src in
             ("goroutines", "heap", "sockets", "dbstats", "goroutineleak")]
    assert order == sorted(order)  # the three-way check first, in a fixed order


def test_html_trend_charts(html: str) -> None:
    body = html[html.index('id="trends"'):html.index('id="stacks"')]
    assert body.count("<svg class=\"chart\"") == 4  # goroutines, sockets, db conns, db waits
    assert "Goroutines by state" in body and "db.Stats: waits" in body
    assert "+4,010" in body  # wait_count 90 -> 4100


def test_html_stacks_deduplicated(html: str) -> None:
    body = html[html.index('id="stacks"'):html.index('id="artifacts"')]
    assert body.count('<details class="stack"') == 4  # 11, 12, 13 (merged), 14
    assert "812</strong> goroutines" in body  # 500 + 312 merged
    assert "waiting 1–17 min" in body
    assert "waiting 12–95 min" in body
    assert 'is shown under site <a href="#site-1">#1</a>' in body
    assert body.count('app site"') == 4  # each shown stack marks its call site frame
    assert "<dt>wait_minutes_max</dt><dd>95</dd>" in body  # evidence without a column


def test_html_artifacts_list_every_member(html: str, analysis) -> None:
    body = html[html.index('id="artifacts"'):]
    assert body.count("<tr><td class=\"num\"") == len(analysis.artifacts) == 5
    assert "20261127T103000Z/goroutines.txt" in body and "20261127T101500Z/lsof.txt" in body
    assert body.count('class="badge st-warning"') == 4  # both excerpts are cut off
    assert body.count("<li><code>") == len(analysis.warnings)


class _Tags(HTMLParser):
    """Every start tag and its attributes, as the browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_html_escapes_hostile_text(html: str) -> None:
    assert XSS not in html and IMG not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    tags = _tags(html)
    assert [t for t, _ in tags].count("script") == 1  # ours, pinned by hash
    assert not {t for t, _ in tags} & {"img", "iframe", "frame", "object", "embed", "link",
                                        "base", "form", "input"}
    assert not [(t, a) for t, attrs in tags for a in attrs if a.startswith("on")]


def test_html_no_remote_resources(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    for tag, attrs in _tags(html):
        for name in ("src", "srcset", "action", "formaction", "data", "poster", "xlink:href"):
            assert name not in attrs, tag
        assert (attrs.get("href") or "#").startswith("#"), attrs
    assert "@import" not in html and "url(" not in html


def test_html_csp_pins_our_style_and_script(html: str) -> None:
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert csp is not None
    policy = csp.group(1)
    assert policy.startswith("default-src &#39;none&#39;") or policy.startswith(
        "default-src 'none'")
    policy = policy.replace("&#39;", "'")
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    for tag in ("style", "script"):
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
        assert len(blocks) == 1
        digest = base64.b64encode(hashlib.sha256(blocks[0].encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in policy
    assert ' style="' not in html  # inline style attributes would be blocked by the CSP


# -------------------------------------------------------------------- Markdown
def _table_rows(md: str, header_start: str) -> list[str]:
    lines = md.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _cells(row: str) -> list[str]:
    """Split a GFM table row on unescaped pipes."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def test_md_sections_in_order(md: str) -> None:
    heads = ["# Connection leak report", "## Ranked call sites", "## Findings",
             "## Trends per round", "## Stacks behind each site", "## Artifacts",
             "## Warnings"]
    positions = [md.index(h) for h in heads]
    assert positions == sorted(positions)
    assert "> **Verdict: HIGH · leak.** Connection leak detected (high)." in md


def test_md_sites_table_ranked_and_intact(md: str) -> None:
    rows = _table_rows(md, "| # | function |")
    assert [_cells(r)[0].strip() for r in rows] == ["1", "2", "3"]
    assert all(len(_cells(r)) == 11 for r in rows)
    assert "`main.(*api).handleTransfer`" in rows[0]
    assert "_(inferred)_" in rows[1]


def test_md_every_table_keeps_its_columns(md: str) -> None:
    table: list[str] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            widths = {len(_cells(r)) for r in table}
            assert len(widths) == 1, table
            table = []


def test_md_escapes_hostile_text(md: str) -> None:
    outside_fences = re.sub(r"^```text\n.*?^```$", "", md, flags=re.S | re.M)
    assert "<" not in outside_fences  # no tag can open outside a code block
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert '"&gt;&lt;img src=x onerror=alert(1)&gt;' in md
    assert "\n# not a heading" not in md  # the newline in a check's detail is gone
    assert "detail &lt;script&gt;alert(1)&lt;/script&gt; \\| a\\|b\\`c\\`" in md


def test_md_fences_cannot_be_closed_by_input(md: str) -> None:
    fence_lines = [line for line in md.splitlines() if line.startswith("```")]
    assert fence_lines.count("```text") == fence_lines.count("```") == 4
    assert "`\u200b`\u200b`evil" in md  # the ``` in the hostile function name, broken


def test_md_trends_and_stacks(md: str) -> None:
    rows = _table_rows(md, "| | round 1 | round 2 | change |")
    assert any(_cells(r)[0].strip() == "select" and _cells(r)[3].strip() == "+512"
               for r in rows)
    assert "**812 goroutines** in `select`, waiting 1–17 min" in md
    assert "→ main.(*api).handleTransfer" in md
    assert "Stack 11 (goroutines, 4 × chan receive) is shown under site #1." in md
    assert "Evidence: wait\\_minutes\\_max = `95`" in md


# ------------------------------------------------------------------ unit level
def test_md_cell_escapes_structure() -> None:
    cell = render.md_cell(f"{XSS} | `x` *b* [l](u) a\nb &amp; $x$")
    assert cell == ("&lt;script&gt;alert(1)&lt;/script&gt; \\| \\`x\\` \\*b\\* \\[l\\](u) "
                    "a b &amp;amp; \\$x\\$")


def test_md_code_spans() -> None:
    assert render.md_code("database/sql.(*DB).conn") == "`database/sql.(*DB).conn`"
    assert render.md_code("p|q") == "`p\\|q`"
    assert render.md_code("p|q", table=False) == "`p|q`"
    # What a code span cannot hold safely everywhere falls back to escaped text.
    assert render.md_code("a`b") == "a\\`b"
    assert render.md_code("<autogenerated>") == "&lt;autogenerated&gt;"


def test_md_fence_neutralizes_fences() -> None:
    block = render.md_fence("x\n```\n~~~~\ny")
    lines = block.splitlines()
    assert lines[0] == "```text" and lines[-1] == "```"
    assert not any(line.startswith(("```", "~~~")) for line in lines[1:-1])


def test_text_clips_and_strips_controls() -> None:
    long = "x" * 50_000
    assert len(render.text(long)) < 1100
    assert render.text("a\u202eb\x00c") == "a\ufffdb\ufffdc"


def test_chart_labels_escaped_and_shapes() -> None:
    two = charts.line_chart("t", {"1": {XSS: 1, "b": 2}, "2": {XSS: 3, "b": 2}})
    assert XSS not in two and "&lt;script&gt;" in two
    assert two.count("<polyline") == 2
    one = charts.line_chart("t", {"1": {"a": 5, "b": 2}})
    assert one.count("<rect") == 2  # one bar per label
    assert "<polyline" not in one


def test_chart_folds_many_labels_into_other() -> None:
    by_round = {"1": {f"s{i}": i for i in range(20)}, "2": {f"s{i}": i + 1 for i in range(20)}}
    rounds, lines = charts.lines_of(by_round)
    assert rounds == ["1", "2"] and len(lines) == charts.MAX_LINES
    assert lines[0].label == "s19" and lines[-1].label == "other (13)"
    assert lines[-1].values == [sum(range(13)), sum(range(1, 14))]


def test_empty_analysis_renders(corpus: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    shutil.copy(CORPUS / LSOF, bundle / "lsof.txt")
    analysis = build_tables(bundle)
    html = render_report(analysis, "html")
    md = render_report(analysis, "md")
    # One capture is a moment, not a trend: not an all-clear.
    assert "No connection leak shown by this one capture" in html and 'sev-none' in html
    assert "No call site to report." in md and "No findings." in md
    assert "One round only" in md


def test_user_templates_first(analysis, tmp_path: Path) -> None:
    custom = tmp_path / "tpl"
    custom.mkdir()
    (custom / "report.md.j2").write_text("severity={{ doc.verdict.severity }} "
                                         "top={{ doc.call_sites[0].function }}\n")
    (custom / "_style.css.j2").write_text("body{color:#123}")
    doc = document(analysis)
    md = render.render_template(analysis, doc, "md", custom)
    assert md == "severity=high top=main.(\\*api).handleTransfer\n"
    html = render.render_template(analysis, doc, "html", custom)
    assert "<style>body{color:#123}</style>" in html
    assert render.csp_hash("body{color:#123}") in html.replace("&#39;", "'")


def test_huge_and_multiline_values_stay_bounded(analysis) -> None:
    doc = document(analysis)
    huge = "pkg.F" + "x" * 5_000_000
    site = doc["call_sites"][0]
    site["function"] = huge
    site["stacks"][0]["frames"][0]["function"] = "a\n```\n# h\n" + huge
    html = render.render_template(analysis, doc, "html", None)
    md = render.render_template(analysis, doc, "md", None)
    assert len(html) < 400_000 and len(md) < 200_000
    assert "(+4,999,005 chars)" in md and "(+4,999,005 chars)" in html
    assert "\n# h" not in md
    fences = [line for line in md.splitlines() if line.startswith("```")]
    assert fences.count("```text") == fences.count("```")


def test_many_stacks_are_capped() -> None:
    frames = [{"function": "main.f", "file": "/m.go", "line": 1, "frame_class": "app"}]
    stacks = [{"stack_id": i, "source": "goroutines", "count": i, "state": "select",
               "frames": frames * (render.MAX_FRAMES + 5)} for i in range(30)]
    site = {"rank": 1, "function": "main.f", "file": "/m.go", "line": 1, "stacks": stacks}
    (view,) = render.build_site_stacks([site])
    assert len(view.stacks) == render.MAX_STACKS_PER_SITE
    assert view.hidden == 30 - render.MAX_STACKS_PER_SITE
    assert view.stacks[0].count == 29  # biggest first
    assert view.stacks[0].hidden_frames == 5
    assert sum(f["is_site"] for f in view.stacks[0].frames) == 1


def test_unknown_format_is_refused(analysis) -> None:
    with pytest.raises(ValueError):
        render.render_template(analysis, document(analysis), "pdf", None)


# ------------------------------------------------------------ compiled templates
@pytest.fixture
def fresh_environments():
    """Environments are cached per process: each test here builds its own."""
    render._environment.cache_clear()
    yield
    render._environment.cache_clear()


def test_templates_compiled_once_and_reused(analysis, html, tmp_path, monkeypatch,
                                            fresh_environments) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert render_report(analysis, "html") == html
    folders = list((tmp_path / "forensics").iterdir())
    assert len(folders) == 1 and folders[0].name.endswith("-html")
    assert folders[0].stat().st_mode & 0o077 == 0  # private: cached code runs when loaded
    cached = sorted(folders[0].iterdir())
    assert cached
    render._environment.cache_clear()  # a new run: templates come from the cache
    assert render_report(analysis, "html") == html
    assert sorted(folders[0].iterdir()) == cached
    for f in cached:  # damaged files cost a compile, not the report
        f.write_bytes(b"j2 not bytecode")
    render._environment.cache_clear()
    assert render_report(analysis, "html") == html


def test_no_cache_without_a_private_writable_folder(analysis, html, tmp_path, monkeypatch,
                                                    fresh_environments) -> None:
    shared = tmp_path / "forensics" / f"jinja2-{jinja2.__version__}-html"
    shared.mkdir(parents=True)
    shared.chmod(0o777)  # another user could plant code here: not used
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert render._bytecode_cache("html") is None
    assert render_report(analysis, "html") == html
    assert not any(shared.iterdir())
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    render._environment.cache_clear()
    assert render._bytecode_cache("md") is None
    assert render_report(analysis, "html") == html
