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
    """``stacks`` with the library-looking frames of the service's own source tree classed
    as app.

    Two kinds of service look like a library by name or path alone: one installed with
    ``go install module@version`` runs from the module cache (``.../pkg/mod/github.com/
    acme/svc@v1.0.0/...`` or, with ``-trimpath``, ``github.com/acme/svc@v1.0.0/...``), and
    one whose own module path starts like a library we know (a HashiCorp, Uber or DataDog
    service). Either way there would be no call site to report. The ``main`` package says
    where the service's tree is: the folder of its files (without a trailing ``cmd/NAME``).
    A library frame whose file sits under that folder, and not in a ``vendor`` folder or
    another module below it, is the app's. Works on the distinct files and the categorical
    codes: the big table's 10^7 rows are never turned into strings."""
    if stacks.empty or "frame_class" not in stacks or "file" not in stacks:
        return stacks
    fn, cls, files = (stacks[c] for c in ("function", "frame_class", "file"))
    if not all(isinstance(c.dtype, pd.CategoricalDtype) for c in (fn, cls, files)):
        return stacks
    lib = np.flatnonzero(cls.cat.categories == gosym.LIBRARY)
    main_fns = np.flatnonzero(fn.cat.categories.str.startswith("main."))
    if not len(lib) or not len(main_fns):
        return stacks
    cls_codes, file_codes = cls.cat.codes.to_numpy(), files.cat.codes.to_numpy()
    names = files.cat.categories
    is_main = np.zeros(len(fn.cat.categories) + 1, bool)  # + 1: code -1 (no function)
    is_main[main_fns] = True
    main_files = _codes_in(file_codes[is_main[fn.cat.codes.to_numpy()]], len(names))
    roots = {r for c in main_files if (r := service_root(names[c]))}
    if not roots:
        return stacks
    is_lib = cls_codes == lib[0]
    under = [c for c in _codes_in(file_codes[is_lib], len(names)) if in_tree(names[c], roots)]
    if not under:
        return stacks
    # (function, file) pairs of the library frames under the tree: a frame is the service's
    # own when its package path ends with its folder there (``.../consul-esm/store`` in
    # ``store/``), not a library copied into the tree (``github.com/lib/pq`` in
    # ``third_party/pq/``, used through a ``replace``).
    rows = is_lib & np.isin(file_codes, under)
    pair = fn.cat.codes.to_numpy().astype(np.int64) * len(names) + file_codes
    own = [p for p in np.unique(pair[rows])
           if _own_package(fn.cat.categories[p // len(names)], names[p % len(names)], roots)]
    if not own:
        return stacks
    promote = rows & np.isin(pair, own)
    if gosym.APP not in cls.cat.categories:
        cls = cls.cat.add_categories([gosym.APP])
    codes = cls.cat.codes.to_numpy().copy()
    codes[promote] = cls.cat.categories.get_loc(gosym.APP)
    out = stacks.copy(deep=False)
    out["frame_class"] = pd.Categorical.from_codes(codes, categories=cls.cat.categories)
    return out


def _codes_in(codes: np.ndarray, n: int) -> np.ndarray:
    """The distinct non-null categorical codes in ``codes`` (a count, not a sort)."""
    codes = codes[codes >= 0]
    return np.flatnonzero(np.bincount(codes, minlength=n)) if len(codes) else codes


def _own_package(function: str, file: str, roots: set[str]) -> bool:
    folder = file.replace("\\", "/").rpartition("/")[0] + "/"
    package = gosym.split(function).package
    for root in roots:
        if folder.startswith(root):
            rel = folder[len(root):].rstrip("/")
            return not rel or package.endswith("/" + rel)
    return False


def service_root(main_file: str) -> str | None:
    """The folder of the service's source tree, from a file of its ``main`` package:
    ``/src/svc/cmd/api/main.go`` -> ``/src/svc/``. None without a folder."""
    folder = main_file.replace("\\", "/").rpartition("/")[0]
    if not folder:
        return None
    cmd = folder.rfind("/cmd/")
    if cmd >= 0 and "/" not in folder[cmd + len("/cmd/"):]:
        folder = folder[:cmd]
    elif folder.startswith("cmd/") and "/" not in folder[len("cmd/"):]:
        return None  # a trimmed ``cmd/api/main.go``: no folder above it to go by
    return folder + "/"


def in_tree(file: str, roots: set[str]) -> bool:
    """Whether ``file`` is under one of ``roots`` and not third-party code below it (a
    vendor folder, a module cache, another module at a version)."""
    file = file.replace("\\", "/")
    for root in roots:
        if file.startswith(root):
            rest = file[len(root):]
            return not (rest.startswith("vendor/") or "/vendor/" in rest
                        or "/pkg/mod/" in rest or "@v" in rest)
    return False
