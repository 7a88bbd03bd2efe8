"""Round trips through the command line: raw sequences -> ``maskcli pad`` ->
npz -> ``maskcli inspect-mask``. Every sequence keeps min(length, maxlen)
real steps, whatever the input format and the padding options.

Token ids are drawn from 1 upwards: a real id equal to the pad value 0 would
be masked by the mask Keras derives from the values (that is inspect-mask's
``pad-value-inside`` diagnostic, tested on its own).
"""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import invoke

SEQUENCES = st.lists(st.lists(st.integers(1, 10_000), max_size=12), min_size=1, max_size=8)
MAXLEN = st.one_of(st.none(), st.integers(0, 14))
SIDES = st.sampled_from(["pre", "post"])
ROUND_TRIPS = settings(max_examples=40, deadline=None, derandomize=True,
                       suppress_health_check=[HealthCheck.function_scoped_fixture])


def write_input(path, sequences, fmt) -> None:
    if fmt == "jsonl":
        text = "".join(json.dumps(sequence) + "\n" for sequence in sequences)
    elif fmt == "json":
        text = json.dumps(sequences)
    else:  # text: one sequence a line, an empty line an empty sequence
        text = "".join(" ".join(map(str, sequence)) + "\n" for sequence in sequences)
    path.write_text(text)


def expected_real_steps(sequences, maxlen) -> list[int]:
    longest = max(map(len, sequences))
    return [min(len(sequence), longest if maxlen is None else maxlen) for sequence in sequences]


@ROUND_TRIPS
@given(sequences=SEQUENCES, maxlen=MAXLEN)
def test_jsonl_pad_npz_inspect_keeps_min_length_maxlen(tmp_path, sequences, maxlen):
    source, padded = tmp_path / "raw.jsonl", tmp_path / "padded.npz"
    padded.unlink(missing_ok=True)
    write_input(source, sequences, "jsonl")
    invoke(["pad", source, "-o", padded] + ([] if maxlen is None else ["--maxlen", maxlen]))
    report = json.loads(invoke(["inspect-mask", padded, "--format", "json"]).stdout)

    assert report["mask_source"] == "npz"
    assert report["lengths"] == expected_real_steps(sequences, maxlen)
    assert report["summary"]["real_steps"] == sum(expected_real_steps(sequences, maxlen))


@ROUND_TRIPS
@given(sequences=SEQUENCES, fmt=st.sampled_from(["jsonl", "json", "text"]), maxlen=MAXLEN,
       padding=SIDES, truncating=SIDES, multiple=st.sampled_from([None, 4]))
def test_every_format_and_option_keeps_min_length_maxlen(tmp_path, sequences, fmt, maxlen,
                                                         padding, truncating, multiple):
    source, padded = tmp_path / f"raw.{'txt' if fmt == 'text' else fmt}", tmp_path / "padded.npz"
    padded.unlink(missing_ok=True)
    write_input(source, sequences, fmt)
    options = ["--padding", padding, "--truncating", truncating]
    options += [] if maxlen is None else ["--maxlen", maxlen]
    options += [] if multiple is None else ["--pad-to-multiple-of", multiple]
    invoke(["pad", source, "-o", padded, *options])
    expected = expected_real_steps(sequences, maxlen)

    with np.load(padded) as npz:
        mask, inputs, lengths = npz["mask"], npz["inputs"], npz["lengths"]
    assert mask.sum(axis=1).tolist() == expected
    assert lengths.tolist() == [len(sequence) for sequence in sequences]
    assert mask.shape[1] % (multiple or 1) == 0
    # The mask Keras derives from the values (Embedding(mask_zero=True)) agrees,
    # since no real id is 0 ...
    derived = json.loads(invoke(["inspect-mask", padded, "--mode", "embedding",
                                 "--format", "json"]).stdout)
    assert derived["lengths"] == expected
    # ... and the real steps are the kept part of each sequence, in order.
    for row, sequence, kept in zip(np.where(mask, inputs, 0), sequences, expected):
        tail = sequence[len(sequence) - kept:] if truncating == "pre" else sequence[:kept]
        assert row[row != 0].tolist() == tail
