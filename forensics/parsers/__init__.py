"""One module per artifact kind, each with ``KIND``, ``TABLES``, ``sniff()`` and ``parse()``
(see :mod:`forensics.parsers.base`). Modules are imported lazily: ``forensics --help``
must not pay for pandas and protobuf."""

from __future__ import annotations

import importlib
from types import ModuleType

#: Parser modules in sniffing order; ties in sniff score go to the earlier one.
PARSER_MODULES: tuple[str, ...] = (
    "manifest",
    "dbstats",
    "heap_pprof",
    "heap_text",
    "goroutines",
    "lsof",
    "ss",
    "netstat",
    "proc_net_tcp",
    "procfd",
    "limits",
)


def load(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")


def available() -> list[ModuleType]:
    """Every parser module that imports (a missing one is a bug, not a user problem)."""
    mods = []
    for name in PARSER_MODULES:
        try:
            mods.append(load(name))
        except ModuleNotFoundError as exc:  # pragma: no cover - only while a parser is absent
            if exc.name != f"{__name__}.{name}":
                raise
    return mods
