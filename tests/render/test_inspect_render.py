"""inspect-mask's display: glyphs and colours, elision of wide rows, the legend."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from rich.console import Console

from maskcli import inspect_mask
from maskcli.render import inspect as render
from tests.conftest import invoke
from tests.core.test_inspect import POST, npy_bytes

ANSI = re.compile(r"\x1b\[([0-9;]*)m")


def draw(report, width=80, **options) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    render.show(console, report, **options)
    return console.file.getvalue()


def grid_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\s*\d+  [■□◧]", line)]


def glyph_colours(out: str) -> dict[str, set[str]]:
    """The ANSI colour code each glyph is printed with."""
    colours: dict[str, set[str]] = {}
    for code, glyph in re.findall(r"\x1b\[([0-9;]*)m([■□])", out):
        colours.setdefault(glyph, set()).add(code)
    return colours


def test_real_and_padded_steps_differ_in_colour_and_glyph():
    out = invoke(["inspect-mask", "--format", "table"], input=npy_bytes(POST),
                 env={"FORCE_COLOR": "1"}).stdout
    colours = glyph_colours(out)
    assert len(colours["■"]) == 1 and len(colours["□"]) == 1
    assert colours["■"] != colours["□"]


def test_no_color_keeps_the_glyphs():
    out = invoke(["inspect-mask", "--format", "table"], input=npy_bytes(POST),
                 env={"FORCE_COLOR": "1", "NO_COLOR": "1"}).stdout
    assert glyph_colours(out) == {}
    grid = [line.split()[1] for line in grid_lines(ANSI.sub("", out))]
    assert grid == ["■■■□", "■■□□", "■□□□"]


@pytest.mark.parametrize("width", [40, 80, 132])
def test_wide_rows_are_elided_in_the_middle_with_the_hidden_count(width):
    steps = 500
    rows = np.zeros((3, steps), dtype=int)
    rows[0, :steps - 1] = 1  # the last step is the only padded one
    rows[1, 1:] = 1  # the first step is the only padded one
    rows[2, :7] = 1
    lines = grid_lines(draw(inspect_mask(rows), width=width))
    assert len(lines) == 3
    for line in lines:
        assert len(line) <= width
        hidden = int(re.search(r"…(\d+) hidden…", line).group(1))
        assert hidden + line.count("■") + line.count("□") == steps
    assert lines[0].split()[-2].endswith("■□")  # the end of the row is shown
    assert lines[1].split()[1].startswith("□■")  # and its start
    assert lines[2].split()[-1] == "7"  # the real length column


def test_rows_that_fit_are_not_elided():
    rows = np.ones((2, 60), dtype=int)
    lines = grid_lines(draw(inspect_mask(rows), width=80))
    assert all("hidden" not in line and line.count("■") == 60 for line in lines)


def test_elementwise_mask_shows_partly_masked_steps():
    data = np.array([[[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]]])
    out = draw(inspect_mask(data, mode="elementwise"))
    assert grid_lines(out)[0].split()[1] == "■◧□"
    assert "◧ some features masked" in out


@pytest.mark.parametrize("polarity, as_int, expected", [
    ("keep", False, "■ real step: mask True   □ padded step: mask False   (Keras)"),
    ("keep", True,
     "■ real step: mask 1   □ padded step: mask 0   (Hugging Face attention_mask)"),
    ("ignore", False,
     "■ real step: mask False   □ padded step: mask True   (PyTorch key_padding_mask)"),
    ("ignore", True, "■ real step: mask 0   □ padded step: mask 1   (1 = padding)"),
])
def test_legend_states_the_polarity(polarity, as_int, expected):
    assert render.legend(inspect_mask(POST), polarity, as_int).plain == expected


def test_display_names_where_the_mask_comes_from():
    recorded = draw(inspect_mask(POST, mask=POST != 0))
    assert "mask: from the npz · checked against --mode embedding, value 0" in recorded
    built = draw(inspect_mask(POST, mode="embedding", mask_value=-1))
    assert "mask: --mode embedding, value -1" in built


def test_diagnostics_block():
    out = draw(inspect_mask(np.array([[1, 2], [0, 0]])))
    assert "✗ all-padding-row  1 sequence, first at (1)" in out
    assert "fix: drop empty sequences before padding" in out
