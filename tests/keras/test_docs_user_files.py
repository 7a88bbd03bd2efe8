"""The examples of docs/audit-loss.md and docs/trace-mask.md that name a
user's own files (my_model.keras, my_layers.py, tokens.npy, ...): run as they
stand, in a folder holding such files, made here as a user would make them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import invoke
from tests.doc_blocks import BLOCK, run_blocks

keras = pytest.importorskip("keras")
pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning")]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# A custom layer that passes the mask on, as a user's layers.py would hold it.
LAYERS = '''
import keras


@keras.saving.register_keras_serializable(package="{package}")
class Scale(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs * 0.5
'''


def first_sh_block(page: str) -> str:
    return next(block for language, block in BLOCK.findall((DOCS / page).read_text())
                if language == "sh")


def classifier(folder: Path, package: str, name: str) -> None:
    """Embedding(mask_zero) > the custom Scale > LSTM > Dense: masked end to end."""
    (folder / f"{package}.py").write_text(LAYERS.format(package=package))
    namespace: dict = {}
    exec(LAYERS.format(package=package), namespace)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None,), dtype="int32"),
                              keras.layers.Embedding(4000, 4, mask_zero=True),
                              namespace["Scale"](), keras.layers.LSTM(4),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy")
    model.save(folder / name)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user_files")
    (folder / "sample_data").symlink_to(ROOT / "sample_data")
    classifier(folder, "my_layers", "my_model.keras")
    classifier(folder, "layers", "model.keras")
    np.save(folder / "y.npy", np.array([0.0, 1.0, 1.0], dtype=np.float32))
    # A tagger whose custom loss masks through a padding class in the targets.
    shutil.copy(ROOT / "tests" / "keras" / "audit_custom_objects.py", folder / "my_losses.py")
    tokens = np.array([[3, 1, 0, 0], [2, 2, 5, 0], [1, 4, 4, 4]])
    tags = np.zeros((3, 4, 4), dtype=np.float32)
    for row, length in enumerate([2, 3, 4]):
        tags[row, :length, :3] = np.eye(3)[np.random.default_rng(row).integers(0, 3, length)]
        tags[row, length:, 3] = 1
    np.save(folder / "tokens.npy", tokens)
    np.save(folder / "tags.npy", tags)
    namespace: dict = {}
    exec((folder / "my_losses.py").read_text(), namespace)
    keras.utils.set_random_seed(4)
    inputs = keras.Input((None,), dtype="int32")
    tagger = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(
        keras.layers.Embedding(6, 4)(inputs)))
    tagger.compile(loss=namespace["masked_cce_real_steps"])
    tagger.save(folder / "tagger.keras")
    shutil.copy(ROOT / "sample_data" / "keras_guide.jsonl", folder / "data.jsonl")
    invoke(["pad", folder / "data.jsonl", "--padding", "post", "-o", folder / "padded.npz"])
    return folder


def test_the_audit_loss_examples_run(folder):
    block = first_sh_block("audit-loss.md")
    assert "--model my_model.keras --targets y.npy --import my_layers.py" in block
    ran = run_blocks(f"```sh\n{block}```\n", folder, {})
    printed = ran[0][2]
    assert printed.count("padding ignored") == 4 and printed.count("padding leaks") == 1


def test_the_trace_mask_examples_run(folder):
    block = first_sh_block("trace-mask.md")
    assert "--model model.keras --import layers.py padded.npz" in block
    ran = run_blocks(f"```sh\n{block}```\n", folder, {})
    assert "padding enters at layer 'attention'" in " ".join(ran[0][2].split())


def test_the_jq_example_lists_the_layers_that_drop_the_mask(folder, monkeypatch):
    page = (DOCS / "trace-mask.md").read_text()
    (line,) = [line for line in page.splitlines() if "select(.status == \"drops\")" in line]
    command = line.split(" | jq ")[0].split()
    assert command == ["maskcli", "trace-mask", "--model", "model.keras", "--import", "layers.py"]
    monkeypatch.chdir(folder)
    report = json.loads(invoke(command[1:]).stdout)
    drops = [layer["path"] for layer in report["layers"] if layer["status"] == "drops"]
    assert drops == [] and re.search(r"\.path'$", line)


def test_the_jq_example_prints_the_verdict_and_the_cause(folder, monkeypatch):
    page = (DOCS / "audit-loss.md").read_text()
    (line,) = [line for line in page.splitlines() if "jq -r '.verdict, .cause'" in line]
    command = line.split(" | jq ")[0].split()
    monkeypatch.chdir(folder)
    invoke(["pad", "sample_data/keras_guide.jsonl", "--padding", "post", "-o", "guide.npz"])
    report = json.loads(invoke(command[1:], exit_code=1).stdout)
    assert report["verdict"] == "leaks"
    assert "layer 'conv1d' (Conv1D) drops the mask" in report["cause"]
