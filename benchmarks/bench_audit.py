"""Time `maskcli audit-loss` in batches against a bare `import tensorflow` and a
plain Keras `evaluate` of the same model and batch size, measured in the same run.

Builds a seeded workload under benchmarks/work/ (git-ignored): SEQUENCES
post-padded sequences of 128 steps, lengths 1 to 128, token ids 1 to 999, as
one npy (about 51 MB for 100,000). Each case runs as a fresh process, from
process start to its report, with its peak resident memory (RUSAGE_CHILDREN
of a fresh wrapper per run), the median of RUNS runs:

- ``import tensorflow``: the floor every audit pays;
- plain Keras: load the npy, take the same sample, build the same
  embedding-lstm, ``evaluate(batch_size=256)``; nothing else;
- ``maskcli audit-loss --batch-size 256 --sample 2000`` (targets: < 15 s and
  < 1.2 GB);
- ``--batch-size 256 --limit 5000`` and ``--limit 20000`` (target: peak
  memory of 20,000 at most 1.3 times that of 5,000);
- with ``--whole``, also ``--limit 20000`` without ``--batch-size`` (the
  memory budget batches it by itself).

    python benchmarks/bench_audit.py            # 100,000 sequences, 3 runs each
    python benchmarks/bench_audit.py --runs 1   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
PYTHON = sys.executable
STEPS = 128
BATCH = 256
SAMPLE = 2000

# Runs COMMAND (argv in sys.argv[1:]) and prints its wall time, peak RSS, CPU
# time (user + system) and exit status. A fresh wrapper per run, so that
# RUSAGE_CHILDREN's maximum is this child's alone.
MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stderr.buffer.write(done.stderr)
sys.stderr.buffer.write(b"\\n@@STDOUT@@\\n" + done.stdout[-4000:])
print(wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, done.returncode)
"""

# Plain Keras on the same sample: the model audit-loss builds (--arch
# embedding-lstm, --units 8, --seed 0, mse), evaluated at the same batch size.
PLAIN_KERAS = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
import numpy as np
import keras
path, sample, batch, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
data = np.load(path, mmap_mode="r")
rows = np.sort(np.random.default_rng(seed).choice(len(data), sample, replace=False))
x = np.array(data[rows])
keras.utils.set_random_seed(seed)
tokens = keras.Input((None,), dtype="int32")
hidden = keras.layers.LSTM(8, return_sequences=True)(
    keras.layers.Embedding(int(x.max()) + 1, 8, mask_zero=True)(tokens))
model = keras.Model(tokens, keras.layers.Dense(1)(hidden))
model.compile(optimizer="adam", loss="mse", metrics=["mae"])
y = np.random.default_rng(seed).standard_normal(x.shape + (1,)).astype(np.float32)
print(model.evaluate(x, y, batch_size=batch, verbose=0))
"""


def build_workload(sequences: int, seed: int) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"audit_{sequences}_{seed}.npy"
    if not path.exists():
        rng = np.random.default_rng(seed)
        lengths = rng.integers(1, STEPS + 1, sequences)
        tokens = rng.integers(1, 1000, (sequences, STEPS)).astype(np.int32)
        tokens[np.arange(STEPS)[None] >= lengths[:, None]] = 0
        np.save(path, tokens)
    return path


def measure(argv: list[str], runs: int) -> dict:
    """Wall s, peak bytes and CPU s of ``argv``: of the run with the median wall time."""
    results = []
    for _ in range(runs):
        proc = subprocess.run([PYTHON, "-c", MEASURE, *argv], capture_output=True, text=True,
                              cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        wall, peak, cpu, code = proc.stdout.split()
        stdout = proc.stderr.split("\n@@STDOUT@@\n")[-1]
        if code not in ("0", "1"):
            sys.exit(f"failed ({code}): {' '.join(argv)}\n{proc.stderr[-3000:]}")
        results.append({"wall": float(wall), "peak": int(peak), "cpu": float(cpu),
                        "stdout": stdout})
    return sorted(results, key=lambda r: r["wall"])[len(results) // 2]


def audit(path: Path, *options) -> list[str]:
    return [PYTHON, "-m", "maskcli", "audit-loss", str(path), "--format", "json", "--quiet",
            *map(str, options)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the median counts")
    parser.add_argument("--whole", action="store_true",
                        help="also audit 20,000 sequences without --batch-size")
    args = parser.parse_args()

    path = build_workload(args.sequences, args.seed)
    load = os.getloadavg()
    print(f"workload: {args.sequences:,} post-padded sequences of {STEPS} steps, lengths 1-"
          f"{STEPS}, {path.stat().st_size / 1e6:.0f} MB npy; {os.cpu_count()} CPUs, load "
          f"average {load[0]:.2f} at the start", flush=True)
    cases = [
        ("python -c 'import tensorflow'", [PYTHON, "-c", "import tensorflow"]),
        (f"plain Keras evaluate, {SAMPLE} sampled, batch_size {BATCH}",
         [PYTHON, "-c", PLAIN_KERAS, str(path), str(SAMPLE), str(BATCH), str(args.seed)]),
        (f"audit-loss --batch-size {BATCH} --sample {SAMPLE}",
         audit(path, "--batch-size", BATCH, "--sample", SAMPLE, "--seed", args.seed)),
        (f"audit-loss --batch-size {BATCH} --limit 5000",
         audit(path, "--batch-size", BATCH, "--limit", 5000)),
        (f"audit-loss --batch-size {BATCH} --limit 20000",
         audit(path, "--batch-size", BATCH, "--limit", 20000)),
    ]
    if args.whole:
        cases.append(("audit-loss --limit 20000 (no --batch-size)", audit(path, "--limit", 20000)))
    results = {}
    for name, argv in cases:
        results[name] = measure(argv, args.runs)
        r = results[name]
        print(f"  {name}: {r['wall']:.2f} s, {r['peak'] / 2**20:,.0f} MiB", flush=True)

    print()
    print(f"wall time from process start to the report (median of {args.runs} runs), CPU time "
          "(user + system), peak resident memory:")
    print()
    print("| case | wall | CPU | peak memory | verdict |")
    print("|---|---:|---:|---:|---|")
    for name, r in results.items():
        verdict = ""
        if name.startswith("audit-loss"):
            report = json.loads(r["stdout"])
            statuses = {c["id"]: c["status"] for c in report["checks"]}
            verdict = (f"{report['verdict']} ({report['sequences']} sequences; batch-weighting "
                       f"{statuses.get('batch-weighting', '-')})")
        print(f"| {name} | {r['wall']:.2f} s | {r['cpu']:.2f} s | {r['peak'] / 2**20:,.0f} MiB "
              f"| {verdict} |")
    tf, plain = results[cases[0][0]], results[cases[1][0]]
    sampled = results[cases[2][0]]
    small, large = results[cases[3][0]], results[cases[4][0]]
    print()
    print(f"sample of {SAMPLE}: {sampled['wall']:.2f} s (target < 15 s), "
          f"{sampled['peak'] / 2**30:.2f} GiB (target < 1.2 GB); "
          f"{sampled['wall'] / tf['wall']:.2f}x a bare import tensorflow, "
          f"{sampled['wall'] / plain['wall']:.2f}x plain Keras evaluate")
    ratio = large["peak"] / small["peak"]
    print(f"peak memory, 20,000 / 5,000 sequences at --batch-size {BATCH}: {ratio:.2f} "
          "(target <= 1.3)")
    ok = sampled["wall"] < 15 and sampled["peak"] < 1.2e9 and ratio <= 1.3
    if not ok:
        sys.exit("a target was missed")


if __name__ == "__main__":
    main()
