"""Runs every detector over an analysis, ranks the call sites they name, and prepares the
per-round series the report charts."""

from __future__ import annotations

from typing import Any

from . import evidence
from .detectors import DETECTORS
from .findings import SEVERITIES
from .rank import rank


def detect(analysis: Any) -> None:
    """Fill ``analysis.findings``, ``analysis.call_sites`` and the trend series."""
    ev = evidence.build(analysis.tables, analysis.rounds, analysis.series, analysis.manifest)
    findings = []
    for det in DETECTORS:
        try:
            findings += det.detect(ev)
        except Exception as exc:  # one broken rule must not hide the others' findings
            analysis.warnings.append({"path": f"detector {det.__name__.rsplit('.', 1)[-1]}",
                                      "message": f"internal error: {type(exc).__name__}: {exc}"})
    findings.sort(key=lambda f: (-SEVERITIES.index(f.severity), -f.confidence))
    analysis.findings = findings
    analysis.call_sites = rank(findings)
    analysis.series.update(series(ev))


def series(ev: evidence.Evidence) -> dict[str, dict[int, dict[str, float]]]:
    out: dict[str, dict[int, dict[str, float]]] = {}
    g = ev.goroutines
    if len(g):
        by = g.assign(state=g["state"].fillna("unknown")).groupby(["round", "state"])["count"]
        for (r, st), n in by.sum().items():
            out.setdefault("goroutines_by_state", {}).setdefault(int(r), {})[str(st)] = int(n)
    h = ev.heap
    if len(h):
        for (r, obj), n in h.groupby(["round", "object"])["inuse_objects"].sum().items():
            out.setdefault("conn_objects", {}).setdefault(int(r), {})[str(obj)] = int(n)
    st = ev.tables["dbstats"]
    if len(st):
        fields = ["in_use", "open", "idle", "max_open", "wait_count"]
        for r, grp in st.groupby("round"):
            out.setdefault("dbstats", {})[int(r)] = {
                f: int(grp[f].sum()) for f in fields if grp[f].notna().any()}
    return out
