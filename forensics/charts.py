"""Inline SVG charts for the HTML report, drawn in Python.

Why hand-drawn SVG and not a charting library: the report must be one self-contained file
that makes no network request and runs no script to draw itself, and it must print. A few
dozen lines of SVG per chart do that with no dependency.

Why so careful with text: series labels come from the bundle (goroutine wait reasons,
socket states, type names), so every label is attacker-controlled. Each one is escaped with
:func:`markupsafe.escape` and clipped before it enters the SVG, and the result is returned
as :class:`markupsafe.Markup` so jinja2 does not escape it twice. Nothing here uses inline
``style`` attributes (the report's Content-Security-Policy forbids them); colours are SVG
presentation attributes and fonts come from the page's stylesheet via CSS classes.

Input shape, the report document's ``series[name]``: ``{"1": {label: value}, "2": ...}``
with rounds as strings. One round gives a horizontal bar chart (a line needs two points);
several rounds give one line per label across rounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from markupsafe import Markup, escape

#: Colour-blind-safe palette (Okabe-Ito, yellow dropped for contrast on white, plus greys).
PALETTE: tuple[str, ...] = (
    "#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#7f3c8d", "#444444",
    "#999999",
)
#: Labels beyond this many (smallest last) are summed into "other" so a chart stays legible.
MAX_LINES = 8
MAX_LABEL_CHARS = 28
WIDTH = 600
PLOT_LEFT, PLOT_TOP, PLOT_BOTTOM = 52, 16, 34
LEGEND_WIDTH = 190
LINE_HEIGHT = 230
BAR_HEIGHT = 22

ByRound = Mapping[str, Mapping[str, float | int | None]]


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    values: list[float | None]  # one per round, None when the round lacks the label


def rounds_of(by_round: ByRound) -> list[str]:
    """Round keys in numeric order ("10" after "9")."""
    return sorted(by_round, key=lambda r: (not str(r).isdigit(), int(r) if str(r).isdigit()
                                           else 0, str(r)))


def number(value: float | int | None) -> str:
    """Compact human number: 12,345 / 1.2M / 0.25; an em dash when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    v = float(value)
    if abs(v) >= 10_000_000:
        return f"{v / 1e6:,.0f}M"
    if abs(v) >= 1_000_000:
        return f"{v / 1e6:.1f}M"
    if v == int(v):
        return f"{int(v):,}"
    text = f"{v:,.2f}" if abs(v) < 10 else f"{v:,.1f}"
    return text.rstrip("0").rstrip(".")


