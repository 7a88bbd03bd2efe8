"""Parity of several fields and of Parquet input, on generated records:

- post-padded fields equal ``tf.data.Dataset.padded_batch`` with the same
  per-field ``padding_values``;
- each field alone equals ``keras.utils.pad_sequences`` with its pad value;
- a Parquet table and the same records as jsonl give byte-identical npy/npz.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import invoke
from tests.formats.arrow_tables import parquet

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])
INT32 = st.integers(-2**31, 2**31 - 1)
NAMES = ("input_ids", "labels", "target")


@st.composite
def records(draw, min_records=1, tied=None):
    """(records as dicts of int lists, field names, per-field pad values). ``tied``:
    whether the later fields have the first field's lengths (a tagger) or their
    own (translation); drawn when None."""
    count = draw(st.integers(2, 3))
    names = NAMES[:count]
    tied = draw(st.booleans()) if tied is None else tied
    lengths = draw(st.lists(st.integers(0, 6), min_size=min_records, max_size=6))
    rows = []
    for length in lengths:
        row = {}
        for name in names:
            n = length if tied or name == names[0] else draw(st.integers(0, 6))
            row[name] = draw(st.lists(INT32, min_size=n, max_size=n))
        rows.append(row)
    values = {name: draw(st.sampled_from([0, -100, 7, -1])) for name in names}
    return rows, names, values


def pad_npz(rows, names, values, *options) -> dict:
    args = ["pad", "--to", "npz", *options]
    for name in names:
        args += ["--field", name, "--value", f"{name}={values[name]}"]
    result = invoke(args, input="".join(json.dumps(row) + "\n" for row in rows))
    with np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


@pytest.mark.keras
@SETTINGS
@given(case=records(), maxlen_extra=st.one_of(st.none(), st.integers(0, 3)))
def test_post_padded_fields_equal_tf_data_padded_batch(case, maxlen_extra):
    import tensorflow as tf

    rows, names, values = case
    spec = {name: tf.TensorSpec([None], tf.int32) for name in names}
    dataset = tf.data.Dataset.from_generator(
        lambda: ({name: np.array(row[name], np.int32) for name in names} for row in rows),
        output_signature=spec)
    options = ["--padding", "post"]
    shapes = None
    if maxlen_extra is not None:  # a fixed length no sequence exceeds: padded_shapes
        maxlen = max(len(row[name]) for row in rows for name in names) + maxlen_extra
        options += ["--maxlen", str(maxlen)]
        shapes = {name: [maxlen] for name in names}
    padding_values = {name: tf.constant(values[name], tf.int32) for name in names}
    (batch,) = list(dataset.padded_batch(len(rows), padded_shapes=shapes,
                                         padding_values=padding_values))
    got = pad_npz(rows, names, values, *options)
    for name in names:
        assert got[name].dtype == np.int32
        np.testing.assert_array_equal(got[name], batch[name].numpy())
    meta = json.loads(str(got["meta"]))
    assert meta["fields"] == list(names) and meta["values"] == values


@pytest.mark.keras
@SETTINGS
@given(case=records(), maxlen=st.one_of(st.none(), st.integers(0, 7)),
       padding=st.sampled_from(["pre", "post"]), truncating=st.sampled_from(["pre", "post"]))
def test_each_field_equals_keras_pad_sequences_with_its_value(case, maxlen, padding, truncating):
    from maskcli.keras.models import import_keras

    keras_pad = import_keras().utils.pad_sequences
    rows, names, values = case
    options = ["--padding", padding, "--truncating", truncating]
    if maxlen is not None:
        options += ["--maxlen", str(maxlen)]
    got = pad_npz(rows, names, values, *options)
    for name in names:
        sequences = [row[name] for row in rows]
        if maxlen == 0:  # Keras crashes on maxlen=0; maskcli gives (n, 0)
            assert got[name].shape == (len(rows), 0)
            continue
        expected = keras_pad(sequences, maxlen=maxlen, padding=padding, truncating=truncating,
                             value=values[name])
        np.testing.assert_array_equal(got[name], expected)
        lengths = got.get(f"{name}_lengths", got["lengths"])
        assert lengths.tolist() == [len(sequence) for sequence in sequences]


# Parquet and jsonl, byte for byte --------------------------------------------------------

FLOAT64 = st.floats(allow_nan=False, allow_infinity=False, width=64)
TOKEN = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=6)
KINDS = {
    "int": (INT32, pa.int64(), ["--dtype", "int64"]),
    "float": (FLOAT64, pa.float64(), ["--dtype", "float64", "--value", "nan"]),
    "str": (TOKEN, pa.string(), ["--dtype", "str", "--value", "<pad>"]),
}


@st.composite
def tables(draw):
    """(records, field names, pyarrow table, pad options) of one kind of step."""
    kind = draw(st.sampled_from(["int", "float", "str", "features"]))
    names = NAMES[:draw(st.integers(1, 2))]
    count = draw(st.integers(0, 6))
    if kind == "features":
        width = draw(st.integers(1, 3))
        element = st.lists(FLOAT64, min_size=width, max_size=width)
        arrow_type, options = pa.list_(pa.float64()), ["--dtype", "float64"]
    else:
        element, arrow_type, options = KINDS[kind]
    rows = [{name: draw(st.lists(element, max_size=5)) for name in names} for _ in range(count)]
    columns = {name: pa.array([row[name] for row in rows], type=pa.list_(arrow_type))
               for name in names}
    for name, option in (("--maxlen", st.integers(0, 6)),
                         ("--padding", st.sampled_from(["pre", "post"])),
                         ("--truncating", st.sampled_from(["pre", "post"]))):
        if draw(st.booleans()):
            options = [*options, name, str(draw(option))]
    return rows, names, pa.table(columns), options


@SETTINGS
@given(case=tables(), to=st.sampled_from(["npy", "npz", "jsonl"]))
def test_parquet_and_jsonl_give_identical_bytes(tmp_path_factory, case, to):
    rows, names, table, options = case
    if to == "npy" and len(names) > 1:
        to = "npz"  # npy holds one field
    fields = [arg for name in names for arg in ("--field", name)]
    args = ["pad", "--to", to, *fields, *options]
    from_jsonl = invoke(args, input="".join(json.dumps(row) + "\n" for row in rows))
    path = tmp_path_factory.mktemp("parity") / "records.parquet"
    path.write_bytes(parquet(table))
    from_parquet = invoke([*args, path])
    assert from_parquet.stdout_bytes == from_jsonl.stdout_bytes
    from_stdin = invoke([*args, "--from", "parquet"], input=parquet(table))
    assert from_stdin.stdout_bytes == from_jsonl.stdout_bytes
