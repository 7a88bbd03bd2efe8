"""pad_arrow as the function of Hugging Face `datasets.Dataset.map(batched=True)` on the
arrow format: the rows equal `maskcli pad` of the same data, for any batch size."""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pytest

import maskcli
from tests.formats.test_arrow_map import IDS, LABELS, column, pad_cli

datasets = pytest.importorskip("datasets")


@pytest.mark.parametrize("batch_size", [1, 3])
def test_map_equals_maskcli_pad(tmp_path, batch_size):
    rows = {"doc": ["a", "b", "c", "d"], "input_ids": IDS, "labels": LABELS}
    dataset = datasets.Dataset.from_dict(rows).with_format("arrow")
    pad = functools.partial(maskcli.pad_arrow, fields=["input_ids", "labels"], maxlen=4,
                            padding="post", values={"labels": -100}, mask_as="attention_mask")
    padded = dataset.map(pad, batched=True, batch_size=batch_size)
    table = padded.data.table
    npz = pad_cli(tmp_path, pa.table(rows), "--field", "input_ids", "--field", "labels",
                  "--maxlen", "4", "--padding", "post", "--value", "labels=-100",
                  "--mask-as", "attention_mask")
    for name in ("input_ids", "labels", "attention_mask"):
        np.testing.assert_array_equal(column(table, name), npz[name])
    np.testing.assert_array_equal(column(table, "input_ids_lengths"), npz["lengths"])
    assert table.column("doc").to_pylist() == rows["doc"]
    assert table.schema.field("input_ids").type == pa.list_(pa.int32(), 4)
    # datasets keeps the fixed width in its features, so a model gets dense tensors
    assert padded.features["input_ids"].length == 4


def test_a_bad_row_stops_the_map_with_pads_error():
    dataset = datasets.Dataset.from_dict({"ids": [[1], [2.5]]}).with_format("arrow")
    with pytest.raises(maskcli.InputError, match=r"row 1, step 0\): 2.5 is not a whole number"):
        dataset.map(functools.partial(maskcli.pad_arrow, maxlen=2), batched=True)


def test_pack_arrow_under_map_packs_each_batch(tmp_path):
    rows = {"input_ids": IDS, "labels": LABELS}
    dataset = datasets.Dataset.from_dict(rows).with_format("arrow")
    pack = functools.partial(maskcli.pack_arrow, fields=["input_ids", "labels"], length=4,
                             values={"labels": -100})
    # Packed rows are new rows: the documents' columns go (remove_columns).
    packed = dataset.map(pack, batched=True, batch_size=len(IDS),
                         remove_columns=dataset.column_names).data.table
    expected = maskcli.pack_arrow(pa.table(rows), fields=["input_ids", "labels"], length=4,
                                  values={"labels": -100})
    assert packed.to_pydict() == expected.to_pydict()
    assert packed.column("labels_segment_ids").to_pylist()[0] == [1, 1, 1, 1]
