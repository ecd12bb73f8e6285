"""Call-site scoring across findings and rounds.

A site's score grows with how much it explains (goroutines, live objects, sockets, on a log
scale so one huge number does not drown agreement), how fast that grows between rounds, how
severe and how well corroborated its finding is, and its role: a cause (the line that takes
connections and does not give them back) outranks an inferred cause, which outranks a
victim (a line merely waiting for a connection).
"""

from __future__ import annotations

import math

from .findings import ALSO_WAITS_NOTE, VICTIM_NOTE, CallSite, Finding, SiteEvidence

ROLE_WEIGHT = {"cause": 3.0, "holder": 2.0, "victim": 1.0}
ROLE_ORDER = {"cause": 2, "holder": 1, "victim": 0}
SEVERITY_WEIGHT = {"info": 0.0, "low": 0.5, "medium": 1.0, "high": 1.5, "critical": 2.0}


def site_score(f: Finding, s: SiteEvidence) -> float:
    role = ROLE_WEIGHT.get(s.role, 1.0) * (0.5 if s.inferred else 1.0)
    size = s.goroutines + s.heap_inuse_objects + s.sockets
    magnitude = math.log2(2 + size)
    growth = 1 + min(max(s.growth, 0) / max(size, 1), 1.0)
    return 10 * role * SEVERITY_WEIGHT[f.severity] * f.confidence * magnitude * growth


def rank(findings: list[Finding]) -> list[CallSite]:
    acc: dict[tuple, dict] = {}
    for f in findings:
        for s in f.sites:
            score = site_score(f, s)
            if score <= 0:
                continue
            key = (s.function, s.file, s.line)
            a = acc.setdefault(key, {"score": 0.0, "best": ((-1, False, -1.0), f.kind, s.role),
                                     "ev": {
                "goroutines": 0, "heap_inuse_objects": 0, "heap_inuse_bytes": 0, "growth": 0.0,
                "sockets": 0, "wait_minutes_max": None, "findings": []},
                "direct": False, "stacks": {}, "notes": []})
            a["score"] += score
            # The site's role and leak kind: a cause before a holder before a victim, a
            # named cause before an inferred one, then the louder finding. A line that
            # takes connections and keeps them is a cause even when more callers wait on
            # it (the same pool call both leaks and, once the pool is empty, waits).
            rank_key = (ROLE_ORDER.get(s.role, 0), not s.inferred, score)
            if rank_key > a["best"][0]:
                a["best"] = (rank_key, s.leak_kind or f.kind, s.role)
            ev = a["ev"]
            ev["goroutines"] = max(ev["goroutines"], s.goroutines)
            ev["heap_inuse_objects"] = max(ev["heap_inuse_objects"], s.heap_inuse_objects)
            ev["heap_inuse_bytes"] = max(ev["heap_inuse_bytes"], s.heap_inuse_bytes)
            ev["growth"] = max(ev["growth"], s.growth)
            ev["sockets"] = max(ev["sockets"], s.sockets)
            if s.wait_minutes_max is not None:
                ev["wait_minutes_max"] = max(ev["wait_minutes_max"] or 0, s.wait_minutes_max)
            if f.kind not in ev["findings"]:
                ev["findings"].append(f.kind)
            if s.note and s.note not in a["notes"]:
                a["notes"].append(s.note)
            # A site is a named cause only if some evidence names it directly as one;
            # being a victim too does not make an inferred cause certain.
            a["direct"] = a["direct"] or (s.role in ("cause", "holder") and not s.inferred)
            for st in s.stacks:
                a["stacks"].setdefault((st["stack_id"], st["source"]), st)
    ordered = sorted(acc.items(), key=lambda kv: -kv[1]["score"])
    out = []
    for i, ((function, file, line), a) in enumerate(ordered, start=1):
        a["ev"]["notes"] = [ALSO_WAITS_NOTE if n == VICTIM_NOTE and a["best"][2] != "victim"
                            else n for n in a["notes"]]
        out.append(CallSite(rank=i, function=function, file=file, line=line,
                            leak_kind=a["best"][1], score=round(a["score"], 2),
                            role=a["best"][2], evidence=a["ev"],
                            inferred=a["best"][2] == "cause" and not a["direct"],
                            stack_ids=sorted({k[0] for k in a["stacks"]}),
                            stacks=list(a["stacks"].values())))
    return out
