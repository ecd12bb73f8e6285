"""jinja2 rendering of the report document into HTML (autoescaped) and Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import TEMPLATE_DIR


def md_cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, backticks, HTML or line breaks."""
    s = "" if value is None else str(value)
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")
    s = s.replace("<", "&lt;").replace(">", "&gt;").replace("\r", " ").replace("\n", " ")
    return s


def environment(fmt: str, templates: Path | None):
    import jinja2

    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.FileSystemLoader(str(TEMPLATE_DIR)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=(fmt == "html"),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = md_cell
    return env


def render_template(analysis, doc: dict[str, Any], fmt: str, templates: Path | None) -> str:
    env = environment(fmt, templates)
    name = {"html": "report.html.j2", "md": "report.md.j2"}[fmt]
    return env.get_template(name).render(doc=doc)
