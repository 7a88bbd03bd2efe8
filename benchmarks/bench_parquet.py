"""Time `maskcli pad` on Parquet and Arrow against pyarrow's to_pylist + keras.utils.pad_sequences.

Builds, under benchmarks/work/ (git-ignored), the same LINES sequences as
bench_pad.py (seeded: lengths 1 to 99, ids below 30000) as two tables with the
columns ``input_ids`` and ``labels`` (list<int32>, as Hugging Face datasets
store token ids; labels are ids % 9, of the same lengths): a Parquet file
written by ``pyarrow.parquet.write_table`` with its defaults, and an Arrow IPC
stream in 1,000-row record batches, the layout ``datasets``' ``save_to_disk``
writes. Then, for each case, runs the baseline and maskcli as fresh processes,
each timed from process start to written output with its peak resident memory
(``getrusage(RUSAGE_CHILDREN)`` in a wrapper process), and checks that both
wrote the same arrays.

The baseline reads the columns with pyarrow (``read_table(columns=...)``, then
``column(name).to_pylist()``: Python lists, the route every list-based padder
needs), pads each with ``keras.utils.pad_sequences(maxlen=64, padding='post',
truncating='post')`` (labels with value -100) and writes with ``np.save`` or
``np.savez``.

    python benchmarks/bench_parquet.py               # 1,000,000 rows
    python benchmarks/bench_parquet.py --lines 20000 # a quick run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pad import PYTHON, WORK, maskcli, measure, sequence_blocks  # noqa: E402

BASELINE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import keras
src, fmt, fields, out = sys.argv[1:]
fields = fields.split(",")
if fmt == "parquet":
    table = pq.read_table(src, columns=fields)
else:
    with pa.OSFile(src) as f:
        table = pa.ipc.open_stream(f).read_all()
padded = {name: keras.utils.pad_sequences(table.column(name).to_pylist(), maxlen=64,
                                          padding="post", truncating="post",
                                          value=-100 if name == "labels" else 0)
          for name in fields}
if out.endswith(".npy"):
    np.save(out, padded[fields[0]])
else:
    np.savez(out, **padded)
"""

CASES = [
    # name, table, fields, output
    ("parquet -> npy, maxlen 64", "parquet", ["input_ids"], "npy"),
    ("parquet, 2 fields -> npz, maxlen 64", "parquet", ["input_ids", "labels"], "npz"),
    ("arrow stream (datasets layout) -> npy, maxlen 64", "arrow", ["input_ids"], "npy"),
]
TARGETS = {"wall": 1.5, "speed-up": 10.0, "memory": 0.25}  # for the first case, from issue 14


def build_tables(lines: int, seed: int) -> dict[str, Path]:
    """The Parquet file and the Arrow stream, written once per (lines, seed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    WORK.mkdir(parents=True, exist_ok=True)
    paths = {"parquet": WORK / f"tokens_{lines}_{seed}.parquet",
             "arrow": WORK / f"tokens_{lines}_{seed}.arrow"}
    if all(path.exists() for path in paths.values()):
        return paths
    lengths, ids = zip(*sequence_blocks(lines, seed))
    lengths, ids = np.concatenate(lengths), np.concatenate(ids).astype(np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    table = pa.table({"input_ids": pa.ListArray.from_arrays(offsets, pa.array(ids)),
                      "labels": pa.ListArray.from_arrays(offsets, pa.array(ids % 9))})
    pq.write_table(table, paths["parquet"])
    with pa.OSFile(str(paths["arrow"]), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=1000)
    return paths


def same_arrays(base: Path, fast: Path, fields: list[str]) -> bool:
    if base.suffix == ".npy":
        expected, got = np.load(base), np.load(fast)
        return expected.dtype == got.dtype and np.array_equal(expected, got)
    with np.load(base) as expected, np.load(fast) as got:
        return all(expected[name].dtype == got[name].dtype
                   and np.array_equal(expected[name], got[name]) for name in fields)


def run_case(name: str, src: Path, fmt: str, fields: list[str], kind: str, runs: int) -> dict:
    base_out, fast_out = WORK / f"baseline.{kind}", WORK / f"maskcli.{kind}"
    options = ["--maxlen", "64", "--padding", "post", "--truncating", "post"]
    for field in fields:
        options += ["--field", field]
    if "labels" in fields:
        options += ["--value", "labels=-100"]
    base = measure([PYTHON, "-c", BASELINE, str(src), fmt, ",".join(fields), str(base_out)])
    fast = measure(maskcli("pad", str(src), *options, "-o", str(fast_out)), runs=runs)
    same = same_arrays(base_out, fast_out, fields)
    base_out.unlink()
    fast_out.unlink()
    return {"case": name, "base": base, "fast": fast, "same": same}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="rows in the tables")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3,
                        help="maskcli runs per case, the median counts (the baseline runs once)")
    args = parser.parse_args()

    paths = build_tables(args.lines, args.seed)
    print(f"workload: {args.lines:,} rows, lengths 1-99, ids < 30000, input_ids and labels as "
          f"list<int32>; Parquet {paths['parquet'].stat().st_size / 1e6:.0f} MB, Arrow stream "
          f"{paths['arrow'].stat().st_size / 1e6:.0f} MB", flush=True)
    results = []
    for name, fmt, fields, kind in CASES:
        results.append(run_case(name, paths[fmt], fmt, fields, kind, args.runs))
        r = results[-1]
        print(f"  {name}: baseline {r['base'][0]:.1f} s, maskcli {r['fast'][0]:.2f} s", flush=True)

    print()
    print(f"wall time from process start to written output (maskcli: median of {args.runs} "
          "runs), CPU time (user + system), peak resident memory:")
    print()
    print("| case | baseline | maskcli | speed-up | CPU baseline | CPU maskcli "
          "| peak baseline | peak maskcli | memory | same arrays |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for r in results:
        (bw, bm, bc), (fw, fm, fc) = r["base"], r["fast"]
        print(f"| {r['case']} | {bw:.1f} s | {fw:.2f} s | {bw / fw:.1f}x | {bc:.1f} s | {fc:.2f} s "
              f"| {bm / 2**20:,.0f} MiB | {fm / 2**20:,.0f} MiB | {fm / bm:.2f} "
              f"| {'yes' if r['same'] else 'NO'} |")

    (bw, bm, _), (fw, fm, _) = results[0]["base"], results[0]["fast"]
    print()
    print(f"{results[0]['case']}: {fw:.2f} s (target <= {TARGETS['wall']} s), "
          f"{bw / fw:.1f}x the baseline (target >= {TARGETS['speed-up']:.0f}x), "
          f"{fm / bm:.2f} of its peak memory (target <= {TARGETS['memory']})")
    met = (fw <= TARGETS["wall"], bw / fw >= TARGETS["speed-up"], fm / bm <= TARGETS["memory"])
    print("targets: " + ("all met" if all(met) else "MISSED: " + ", ".join(
        label for label, ok in zip(("wall time", "speed-up", "memory"), met) if not ok)))
    if not all(r["same"] for r in results):
        sys.exit("maskcli and the baseline wrote different arrays")


if __name__ == "__main__":
    main()
