"""pad_arrow as the function of Ray Data's `map_batches(batch_format="pyarrow")`, in
local mode: the rows equal `maskcli pad` of the same data.

Ray starts a local cluster (about 15 s on 2 cores), so these tests run in
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

if not os.environ.get("MASKCLI_TEST_ENGINES"):
    pytest.skip("Ray Data runs in `make test-engines`", allow_module_level=True)
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own settings


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_map_batches_equals_maskcli_pad(local_ray, tmp_path):
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
