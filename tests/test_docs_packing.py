"""docs/packing.md as it stands: each shell example prints what the page
shows, and each Python line prints the value in its comment."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import invoke
from tests.doc_blocks import check_commented_values

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "packing.md").read_text()
# A shell block, the text block of its standard output, and optionally the
# text block of its standard error ("on standard error:" in between).
EXAMPLE = re.compile(r"```sh\n([^`]*)```\s*```text\n(.*?)```(?:\s*and on standard error:\s*"
                     r"```text\n(.*?)```)?", re.S)


def examples():
    return EXAMPLE.findall(PAGE)


@pytest.mark.parametrize("command, stdout, stderr", examples())
def test_each_shell_example_prints_what_the_page_shows(command, stdout, stderr, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = shlex.split(command.strip(), comments=True)
    assert args[0] == "maskcli"
    exit_code = 1 if "# exit 1" in command else 0
    result = invoke(args[1:], exit_code=exit_code)
    assert result.stdout == stdout
    assert stderr.strip() in result.stderr


def test_the_page_has_examples():
    assert len(examples()) >= 1


def test_the_python_example_gives_the_values_in_its_comments():
    (block,) = re.findall(r"```python\n(.*?)```", PAGE, re.S)
    check_commented_values(block, "#")


# A shell block and a json block: keys of the report it prints, with their values.
REPORT_EXAMPLE = re.compile(r"```sh\n([^`]*)```\s*```json\n([^`]*)```", re.S)


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("command, shown", REPORT_EXAMPLE.findall(PAGE))
def test_each_audit_example_reports_what_the_page_shows(command, shown, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = shlex.split(command.strip(), comments=True)
    assert args[0] == "maskcli"
    result = invoke(args[1:], exit_code=1 if "# exit 1" in command else 0)
    report = json.loads(result.stdout)
    shown = json.loads(shown)
    assert {key: report[key] for key in shown} == shown


def test_the_page_has_audit_examples():
    assert len(REPORT_EXAMPLE.findall(PAGE)) == 7
