"""The smaller examples of the guide pages, run as they stand: Python snippets
of docs/pad.md, docs/formats.md and docs/inspect-mask.md, the worked example of
docs/batches.md and the padding-effect trace of docs/trace-mask.md. (The pages'
shell examples run in the tests of their commands: tests/formats/test_pad_cli.py,
tests/core/test_inspect.py; docs/transformers.md in tests/test_docs_transformers.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import invoke
from tests.doc_blocks import BLOCK, flat, run_line

DOCS = Path(__file__).resolve().parents[1] / "docs"


def blocks(page: str, language: str) -> list[str]:
    return [block for found, block in BLOCK.findall((DOCS / page).read_text()) if found == language]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    (tmp_path / "sample_data").symlink_to(DOCS.parent / "sample_data")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_pad_sequences_from_python_gives_the_value_shown():
    (block,) = blocks("pad.md", "python")
    namespace: dict = {}
    for line in block.splitlines():
        code, _, shown = line.partition("  # ")
        if shown:
            assert eval(code, namespace) == eval(shown, {}), line
        else:
            exec(code, namespace)


def test_reading_an_npz_back(folder):
    run_line("maskcli pad sample_data/features.jsonl --dtype float32 --padding post -o features.npz",
             folder)
    (block,) = blocks("formats.md", "python")
    namespace: dict = {}
    exec(block, namespace)
    assert namespace["inputs"].shape == (6, 6, 3) and namespace["inputs"].dtype == np.float32
    assert namespace["mask"].sum() == 21
    assert namespace["meta"]["padding"] == "post"


def test_inspect_mask_from_python(folder):
    run_line("maskcli pad sample_data/keras_guide.jsonl --padding post -o padded.npz", folder)
    (block,) = blocks("inspect-mask.md", "python")
    namespace: dict = {}
    exec(block, namespace)
    report = namespace["report"]
    assert report.lengths.tolist() == [3, 5, 6]
    assert report.summary.padding_side == "post" and report.diagnostics == []


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_batch_weighting_worked_example(folder):
    (commands,) = blocks("batches.md", "sh")
    tiny = re.compile(r"-?\d\.\d+e-(0[6-9]|[1-9]\d)")  # float32 noise: differs between machines
    printed = tiny.sub("~0", flat("".join(run_line(line, folder) for line in commands.splitlines()
                                          if line)))
    (shown,) = blocks("batches.md", "text")
    for line in shown.splitlines():
        if line.strip() != "...":
            assert tiny.sub("~0", flat(line.split(": ...")[0])) in printed, line


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_where_padding_enters_prints_the_trace_shown():
    page = (DOCS / "trace-mask.md").read_text()
    section = page.split("## Where padding enters", 1)[1]
    shown = section.split("```\n$ ", 1)[1].split("\n$ echo $?", 1)[0]
    command, _, table = shown.partition("\n")
    assert command == "maskcli trace-mask --arch transformer-unmasked --format table"
    result = invoke(command.split()[1:], exit_code=1, env={"COLUMNS": "100"})
    printed = flat(result.stdout + result.stderr)
    for line in table.splitlines():
        assert flat(line) in printed, line
    (jq_example,) = [line for line in blocks("trace-mask.md", "sh")[-1].splitlines() if "'.enters'" in line]
    assert re.search(r"# attention$", jq_example)
    report = json.loads(invoke(["trace-mask", "--arch", "transformer-unmasked"], exit_code=1).stdout)
    assert report["enters"] == "attention"
