"""Runs every detector over an analysis, ranks the call sites they name, and prepares the
per-round series the report charts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from . import evidence
from .detectors import DETECTORS
from .findings import SEVERITIES
from .rank import rank


def detect(analysis: Any) -> None:
    """Fill ``analysis.findings``, ``analysis.call_sites`` and the trend series."""
    ev = evidence.build(analysis.tables, analysis.rounds, analysis.series, analysis.manifest)
    found: list[tuple[Any, list]] = []
    for det in DETECTORS:
        try:
            found.append((det, det.detect(ev)))
        except Exception as exc:  # one broken rule must not hide the others' findings
            analysis.warnings.append({"path": f"detector {det.__name__.rsplit('.', 1)[-1]}",
                                      "message": f"internal error: {type(exc).__name__}: {exc}"})
    findings = []
    for det, mine in found:
        others = {f.kind for d, fs in found if d is not det for f in fs if f.severity != "info"}
        if not others & getattr(det, "SUPPRESSED_BY", frozenset()):
            findings += mine
    findings.sort(key=lambda f: (-SEVERITIES.index(f.severity), -f.confidence))
    analysis.findings = findings
    analysis.call_sites = rank(findings)
    analysis.series.update(series(ev))


def series(ev: evidence.Evidence) -> dict[str, dict[int, dict[str, float]]]:
    """Per-round trend series (the buckets are small: summed in Python, in the sorted
    (round, label) order a pandas groupby gives)."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    g = ev.goroutines
    if len(g):
        states = [s if isinstance(s, str) else "unknown" for s in g["state"]]
        for (r, st), n in _sums(g["round"], states, g["count"]).items():
            out.setdefault("goroutines_by_state", {}).setdefault(r, {})[st] = n
    h = ev.heap
    if len(h):
        for (r, obj), n in _sums(h["round"], h["object"], h["inuse_objects"]).items():
            out.setdefault("conn_objects", {}).setdefault(r, {})[str(obj)] = n
    st = ev.tables["dbstats"]
    if len(st):
        fields = ["in_use", "open", "idle", "max_open", "wait_count"]
        known = {f: st[f].notna().to_numpy() for f in fields}
        values = {f: st[f].to_numpy(dtype=np.int64, na_value=0) for f in fields}
        rnd = st["round"].to_numpy(dtype=np.float64, na_value=np.nan)
        for r in np.unique(rnd[~np.isnan(rnd)]).tolist():
            rows = rnd == r
            out.setdefault("dbstats", {})[int(r)] = {
                f: int(values[f][rows & known[f]].sum()) for f in fields
                if (rows & known[f]).any()}
    return out


def _sums(rounds: Iterable, labels: Iterable, counts: Iterable) -> dict[tuple[int, str], int]:
    """Sum of ``counts`` per (round, label), sorted by round then label."""
    sums: dict[tuple[int, str], int] = {}
    for r, label, n in zip(rounds, labels, counts, strict=True):
        if r is None or r != r or label is None:  # nulls are left out, as groupby does
            continue
        key = (int(r), label)
        sums[key] = sums.get(key, 0) + int(n)
    return dict(sorted(sums.items()))