def _clip(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def lines_of(by_round: ByRound, labels: Iterable[str] | None = None,
             max_lines: int = MAX_LINES) -> tuple[list[str], list[Line]]:
    """(rounds, lines): the biggest labels first, the tail folded into "other"."""
    rounds = rounds_of(by_round)
    wanted = list(labels) if labels is not None else None
    seen: dict[str, list[float | None]] = {}
    for i, r in enumerate(rounds):
        for label, value in (by_round.get(r) or {}).items():
            label = str(label)
            if wanted is not None and label not in wanted:
                continue
            seen.setdefault(label, [None] * len(rounds))[i] = _num(value)
    order = sorted(seen, key=lambda k: (-max((v or 0) for v in seen[k]), k))
    if wanted is not None:
        order = [k for k in wanted if k in seen]
    if len(order) > max_lines:
        head, tail = order[: max_lines - 1], order[max_lines - 1 :]
        other = [sum(seen[k][i] or 0 for k in tail) for i in range(len(rounds))]
        seen = {k: seen[k] for k in head} | {f"other ({len(tail)})": list(other)}
        order = [*head, f"other ({len(tail)})"]
    lines = [Line(k, PALETTE[i % len(PALETTE)], seen[k]) for i, k in enumerate(order)]
    return rounds, lines


def _ticks(top: float) -> list[float]:
    """0 and 3-5 round steps (1, 2, 5 x 10^k) up to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if step < 1 and top >= 1:
        step = 1.0
    n = math.ceil(top / step)
    return [i * step for i in range(n + 1)]


def _is_limit(line: Line) -> bool:
    return line.label.lower().startswith(("max_", "max ", "limit"))


def _svg_open(height: int, title: str) -> list[str]:
    t = escape(title)
    return [f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-label="{t}"><title>{t}</title>']


def _legend(lines: list[Line], x: int, y: int) -> list[str]:
    out = []
    for i, ln in enumerate(lines):
        ly = y + i * 18
        last = next((v for v in reversed(ln.values) if v is not None), None)
        swatch = (f'<line x1="{x - 2}" x2="{x + 11}" y1="{ly - 4}" y2="{ly - 4}" '
                  f'stroke="{ln.colour}" stroke-width="2.2" stroke-dasharray="4 2"/>'
                  if _is_limit(ln) else
                  f'<rect x="{x}" y="{ly - 9}" width="10" height="10" rx="2" '
                  f'fill="{ln.colour}"/>')
        out.append(
            f'<g><title>{escape(ln.label)}: {escape(number(last))}</title>{swatch}'
            f'<text class="lg" x="{x + 15}" y="{ly}">{escape(_clip(ln.label))}</text></g>')
    return out


def line_chart(title: str, by_round: ByRound, labels: Iterable[str] | None = None,
               round_labels: Mapping[str, str] | None = None) -> Markup:
    """One line per label across rounds; a bar chart when there is only one round."""
    rounds, lines = lines_of(by_round, labels)
    if not lines:
        return Markup('<p class="muted">No data.</p>')
    if len(rounds) < 2:
        return bar_chart(title, rounds[0] if rounds else "1", lines)
    height = max(LINE_HEIGHT, PLOT_TOP + PLOT_BOTTOM + 18 * len(lines))
    right = WIDTH - LEGEND_WIDTH - 12
    bottom = height - PLOT_BOTTOM
    top_value = max((v for ln in lines for v in ln.values if v is not None), default=0.0)
    ticks = _ticks(top_value)
    ymax = ticks[-1] or 1.0

    def x_of(i: int) -> float:
        return PLOT_LEFT + (right - PLOT_LEFT) * i / (len(rounds) - 1)

    def y_of(v: float) -> float:
        return bottom - (bottom - PLOT_TOP) * v / ymax

    out = _svg_open(height, title)
    for t in ticks:
        y = y_of(t)
        out.append(f'<line class="grid" x1="{PLOT_LEFT}" x2="{right}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text class="ax" x="{PLOT_LEFT - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{escape(number(t))}</text>')
    names = round_labels or {}
    for i, r in enumerate(rounds):
        out.append(f'<text class="ax" x="{x_of(i):.1f}" y="{bottom + 18}" text-anchor="middle">'
                   f'{escape(names.get(r, "round " + str(r)))}</text>')
    # Limits (max_open, ...) are dashed and drawn last, so a pool pinned at its limit
    # shows both lines instead of hiding one under the other.
    for ln in sorted(lines, key=_is_limit):
        pts = [(x_of(i), y_of(v), v, rounds[i]) for i, v in enumerate(ln.values)
               if v is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in pts)
        dash = ' stroke-dasharray="6 4"' if _is_limit(ln) else ""
        out.append(f'<polyline fill="none" stroke="{ln.colour}" stroke-width="2.2" '
                   f'stroke-linejoin="round"{dash} points="{path}"/>')
        for x, y, v, r in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{ln.colour}">'
                       f'<title>{escape(ln.label)}, round {escape(r)}: '
                       f'{escape(number(v))}</title></circle>')
    out.extend(_legend(lines, right + 18, PLOT_TOP + 8))
    out.append("</svg>")
    return Markup("".join(out))


def bar_chart(title: str, round_key: str, lines: list[Line]) -> Markup:
    """Horizontal bars, one per label, for a single round."""
    label_w = 200
    height = PLOT_TOP + len(lines) * (BAR_HEIGHT + 6) + 8
    right = WIDTH - 70
    top_value = max((ln.values[0] or 0 for ln in lines), default=0.0) or 1.0
    out = _svg_open(height, f"{title} (round {round_key})")
    for i, ln in enumerate(lines):
        v = ln.values[0] or 0.0
        y = PLOT_TOP + i * (BAR_HEIGHT + 6)
        w = max(1.0, (right - label_w) * v / top_value) if v else 0.0
        out.append(
            f'<g><title>{escape(ln.label)}: {escape(number(ln.values[0]))}</title>'
            f'<text class="lg" x="{label_w - 8}" y="{y + 15}" text-anchor="end">'
            f'{escape(_clip(ln.label))}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{BAR_HEIGHT}" rx="3" '
            f'fill="{ln.colour}"/>'
            f'<text class="val" x="{label_w + w + 6:.1f}" y="{y + 15}">'
            f'{escape(number(ln.values[0]))}</text></g>')
    out.append("</svg>")
    return Markup("".join(out))


def meter(fraction: float | int | None, width: int = 70, height: int = 7) -> Markup:
    """A small horizontal gauge (e.g. a finding's confidence), 0..1."""
    f = _num(fraction)
    f = 0.0 if f is None else min(1.0, max(0.0, f))
    colour = "#1f7a45" if f >= 0.75 else "#d9730d" if f >= 0.4 else "#8a93a3"
    return Markup(f'<svg width="{width}" height="{height}" aria-hidden="true">'
                  f'<rect width="{width}" height="{height}" rx="3" fill="#e6e9ef"/>'
                  f'<rect width="{f * width:.1f}" height="{height}" rx="3" fill="{colour}"/>'
                  f"</svg>")
