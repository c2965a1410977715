"""Input spike handling shared by every target."""

from __future__ import annotations

import numpy as np
from hypothesis import given, strategies as st

from qgen.runtime.inputs import lexsort_order

small = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)), max_size=12)


@given(small, st.booleans())
def test_lexsort_order_matches_numpy_whether_sorted_or_not(rows, presort):
    if presort:
        rows = sorted(rows, key=lambda r: (r[2], r[1], r[0]))
    keys = tuple(np.array([r[k] for r in rows], dtype=np.int64) for k in range(3))
    order, expected = lexsort_order(keys), np.lexsort(keys)
    for key in keys:
        np.testing.assert_array_equal(key[order], key[expected])
