"""jinja2 rendering of the report document into HTML (autoescaped) and Markdown.

Reports are attached to tickets that other people open, and much of what they show comes
from the customer's bundle: function names, file paths, hostnames, lsof NAME fields, wait
reasons. All of it is treated as hostile text:

- HTML is autoescaped by jinja2 and nothing from the bundle is ever marked safe. The only
  ``Markup`` that enters a page is ours: the stylesheet, the sort script (both pinned by a
  sha256 in the Content-Security-Policy, computed here at render time, so no
  ``'unsafe-inline'``) and the SVG charts, which :mod:`forensics.charts` builds from escaped
  text. The page makes no network request: ``default-src 'none'``.
- Markdown has no autoescape, so this module gives it one: every ``{{ expression }}`` in a
  Markdown template passes through :func:`md_cell` unless a filter already produced
  escaped Markdown (:class:`Md`). Table cells lose pipes, backticks, HTML, emphasis, links
  and line breaks; code blocks get a fence their content cannot close.
- Every string is clipped (:data:`MAX_TEXT`) and stripped of control and bidi-override
  characters first, so a 50 MB "function name" or a Trojan-Source file name cannot bloat or
  disguise the report.

Templates (``--templates DIR`` is searched first, then ``forensics/templates``; a user may
override any single file, e.g. only ``_style.css.j2``) receive:

``doc``
    the JSON document of :func:`forensics.report.document`, unchanged: ``bundle``,
    ``verdict``, ``rounds``, ``artifacts``, ``findings``, ``call_sites``, ``series``,
    ``warnings``.
``fmt``
    ``"html"`` or ``"md"``.
``analysis``
    the :class:`forensics.pipeline.Analysis` (tables and all) for custom templates; the
    built-in ones read only ``doc``, like the JSON output, so no format tells a
    different story.
``charts``
    list of :class:`Chart` (``key``, ``title``, ``rounds``, ``rows`` of :class:`ChartRow`
    with ``label``, ``values``, ``change``; ``svg`` is Markup in HTML, empty in Markdown).
``series_rounds``
    the rounds the charts cover (fewer than two: growth cannot be measured).
``site_stacks``
    list of :class:`SiteStacks` for the top sites: ``site`` (the call-site dict),
    ``stacks`` (list of :class:`StackView`, deduplicated, biggest first) and ``hidden``
    (stacks not shown). A stack already shown under an earlier site has ``shown_under``
    set to that site's rank and is not repeated.
``severity_counts``
    {severity: number of findings}, most severe first.
``round_times``
    {round (str): captured_at ISO text or None}.
``css``, ``js``, ``csp`` (HTML)
    the stylesheet, the script and the Content-Security-Policy that pins them.
``limits``
    the caps below, so templates can say what they left out.

Filters: ``num``, ``signed``, ``bytes``, ``minutes``, ``pct``, ``meter`` (SVG gauge),
``text`` (clip + strip controls), ``fileline`` (``file | fileline(line)``), ``wbr`` (escaped
path HTML with break opportunities), ``sev``, ``status_class`` and ``verdict_class`` (safe
CSS class names), ``func_parts`` and ``path_parts`` (split for
display), ``value`` (compact text of any JSON value), ``stack_text``, ``ordered_checks``
(goroutines, heap, sockets, dbstats, goroutineleak, fds), ``extra_evidence`` (a site's
evidence beyond the table columns), and for Markdown
``md``, ``mdcode`` (``mdcode(false)`` outside tables) and ``fence``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from . import charts
from .report import TEMPLATE_DIR

TEMPLATES = {"html": "report.html.j2", "md": "report.md.j2"}
CSS_TEMPLATE = "_style.css.j2"
JS_TEMPLATE = "_script.js.j2"
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info", "none")

#: Longest text shown for any one value; the JSON output keeps the full text.
MAX_TEXT = 1000
#: Sites whose stacks are shown, stacks per site, frames per stack.
MAX_SITES_WITH_STACKS = 15
MAX_STACKS_PER_SITE = 12
MAX_FRAMES = 80

CHART_TITLES = {
    "goroutines_by_state": "Goroutines by state",
    "sockets_by_state": "Sockets by state",
    "conn_objects": "Live connection objects (heap)",
    "dbstats": "db.Stats",
    "db_check": "Connections and open fds",
}

# C0/C1 controls except tab, LF and CR, plus bidi overrides/isolates (Trojan Source).
_HOSTILE_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f"
                            "\u202a-\u202e\u2066-\u2069]")
_NEWLINES = re.compile(r"[\r\n\u2028\u2029\x85]+")
# Markdown cell escaping in one str.translate: punctuation with a meaning in CommonMark/GFM
# inline text (or GitHub's $math$) gets a backslash; <, > and & become entities, safe even
# where backslash escapes are unknown; line breaks become spaces.
_MD_CELL = {ord(c): "\\" + c for c in "\\`*_[]|~$!#"} | {
    ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;",
    **{ord(c): " " for c in "\r\n\u2028\u2029\x85"}}
_NOT_IN_CODE = re.compile(r"[`<>]")
_FENCE_RUN = re.compile(r"`{3,}|~{3,}")


class Md(str):
    """Text that is already safe Markdown; the Markdown environment emits it as is."""

    __slots__ = ()


# --------------------------------------------------------------------------- text
def text(value: Any, limit: int = MAX_TEXT) -> str:
    """Display text of any value: clipped, without control or bidi-override characters."""
    s = "" if value is None else str(value)
    if len(s) > limit:
        s = f"{s[:limit]}… (+{len(s) - limit:,} chars)"
    return _HOSTILE_CHARS.sub("\ufffd", s)


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, backticks, HTML, emphasis, links
    or line breaks. ``<``, ``>`` and ``&`` become entities (so an entity in the input shows
    as typed); other Markdown punctuation gets a backslash."""
    return Md(text(value).translate(_MD_CELL))


