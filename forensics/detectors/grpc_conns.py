"""gRPC client connections dialed and never closed (a ``grpc.Dial`` per request).

A ``*grpc.ClientConn`` runs goroutines of its own for its whole life (a balancer watcher up
to grpc-go 1.4x, callback serializers since), and each of its transports a reader and a
writer goroutine over one HTTP/2 connection. A service needs one ClientConn per backend;
their count climbing between rounds, with connections to the backend climbing alike, is
the leak. The line is the one that dials: ``grpc.DialContext`` / ``grpc.NewClient`` run on
the caller's goroutine, so the heap's live ``*grpc.ClientConn`` objects name it.
"""

from __future__ import annotations

from ..evidence import Evidence, sum_by_round, trend
from ..findings import Check, Finding
from ..signatures import GRPC_CONN
from .common import capture_advice, confidence, heap_sites, upstream_trend

#: More ClientConns than this alive at once is unusual even for a fan-out service.
MANY_CONNS = 50


def detect(ev: Evidence) -> list[Finding]:
    g_rounds = ev.rounds_with("goroutines")
    own = ev.goroutines[ev.goroutines["sig"] == "grpc.clientconn"]
    readers = ev.goroutines[ev.goroutines["sig"] == "grpc.transport.reader"]
    # ClientConns, or transports where a grpc-go version has no goroutine of the conn's own.
    counted = own if len(own) else readers
    c_trend = trend(sum_by_round(counted, "count"), g_rounds)
    heap = ev.heap[ev.heap["heap_site"] == "grpc.ClientConn"]
    o_trend = trend(sum_by_round(heap, "inuse_objects"), ev.heap_rounds())
    growing = c_trend.growing(min_delta=3) or o_trend.growing(min_delta=3)
    many = c_trend.last > MANY_CONNS
    if not (growing or many):
        return []
    what = "ClientConn goroutines" if len(own) else "gRPC transport reader goroutines"
    checks = [Check("goroutines", "supports", f"{what}: {c_trend.describe()}")]
    if o_trend.last:
        checks.append(Check("heap", "supports" if o_trend.growing(min_delta=3) else "silent",
                            f"live objects allocated by grpc.Dial/NewClient (ClientConns and "
                            f"their parts) {o_trend.describe()}"))
    else:
        checks.append(Check("heap", "silent" if len(ev.tables["heap_samples"]) else "absent",
                            "no live *grpc.ClientConn sampled"))
    up = upstream_trend(ev)
    if up is not None and up.values:
        checks.append(Check("sockets", "supports" if up.growing(min_delta=3) else "silent",
                            f"ESTABLISHED to upstreams {up.describe()}"))
    else:
        checks.append(Check("sockets", "absent", "no socket listing in the bundle"))
    sites = heap_sites(ev, heap)
    severity = "high" if growing and (many or (up is not None and up.growing(min_delta=3))) \
        else "medium"
    summary = (f"gRPC client connections are dialed and never closed: {what} "
               f"{c_trend.describe()} over {c_trend.rounds} rounds. Each *grpc.ClientConn "
               "keeps its HTTP/2 connections and goroutines until Close(); dial once per "
               "backend and share the conn.")
    return [Finding(
        kind=GRPC_CONN, severity=severity,
        confidence=confidence(checks, len(g_rounds), growing), summary=summary,
        evidence={"goroutines": {"clientconns_by_round": list(c_trend.values)},
                  "heap": {"inuse_objects_by_round": list(o_trend.values)},
                  "sockets": {"upstream_by_round": list(up.values) if up else []}},
        sites=sites, checks=checks,
        advice="" if sites else capture_advice(ev, "dials the ClientConn"))]

