"""The padding core, through the library: golden cases, maskcli's answers to
Keras' silent or crashing corners, and every error path."""

import numpy as np
import pytest

from maskcli import InputError, UsageError, pad_sequences
from maskcli.core.padding import PadOptions, Ragged, cast, pad_chunk, pad_ragged

KERAS_DOC = [[1], [2, 3], [4, 5, 6]]


@pytest.mark.parametrize("kwargs, expected", [
    # The examples of keras.utils.pad_sequences' own docstring.
    ({}, [[0, 0, 1], [0, 2, 3], [4, 5, 6]]),
    ({"value": -1}, [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]]),
    ({"padding": "post"}, [[1, 0, 0], [2, 3, 0], [4, 5, 6]]),
    ({"maxlen": 2}, [[0, 1], [2, 3], [5, 6]]),
    ({"maxlen": 2, "truncating": "post"}, [[0, 1], [2, 3], [4, 5]]),
    ({"maxlen": 4, "padding": "post", "value": 9}, [[1, 9, 9, 9], [2, 3, 9, 9], [4, 5, 6, 9]]),
])
def test_keras_docstring_examples(kwargs, expected):
    result = pad_sequences(KERAS_DOC, **kwargs)
    assert result.dtype == np.int32
    assert result.tolist() == expected


def test_keras_masking_guide_example():
    raw = [[711, 632, 71], [73, 8, 3215, 55, 927], [83, 91, 1, 645, 1253, 927]]
    assert pad_sequences(raw, padding="post").tolist() == [
        [711, 632, 71, 0, 0, 0], [73, 8, 3215, 55, 927, 0], [83, 91, 1, 645, 1253, 927]]


def test_pad_ragged_matches_pad_sequences():
    values, lengths = [1, 2, 3, 4, 5, 6], [1, 2, 3]
    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            for maxlen in (None, 0, 1, 2, 5):
                kwargs = dict(maxlen=maxlen, padding=padding, truncating=truncating, value=-7)
                np.testing.assert_array_equal(pad_ragged(values, lengths, **kwargs),
                                              pad_sequences(KERAS_DOC, **kwargs))


def test_feature_vectors_give_3d_output():
    result = pad_sequences([[[1, 2]], [[3, 4], [5, 6]]], dtype="float32", padding="post", value=-1)
    assert result.shape == (2, 2, 2) and result.dtype == np.float32
    assert result.tolist() == [[[1, 2], [-1, -1]], [[3, 4], [5, 6]]]


def test_empty_sequences_are_all_padding():
    assert pad_sequences([[], [1, 2], []], value=5).tolist() == [[5, 5], [1, 2], [5, 5]]
    assert pad_sequences([[], []]).shape == (2, 0)


@pytest.mark.parametrize("kwargs, shape", [({}, (0, 0)), ({"maxlen": 3}, (0, 3)),
                                           ({"maxlen": 3, "pad_to_multiple_of": 4}, (0, 4))])
def test_no_sequences_give_an_empty_array(kwargs, shape):
    # Keras crashes here ("zero-size array to reduction operation maximum").
    result = pad_sequences([], **kwargs)
    assert result.shape == shape and result.dtype == np.int32


def test_maxlen_zero_is_the_limit_of_truncation():
    # Keras crashes with a broadcast error (s[-0:] is the whole sequence).
    result = pad_sequences(KERAS_DOC, maxlen=0)
    assert result.shape == (3, 0) and result.dtype == np.int32


def test_whole_floats_fit_integer_dtypes():
    assert pad_sequences([[1.0, 2.0]]).tolist() == [[1, 2]]


def test_float_values_with_float_dtype_are_kept():
    result = pad_sequences([[1.7, 2.5], [0.25]], dtype="float32", padding="post")
    assert result.dtype == np.float32
    assert result.tolist() == [[1.7000000476837158, 2.5], [0.25, 0.0]]


@pytest.mark.parametrize("dtype", ["str", str, "U"])
def test_str_dtype_keeps_whole_strings(dtype):
    # Keras' dtype=str is <U1 and keeps "a" of "abc".
    result = pad_sequences([["abc", "de"], ["fghij"]], dtype=dtype, value="")
    assert result.dtype == np.dtype("<U5")
    assert result.tolist() == [["abc", "de"], ["", "fghij"]]


