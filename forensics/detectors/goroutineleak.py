"""Go's own verdict: the ``goroutineleak`` profile (Go 1.26 experiment, default in 1.27)
lists goroutines the GC proved blocked forever on unreachable primitives, and dumps taken
after it mark them ``(leaked)``.

This is proof that something leaked, but it never names the app line and misses leaks
whose goroutines stay reachable (a leaked *Rows holding a pool slot). Connection holders
it proves are folded into their own detectors; this finding reports the rest.
"""

from __future__ import annotations

import pandas as pd

from ..evidence import Evidence
from ..findings import Check, Finding
from ..signatures import RUNTIME_LEAK
from .common import goroutine_sites


def detect(ev: Evidence) -> list[Finding]:
    marked = ev.goroutines[ev.goroutines["leaked"].astype(bool)]
    buckets = pd.concat([marked, ev.leak_profile], ignore_index=True) if len(ev.leak_profile) \
        else marked
    if not len(buckets):
        return []
    latest = buckets[buckets["round"] == buckets["round"].max()]
    total = int(latest["count"].sum())
    unmatched = latest[latest["sig"] == ""]
    kinds = sorted({k for k in latest["leak_kind"] if k})
    sites = goroutine_sites(ev, unmatched, role="holder",
                            note="goroutine the Go runtime proved leaked")
    return [Finding(
        kind=RUNTIME_LEAK, severity="medium" if len(unmatched) else "low", confidence=0.9,
        summary=(f"The Go runtime proved {total} goroutines leaked (blocked forever on "
                 "unreachable channels or locks)"
                 + (f"; connection patterns among them: {', '.join(kinds)}" if kinds else "")
                 + "."),
        evidence={"goroutineleak": {"leaked": total, "kinds": kinds}},
        sites=sites,
        checks=[Check("goroutineleak", "supports", f"{total} goroutines proven leaked")])]
