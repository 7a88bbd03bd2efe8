"""What one batch costs in maskcli.pad_arrow: time, and memory beyond the batch itself.

For each batch size and maxlen, builds a batch of token ids as datasets stores
them (``input_ids: list<int32>``, lengths uniform in 1..maxlen, seeded), then:

- times ``pad_arrow(batch, maxlen=M, padding="post")`` (best of 5) against the
  baseline a ``datasets.map`` function would otherwise run: the column as
  Python lists (``to_pylist``) through ``keras.utils.pad_sequences``, and
  prints the ratio;
- measures the memory pad_arrow allocates on top of its input: the peak of
  numpy's allocations (``tracemalloc``) plus the growth of pyarrow's memory
  pool, and the size of the padded table it returns (``Table.nbytes``).

    python benchmarks/bench_arrow_map.py
"""

from __future__ import annotations

import os
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pyarrow as pa

import maskcli

CASES = [(1_000, 512), (10_000, 512), (1_000, 2_048)]


def batch(rows: int, maxlen: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, maxlen + 1, rows)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    ids = pa.array(rng.integers(1, 30_000, int(lengths.sum()), dtype=np.int32))
    return pa.table({"input_ids": pa.ListArray.from_arrays(pa.array(offsets), ids)})


def best(function, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def memory(table: pa.Table, maxlen: int) -> tuple[int, int]:
    """Bytes allocated at the peak (numpy + pyarrow), and the padded table's size."""
    pool = pa.default_memory_pool()
    before = pool.bytes_allocated()
    tracemalloc.start()
    padded = maskcli.pad_arrow(table, maxlen=maxlen, padding="post")
    numpy_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return numpy_peak + pool.bytes_allocated() - before, padded.nbytes


def main() -> None:
    import keras

    print(f"{'rows':>7} {'maxlen':>6} {'pad_arrow':>10} {'keras':>9} {'speed-up':>8} "
          f"{'peak MB':>8} {'output MB':>9} {'bytes/cell':>10}")
    for rows, maxlen in CASES:
        table = batch(rows, maxlen)
        ours = best(lambda t=table, m=maxlen: maskcli.pad_arrow(t, maxlen=m, padding="post"))
        theirs = best(lambda t=table, m=maxlen: keras.utils.pad_sequences(
            t.column("input_ids").to_pylist(), maxlen=m, padding="post"), repeat=2)
        expected = keras.utils.pad_sequences(table.column("input_ids").to_pylist(),
                                             maxlen=maxlen, padding="post")
        got = maskcli.pad_arrow(table, maxlen=maxlen, padding="post").column("input_ids")
        assert np.array_equal(np.array(got.to_pylist()), expected)
        peak, output = memory(table, maxlen)
        print(f"{rows:>7} {maxlen:>6} {ours * 1e3:>8.1f}ms {theirs * 1e3:>7.0f}ms "
              f"{theirs / ours:>7.0f}x {peak / 1e6:>8.1f} {output / 1e6:>9.1f} "
              f"{peak / (rows * maxlen):>10.2f}")


if __name__ == "__main__":
    main()
