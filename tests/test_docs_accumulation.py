"""docs/accumulation.md as it stands: each shell example prints what the page
shows (trailing spaces of table rows aside), and each Python line prints the
value in its comment."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import invoke
from tests.doc_blocks import check_commented_values

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "accumulation.md").read_text()
EXAMPLE = re.compile(r"```sh\n(.*?)```\s*```text\n(.*?)```", re.S)


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


@pytest.mark.parametrize("command, stdout", EXAMPLE.findall(PAGE))
def test_each_shell_example_prints_what_the_page_shows(command, stdout, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = shlex.split(command.strip())
    assert args[0] == "maskcli"
    assert lines(invoke(args[1:]).stdout) == lines(stdout)


def test_the_page_has_examples():
    assert len(EXAMPLE.findall(PAGE)) == 2


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_python_example_gives_the_values_in_its_comments(monkeypatch):
    monkeypatch.chdir(ROOT)
    (block,) = re.findall(r"```python\n(.*?)```", PAGE, re.S)
    check_commented_values(block)
