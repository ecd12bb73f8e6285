"""Shared fixtures. Tests that need a system part (the corpus, Go, PostgreSQL, Chromium)
skip with a reason when it is absent, except under CI (CI=true), where such a skip is a
failure: CI must prove those paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false, or fail when running under CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed")
    return path  # type: ignore[return-value]


@pytest.fixture(scope="session")
def corpus() -> Path:
    require(CORPUS.is_dir(), f"corpus not found at {CORPUS}")
    return CORPUS


def corpus_files(sub: str, pattern: str = "*") -> list[Path]:
    """Corpus files for parametrizing (empty when the corpus is absent: the ``corpus``
    fixture then skips or fails)."""
    d = CORPUS / sub
    return sorted(p for p in d.glob(pattern) if p.is_file()) if d.is_dir() else []