def md_code(value: Any, table: bool = True) -> str:
    """An inline code span: literal text, readable in raw Markdown too.

    The delimiter is one backtick longer than the longest run inside (CommonMark), padded
    when the content touches a backtick; in a table cell pipes are escaped (GFM strips the
    backslash even inside code spans). Text holding ``<``, ``>`` or a backtick, which no
    ordinary Go symbol or path does (``<autogenerated>`` aside), falls back to escaped
    plain text: a renderer that gets code spans wrong must not meet raw HTML in them."""
    s = _NEWLINES.sub(" ", text(value))
    if not s:
        return Md("")
    if _NOT_IN_CODE.search(s):
        return md_cell(s)
    if table:
        s = s.replace("|", "\\|")
    if s.startswith(" ") and s.endswith(" "):
        s = f" {s} "
    return Md(f"`{s}`")


def md_fence(body: str, info: str = "text") -> str:
    """A fenced code block no line of ``body`` can close or escape: runs of three or
    more backticks or tildes are broken with zero-width spaces (stricter renderers do not
    honour longer fences, so we do not rely on them)."""
    safe = _FENCE_RUN.sub(lambda m: "\u200b".join(m.group(0)), _HOSTILE_CHARS.sub("\ufffd", body))
    return Md(f"```{info}\n{safe}\n```")


def _md_finalize(value: Any) -> Any:
    """Markdown's autoescape: everything not already Markdown is escaped as cell text."""
    if isinstance(value, Md):
        return value
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value).lower()
    if isinstance(value, int | float):
        return num(value)
    return md_cell(value)


def _html_finalize(value: Any) -> Any:
    """HTML's clip: ``Markup`` (ours) untouched; any other text clipped and cleaned, then
    autoescaped by jinja2."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return ""
    if isinstance(value, str):
        return text(value)
    return value


# ----------------------------------------------------------------------- numbers
def num(value: Any) -> str:
    """12,345; 3.5; an em dash when missing."""
    if isinstance(value, bool):
        return str(value).lower()
    if not isinstance(value, int | float):
        return "—" if value in (None, "") else text(value)
    return charts.number(value)


def signed(value: Any) -> str:
    """Growth: +12 / −3 / 0."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return num(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    return ("+" if value > 0 else "") + charts.number(value)


