"""docs/python.md runs as it stands: its Python blocks in order, in one
namespace, their printed values as the comments show; its test functions pass."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning")]

PAGE = Path(__file__).resolve().parents[2] / "docs" / "python.md"


@pytest.fixture(scope="module")
def page():
    namespace: dict = {}
    printed = io.StringIO()
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(block, namespace)
    return blocks, namespace, printed.getvalue().splitlines()


def test_every_print_shows_what_its_comment_says(page):
    blocks, _, printed = page
    expected = [comment.split(":")[0].strip() for block in blocks
                for comment in re.findall(r"^\s*print\(.*\)\s*# (.*)$", block, re.M)]
    assert len(expected) == 4
    assert printed == expected


def test_the_pages_test_functions_pass(page):
    _, namespace, _ = page
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()
