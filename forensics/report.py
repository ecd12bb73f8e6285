"""Rendering: the JSON document (the contract tools read) and jinja2 reports built from it.

One document, many views: the HTML and Markdown templates receive the same dictionary the
JSON output prints, plus chart and stack helpers, so no format can tell a different story.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).parent / "templates"


def _jsonable(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat().replace("+00:00", "Z")
    if hasattr(o, "item"):  # numpy / pandas scalars
        return o.item()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if isinstance(o, float) and math.isnan(o):
        return None
    return str(o)


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, default=_jsonable, ensure_ascii=False, allow_nan=False)


def _iso(t: Any) -> str | None:
    if t is None:
        return None
    return t.isoformat().replace("+00:00", "Z")


def artifact_rows(analysis) -> list[dict[str, Any]]:
    return [{
        "path": a.path,
        "kind": a.kind,
        "format": (a.result.meta.get("format") if a.result else None),
        "round": a.round,
        "captured_at": _iso(a.captured_at),
        "time_source": a.time_source,
        "bytes": len(a.member.data),
        "status": a.status,
        "message": a.message,
    } for a in analysis.artifacts]


def rounds_rows(analysis) -> list[dict[str, Any]]:
    out = []
    for r in analysis.rounds:
        times = sorted(a.captured_at for a in analysis.artifacts
                       if a.round == r and a.captured_at is not None)
        out.append({
            "round": r,
            "captured_at": _iso(times[0]) if times else None,
            "artifacts": sorted({a.kind for a in analysis.artifacts
                                 if a.round == r and a.kind != "unknown"}),
        })
    return out


def bundle_info(analysis) -> dict[str, Any]:
    b = analysis.bundle
    return {
        "id": b.bundle_id,
        "source": b.source,
        "content_hash": b.content_hash,
        "members": len(b.members),
        "pid": analysis.manifest.get("pid"),
        "hostname": analysis.manifest.get("hostname"),
        "db_addresses": analysis.manifest.get("db_addresses", []),
        "analyzer_version": analysis.version,
    }


def inventory_document(analysis) -> dict[str, Any]:
    return {
        "bundle": bundle_info(analysis),
        "rounds": rounds_rows(analysis),
        "artifacts": artifact_rows(analysis),
        "warnings": analysis.warnings,
    }


def document(analysis) -> dict[str, Any]:
    """The JSON contract of ``forensics analyze --format json`` (DESIGN.md)."""
    doc = inventory_document(analysis)
    doc["verdict"] = verdict(analysis)
    doc["findings"] = [f.to_dict() for f in analysis.findings]
    doc["call_sites"] = [c.to_dict() for c in analysis.call_sites]
    doc["warnings"] = analysis.warnings
    doc["series"] = {name: {str(r): v for r, v in sorted(by_round.items())}
                     for name, by_round in analysis.series.items()}
    return {k: doc[k] for k in ("bundle", "verdict", "rounds", "artifacts", "findings",
                                "call_sites", "series", "warnings")}


def verdict(analysis) -> dict[str, Any]:
    from .findings import SEVERITIES, worst_level

    worst = worst_level(analysis.findings)
    leaking = worst >= SEVERITIES.index("medium")
    if not analysis.usable:
        text = "Nothing usable in this bundle: see the artifacts section for why."
    elif leaking:
        top = analysis.call_sites[0] if analysis.call_sites else None
        if top is None:
            where = " The bundle cannot name the call site (see the findings for what to capture)."
        else:
            # The headline names the file, not its build path: the table has the full path.
            loc = f"{top.file.replace(chr(92), '/').rsplit('/', 1)[-1]}:{top.line}"
            how = " (inferred from the pool calls the service makes)" if top.inferred else ""
            where = f" Most likely site{how}: {top.function} ({loc})."
        text = f"Connection leak detected ({SEVERITIES[worst]}).{where}"
    elif len(analysis.rounds) < 2:
        # One capture shows a moment, not a trend: say so rather than all clear.
        text = ("No connection leak shown by this one capture; growth needs two or more "
                "rounds a minute or more apart" + ("; observations below."
                                                   if analysis.findings else "."))
    elif analysis.findings:
        text = "No connection leak detected; minor observations below."
    else:
        text = "No connection leak detected."
    return {"leak": leaking, "severity": SEVERITIES[worst] if worst >= 0 else "none",
            "text": text}


def summary_lines(analysis) -> list[str]:
    v = verdict(analysis)
    lines = [v["text"]]
    for c in analysis.call_sites[:3]:
        lines.append(f"  #{c.rank} {c.function} {c.file}:{c.line}  [{c.leak_kind}, "
                     f"score {c.score:.1f}]")
    return lines


def render(analysis, fmt: str, templates: Path | None = None) -> str:
    doc = document(analysis)
    if fmt == "json":
        return to_json(doc)
    from .render import render_template

    return render_template(analysis, doc, fmt, templates)
