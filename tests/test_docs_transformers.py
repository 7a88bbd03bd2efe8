"""docs/transformers.md, "Transformers, KerasHub and explicit masks", run as it
stands: its Python builds the models and the batch, its commands run with the
exit status their comments give, and the verdicts it shows are printed."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import invoke

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

PAGE = Path(__file__).resolve().parents[1] / "docs" / "transformers.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), re.S)


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The section's first Python block, run in a folder of its own."""
    folder = tmp_path_factory.mktemp("transformers")
    namespace: dict = {}
    before = os.getcwd()
    os.chdir(folder)  # contextlib.chdir needs Python 3.11
    try:
        exec(blocks("python")[0], namespace)
    finally:
        os.chdir(before)
    return folder, namespace


def test_the_worked_example_prints_its_verdicts(example, monkeypatch):
    folder, _ = example
    monkeypatch.chdir(folder)
    printed = []
    (commands,) = blocks("sh")
    for line in commands.strip().splitlines():
        command, _, comment = line.partition("#")
        args = shlex.split(command)
        assert args[0] == "maskcli"
        exit_code = int(re.fullmatch(r"\s*exit (\d)\s*", comment)[1])
        result = invoke([*args[1:], "--format", "table"], exit_code=exit_code,
                        env={"COLUMNS": "200"})
        printed.append(flat(result.stdout + " " + result.stderr))
    (verdicts,) = blocks("text")
    expected = [flat(line) for line in verdicts.strip().splitlines()]
    assert len(expected) == len(printed) == 4
    for shown, output in zip(expected, printed):  # one verdict per command, in order
        assert shown in output


def test_the_python_example(example, monkeypatch):
    folder, namespace = example
    monkeypatch.chdir(folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(blocks("python")[1], namespace)
    assert out.getvalue().strip() == "ignored"


def test_the_measured_reductions(example, monkeypatch):
    """1.813 (the weighted mean), 1.088 with the default reduction, 0.604 with 4
    more padding steps; fixed targets: standard normal draws of seed 0."""
    import keras

    from maskcli import audit_loss

    folder, _ = example
    monkeypatch.chdir(folder)
    default = keras.saving.load_model("tagger.keras")
    weighted = keras.saving.load_model("tagger_weighted.keras")
    batch = dict(np.load("batch.npz"))
    targets = np.random.default_rng(0).standard_normal((3, 9, 1)).astype("float32")
    found = []
    for extra in (0, 4):
        inputs = {name: np.pad(array, ((0, 0), (0, extra))) for name, array in batch.items()}
        weights = inputs["padding_mask"].astype("float32")
        found.append([audit_loss(inputs, model=model, targets=targets[:, :5 + extra],
                                 sample_weight=weights).keras_loss
                      for model in (weighted, default)])
    assert np.round(found, 3).tolist() == [[1.813, 1.088], [1.813, 0.604]]
    text = flat(PAGE.read_text())
    assert ("the weighted mean over real steps is 1.813, the default reduction gives 1.088 "
            "(9/15 of it), and with 4 more padding steps per sequence, of weight 0, 0.604 "
            "(9/27 of it)") in text
