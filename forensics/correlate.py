"""Joins across artifacts: fd <-> inode <-> socket, remote endpoint -> peer role."""

from __future__ import annotations

from typing import Any

from .schema import Tables


def correlate(tables: Tables, manifest: dict[str, Any]) -> None:
    """Fill the derived tables (``connections``) in place."""
