"""Dumps that went through a log pipeline before anyone saved them.

A SIGQUIT dump of a containerized service is written to stderr, so what the engineer can
get is often the container log, not the dump: Docker's json-file log keeps one JSON record
per line (``{"log":"goroutine 1 [running]:\\n","stream":"stderr","time":"..."}``), and
``journalctl -o json`` one per message (``"MESSAGE"``, ``"__REALTIME_TIMESTAMP"``). The
text is taken back out of the records here, and the time of the record that printed the
first goroutine header is the time of the dump: a better clock than the file's mtime.
Line prefixes (CRI ``2026-11-27T10:15:00.1Z stderr F``, CI timestamps) are stripped by the
goroutines parser itself; :func:`prefix_time` reads the time they carry.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from ..timestamps import parse_time, time_in_text

#: Fields that hold the logged text, most specific first: Docker json-file, journald
#: JSON, Cloud Logging exports, structured loggers.
TEXT_KEYS = ("log", "MESSAGE", "textPayload", "message", "msg")
#: Fields that hold the record's time.
TIME_KEYS = ("time", "__REALTIME_TIMESTAMP", "timestamp", "@timestamp", "ts",
             "receiveTimestamp")
#: Records looked at to decide which field holds the text.
_PROBE = 64


@dataclass
class Unwrapped:
    text: str
    key: str  # the field the text came from
    time: datetime | None  # of the record that holds the first ``marker``


def unwrap_json_lines(text: str, marker: re.Pattern[str]) -> Unwrapped | None:
    """The logged text of a JSON Lines log whose records carry ``marker`` (a goroutine
    header) in one text field; None when ``text`` is not such a log. Lines that are not
    JSON records with that field (a truncated last line, a note) are dropped."""
    if not text.lstrip().startswith("{"):
        return None
    records = []
    votes: Counter[str] = Counter()
    for line in text.split("\n"):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            continue
        if not isinstance(rec, dict):
            continue
        records.append(rec)
        if len(records) <= _PROBE:
            key = next((k for k in TEXT_KEYS if isinstance(rec.get(k), str)), None)
            if key:
                votes[key] += 1
    if not votes:
        return None
    key = votes.most_common(1)[0][0]
    parts: list[str] = []
    first: dict | None = None  # the record that printed the first goroutine header
    for rec in records:
        value = rec.get(key)
        if not isinstance(value, str):
            continue
        if first is None and marker.search(value):
            first = rec
        parts.append(value if value.endswith("\n") else value + "\n")
    if first is None:
        return None
    return Unwrapped("".join(parts), key, _record_time(first))


def _record_time(rec: dict) -> datetime | None:
    for k in TIME_KEYS:
        if k in rec:
            t = parse_time(rec[k])
            if t is not None:
                return t
    return None


def prefix_time(text: str, marker: re.Pattern[str]) -> datetime | None:
    """The date and time written before the first ``marker`` on its line (a log prefix
    such as ``2026-11-27T10:15:00.123Z stderr F``); None when that text has no date."""
    m = marker.search(text)
    if m is None:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    return time_in_text(text[start:m.start()][-200:], epoch=False)
