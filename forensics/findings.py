"""The result model: findings (one per detected pattern) and ranked call sites.

Detectors return :class:`Finding` objects; the ranker turns their site evidence into
:class:`CallSite` rows. Renderers see only these and the tables, never raw text, so every
report format tells the same story.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("info", "low", "medium", "high", "critical")


def severity_level(severity: str) -> int:
    """Index in :data:`SEVERITIES`; -1 for "none" or anything unknown."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def worst_level(findings) -> int:
    """The highest severity level among ``findings`` (-1 when there are none)."""
    return max((severity_level(f.severity) for f in findings), default=-1)


#: What a victim site says; a site that turns out to be a cause too says the second.
VICTIM_NOTE = "waits for a connection (a victim, not the cause)"
ALSO_WAITS_NOTE = "callers also wait here for a connection once the pool is empty"

@dataclass
class SiteEvidence:
    """What one detector says about one app call site."""

    function: str
    file: str
    line: int | None
    role: str = "cause"  # cause | victim | holder
    goroutines: int = 0
    heap_inuse_objects: int = 0
    heap_inuse_bytes: int = 0
    growth: float = 0.0
    sockets: int = 0
    wait_minutes_max: int | None = None
    stack_ids: list[int] = field(default_factory=list)
    inferred: bool = False
    note: str = ""
    #: When a finding names candidates of several kinds (pool exhaustion's inferred causes:
    #: a query may leak Rows, a BeginTx a Tx), the kind this site would be.
    leak_kind: str = ""
    #: The stacks behind the site (see CallSite.stacks).
    stacks: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Check:
    """One artifact's word on a finding, for the three-way check table.

    ``verdict`` is "supports", "contradicts", "silent" (the artifact is there but cannot
    speak to this pattern, e.g. heap sampling too coarse) or "absent" (not in the bundle).
    """

    source: str  # goroutines | heap | sockets | dbstats | goroutineleak | fds
    verdict: str
    detail: str


@dataclass
class Finding:
    kind: str
    severity: str
    confidence: float
    summary: str
    #: Numbers behind the summary, per source: {"goroutines": {...}, "heap": {...}, ...}.
    evidence: dict[str, Any] = field(default_factory=dict)
    sites: list[SiteEvidence] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    #: What to capture next time when the bundle could not settle the question.
    advice: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sites"] = [asdict(s) for s in self.sites]
        return d


@dataclass
class CallSite:
    rank: int
    function: str
    file: str
    line: int | None
    leak_kind: str
    score: float
    role: str
    evidence: dict[str, Any]
    inferred: bool = False
    stack_ids: list[int] = field(default_factory=list)
    #: The stacks behind the site, deduplicated: [{"stack_id", "source" (goroutines|heap),
    #: "count", "state", "wait_minutes_min", "wait_minutes_max", "inuse_objects",
    #: "inuse_bytes", "frames": [{"function", "file", "line", "frame_class"}]}].
    stacks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
