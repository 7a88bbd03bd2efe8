"""Parity with keras.utils.pad_sequences itself, on generated inputs, through
the library and through the CLI (standard input and a file).

Only inputs Keras handles correctly are generated: its silent and crashing
corners have their own tests in test_padding.py and test_pad_cli.py.
"""

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskcli import pad_sequences
from tests.conftest import invoke

pytestmark = pytest.mark.keras

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
INT32 = st.integers(-2**31, 2**31 - 1)
FLOAT32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
TOKEN = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8)


@pytest.fixture(scope="module")
def keras_pad():
    from maskcli.keras.models import import_keras

    return import_keras().utils.pad_sequences


@st.composite
def cases(draw, kinds=("int", "float", "features", "str")):
    """(sequences, kwargs for pad_sequences, kind) with Keras' own defaults left out."""
    kind = draw(st.sampled_from(kinds))
    lengths = draw(st.lists(st.integers(0, 7), min_size=1, max_size=6))
    if kind == "int":
        element, values = INT32, INT32
        dtype = draw(st.sampled_from(["int32", "int64", "float32", "float64"]))
    elif kind == "float":
        element, values = FLOAT32, st.floats(width=32)  # nan and inf pad values too
        dtype = draw(st.sampled_from(["float32", "float64"]))
    elif kind == "features":
        width = draw(st.integers(1, 3))
        element, values = st.lists(FLOAT32, min_size=width, max_size=width), FLOAT32
        dtype = "float32"
    else:
        element, values = TOKEN, TOKEN
        dtype = draw(st.sampled_from(["<U8", "str"]))
    sequences = [draw(st.lists(element, min_size=n, max_size=n)) for n in lengths]
    kwargs = {"dtype": dtype}
    for name, strategy in (("maxlen", st.integers(1, 8)), ("value", values),
                           ("padding", st.sampled_from(["pre", "post"])),
                           ("truncating", st.sampled_from(["pre", "post"]))):
        if draw(st.booleans()):
            kwargs[name] = draw(strategy)
    return sequences, kwargs, kind


def keras_result(keras_pad, sequences, kwargs):
    """Keras' answer; for maskcli's str (sized to fit) it is Keras' dtype=object."""
    if kwargs["dtype"] == "str":
        return keras_pad(sequences, **{**kwargs, "dtype": object})
    return keras_pad(sequences, **kwargs)


def assert_same(got, expected, dtype):
    if dtype == "str":
        assert got.dtype.kind == "U"
        assert got.tolist() == expected.astype(str).tolist()
    else:
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    assert got.shape == expected.shape


@SETTINGS
@given(cases())
def test_library_matches_keras(keras_pad, case):
    sequences, kwargs, _ = case
    expected = keras_result(keras_pad, sequences, kwargs)
    assert_same(pad_sequences(sequences, **kwargs), expected, kwargs["dtype"])


def cli_args(kwargs, kind):
    args = ["--dtype", kwargs["dtype"]]
    for name in ("maxlen", "padding", "truncating"):
        if name in kwargs:
            args += [f"--{name}", kwargs[name]]
    if "value" in kwargs:
        value = kwargs["value"]
        args.append(f"--value={value if kind == 'str' else repr(value)}")
    return args


def as_text(sequences):
    return "".join(" ".join(map(repr, sequence)) + "\n" for sequence in sequences)


def as_jsonl(sequences):
    return "".join(json.dumps(sequence) + "\n" for sequence in sequences)


@pytest.mark.parametrize("where", ["stdin", "file"])
@SETTINGS
@given(case=cases(), fmt=st.sampled_from(["jsonl", "text"]), to=st.sampled_from(["npy", "npz"]))
def test_cli_matches_keras(keras_pad, tmp_path_factory, where, case, fmt, to):
    sequences, kwargs, kind = case
    if kind in ("features", "str"):
        fmt = "jsonl"  # text holds one number or word per token
    # The CLI's --value defaults to "0": the int 0, or the string "0" for str.
    keras_kwargs = {"value": "0" if kind == "str" else 0, **kwargs}
    expected = keras_result(keras_pad, sequences, keras_kwargs)

    data = as_jsonl(sequences) if fmt == "jsonl" else as_text(sequences)
    args = ["pad", "--to", to] + cli_args(kwargs, kind)
    if fmt == "text":
        args += ["--from", "text"]
    if where == "file":
        path = tmp_path_factory.mktemp("parity") / f"input.{'jsonl' if fmt == 'jsonl' else 'txt'}"
        path.write_text(data, encoding="utf-8")
        result = invoke(args + [path])
    else:
        result = invoke(args, input=data.encode("utf-8"))

    loaded = np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False)
    got = loaded if to == "npy" else loaded["inputs"]
    assert_same(got, expected, kwargs["dtype"])
    if to == "npz":
        lengths = np.array([len(sequence) for sequence in sequences])
        np.testing.assert_array_equal(loaded["lengths"], lengths)
        kept = np.minimum(lengths, kwargs.get("maxlen", lengths.max()))
        np.testing.assert_array_equal(loaded["mask"].sum(axis=1), kept)


@SETTINGS
@given(cases(kinds=("int", "float")))
def test_cli_jsonl_output_reads_back_as_keras_result(keras_pad, case):
    sequences, kwargs, kind = case
    expected = keras_pad(sequences, **{"value": 0, **kwargs})
    result = invoke(["pad"] + cli_args(kwargs, kind), input=as_jsonl(sequences))
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(sequences)
    got = np.array(rows, dtype=expected.dtype).reshape(expected.shape)
    np.testing.assert_array_equal(got, expected)
