"""What a full audit costs next to one `evaluate`: a KerasHub BERT tagger.

The model: a KerasHub ``BertBackbone`` (vocabulary 30,522, 4 layers, hidden
256, 4 heads, intermediate 1,024, max_sequence_length 128; about 11M
parameters) with a Dense tagging head of 9 classes (logits), compiled with
``SparseCategoricalCrossentropy(from_logits=True)`` under Keras' default
reduction, saved as a .keras file. The batch: SEQUENCES sequences padded
post to exactly the model's maximum, 128 (lengths 1 to 128, seeded), as the
npz of ``token_ids``, ``segment_ids`` and ``padding_mask`` a KerasHub
preprocessor gives, class-id targets, and the padding mask as sample weights
(what KerasHub's preprocessors return).

That model leaks (the default reduction divides the weighted sum by all
steps), so the audit runs every check, forward-invariance included (judged
on each sequence alone: 4 more padding steps do not fit 128), finds the
layer-level causes and tries its fixes (the loss recompiled on a clone with
``mean_with_sample_weight``, the weights passed).

Both cases run as fresh processes, timed from process start to exit:

- baseline: import Keras and KerasHub, load the .keras file, ``evaluate`` the
  batch (batch_size = SEQUENCES, sample weights = the padding mask);
- ``maskcli audit-loss INPUT.npz --model bert.keras --targets ... --sample-weight mask``.

Printed: both times and their ratio (target: at most 2.5).

    python benchmarks/bench_audit_bert.py             # 256 sequences, 3 runs each
    python benchmarks/bench_audit_bert.py --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
PYTHON = sys.executable
STEPS = 128
TAGS = 9

BUILD = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras, keras_hub
folder, sequences = sys.argv[1], int(sys.argv[2])
keras.utils.set_random_seed(0)
backbone = keras_hub.models.BertBackbone(vocabulary_size=30522, num_layers=4, num_heads=4,
                                         hidden_dim=256, intermediate_dim=1024,
                                         max_sequence_length=128)
tags = keras.layers.Dense(9, name="tags")(backbone.output["sequence_output"])
model = keras.Model(backbone.input, tags, name="bert_tagger")
model.compile(optimizer="adam",
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
print(model.count_params())
model.save(os.path.join(folder, "bert.keras"))
rng = np.random.default_rng(0)
lengths = rng.integers(1, 129, sequences)
real = np.arange(128)[None] < lengths[:, None]
token_ids = np.where(real, rng.integers(1, 30522, (sequences, 128)), 0).astype("int32")
np.savez(os.path.join(folder, "batch.npz"), token_ids=token_ids,
         segment_ids=np.zeros_like(token_ids), padding_mask=real.astype("int32"))
np.save(os.path.join(folder, "tags.npy"), rng.integers(0, 9, (sequences, 128)).astype("int32"))
"""

BASELINE = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras, keras_hub
folder = sys.argv[1]
model = keras.saving.load_model(os.path.join(folder, "bert.keras"))
batch = dict(np.load(os.path.join(folder, "batch.npz")))
y = np.load(os.path.join(folder, "tags.npy"))
print(model.evaluate(batch, y, sample_weight=batch["padding_mask"].astype("float32"),
                     batch_size=len(y), verbose=0))
"""


def build(sequences: int) -> Path:
    folder = WORK / f"bert_{sequences}"
    if not (folder / "tags.npy").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([PYTHON, "-c", BUILD, str(folder), str(sequences)], check=True)
    return folder


def timed(argv: list[str], runs: int) -> tuple[float, str]:
    """The median wall time of ``argv`` over ``runs`` fresh processes, and its stdout."""
    results = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        wall = time.perf_counter() - start
        if proc.returncode not in (0, 1):
            sys.exit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-3000:]}")
        results.append((wall, proc.stdout))
    return sorted(results)[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the median counts")
    args = parser.parse_args()
    folder = build(args.sequences)
    load = os.getloadavg()
    print(f"{args.sequences} sequences padded to {STEPS}; {os.cpu_count()} CPUs, load average "
          f"{load[0]:.2f} at the start", flush=True)
    baseline, _ = timed([PYTHON, "-c", BASELINE, str(folder)], args.runs)
    print(f"  fresh process, load + evaluate: {baseline:.2f} s", flush=True)
    audit, out = timed([PYTHON, "-m", "maskcli", "audit-loss", str(folder / "batch.npz"),
                        "--model", str(folder / "bert.keras"), "--targets",
                        str(folder / "tags.npy"), "--sample-weight", "mask", "--format", "json"],
                       args.runs)
    if not out.strip():
        sys.exit("the audit printed no report")
    report = json.loads(out)
    statuses = ", ".join(f"{c['id']} {c['status']}" for c in report["checks"])
    print(f"  full audit: {audit:.2f} s ({report['verdict']}: {statuses}; "
          f"{len(report['fixes'])} fixes, "
          f"{sum(f['verified'] is not None for f in report['fixes'])} tried)", flush=True)
    print(f"audit / (load + evaluate) = {audit / baseline:.2f} (target <= 2.5)")


if __name__ == "__main__":
    main()