def fmt_bytes(value: Any) -> str:
    """1.5 MiB; an em dash when missing."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    v = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(v) < 1024 or unit == "GiB":
            return f"{int(v):,} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1024
    return f"{v:,.1f} TiB"  # pragma: no cover


def minutes(lo: Any, hi: Any) -> str:
    """Wait range: "3-17 min", "5 min", "" when the dump gave none."""
    vals = [v for v in (lo, hi) if isinstance(v, int | float) and not isinstance(v, bool)]
    if not vals:
        return ""
    a, b = min(vals), max(vals)
    return f"{num(a)} min" if a == b else f"{num(a)}–{num(b)} min"


def file_line(file: Any, line: Any = None) -> str:
    """"handlers.go:77"; "?" when the file is unknown."""
    where = text(file) if file not in (None, "") else "?"
    return f"{where}:{line}" if line is not None else where


def pct(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    return f"{value * 100:.0f}%"


def value_text(value: Any) -> str:
    """Compact text of any evidence value (nested dicts and lists as short JSON)."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, int | float) or value is None:
        return num(value)
    try:
        return text(json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": ")))
    except (TypeError, ValueError):
        return text(repr(value))


#: The check table's row order: the three-way check first, then the rest.
CHECK_ORDER = ("goroutines", "heap", "sockets", "dbstats", "goroutineleak", "fds")
#: Call-site evidence keys that have their own column in the sites table.
SITE_COLUMNS = ("goroutines", "heap_inuse_objects", "heap_inuse_bytes", "growth", "sockets")


def ordered_checks(checks: Any) -> list[dict[str, Any]]:
    """A finding's checks in the fixed source order, unknown sources last (stable)."""
    rows = [c for c in (checks or []) if isinstance(c, dict)]
    rank = {s: i for i, s in enumerate(CHECK_ORDER)}
    return sorted(rows, key=lambda c: rank.get(str(c.get("source")), len(rank)))


def extra_evidence(evidence: Any) -> list[tuple[str, Any]]:
    """A site's evidence beyond the sites table's columns, e.g. wait minutes or pools."""
    if not isinstance(evidence, dict):
        return []
    return [(str(k), v) for k, v in evidence.items() if k not in SITE_COLUMNS]


def sev(value: Any) -> str:
    """A CSS-class-safe severity name (unknown words map to "unknown")."""
    s = str(value).lower()
    return s if s in SEVERITY_ORDER else "unknown"


def verdict_class(value: Any) -> str:
    s = str(value).lower()
    return s if s in ("supports", "contradicts", "silent", "absent") else "unknown"


def func_parts(name: Any) -> tuple[str, str]:
    """("github.com/acme/app/store.", "(*Store).Query"): package path and the rest."""
    s = text(name)
    head = s.split("[", 1)[0]
    dot = head.find(".", head.rfind("/") + 1)
    return (s[: dot + 1], s[dot + 1 :]) if dot > 0 else ("", s)


def wbr(path: Any) -> Markup:
    """HTML of a path with a line-break opportunity after each slash. Each piece is
    escaped here (markupsafe's join escapes), so the result is as safe as autoescape."""
    return Markup("/<wbr>").join(text(path).split("/"))


def status_class(status: Any) -> str:
    s = str(status)
    return s if s in ("ok", "warning", "failed") else "other"


def path_parts(path: Any) -> tuple[str, str]:
    """("/src/app/", "handlers.go"): folder and base name."""
    s = text(path)
    cut = max(s.rfind("/"), s.rfind("\\")) + 1
    return s[:cut], s[cut:]


# ------------------------------------------------------------------------ charts
@dataclass
class ChartRow:
    label: str
    values: list[float | None]
    change: float | None


@dataclass
class Chart:
    key: str
    title: str
    rounds: list[str]
    rows: list[ChartRow]
    svg: Markup = field(default_factory=Markup)


