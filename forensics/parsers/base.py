"""What every parser module shares: its input context, its result and its error type.

A parser module declares ``KIND`` (the artifact kind it reads), ``TABLES`` (the tables it
fills), ``DESCRIPTION``, and two functions:

- ``sniff(head: bytes, name: str) -> float``: how sure (0..1) the module is that a member
  whose first bytes (up to 64 KiB, already gunzipped) are ``head`` and whose base name is
  ``name`` is its kind. Content decides; the name only breaks ties, because customers'
  names lie. Text sniffers decode ``head`` with :func:`decode_text`.
- ``parse(data: bytes, ctx: ParseContext) -> ParseResult``: bytes in, tables out. A parser
  never raises for bad rows: it skips them and records a :class:`ParseWarning`. It raises
  :class:`ParseError` only when nothing of the artifact is usable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


class ParseError(Exception):
    """The artifact as a whole is unusable; the message says why, for the report."""


class NotUsed(ParseError):
    """Recognised, and deliberately not analysed (a CPU profile, a routing table): listed
    as ignored with the reason, not as a failure, since nothing is wrong with it."""


@dataclass(frozen=True)
class ParseWarning:
    """A specific problem in one artifact: where (line or byte offset) and what."""

    message: str
    line: int | None = None
    offset: int | None = None

    def where(self) -> str:
        if self.line is not None:
            return f"line {self.line}"
        if self.offset is not None:
            return f"offset {self.offset}"
        return ""


@dataclass
class ParseContext:
    """What a parser may know beyond its bytes (all optional)."""

    path: str = ""
    pid: int | None = None
    #: Parsers that can tell time from content (pprof time_nanos) report it in meta.
    captured_at: Any = None


@dataclass
class ParseResult:
    """Tables keyed by table name (parser-own columns only) plus facts for the inventory.

    ``meta`` carries what the inventory uses: ``time_nanos`` (UTC ns the artifact says it
    was taken), ``pid``, ``format`` (the variant recognised), and anything a report shows.
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    warnings: list[ParseWarning] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def warn(self, message: str, line: int | None = None, offset: int | None = None) -> None:
        # Bounded: a hostile file must not turn into a million warnings.
        if len(self.warnings) < 50:
            self.warnings.append(ParseWarning(message, line, offset))
        elif len(self.warnings) == 50:
            self.warnings.append(ParseWarning("further warnings suppressed"))


def decode_text(data: bytes) -> str:
    """Bytes of a text artifact as str: UTF-8 (with BOM), UTF-16 with BOM, else latin-1.

    Never fails: a text parser should see every byte of a paste, even a mangled one. CRLF
    line ends are folded to LF here so no parser has to care.
    """
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        text = data.decode("utf-16", errors="replace")
    else:
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", errors="replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text
