"""One module per leak pattern, each with ``detect(evidence) -> list[Finding]``.

A detector reads only :class:`forensics.evidence.Evidence` (tables plus prepared buckets);
a missing input makes it return nothing rather than fail.
"""

from __future__ import annotations

from . import goroutineleak, held_objects, http_body, pool_exhaustion, pool_per_request, sockets

DETECTORS = (held_objects, pool_per_request, pool_exhaustion, http_body, sockets, goroutineleak)