def test_str_dtype_is_wide_enough_for_the_pad_value():
    result = pad_sequences([["a"]], maxlen=2, dtype=str, value="<pad>")
    assert result.dtype == np.dtype("<U5") and result.tolist() == [["<pad>", "a"]]


def test_str_dtype_turns_numbers_into_their_text():
    assert pad_sequences([[1, 2]], maxlen=3, dtype=str).tolist() == [["0.0", "1", "2"]]


def test_explicit_unicode_width_is_respected():
    result = pad_sequences([["ab"]], maxlen=2, dtype="<U3", value="x")
    assert result.dtype == np.dtype("<U3") and result.tolist() == [["x", "ab"]]


def test_pad_to_multiple_of_rounds_the_width_up_but_truncates_at_maxlen():
    assert pad_sequences(KERAS_DOC, padding="post", pad_to_multiple_of=4).tolist() == [
        [1, 0, 0, 0], [2, 3, 0, 0], [4, 5, 6, 0]]
    # Like Hugging Face: cut at maxlen, then pad the batch to the multiple.
    assert pad_sequences(KERAS_DOC, maxlen=2, pad_to_multiple_of=3).tolist() == [
        [0, 0, 1], [0, 2, 3], [0, 5, 6]]
    assert pad_sequences(KERAS_DOC, pad_to_multiple_of=3).shape == (3, 3)


def test_numpy_arrays_and_tuples_are_sequences():
    result = pad_sequences([np.array([1, 2], dtype=np.int64), (3,)], dtype="int64")
    assert result.dtype == np.int64 and result.tolist() == [[1, 2], [0, 3]]


def test_integers_at_the_dtype_limits_fit():
    info = np.iinfo(np.int32)
    assert pad_sequences([[info.min, info.max]]).tolist() == [[info.min, info.max]]
    assert pad_sequences([[2**64 - 1]], dtype="uint64").tolist() == [[2**64 - 1]]


def test_integers_beyond_int64_among_others_stay_exact():
    """numpy would read them as float64: 2**63 + 1 would become 2**63, silently."""
    big = 2**63 + 1
    assert pad_sequences([[big, 5], [7]], dtype="uint64").tolist() == [[big, 5], [0, 7]]
    assert pad_sequences([[[big, 1], [2, 3]]], dtype="uint64").tolist() == [[[big, 1], [2, 3]]]


@pytest.mark.parametrize("sequences, dtype, fix", [
    ([[2**63 + 1, 5]], "int64", "9223372036854775809 is out of range for int64 "
     "(-9223372036854775808..9223372036854775807): use a wider dtype such as uint64"),
    ([[2**64 - 1, 5]], "int32", "18446744073709551615 is out of range for int32 "
     "(-2147483648..2147483647): use a wider dtype such as uint64 (--dtype uint64)"),
    ([[-1, 5]], "uint64", "-1 is out of range for uint64 (0..18446744073709551615): use a wider "
     "dtype such as int64 (--dtype int64)"),
    ([[-1, 2**63 + 1]], "uint64", "is out of range for uint64 (0..18446744073709551615): give "
     "smaller ids, or the dtype float64 (--dtype float64)"),
    ([[1e20]], "int64", "is out of range for int64 (-9223372036854775808..9223372036854775807): "
     "give smaller ids, or the dtype float64"),
])
def test_an_integer_out_of_range_names_a_dtype_that_holds_it(sequences, dtype, fix):
    """Never 'use int64' when the dtype is already int64, or int64 cannot hold it."""
    with pytest.raises(InputError) as info:
        pad_sequences(sequences, dtype=dtype)
    assert fix in str(info.value)


def test_nan_pad_value_is_fine_for_floats():
    result = pad_sequences([[1.5]], maxlen=2, dtype="float64", value=float("nan"))
    assert np.isnan(result[0, 0]) and result[0, 1] == 1.5


