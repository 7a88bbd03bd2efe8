"""inspect-mask on packed data: the documents, the attention mask the model
should use, and each packed-data diagnostic, by the command and in core."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskcli.core.packed_diagnose import (
    attention_mask,
    documents,
    inspect_packed,
    packed_names,
    restarted_positions,
)
from tests.conftest import invoke

TOKENS = np.array([[5, 6, 7, 8, 9, 0], [1, 2, 3, 4, 5, 0]])
SEGMENTS = np.array([[1, 1, 1, 2, 2, 0], [1, 1, 2, 2, 3, 0]])
POSITIONS = np.array([[0, 1, 2, 0, 1, 0], [0, 1, 0, 1, 0, 0]])


def arrays(**changed):
    base = {"tokens": TOKENS, "tokens_segment_ids": SEGMENTS, "tokens_positions": POSITIONS}
    return {**base, **changed}


def ids(report):
    return {d.id: (d.count, d.locations) for d in report.diagnostics}


def test_correct_packed_rows_have_no_diagnostic_and_a_block_diagonal_causal_mask():
    report = inspect_packed(arrays(), "x")
    assert report.diagnostics == []
    assert report.summary["documents"] == 5 and report.summary["fill"] == 10 / 12
    assert documents(SEGMENTS) == [(0, 1, 0, 3), (0, 2, 3, 5), (1, 1, 0, 2), (1, 2, 2, 4),
                                   (1, 3, 4, 5)]
    mask = report.mask
    assert mask.shape == (2, 6, 6)
    assert mask[0, 4].tolist() == [False, False, False, True, True, False]  # own document, causal
    assert not mask[0, 5].any() and not mask[0, :, 5].any()  # padding reads nothing
    both_ways = attention_mask(SEGMENTS, causal=False)
    assert both_ways[0, 3].tolist() == [False, False, False, True, True, False]


def test_positions_that_run_on_across_the_row():
    report = inspect_packed(arrays(tokens_positions=np.array([[0, 1, 2, 3, 4, 0],
                                                               [0, 1, 0, 1, 0, 0]])), "x")
    assert ids(report) == {"positions-not-restarting": (2, [(0, 3), (0, 4)])}
    assert restarted_positions(SEGMENTS).tolist() == POSITIONS.tolist()


def test_segment_ids_split_out_of_order_and_padding_between_documents():
    segments = np.array([[1, 1, 2, 2, 1, 0], [2, 2, 1, 1, 0, 0], [1, 1, 0, 2, 2, 0]])
    tokens = np.ones_like(segments)
    report = inspect_packed({"tokens": tokens, "tokens_segment_ids": segments}, "x")
    assert ids(report) == {"segments-not-contiguous": (1, [(0, 4)]),
                           "segments-out-of-order": (1, [(1, 0)]),
                           "padding-between-documents": (1, [(2, 2)])}


def test_next_token_labels_crossing_a_document_boundary():
    labels = np.concatenate([TOKENS[:, 1:], np.zeros((2, 1), int)], axis=1)  # label = next token
    report = inspect_packed(arrays(labels=labels), "x")
    assert ids(report) == {"target-crosses-boundary": (3, [(0, 2), (1, 1), (1, 3)])}
    labels[[0, 1, 1], [2, 1, 3]] = -100
    assert inspect_packed(arrays(labels=labels), "x").diagnostics == []


def test_flattening_layout_whose_first_labels_are_kept():
    position_ids = np.array([[0, 1, 2, 0, 1, 0, 1]])
    labels = np.array([[-100, 6, 7, 8, 9, 3, 4]])
    report = inspect_packed({"input_ids": labels.clip(0), "position_ids": position_ids,
                             "labels": labels}, "x")
    assert report.names.layout == "flatten"
    assert ids(report) == {"first-label-not-ignored": (2, [(0, 3), (0, 5)])}


def test_keras_hub_segment_ids_are_token_types_not_packing():
    assert packed_names(["token_ids", "segment_ids", "padding_mask"]) is None
    assert packed_names(["token_ids", "segment_ids"], "segment_ids").segment_ids == "segment_ids"


@pytest.fixture(scope="module")
def packed_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("packed") / "docs.jsonl"
    path.write_text("[1, 2, 3]\n[4, 5]\n[6]\n")
    out = path.with_suffix(".npz")
    invoke(["pack", path, "--length", "4", "-o", out])
    return out


def test_command_on_maskcli_pack_output(packed_file, tmp_path):
    result = invoke(["inspect-mask", packed_file, "--format", "json", "-o", tmp_path / "m.npy"])
    report = json.loads(result.stdout)
    assert report["packed"] and report["diagnostics"] == []
    assert report["summary"]["documents"] == 3 and report["summary"]["rows"] == 2
    written = np.load(tmp_path / "m.npy")
    segments = np.load(packed_file)["inputs_segment_ids"]
    assert written.tolist() == attention_mask(segments).tolist()


def test_command_table_and_strict(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays(tokens_positions=np.arange(6)[None].repeat(2, 0)))
    result = invoke(["inspect-mask", path, "--format", "table", "--strict"], exit_code=1)
    assert "positions-not-restarting" in result.stdout and "block-diagonal causal" in result.stdout
    result = invoke(["inspect-mask", path, "--format", "json"])
    assert "warning: positions-not-restarting" in result.stderr


def test_segment_options_on_data_that_is_not_packed(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, TOKENS)
    result = invoke(["inspect-mask", path, "--bidirectional"], exit_code=2)
    assert "holds no NAME_segment_ids" in result.stderr


def test_flattening_layout_from_maskcli_pack_and_a_padded_batch_that_is_not_packed(tmp_path):
    records = tmp_path / "hf.jsonl"
    records.write_text('{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}\n'
                       '{"input_ids": [4, 5], "labels": [4, 5]}\n')
    packed, padded = tmp_path / "flat.npz", tmp_path / "padded.npz"
    invoke(["pack", records, "--field", "input_ids", "--field", "labels", "--layout", "flatten",
            "--length", "6", "-q", "-o", packed])
    report = json.loads(invoke(["inspect-mask", packed, "--format", "json"]).stdout)
    assert (report["layout"], report["diagnostics"]) == ("flatten", [])
    assert report["summary"]["documents"] == 2 and report["summary"]["real_steps"] == 5
    invoke(["pad", records, "--field", "input_ids", "--field", "labels", "-o", padded])
    assert "packed" not in json.loads(invoke(["inspect-mask", padded, "--format", "json"]).stdout)


def test_a_segment_input_that_names_no_array_is_a_usage_error(packed_file):
    result = invoke(["inspect-mask", packed_file, "--segment-input", "nope"], exit_code=2)
    assert "--segment-input nope: there is no array or input named 'nope'" in result.stderr
