"""Times written as text: in paths (``20261127T101500Z/heap.pb.gz``), in manifests, and in
the log lines a dump was printed into (``2026-11-27T10:15:00.123456789Z stderr F ...``).

One reading for all of them, so a bundle's artifacts are put in order by the same rules
wherever their time came from. A time without a zone is taken as UTC: bundles rarely say
which zone their names were written in, and one rule applied everywhere keeps the order.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

_TS = re.compile(
    r"(?<!\d)(20\d{2})-?([01]\d)-?([0-3]\d)[T_ .-]?([0-2]\d)[:\-_.]?([0-5]\d)[:\-_.]?([0-5]\d)"
    r"(?:[.,]\d+)?(Z|[+-]\d{2}:?\d{2})?(?!\d)"
)
_EPOCH = re.compile(r"(?<!\d)(1[5-9]\d{8})(?:\d{3,9})?(?!\d)")


def time_in_text(text: str, epoch: bool = True) -> datetime | None:
    """The last date and time written in ``text``, as UTC; with ``epoch``, a Unix time
    in seconds (2017-2033, optionally followed by more digits) when no date is written."""
    found = None
    for m in _TS.finditer(text):
        y, mo, d, h, mi, s, tz = m.groups()
        try:
            t = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        except ValueError:
            continue
        if tz and tz != "Z":
            sign = 1 if tz[0] == "+" else -1
            digits = tz[1:].replace(":", "")
            t = t - sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        found = t.replace(tzinfo=timezone.utc)
    if found is None and epoch:
        for m in _EPOCH.finditer(text):
            found = datetime.fromtimestamp(int(m.group(1)), tz=timezone.utc)
    return found


def parse_time(value: Any) -> datetime | None:
    """A time given as a number (Unix seconds, ms, us or ns, told apart by size) or as
    text (ISO 8601, else any date and time :func:`time_in_text` finds)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        if v > 1e17:
            v /= 1e9
        elif v > 1e14:
            v /= 1e6
        elif v > 1e11:
            v /= 1e3
        try:
            return datetime.fromtimestamp(v, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        s = value.strip()
        if s.isdigit() and len(s) <= 20:
            return parse_time(int(s))
        try:
            t = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            return time_in_text(value)
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return None


def to_nanos(t: datetime) -> int:
    """UTC nanoseconds since the epoch (what parsers report as ``meta["time_nanos"]``)."""
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