def _chart_parts(name: str, by_round: dict[str, dict[str, Any]]) -> list[tuple[str, str, list]]:
    """(key, title, labels) per chart; db.Stats splits counts of connections from waits,
    whose scales differ by orders of magnitude."""
    title = CHART_TITLES.get(name, name.replace("_", " ").capitalize())
    labels = sorted({str(k) for vals in by_round.values() for k in (vals or {})})
    if name != "dbstats":
        return [(name, title, labels)]
    waits = [k for k in labels if "wait" in k.lower()]
    conns = [k for k in labels if k not in waits]
    order = {k: i for i, k in enumerate(("max_open", "open", "in_use", "idle"))}
    conns.sort(key=lambda k: (order.get(k, 99), k))
    return [(f"{name}_{suffix}", f"{title}: {what}", ls) for suffix, what, ls in
            (("conns", "connections", conns), ("waits", "waits", waits)) if ls]


def build_charts(series: dict[str, Any], round_times: dict[str, str | None],
                 with_svg: bool) -> list[Chart]:
    known = [n for n in CHART_TITLES if n in series]
    names = known + sorted(n for n in series if n not in CHART_TITLES)
    out = []
    for name in names:
        by_round = series.get(name) or {}
        if not isinstance(by_round, dict) or not by_round:
            continue
        for key, title, labels in _chart_parts(name, by_round):
            rounds, lines = charts.lines_of(by_round, labels if name == "dbstats" else None,
                                            max_lines=12)
            if not lines:
                continue
            rows = [ChartRow(ln.label, ln.values, _change(ln.values)) for ln in lines]
            svg = Markup()
            if with_svg:
                svg = charts.line_chart(title, by_round, [ln.label for ln in lines]
                                        if name == "dbstats" else None,
                                        _round_labels(rounds, round_times))
            out.append(Chart(key, title, rounds, rows, svg))
    return out


def _round_key(r: str) -> tuple[bool, int, str]:
    return (not r.isdigit(), int(r) if r.isdigit() else 0, r)


def _change(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return known[-1] - known[0] if len(known) >= 2 else None


def _round_labels(rounds: list[str], times: dict[str, str | None]) -> dict[str, str]:
    out = {}
    for r in rounds:
        t = times.get(r) or ""
        hhmm = t[11:16] if len(t) >= 16 and t[10:11] == "T" else ""
        out[r] = f"round {r} · {hhmm}" if hhmm else f"round {r}"
    return out


# ------------------------------------------------------------------------ stacks
@dataclass
class StackView:
    stack_id: Any
    source: str
    count: int
    state: str
    wait: str
    inuse_objects: Any
    inuse_bytes: Any
    frames: list[dict[str, Any]]
    hidden_frames: int = 0
    #: Rank and position (1-based, the ``site-N`` anchor) of the site it was shown under.
    shown_under: int | None = None
    shown_under_index: int | None = None


@dataclass
class SiteStacks:
    site: dict[str, Any]
    stacks: list[StackView]
    hidden: int = 0


def _int(v: Any) -> int:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) and \
        math.isfinite(v) else 0


