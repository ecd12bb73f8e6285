"""Stacks interned by content, so heap and goroutine stacks share one ``stacks`` table.

A stack's id is a stable 63-bit hash of its frames (function, file, line), leaf first: the
same stack seen in two rounds, two artifacts or two bundles gets the same id, which is
what makes growth between rounds a plain join. Arguments, pc offsets and frame pointers
are not part of a frame: they differ per goroutine and would split identical stacks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

from . import gosym
from .schema import conform


class Frame(NamedTuple):
    function: str
    file: str
    line: int | None
    inlined: bool = False


def stack_hash(frames: Sequence[Frame]) -> int:
    h = hashlib.blake2b(digest_size=8)
    for f in frames:
        h.update(f"{f.function}\t{f.file}\t{f.line}\n".encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "big") >> 1


def text_hash(text: str) -> int:
    """Stable 63-bit id for any normalized text (used for goroutine signatures)."""
    h = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(h.digest(), "big") >> 1


class StackTable:
    """Collects distinct stacks; ``intern`` is called once per distinct stack, not per
    goroutine or sample, so parsers should cache on their own cheaper key first."""

    def __init__(self) -> None:
        self._stacks: dict[int, tuple[Frame, ...]] = {}

    def intern(self, frames: Sequence[Frame]) -> int:
        frames = tuple(frames)
        sid = stack_hash(frames)
        self._stacks.setdefault(sid, frames)
        return sid

    def __len__(self) -> int:
        return len(self._stacks)

    def frames(self, stack_id: int) -> tuple[Frame, ...]:
        return self._stacks[stack_id]

    def to_frame(self) -> pd.DataFrame:
        rows: dict[str, list] = {k: [] for k in ("stack_id", "depth", "function", "file", "line",
                                                 "inlined", "frame_class", "module")}
        for sid, frames in self._stacks.items():
            for depth, f in enumerate(frames):
                cls, mod = gosym.classify(f.function, f.file)
                rows["stack_id"].append(sid)
                rows["depth"].append(depth)
                rows["function"].append(f.function)
                rows["file"].append(f.file)
                rows["line"].append(f.line)
                rows["inlined"].append(f.inlined)
                rows["frame_class"].append(cls)
                rows["module"].append(mod)
        return conform(pd.DataFrame(rows), "stacks")
