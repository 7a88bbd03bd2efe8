"""Time `maskcli pad` against the json + keras.utils.pad_sequences baseline.

Builds a seeded workload under benchmarks/work/ (git-ignored): LINES lines of
token ids, lengths 1 to 99, ids below 30000, as jsonl (``[1, 2, 3]`` per line,
about 330 MB for a million lines) and as text (``1 2 3``). Then, for each
case, runs the baseline and maskcli as fresh processes, each timed from
process start to written output, with its peak resident memory, and checks
that both wrote the same array; one case repeats the first on the first
300,000 lines, where maskcli's fixed cost weighs more. Last, the start-up time
of ``maskcli --help`` and of ``maskcli pad`` on a 3-line input, and that neither
imports TensorFlow (nor, for pad, pyarrow or rich).

    python benchmarks/bench_pad.py               # the 1,000,000-line workload
    python benchmarks/bench_pad.py --lines 20000 # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "benchmarks" / "work"
PYTHON = sys.executable

# Runs COMMAND (argv in sys.argv[1:]), stdout to the file in $BENCH_STDOUT if set,
# and prints its wall time, peak RSS and CPU time (user + system). A fresh wrapper per run, so that
# RUSAGE_CHILDREN's maximum is this child's alone.
MEASURE = """
import os, resource, subprocess, sys, time
out = os.environ.get("BENCH_STDOUT")
stdout = open(out, "wb") if out else subprocess.DEVNULL
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=stdout).returncode
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, code)
"""

# The baseline: the json module line by line, Keras' pad_sequences, np.save
# (or one JSON array per line on stdout).
BASELINE = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import keras
src, fmt, maxlen, out = sys.argv[1:]
with open(src) as f:
    if fmt == "jsonl":
        sequences = [json.loads(line) for line in f]
    else:
        sequences = [[int(token) for token in line.split()] for line in f]
padded = keras.utils.pad_sequences(sequences, maxlen=int(maxlen) if maxlen else None,
                                   padding="post", truncating="post")
if out == "-":
    sys.stdout.writelines(json.dumps(row) + "\\n" for row in padded.tolist())
else:
    np.save(out, padded)
"""

CASES = [
    # name, input format, maxlen ('' = the longest), output ('npy' or 'stdout'), lines
    # (None: --lines)
    ("jsonl -> npy, maxlen 64", "jsonl", "64", "npy", None),
    ("text -> npy, maxlen 64", "txt", "64", "npy", None),
    ("jsonl -> npy, pad to longest", "jsonl", "", "npy", None),
    ("jsonl -> jsonl on stdout, maxlen 64", "jsonl", "64", "stdout", None),
    ("jsonl -> npy, maxlen 64, first 300,000 lines", "jsonl", "64", "npy", 300_000),
]
STARTUP_TARGET = 0.15  # seconds, for pad on 3 lines


def sequence_blocks(lines: int, seed: int):
    """The workload's sequences, 10,000 at a time, as numpy: (lengths, ids).
    bench_parquet.py builds its tables from the same blocks."""
    rng = np.random.default_rng(seed)
    for start in range(0, lines, 10000):
        lengths = rng.integers(1, 100, min(10000, lines - start))
        yield lengths, rng.integers(0, 30000, int(lengths.sum()))


def build_workload(lines: int, seed: int) -> dict[str, Path]:
    """The jsonl and text inputs, written once per (lines, seed)."""
    WORK.mkdir(parents=True, exist_ok=True)
    paths = {fmt: WORK / f"tokens_{lines}_{seed}.{fmt}" for fmt in ("jsonl", "txt")}
    if all(p.exists() for p in paths.values()):
        return paths
    with open(paths["jsonl"], "w") as jsonl, open(paths["txt"], "w") as txt:
        for lengths, ids in sequence_blocks(lines, seed):
            ids = ids.tolist()
            rows, at = [], 0
            for length in lengths.tolist():
                rows.append(ids[at:at + length])
                at += length
            jsonl.writelines(json.dumps(row) + "\n" for row in rows)
            txt.writelines(" ".join(map(str, row)) + "\n" for row in rows)
    return paths