@pytest.mark.parametrize("sequences, kwargs, message", [
    ([[1, 1.7]], {}, "sequence 0, step 1): 1.7 is not a whole number and the dtype is int32"),
    ([[1], [2, float("nan")]], {}, "sequence 1, step 1): nan is not a whole number"),
    ([[1, 2], [3000000000]], {}, "sequence 1, step 0): 3000000000 is out of range for int32"),
    ([[-1]], {"dtype": "uint8"}, "-1 is out of range for uint8 (0..255)"),
    ([[300]], {"dtype": "int8"}, "300 is out of range for int8"),
    ([[2**64]], {"dtype": "int64"}, "18446744073709551616 does not fit int64"),
    ([[1, None]], {}, "sequence 0, step 1): None is not a number"),
    ([["a", "b"]], {}, "token 'a' is not a number and the dtype is int32: map tokens to ids "
                       "with --vocab FILE or --save-vocab FILE, or keep them with --dtype str"),
    ([["abcdef"]], {"dtype": "<U3"}, "'abcdef' is wider than <U3: use --dtype str"),
    ([[1e300]], {"dtype": "float32"}, "1e+300 overflows float32"),
    ([[1, 70000]], {"dtype": "float16"}, "step 1): 70000 overflows float16: use the dtype float64"),
    ([[[1, 2, 3], [4, 5, 6]], [[7, 8]]], {"dtype": "float32"},
     "sequence 1, step 0): 2 features among steps with 3 features"),
    ([[[1, 2], 3]], {"dtype": "float32"}, "sequence 0, step 1): a single value among steps with 2"),
    ([[1], 5], {}, "sequence 1): expected a list of steps, got int 5"),
    (["abc"], {}, "sequence 0): expected a list of steps, got str"),
])
def test_input_errors_name_the_place_and_the_fix(sequences, kwargs, message):
    with pytest.raises(InputError) as info:
        pad_sequences(sequences, **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"value": float("nan")}, "pad value nan does not fit the integer dtype int32"),
    ({"value": 1.5}, "pad value 1.5 does not fit the integer dtype int32"),
    ({"value": 2**31}, "pad value 2147483648 is out of range for int32"),
    ({"value": 10**30, "dtype": "int64"}, "is out of range for int64"),
    ({"value": 1e300, "dtype": "float32"}, "pad value 1e+300 overflows float32"),
    ({"value": "x"}, "pad value 'x' is text but the dtype is int32"),
    ({"value": None}, "pad value None is not a number"),
    ({"value": "long", "dtype": "<U2"}, "pad value 'long' is wider than dtype <U2"),
    ({"maxlen": -1}, "maxlen must be at least 0, got -1"),
    ({"maxlen": 2.5}, "maxlen must be a whole number"),
    ({"pad_to_multiple_of": 0}, "pad_to_multiple_of must be at least 1"),
    ({"padding": "left"}, "padding 'left' is not understood: use 'pre' or 'post'"),
    ({"truncating": "middle"}, "truncating 'middle' is not understood"),
    ({"dtype": "object"}, "dtype object is not supported: use str"),
    ({"dtype": "bool"}, "dtype bool is not supported"),
    ({"dtype": "int33"}, "unknown dtype 'int33'"),
])
def test_usage_errors(kwargs, message):
    with pytest.raises(UsageError) as info:
        pad_sequences(KERAS_DOC, **kwargs)
    assert message in str(info.value)


def test_errors_are_value_errors_like_keras():
    with pytest.raises(ValueError):
        pad_sequences([[1.5]])


def test_pad_ragged_checks_that_lengths_fit_values():
    with pytest.raises(UsageError, match="do not match lengths summing to 4"):
        pad_ragged([1, 2, 3], [2, 2])


def test_pad_chunk_returns_the_mask_of_real_steps():
    options = PadOptions.make(padding="pre", truncating="post")
    chunk = cast(Ragged(np.array([5, 0, 7, 8, 9]), np.array([2, 0, 3])), options.dtype)
    padded, mask = pad_chunk(chunk, options, maxlen=2)
    # A real token 0 stays real: the mask comes from the lengths, not the values.
    assert padded.tolist() == [[5, 0], [0, 0], [7, 8]]
    assert mask.tolist() == [[True, True], [False, False], [True, True]]


def test_error_places_name_lines_when_the_chunk_has_them():
    chunk = Ragged(np.array([1.0, 2.5]), np.array([1, 1]), "data.jsonl", first=10,
                   lines=np.array([3, 5]))
    with pytest.raises(InputError, match=r"^data.jsonl, line 5 \(sequence 11, step 0\): 2.5 "):
        cast(chunk, np.dtype("int32"))
