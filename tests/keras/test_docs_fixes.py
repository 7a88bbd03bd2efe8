"""docs/fixes.md as it stands: each Python line prints the value in its comment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.doc_blocks import check_commented_values

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning")]

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "fixes.md").read_text()


def test_the_python_example_gives_the_values_in_its_comments():
    (block,) = re.findall(r"```python\n(.*?)```", PAGE, re.S)
    check_commented_values(block)
