"""The vectorised integer row formatter against Python's own printing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from maskcli.formats.fastformat import IntRows

INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def python_rows(padded: np.ndarray, fmt: str) -> bytes:
    if fmt == "jsonl":
        rows = [str(row) for row in padded.tolist()]
    else:
        rows = [("\t" if fmt == "tsv" else ",").join(map(str, row)) for row in padded.tolist()]
    return "".join(row + "\n" for row in rows).encode()


def formatter(fmt: str) -> IntRows:
    return IntRows({"jsonl": ", ", "csv": ",", "tsv": "\t"}[fmt], brackets=fmt == "jsonl")


@st.composite
def int_arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(INT_DTYPES)))
    info = np.iinfo(dtype)
    low = draw(st.one_of(st.integers(-1000, 100000), st.integers(info.min, info.max)))
    low = max(info.min, min(low, info.max))
    high = draw(st.integers(low, min(info.max, low + 5000)))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12))
    return draw(hnp.arrays(dtype, shape, elements=st.integers(low, high)))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(int_arrays(), min_size=1, max_size=3), st.sampled_from(["jsonl", "csv", "tsv"]))
def test_prints_what_python_prints(chunks, fmt):
    rows = formatter(fmt)  # one formatter over several chunks: its table grows as needed
    for padded in chunks:
        text = rows.format(padded)
        width = max(len(str(padded.min())), len(str(padded.max())))
        if width <= 13:  # fits a 16-byte cell with the row end "]\n["
            assert text is not None
        assert text is None or text == python_rows(padded, fmt)


@pytest.mark.parametrize("padded", [
    np.zeros((2, 0), np.int32),  # no columns
    np.zeros((2, 2, 2), np.int32),  # feature vectors
    np.array([[0, 1 << 21]]),  # too wide a range for one table
    np.array([[-(10**13)]]),  # 15 characters, with the row end more than a 16-byte cell
    np.array([[2**63]], dtype=np.uint64),
    np.array([[1.5]]),
])
def test_leaves_to_python_what_it_cannot_print(padded):
    assert formatter("jsonl").format(padded) is None


def test_cells_of_both_sizes_and_a_table_that_moves():
    rows = formatter("jsonl")
    assert rows.format(np.array([[-9999, 99999]])) == b"[-9999, 99999]\n"
    assert rows.format(np.array([[-999999999999, -999999999990]])) == \
        b"[-999999999999, -999999999990]\n"
    assert (rows.low, rows.high) == (-999999999999, -999999999990)
