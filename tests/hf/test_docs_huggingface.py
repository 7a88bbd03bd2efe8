"""docs/huggingface.md as it stands: each ``maskcli`` example exits as the
page says, and prints every line the page shows after it; the sample data it
uses is the data tests/hf/hf_data.py generates."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import invoke
from tests.hf.hf_data import records

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]
ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "huggingface.md").read_text()
EXAMPLE = re.compile(r"```sh\n(maskcli [^\n]*)\n```\s*```text\n(.*?)```", re.S)


def examples():
    return EXAMPLE.findall(PAGE)


@pytest.mark.parametrize("command, shown", examples())
def test_each_example_prints_what_the_page_shows(command, shown, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, _, comment = command.partition("#")
    args = shlex.split(code)
    result = invoke(args[1:], exit_code=1 if "exit 1" in comment else 0)
    for line in shown.strip().splitlines():
        assert line.strip() in result.stdout, line


def test_the_page_has_its_examples():
    assert len(examples()) == 5


def test_the_pipe_example_pads_every_row_of_both_shards():
    (command,) = re.findall(r"```sh\n(cat [^\n]*)\n```", PAGE)
    command = command.replace("maskcli pad", f"{shlex.quote(sys.executable)} -m maskcli pad")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "12" and "prints `12`" in PAGE


def test_the_sample_data_is_what_the_generator_writes():
    import pyarrow as pa

    shards = sorted((ROOT / "sample_data" / "hf" / "ner").glob("data-*.arrow"))
    assert len(shards) == 2
    table = pa.concat_tables(pa.ipc.open_stream(pa.OSFile(str(path))).read_all()
                             for path in shards)
    assert table.to_pydict() == records()
    labels = np.concatenate([np.array(row) for row in records()["labels"]])
    assert (labels == -100).sum() > 2 * len(records()["labels"])  # and on real tokens too
    assert sum(path.stat().st_size for path in (ROOT / "sample_data" / "hf").rglob("*")
               if path.is_file()) < 300_000
