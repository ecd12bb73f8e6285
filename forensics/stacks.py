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

import numpy as np
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
        """The ``stacks`` rows, one per frame; text columns built as categoricals."""
        stack_ids: list[int] = []
        depths: list[int] = []
        frames: list[Frame] = []
        for sid, stack in self._stacks.items():
            stack_ids.extend([sid] * len(stack))
            depths.extend(range(len(stack)))
            frames.extend(stack)
        classes = [gosym.classify(f.function, f.file) for f in frames]
        lines = [f.line for f in frames]
        return conform(pd.DataFrame({
            "stack_id": pd.array(stack_ids, dtype="Int64"),
            "depth": pd.array(depths, dtype="Int32"),
            "function": _categorical([f.function for f in frames]),
            "file": _categorical([f.file for f in frames]),
            "line": pd.array(lines, dtype="Int64"),
            "inlined": pd.array([f.inlined for f in frames], dtype="boolean"),
            "frame_class": _categorical([c for c, _ in classes]),
            "module": _categorical([m for _, m in classes]),
        }), "stacks")


def _categorical(values: list[str | None]) -> pd.Categorical:
    codes, uniques = pd.factorize(pd.array(values, dtype="string"))
    return pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype="str"))


def promote_main_module(stacks: pd.DataFrame) -> pd.DataFrame:
    """``stacks`` with the frames of the module holding ``main`` classed as app.

    A service installed with ``go install module@version`` runs from the module cache, so
    every one of its frames first looks third-party and there would be no call site to
    report. The dump's ``main.main`` names that module; its frames are the app's. Works on
    the categorical codes: the big table's 10^7 rows are never turned into strings."""
    if stacks.empty or "frame_class" not in stacks or "module" not in stacks:
        return stacks
    fn, cls, mod = (stacks[c] for c in ("function", "frame_class", "module"))
    if not all(isinstance(c.dtype, pd.CategoricalDtype) for c in (fn, cls, mod)):
        return stacks
    main_fns = np.flatnonzero(fn.cat.categories.str.startswith("main."))
    lib = np.flatnonzero(cls.cat.categories == gosym.LIBRARY)
    if not len(main_fns) or not len(lib):
        return stacks
    rows = np.isin(fn.cat.codes.to_numpy(), main_fns) & (cls.cat.codes.to_numpy() == lib[0])
    if not rows.any():
        return stacks
    main_mods = np.unique(mod.cat.codes.to_numpy()[rows])
    promote = np.isin(mod.cat.codes.to_numpy(), main_mods[main_mods >= 0]) & \
        (cls.cat.codes.to_numpy() == lib[0])
    if not promote.any():
        return stacks
    if gosym.APP not in cls.cat.categories:
        cls = cls.cat.add_categories([gosym.APP])
    out = stacks.copy(deep=False)
    codes = cls.cat.codes.to_numpy().copy()
    codes[promote] = cls.cat.categories.get_loc(gosym.APP)
    out["frame_class"] = pd.Categorical.from_codes(codes, categories=cls.cat.categories)
    return out

