"""The table contract's helpers: conform casts exactly as pandas would (its fast paths
only skip work), concat keeps categoricals, and empty tables are independent copies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.schema import (
    TABLE_NAMES,
    _contract,
    _union_categoricals,
    concat,
    conform,
    empty,
)


def _reference_cast(col: pd.Series, dtype: str) -> pd.Series:
    """The plain pandas cast conform must agree with."""
    if dtype.startswith("datetime"):
        return pd.to_datetime(col, utc=True, errors="coerce")
    if dtype in ("Int64", "Int32"):
        return pd.to_numeric(col, errors="coerce").astype(dtype)
    if dtype == "category":
        text = col.astype("string")
        codes, uniques = pd.factorize(text)
        return pd.Series(pd.Categorical.from_codes(
            codes, categories=pd.Index(uniques, dtype="str")))
    return col.astype(dtype)


_columns = st.sampled_from(["int64", "int32", "float", "str", "string", "object", "Int64"])


def _column(kind: str, n: int, rng: np.random.Generator) -> pd.Series:
    if kind == "int64":
        return pd.Series(rng.integers(-5, 5, n))
    if kind == "int32":
        return pd.Series(rng.integers(-5, 5, n).astype(np.int32))
    if kind == "float":
        return pd.Series(np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 9, n)))
    if kind == "str":
        return pd.Series(rng.choice(["1", "x", None, "é"], n))
    if kind == "string":
        return pd.Series(rng.choice(["a", None], n), dtype="string")
    if kind == "object":
        return pd.Series(rng.choice(["a", "2", None], n), dtype=object)
    return pd.Series(pd.array(rng.choice([1, None], n), dtype="Int64"))


@pytest.mark.filterwarnings("ignore:Could not infer format")  # text into captured_at
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TABLE_NAMES), st.lists(_columns, min_size=1, max_size=4),
       st.integers(0, 6), st.integers(0, 2**32 - 1))
def test_conform_casts_like_pandas(table, kinds, n, seed):
    rng = np.random.default_rng(seed)
    names, dtypes = _contract(table)
    picked = rng.choice(len(names), size=min(len(kinds), len(names)), replace=False)
    df = pd.DataFrame({names[i]: _column(k, n, rng)
                       for i, k in zip(picked, kinds, strict=False)})
    try:
        want = {names[i]: _reference_cast(df[names[i]], dtypes[i]) for i in picked}
    except (TypeError, ValueError):  # e.g. text into a boolean column: conform fails too
        with pytest.raises((TypeError, ValueError)):
            conform(df, table)
        return
    out = conform(df, table)
    assert list(out.columns) == names
    for name, col in want.items():
        pd.testing.assert_series_equal(out[name], col, check_names=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "b", "c", "é", None]), max_size=6),
                min_size=1, max_size=4))
def test_union_categoricals_like_pandas(parts):
    cats = [pd.Categorical(pd.array(p, dtype="str")) for p in parts]
    got, want = _union_categoricals(cats), pd.api.types.union_categoricals(cats)
    assert list(got.categories) == list(want.categories)
    assert got.codes.tolist() == want.codes.tolist()


def test_concat_keeps_stacks_categorical():
    a = conform(pd.DataFrame({"stack_id": [1, 1], "depth": [0, 1], "function": ["f", "g"]}),
                "stacks")
    b = conform(pd.DataFrame({"stack_id": [2], "depth": [0], "function": ["h"]}), "stacks")
    out = concat([a, b], "stacks")
    assert isinstance(out["function"].dtype, pd.CategoricalDtype)
    assert out["function"].astype(object).tolist() == ["f", "g", "h"]
    assert list(out.columns) == list(a.columns)
    assert out["stack_id"].tolist() == [1, 1, 2]


def test_empty_tables_are_independent_copies():
    first = empty("sockets")
    first["pid"] = pd.array([], dtype="Int64")
    first.attrs["x"] = 1
    second = conform(pd.DataFrame(), "sockets")
    assert second is not first and not second.attrs
    pd.testing.assert_frame_equal(second, empty("sockets"))