def _merge_stacks(stacks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (source, stack_id, state): counts and heap numbers summed, waits
    widened (a detector may report the same stack once per round)."""
    merged: dict[tuple, dict[str, Any]] = {}
    for st in stacks:
        if not isinstance(st, dict):
            continue
        key = (str(st.get("source")), str(st.get("stack_id")), str(st.get("state") or ""))
        cur = merged.get(key)
        if cur is None:
            merged[key] = dict(st)
            continue
        for k in ("count", "inuse_objects", "inuse_bytes"):
            cur[k] = _int(cur.get(k)) + _int(st.get(k))
        lo = [v for v in (cur.get("wait_minutes_min"), st.get("wait_minutes_min")) if v is not None]
        hi = [v for v in (cur.get("wait_minutes_max"), st.get("wait_minutes_max")) if v is not None]
        cur["wait_minutes_min"] = min(lo) if lo else None
        cur["wait_minutes_max"] = max(hi) if hi else None
    return sorted(merged.values(), key=lambda s: (-_int(s.get("count")),
                                                  -_int(s.get("inuse_bytes"))))


def _frames(site: dict[str, Any], frames: list[Any]) -> tuple[list[dict[str, Any]], int]:
    """Frames with ``is_app`` and ``is_site`` flags (the site frame, or failing an exact
    match the first app frame), capped at :data:`MAX_FRAMES`."""
    out = []
    for f in frames[:MAX_FRAMES]:
        f = f if isinstance(f, dict) else {}
        out.append({"function": f.get("function"), "file": f.get("file"),
                    "line": f.get("line"), "frame_class": str(f.get("frame_class") or ""),
                    "is_app": f.get("frame_class") == "app", "is_site": False})
    key = (site.get("function"), site.get("file"), site.get("line"))
    hit = next((f for f in out if (f["function"], f["file"], f["line"]) == key), None)
    hit = hit or next((f for f in out if f["is_app"]), None)
    if hit is not None:
        hit["is_site"] = True
    return out, max(0, len(frames) - MAX_FRAMES)


def build_site_stacks(call_sites: list[dict[str, Any]]) -> list[SiteStacks]:
    shown: dict[tuple[str, str], tuple[Any, int]] = {}
    out = []
    for index, site in enumerate(call_sites[:MAX_SITES_WITH_STACKS], start=1):
        stacks = _merge_stacks(list(site.get("stacks") or []))
        views = []
        for st in stacks[:MAX_STACKS_PER_SITE]:
            key = (str(st.get("source")), str(st.get("stack_id")))
            view = StackView(
                stack_id=st.get("stack_id"), source=str(st.get("source") or ""),
                count=_int(st.get("count")), state=str(st.get("state") or ""),
                wait=minutes(st.get("wait_minutes_min"), st.get("wait_minutes_max")),
                inuse_objects=st.get("inuse_objects"), inuse_bytes=st.get("inuse_bytes"),
                frames=[])
            if key in shown:
                view.shown_under, view.shown_under_index = shown[key]
            else:
                view.frames, view.hidden_frames = _frames(site, list(st.get("frames") or []))
                shown[key] = (site.get("rank"), index)
            views.append(view)
        out.append(SiteStacks(site, views, max(0, len(stacks) - MAX_STACKS_PER_SITE)))
    return out


def stack_text(stack: StackView) -> str:
    """A stack as plain text for a Markdown code block: "→" marks the site frame and "•"
    the other app frames, then the file:line indented below each function."""
    lines = []
    for f in stack.frames:
        mark = "→ " if f["is_site"] else ("• " if f["is_app"] else "  ")
        name = _NEWLINES.sub(" ", text(f["function"]))
        where = _NEWLINES.sub(" ", text(f["file"]))
        line = f":{f['line']}" if f["line"] is not None else ""
        lines.append(f"{mark}{name}\n      {where}{line}")
    if stack.hidden_frames:
        lines.append(f"  … {stack.hidden_frames} more frames")
    return "\n".join(lines)


# ---------------------------------------------------------------------- security
def csp_hash(source: str) -> str:
    """The CSP source expression that allows exactly this inline script or style."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy(css: str, js: str) -> str:
    """Nothing from the network, nothing inline but our own stylesheet and script."""
    return ("default-src 'none'; " f"style-src {csp_hash(css)}; script-src {csp_hash(js)}; "
            "base-uri 'none'; form-action 'none'")


# --------------------------------------------------------------------- rendering
def environment(fmt: str, templates: Path | None):
    """The jinja2 environment for ``fmt``, user templates first (cached: compiling the
    templates costs more than rendering them; jinja2 reloads a template whose file
    changed)."""
    return _environment(fmt, None if templates is None else str(templates))


@lru_cache(maxsize=16)
def _environment(fmt: str, templates: str | None):
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        loaders.append(jinja2.FileSystemLoader(templates))
    loaders.append(jinja2.FileSystemLoader(str(TEMPLATE_DIR)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        bytecode_cache=_bytecode_cache(fmt),
        autoescape=(fmt == "html"),
        finalize=_html_finalize if fmt == "html" else _md_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update({
        "md": md_cell, "mdcode": md_code, "fence": md_fence, "stack_text": stack_text,
        "num": num, "signed": signed, "bytes": fmt_bytes, "minutes": minutes, "pct": pct,
        "text": text, "value": value_text, "sev": sev, "verdict_class": verdict_class,
        "func_parts": func_parts, "path_parts": path_parts, "wbr": wbr,
        "status_class": status_class, "ordered_checks": ordered_checks,
        "extra_evidence": extra_evidence, "meter": charts.meter,
        "fileline": file_line,
    })
    return env


def _bytecode_cache(fmt: str):
    """Compiled templates kept between runs in the user's cache folder
    (``$XDG_CACHE_HOME/forensics``, else ``~/.cache/forensics``): compiling them costs a
    tenth of a second on every run, more than rendering a report. jinja2 recompiles a
    template whose source changed; the folder is per jinja2 version and per format,
    because the compiled code depends on both (autoescape, finalize). Without a private,
    writable folder there is no cache and templates are compiled on every run."""
    import jinja2

    class QuietBytecodeCache(jinja2.FileSystemBytecodeCache):
        """Fails silently: a full disk or a damaged file costs a compile, not the report."""

        def load_bytecode(self, bucket) -> None:
            try:
                super().load_bytecode(bucket)
            except Exception:
                bucket.reset()

        def dump_bytecode(self, bucket) -> None:
            try:
                super().dump_bytecode(bucket)
            except OSError:
                pass

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "forensics", f"jinja2-{jinja2.__version__}-{fmt}")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.stat(folder)
    except OSError:
        return None
    # Cached code runs when loaded: use only a folder that no other user can write.
    if (hasattr(os, "getuid") and st.st_uid != os.getuid()) or st.st_mode & 0o022 \
            or not os.access(folder, os.W_OK | os.X_OK):
        return None
    return QuietBytecodeCache(folder)


def severity_counts(findings: list[dict[str, Any]]) -> dict[str, int]:
    counts = {s: 0 for s in SEVERITY_ORDER if s != "none"}
    for f in findings:
        s = sev(f.get("severity"))
        counts[s] = counts.get(s, 0) + 1
    return {k: v for k, v in counts.items() if v}


def context(analysis, doc: dict[str, Any], fmt: str, env) -> dict[str, Any]:
    """Everything a template receives (see the module docstring)."""
    round_times = {str(r.get("round")): r.get("captured_at") for r in doc.get("rounds", [])}
    chart_list = build_charts(doc.get("series") or {}, round_times, with_svg=fmt == "html")
    ctx: dict[str, Any] = {
        "doc": doc,
        "analysis": analysis,
        "fmt": fmt,
        "charts": chart_list,
        "series_rounds": sorted({r for ch in chart_list for r in ch.rounds}, key=_round_key),
        "site_stacks": build_site_stacks(list(doc.get("call_sites") or [])),
        "severity_counts": severity_counts(list(doc.get("findings") or [])),
        "round_times": round_times,
        "limits": {"max_sites_with_stacks": MAX_SITES_WITH_STACKS,
                   "max_stacks_per_site": MAX_STACKS_PER_SITE, "max_frames": MAX_FRAMES,
                   "max_text": MAX_TEXT},
    }
    if fmt == "html":
        css = env.get_template(CSS_TEMPLATE).render()
        js = env.get_template(JS_TEMPLATE).render()
        ctx.update(css=Markup(css), js=Markup(js), csp=content_security_policy(css, js))
    return ctx


def render_template(analysis, doc: dict[str, Any], fmt: str, templates: Path | None) -> str:
    """Render ``doc`` as ``fmt`` ("html" or "md") with the templates the module docstring
    describes."""
    if fmt not in TEMPLATES:
        raise ValueError(f"unknown report format {fmt!r} (expected one of {sorted(TEMPLATES)})")
    env = environment(fmt, templates)
    out = env.get_template(TEMPLATES[fmt]).render(**context(analysis, doc, fmt, env))
    return out if out.endswith("\n") else out + "\n"
