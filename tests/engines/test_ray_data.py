"""pad_arrow as the function of Ray Data's `map_batches(batch_format="pyarrow")`, in
local mode: docs/scale.md's Ray snippet, and rows equal to `maskcli pad` of the same data.

Ray starts a local cluster (15-50 s on 2 busy cores), so these tests run in
`make test-engines` (MASKCLI_TEST_ENGINES=1), not in `make test`.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pyarrow as pa
import pytest

import maskcli
from tests.formats.test_arrow_map import IDS, LABELS, column, pad_cli
from tests.test_docs_scale import blocks, run_python

if not os.environ.get("MASKCLI_TEST_ENGINES"):
    pytest.skip("Ray Data runs in `make test-engines`", allow_module_level=True)
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own settings


@pytest.fixture(scope="module")
def snippet():
    """The page's Ray snippet, run up to its shutdown: its local cluster serves every test."""
    (code,) = blocks("python", "Ray Data")
    assert code.rstrip().endswith("ray.shutdown()")
    namespace, printed = run_python(code.rstrip().removesuffix("ray.shutdown()"))
    yield namespace, printed
    ray.shutdown()


def test_the_docs_snippet(snippet):
    namespace, printed = snippet
    table = pa.concat_tables(ray.get(namespace["padded"].to_arrow_refs()))
    rows = sorted(table.column("input_ids").to_pylist())
    assert rows == sorted(maskcli.pad_sequences(IDS[:2] + [[5, 6, 7, 8, 9]], maxlen=4,
                                                padding="post").tolist())
    assert "input_ids_mask" in printed


def test_map_batches_equals_maskcli_pad(snippet, tmp_path):
    rows = pa.table({"doc": ["a", "b", "c", "d"], "input_ids": IDS, "labels": LABELS})
    pad = functools.partial(maskcli.pad_arrow, fields=["input_ids", "labels"], maxlen=4,
                            values={"labels": -100}, mask_as="padding_mask")
    dataset = ray.data.from_arrow(rows).map_batches(pad, batch_format="pyarrow", batch_size=3)
    table = pa.concat_tables(ray.get(dataset.to_arrow_refs()))
    npz = pad_cli(tmp_path, rows, "--field", "input_ids", "--field", "labels", "--maxlen", "4",
                  "--value", "labels=-100", "--mask-as", "padding_mask")
    order = np.argsort(table.column("doc").to_pylist())  # blocks may come back in any order
    for name in ("input_ids", "labels", "padding_mask"):
        np.testing.assert_array_equal(column(table, name)[order], npz[name])
    np.testing.assert_array_equal(column(table, "labels_lengths")[order], npz["lengths"])
    assert table.schema.field("labels").type == pa.list_(pa.int32(), 4)


def test_pack_arrow_in_map_batches(snippet):
    rows = pa.table({"input_ids": IDS})
    pack = functools.partial(maskcli.pack_arrow, length=5)
    dataset = ray.data.from_arrow(rows).map_batches(pack, batch_format="pyarrow",
                                                    batch_size=len(IDS))
    table = pa.concat_tables(ray.get(dataset.to_arrow_refs()))
    assert table.to_pydict() == maskcli.pack_arrow(rows, length=5).to_pydict()
