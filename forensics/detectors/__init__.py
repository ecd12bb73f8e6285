"""One module per leak pattern, each with ``detect(evidence) -> list[Finding]``.

A detector reads only :class:`forensics.evidence.Evidence` (tables plus prepared buckets);
a missing input makes it return nothing rather than fail. A detector whose finding is
only worth reading when no other rule explains the same thing declares ``SUPPRESSED_BY``:
the finding kinds that make it redundant.
"""

from __future__ import annotations

from . import (
    goroutineleak,
    grpc_conns,
    held_connections,
    held_objects,
    http_body,
    http_hang,
    pool_exhaustion,
    pool_per_request,
    sockets,
    store_growth,
)

DETECTORS = (held_objects, pool_per_request, pool_exhaustion, http_body, http_hang, grpc_conns,
             sockets, goroutineleak, held_connections, store_growth)
