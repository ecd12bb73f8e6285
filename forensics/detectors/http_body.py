"""HTTP/1 client response bodies never closed.

An idle keep-alive connection's ``readLoop`` sits in ``[IO wait]``; one whose body was
handed to the caller and never read to EOF or closed sits in ``[select]`` waiting for the
body to be done, with its ``writeLoop`` beside it, forever. Their count growing between
rounds is the leak; ESTABLISHED (or CLOSE_WAIT, once the server gives up) sockets to the
upstream grow with them. The heap names the line through the ``*http.Request`` the caller
built, which the stuck connection keeps alive.
"""

from __future__ import annotations

from ..evidence import Evidence, sum_by_round, trend
from ..findings import Check, Finding
from ..signatures import HTTP_BODY
from .common import capture_advice, confidence, heap_sites, inferred_sites, upstream_trend

MIN_STUCK = 5


def detect(ev: Evidence) -> list[Finding]:
    g_rounds = ev.rounds_with("goroutines")
    stuck = ev.goroutines[ev.goroutines["sig"] == "http.readLoop.body"]
    t = trend(sum_by_round(stuck, "count"), g_rounds)
    long = int(stuck[stuck["wait_max"].fillna(0) >= 1]["count"].sum())
    if not (t.growing() or long >= MIN_STUCK or (len(g_rounds) < 2 and t.last >= 50)):
        return []
    heap = ev.heap[ev.heap["heap_site"] == "http.Request"]
    o_trend = trend(sum_by_round(heap, "inuse_objects"), ev.heap_rounds())
    up = upstream_trend(ev, ("ESTABLISHED", "CLOSE_WAIT"))
    checks = [Check("goroutines", "supports",
                    f"readLoop goroutines waiting on an unread body: {t.describe()}"
                    + (f"; {long} for 1+ min" if long else ""))]
    if o_trend.last:
        checks.append(Check("heap", "supports" if o_trend.growing() else "silent",
                            f"live *http.Request {o_trend.describe()}"))
    else:
        checks.append(Check("heap", "silent" if len(ev.tables["heap_samples"]) else "absent",
                            "no live *http.Request sampled"))
    if up is not None:
        checks.append(Check("sockets", "supports" if up.growing() else "silent",
                            f"connections to upstreams (ESTABLISHED+CLOSE_WAIT) {up.describe()}"))
    else:
        checks.append(Check("sockets", "absent", "no socket listing in the bundle"))
    sites = heap_sites(ev, heap)
    inferred = not sites
    if inferred:
        sites = inferred_sites(ev, note="makes HTTP client calls (candidate for the unclosed "
                                        "body)", http_client=True)
    severity = "high" if (t.growing() and (long or (up is not None and up.growing()))) \
        else "medium"
    summary = (f"{int(t.last)} HTTP client connections are stuck behind response bodies that "
               f"were never closed ({t.describe()} over {t.rounds} rounds); each keeps a socket "
               "and two goroutines.")
    return [Finding(kind=HTTP_BODY, severity=severity,
                    confidence=confidence(checks, len(g_rounds), t.growing()), summary=summary,
                    evidence={"goroutines": {"stuck_readloops_by_round": list(t.values)},
                              "heap": {"inuse_requests_by_round": list(o_trend.values)},
                              "sockets": {"upstream_by_round": list(up.values) if up else []}},
                    sites=sites, checks=checks,
                    advice=capture_advice(ev, "sends the request") if inferred else "")]

