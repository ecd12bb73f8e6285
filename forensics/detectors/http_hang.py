"""Outbound HTTP requests that never time out, piling up on a stalled upstream.

``http.Client{}`` has no timeout and ``http.Get`` no context: when an upstream stops
answering, every call waits in ``net/http.(*persistConn).roundTrip`` for response headers
that never come, each with a connection of its own, long after whoever asked gave up. The
waiting goroutine's stack holds the line that sent the request.

In-flight requests are normal: a busy service always has some. What is not is their number
climbing in every round, or requests waiting for minutes (a long-poll client such as a
Consul watch does wait minutes, but a handful of them, and not more each round).
"""

from __future__ import annotations

from ..evidence import Evidence, sum_by_round, trend
from ..findings import Check, Finding
from ..signatures import HTTP_HANG
from .common import confidence, goroutine_sites, upstream_trend

#: Requests waiting this many minutes or more for their headers are stuck.
LONG_WAIT_MINUTES = 1
MIN_LONG = 3
#: Growth between the first and last round that means piling up, not load.
MIN_GROWTH = 5


def detect(ev: Evidence) -> list[Finding]:
    g_rounds = ev.rounds_with("goroutines")
    waiting = ev.goroutines[ev.goroutines["sig"] == "http.roundTrip.wait"]
    if not len(waiting):
        return []
    w_trend = trend(sum_by_round(waiting, "count"), g_rounds)
    latest = waiting[waiting["round"] == max(g_rounds)] if g_rounds else waiting
    long_wait = int(latest[latest["wait_max"].fillna(0) >= LONG_WAIT_MINUTES]["count"].sum())
    steady = w_trend.delta >= 3 and w_trend.rises_every_round()
    piling = w_trend.growing(min_delta=MIN_GROWTH) or steady
    if not (piling or long_wait >= MIN_LONG):
        return []
    up = upstream_trend(ev)
    checks = [Check("goroutines", "supports",
                    f"requests waiting for response headers: {w_trend.describe()}"
                    + (f"; {long_wait} waiting {LONG_WAIT_MINUTES}+ min" if long_wait else ""))]
    if up is not None and up.values:
        checks.append(Check("sockets", "supports" if up.growing(min_delta=3) else "silent",
                            f"ESTABLISHED to upstreams {up.describe()}"))
    else:
        checks.append(Check("sockets", "absent", "no socket listing in the bundle"))
    severity = "high" if (piling and (long_wait >= MIN_LONG or (
        up is not None and up.growing(min_delta=3)))) else "medium"
    note = ("sends HTTP requests with no deadline (no Client.Timeout, no context "
            "deadline): they wait for a stalled upstream forever")
    summary = (f"Outbound HTTP requests are piling up without a timeout: "
               f"{int(w_trend.last)} waiting for response headers ({w_trend.describe()} over "
               f"{w_trend.rounds} rounds)"
               + (f", {long_wait} for {LONG_WAIT_MINUTES}+ minutes" if long_wait else "")
               + ". Each holds a connection and a goroutine until the upstream answers; "
               "give the client a Timeout or the request a context with a deadline.")
    return [Finding(kind=HTTP_HANG, severity=severity,
                    confidence=confidence(checks, len(g_rounds), piling), summary=summary,
                    evidence={"goroutines": {"waiting_by_round": list(w_trend.values),
                                             "waiting_1min_plus": long_wait},
                              "sockets": {"upstream_by_round": list(up.values) if up else []}},
                    sites=goroutine_sites(ev, waiting, role="cause", note=note),
                    checks=checks)]