def measure(argv: list[str], stdout: Path | None = None, runs: int = 1) -> tuple:
    """(wall s, peak bytes, CPU s) of ``argv``: of the run with the median wall time."""
    env = dict(os.environ, BENCH_STDOUT=str(stdout) if stdout else "")
    results = []
    for _ in range(runs):
        result = subprocess.run([PYTHON, "-c", MEASURE, *argv], capture_output=True, text=True,
                                env=env, cwd=ROOT)
        wall, peak, cpu, code = result.stdout.split()
        if code != "0":
            sys.exit(f"failed ({code}): {' '.join(argv)}\n{result.stderr}")
        results.append((float(wall), int(peak), float(cpu)))
    return sorted(results)[len(results) // 2]


def maskcli(*args: str) -> list[str]:
    """The command line of a maskcli run, its package compiled to bytecode
    first, as ``pip install`` leaves it (where PYTHONDONTWRITEBYTECODE is
    set, every run would otherwise compile it anew: 0.06 s)."""
    import compileall

    compileall.compile_dir(ROOT / "maskcli", quiet=1)
    return [PYTHON, "-m", "maskcli", *args]


def read_output(path: Path, kind: str) -> np.ndarray:
    if kind == "npy":
        return np.load(path, allow_pickle=False)
    # One padded row of integers per line: read it with maskcli's own fast
    # parser, 8 MB at a time (json.loads on 64 million numbers would take GBs).
    from maskcli.formats.fastparse import parse_jsonl_ints

    values, widths = [], set()
    with open(path, "rb") as f:
        tail = b""
        while block := f.read(8 << 20):
            cut = block.rfind(b"\n") + 1
            parsed = parse_jsonl_ints(tail + block[:cut])
            tail = block[cut:]
            if parsed is None:
                sys.exit(f"{path}: not one array of integers per line")
            values.append(parsed[0])
            widths.update(parsed[1].tolist())
    if tail or len(widths) > 1:
        sys.exit(f"{path}: rows of different widths, or no final newline")
    return np.concatenate(values).reshape(-1, widths.pop() if widths else 0)


def run_case(name: str, src: Path, fmt: str, maxlen: str, kind: str, runs: int) -> dict:
    base_out = WORK / f"baseline.{kind}"
    fast_out = WORK / f"maskcli.{kind}"
    options = ["--padding", "post", "--truncating", "post"] + (["--maxlen", maxlen] if maxlen else [])
    if kind == "npy":
        base = measure([PYTHON, "-c", BASELINE, str(src), fmt, maxlen, str(base_out)])
        fast = measure(maskcli("pad", str(src), *options, "-o", str(fast_out)), runs=runs)
    else:
        base = measure([PYTHON, "-c", BASELINE, str(src), fmt, maxlen, "-"], stdout=base_out)
        fast = measure(maskcli("pad", str(src), *options, "--to", "jsonl"), stdout=fast_out,
                       runs=runs)
    expected, got = read_output(base_out, kind), read_output(fast_out, kind)
    same = expected.dtype == got.dtype and np.array_equal(expected, got)
    base_out.unlink()
    fast_out.unlink()
    return {"case": name, "base": base, "fast": fast, "same": same, "shape": got.shape}


def startup(argv: list[str], repeat: int = 5,
            heavy_names=("tensorflow", "keras")) -> tuple[float, list[str]]:
    """Best wall time of ``argv``, and which of ``heavy_names`` it imported."""
    best = min(measure(argv)[0] for _ in range(repeat))
    trace = subprocess.run([PYTHON, "-X", "importtime", *argv[1:]], capture_output=True,
                           text=True, cwd=ROOT).stderr
    imported = [name for name in heavy_names
                if any(line.split("|")[-1].strip() == name for line in trace.splitlines())]
    return best, imported


def parse_routes(path: Path, limit: int) -> None:
    """Parse the first ``limit`` bytes of ``path`` (whole lines) by each route
    tried for the fast path, in this process, and print their throughput."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from maskcli.formats import readers
    from maskcli.formats.fastparse import keep_freed_memory, parse_jsonl_ints

    keep_freed_memory()  # as maskcli pad does
    with open(path, "rb") as f:
        data = f.read(limit)
    data = data[:data.rfind(b"\n") + 1]
    blocks = [data[i:i + BLOCK] for i in range(0, len(data), BLOCK)]
    blocks = _whole_lines(blocks)
    expected = None

    def generic(block):
        chunk = readers.parse_block(block, "jsonl", readers.ReadOptions("jsonl"), "bench", 1, 0)
        return chunk.values, chunk.lengths

    def fromstring(block):
        # numpy's own C parser on the brackets and commas made spaces; lengths
        # from a comma count per line. It checks nothing: a lower bound.
        flat = np.fromstring(block.translate(_UNBRACKET), dtype=np.int64, sep=" ")
        lines = block.split(b"\n")[:-1]
        return flat, np.array([line.count(b",") + 1 for line in lines], np.int64)

    def pooled(pool_type, workers):
        def run(blocks):
            with pool_type(workers) as pool:
                return list(pool.map(parse_jsonl_ints, blocks))
        return run

    routes = [
        ("generic reader (json.loads per line)", lambda b: [generic(x) for x in b]),
        ("np.fromstring after translate, unchecked", lambda b: [fromstring(x) for x in b]),
        ("fastparse, 1 thread", lambda b: [parse_jsonl_ints(x) for x in b]),
        ("fastparse, 2 threads", pooled(ThreadPoolExecutor, 2)),
        ("fastparse, 2 processes", pooled(ProcessPoolExecutor, 2)),
    ]
    print(f"\nparse routes on the first {len(data) / 1e6:.0f} MB of {path.name} "
          f"({BLOCK >> 20} MiB blocks), best of 3:")
    for name, route in routes:
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            result = route(blocks)
            best = min(best, time.perf_counter() - start)
        values = np.concatenate([r[0] for r in result])
        lengths = np.concatenate([r[1] for r in result])
        if expected is None:
            expected = values, lengths
        same = np.array_equal(values, expected[0]) and np.array_equal(lengths, expected[1])
        print(f"  {name:45s} {best:6.2f} s  {len(data) / best / 1e6:6.0f} MB/s"
              f"{'' if same else '  DIFFERENT RESULT'}", flush=True)


BLOCK = 1 << 20
_UNBRACKET = bytes.maketrans(b"[],", b"   ")


def _whole_lines(blocks: list[bytes]) -> list[bytes]:
    out, tail = [], b""
    for block in blocks:
        block = tail + block
        cut = block.rfind(b"\n") + 1
        out.append(block[:cut])
        tail = block[cut:]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="sequences in the workload")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3,
                        help="maskcli runs per case, the median counts (the baseline runs once)")
    parser.add_argument("--routes", type=int, metavar="MB", default=0,
                        help="only compare the parsing routes, on the first MB megabytes")
    args = parser.parse_args()

    paths = build_workload(args.lines, args.seed)
    if args.routes:
        parse_routes(paths["jsonl"], args.routes << 20)
        return
    size = paths["jsonl"].stat().st_size
    print(f"workload: {args.lines:,} sequences, lengths 1-99, ids < 30000; "
          f"jsonl {size / 1e6:.0f} MB, text {paths['txt'].stat().st_size / 1e6:.0f} MB",
          flush=True)
    results = []
    for name, fmt, maxlen, kind, lines in CASES:
        if lines is not None and lines >= args.lines:
            continue  # a quick run is already that small
        case_paths = paths if lines is None else build_workload(lines, args.seed)
        results.append(run_case(name, case_paths[fmt], fmt, maxlen, kind, args.runs))
        r = results[-1]
        print(f"  {name}: baseline {r['base'][0]:.1f} s, maskcli {r['fast'][0]:.2f} s", flush=True)

    print()
    print(f"wall time from process start to written output (maskcli: median of {args.runs} "
          "runs), CPU time (user + system), peak resident memory:")
    print()
    print("| case | baseline | maskcli | speed-up | CPU baseline | CPU maskcli "
          "| peak baseline | peak maskcli | memory | same array |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for r in results:
        (bw, bm, bc), (fw, fm, fc) = r["base"], r["fast"]
        print(f"| {r['case']} | {bw:.1f} s | {fw:.2f} s | {bw / fw:.1f}x | {bc:.1f} s | {fc:.2f} s "
              f"| {bm / 2**20:,.0f} MiB | {fm / 2**20:,.0f} MiB | {fm / bm:.2f} "
              f"| {'yes' if r['same'] else 'NO'} |")

    three = WORK / "three.jsonl"
    three.write_text("[711, 632, 71]\n[73, 8, 3215, 55, 927]\n[83, 91, 1, 645, 1253, 927]\n")
    print()
    heavy = ("tensorflow", "keras", "pyarrow", "rich")
    for label, argv, target in (("maskcli --help", maskcli("--help"), 0.3),
                                ("maskcli pad on 3 lines", maskcli("pad", str(three)),
                                 STARTUP_TARGET)):
        wall, imported = startup(argv, heavy_names=heavy)
        print(f"{label}: {wall:.3f} s (target < {target} s), "
              + (f"imports {', '.join(imported)}" if imported
                 else "no TensorFlow, Keras, pyarrow or rich import"))
    if not all(r["same"] for r in results):
        sys.exit("maskcli and the baseline wrote different arrays")


if __name__ == "__main__":
    main()
