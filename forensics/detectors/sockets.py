"""What the kernel says: CLOSE_WAIT sockets piling up in the process, and descriptors
running toward the open-files limit.

CLOSE_WAIT means the peer closed and this process never did: the socket's owner (a
connection object nobody closes) is leaked. These findings name the peer, not a line: the
goroutine and heap detectors name the line, and agreement between them raises confidence.
"""

from __future__ import annotations

from ..evidence import Evidence, sum_by_round, trend
from ..findings import Check, Finding
from ..signatures import CLOSE_WAIT, FD_EXHAUSTION

MIN_CLOSE_WAIT = 5
FD_HIGH = 0.8
FD_MEDIUM = 0.5


def detect(ev: Evidence) -> list[Finding]:
    return _close_wait(ev) + _fds(ev)


def _close_wait(ev: Evidence) -> list[Finding]:
    conns = ev.tables["connections"]
    if not len(conns):
        return []
    owned = conns[conns["owned"].fillna(True).astype(bool)]
    cw = owned[owned["state"] == "CLOSE_WAIT"]
    if not len(cw):
        return []
    rounds = sorted(int(r) for r in conns["round"].dropna().unique())
    # Per peer first; outbound sockets spread over many hosts of one service (a load
    # balancer's addresses, all on :443) are then counted together by remote port.
    cw = cw.assign(group=cw["peer"])
    small = cw.groupby(["peer_role", "peer"])["peer"].transform("size") < MIN_CLOSE_WAIT
    spread = small & (cw["peer_role"] != "inbound") & cw["remote_port"].notna()
    if spread.any():
        hosts = cw[spread].groupby("remote_port")["remote_ip"].transform("nunique")
        cw.loc[spread, "group"] = ("*:" + cw.loc[spread, "remote_port"].astype("Int64")
                                   .astype(str) + " (" + hosts.astype(str) + " hosts)")
    out = []
    for (role, peer), g in cw.groupby(["peer_role", "group"]):
        t = trend(sum_by_round(g), rounds)
        if t.last < MIN_CLOSE_WAIT and not t.growing(min_delta=MIN_CLOSE_WAIT):
            continue
        growing = t.growing()
        severity = "high" if growing and t.last >= 20 else "medium" if growing or t.last >= 20 \
            else "low"
        tools = sorted({x for ts in g["tools"].dropna() for x in str(ts).split(",")})
        checks = [Check("sockets", "supports",
                        f"CLOSE_WAIT to {peer} ({role}): {t.describe()}; seen by "
                        f"{', '.join(tools) or 'one tool'}")]
        if role == "inbound":
            # Clients that gave up on a stuck handler: a symptom of whatever blocks the
            # handlers (usually a pool wait), not a leak of its own; a few of them is also
            # what handlers slower than their clients' patience leave (a long report).
            severity = "medium" if severity == "high" else "low" if t.last < 20 else severity
            summary = (f"{int(t.last)} inbound connections on {peer} are in CLOSE_WAIT: "
                       "clients gave up and closed, but the handlers serving them are still "
                       "blocked and never closed their side.")
        else:
            summary = (f"{int(t.last)} sockets to {peer} ({role}) are in CLOSE_WAIT: the peer "
                       "closed them and the service never did, so their owner (a connection, "
                       "response body or client) is never closed.")
        out.append(Finding(
            kind=CLOSE_WAIT, severity=severity,
            confidence=round(0.5 + (0.2 if growing else 0) + (0.1 if len(tools) > 1 else 0), 2),
            summary=summary,
            evidence={"sockets": {"peer": peer, "role": role, "by_round": list(t.values),
                                  "tools": tools}},
            checks=checks))
    return out


def _fds(ev: Evidence) -> list[Finding]:
    check = ev.series.get("db_check", {})
    rounds = sorted(r for r, v in check.items() if v.get("fds_open") is not None)
    if not rounds:
        return []
    limit = next((check[r].get("fd_soft_limit") for r in rounds if check[r].get("fd_soft_limit")),
                 None)
    t = trend({r: check[r]["fds_open"] for r in rounds}, rounds)
    if not limit:
        return []
    used = t.last / limit
    if used < FD_MEDIUM and not (t.growing() and used >= 0.3):
        return []
    severity = "high" if used >= FD_HIGH else "medium"
    summary = (f"{int(t.last)} of {limit} file descriptors in use ({used:.0%} of the soft "
               f"limit; {t.describe()} over {t.rounds} rounds).")
    if t.growing() and t.rounds >= 2:
        summary += " At this rate the process will hit the limit and fail to accept or dial."
    return [Finding(kind=FD_EXHAUSTION, severity=severity,
                    confidence=0.6 + (0.2 if t.growing() else 0), summary=summary,
                    evidence={"fds": {"open_by_round": list(t.values), "soft_limit": limit}},
                    checks=[Check("fds", "supports", f"open fds {t.describe()} of {limit}")])]
