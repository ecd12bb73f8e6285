"""Runs every detector over an analysis and ranks the call sites they name."""

from __future__ import annotations

from typing import Any


def detect(analysis: Any) -> None:
    """Fill ``analysis.findings`` and ``analysis.call_sites``."""
