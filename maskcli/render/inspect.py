"""Rich rendering of an ``inspect-mask`` report.

Imported by the command only when it displays (or saves an SVG), so that
json and npy output never pay for rich.
"""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from maskcli.core.batching import ratio_text
from maskcli.core.diagnose import MaskReport, format_value

# Glyphs AND colours differ, so the grid reads with NO_COLOR too.
REAL = ("■", "green")
PADDED = ("□", "grey50")
PARTIAL = ("◧", "yellow")  # an elementwise mask keeping some features of the step
_MIN_CELLS = 12  # never elide below this many visible steps


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1 ("the check failed"); let the CLI end quietly instead.
        raise BrokenPipeError


def make_console(to_stdout: bool, record: bool) -> Console:
    """A console for the display: standard output (rich detects the terminal,
    its width and NO_COLOR), or a throw-away one that only records, for --svg."""
    if to_stdout:
        return _Console(record=record)
    return Console(file=io.StringIO(), record=True, width=100)


def show(console: Console, report: MaskReport, rows: int = 20, polarity: str = "keep",
         as_int: bool = False) -> None:
    """Print the summary, the grid of the first ``rows`` sequences, the
    polarity legend and the diagnostics."""
    console.print(_title(report))
    console.print(_summary(report))
    if rows:
        console.print(_grid(report, rows, console.width))
    console.print(legend(report, polarity, as_int))
    console.print(_diagnostics(report))


def svg(console: Console, report: MaskReport) -> str:
    return console.export_svg(title=f"maskcli inspect-mask {report.source}")


def _title(report: MaskReport) -> Text:
    built = f"--mode {report.mode}, value {format_value(report.mask_value)}"
    origin = f"from the npz · checked against {built}" if report.mask_source == "npz" else built
    shape = " × ".join(map(str, report.shape))
    title = Text.assemble((report.source, "bold"), f"  {shape} {report.dtype}")
    title.append(f"\nmask: {origin}", style="dim")
    return title


def _summary(report: MaskReport) -> Table:
    s = report.summary
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("sequences", str(s.sequences))
    steps = str(s.timesteps) + (f" × {s.features} features" if s.features is not None else "")
    table.add_row("timesteps", steps)
    table.add_row("real steps", str(s.real_steps))
    table.add_row("padded steps", f"{s.padded_steps} ({s.padded_fraction:.1%})")
    table.add_row("lengths",
                  f"min {s.min_length} · median {s.median_length:g} · max {s.max_length}")
    table.add_row("padding side", s.padding_side)
    weighting = report.batch_weighting
    if weighting is not None:
        # Each batch padded to its own longest sequence, in this order and sorted by length.
        table.add_row(f"batches of {weighting.batch_size}", _weights(weighting))
        table.add_row("sorted by length",
                      f"padding {weighting.padded_fraction_sorted:.1%} instead of "
                      f"{weighting.padded_fraction_in_order:.1%} · spread "
                      f"{ratio_text(weighting.spread_sorted)}")
    if report.accumulation is not None:
        table.add_row(*_accumulation(report.accumulation))
    return table


def _accumulation(found) -> tuple[str, str]:
    """The real tokens' weights within each update, relative to one batch of its sequences."""
    label = f"updates of {found.steps} × {found.batch_size}"
    if found.replicas > 1:
        label = f"{found.steps} × {found.batch_size} on {found.replicas} replicas"
    windows = f"{found.windows} update{'s' if found.windows != 1 else ''}"
    if found.spread is None:
        return label, f"{windows}, no real token"
    return label, (f"{windows} · token weights {ratio_text(found.weight_min)} to "
                   f"{ratio_text(found.weight_max)} · spread {ratio_text(found.spread)}")


def _weights(weighting) -> str:
    """The real tokens' weights under per-batch normalization (1 = the token mean)."""
    batches = f"{weighting.batches} batch{'es' if weighting.batches != 1 else ''}"
    if weighting.spread is None:
        return f"{batches}, no real token"
    return (f"{batches} · token weights {ratio_text(weighting.weight_min)} to "
            f"{ratio_text(weighting.weight_max)} · spread {ratio_text(weighting.spread)}")



def _grid(report: MaskReport, rows: int, width: int) -> Group:
    mask = report.mask
    n, steps = report.real.shape
    shown = min(rows, n)
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 1))
    table.add_column("seq", justify="right", style="dim")
    table.add_column("mask", no_wrap=True, overflow="crop")
    table.add_column("real", justify="right")
    # What is left of the width after the two number columns (at least as
    # wide as their headers) and the two gaps of two spaces between columns.
    budget = max(_MIN_CELLS, width - max(3, len(str(n - 1))) - max(4, len(str(steps))) - 4)
    for row in range(shown):
        table.add_row(str(row), _cells(mask[row], budget), str(report.lengths[row]))
    parts = [table]
    if shown < n:
        more = n - shown
        parts.append(Text(f"… {more} more sequence{'s' if more > 1 else ''} "
                          f"(--rows {n} shows them all)", style="dim"))
    return Group(*parts)


def _cells(row: np.ndarray, budget: int) -> Text:
    """One glyph per step; a row wider than ``budget`` loses its middle, and
    the number of hidden steps is shown in its place."""
    steps = len(row)
    if steps <= budget:
        return _glyphs(row)
    marker_room = len(f" …{steps} hidden… ")
    head = max(1, (budget - marker_room) // 2)
    tail = max(1, budget - marker_room - head)
    hidden = steps - head - tail
    text = _glyphs(row[:head])
    text.append(f" …{hidden} hidden… ", style="dim italic")
    text.append_text(_glyphs(row[steps - tail:]))
    return text


def _glyphs(row: np.ndarray) -> Text:
    text = Text()
    for step in row:
        if step.ndim:  # elementwise: one mask value per feature
            glyph, style = REAL if step.all() else PARTIAL if step.any() else PADDED
        else:
            glyph, style = REAL if step else PADDED
        text.append(glyph, style=style)
    return text


def legend(report: MaskReport, polarity: str = "keep", as_int: bool = False) -> Text:
    """The polarity, on screen: what the written mask holds at real and padded steps."""
    real_value, padded_value = (True, False) if polarity == "keep" else (False, True)
    if as_int:
        real_value, padded_value = int(real_value), int(padded_value)
    text = Text()
    text.append(REAL[0], style=REAL[1])
    text.append(f" real step: mask {real_value}   ")
    text.append(PADDED[0], style=PADDED[1])
    text.append(f" padded step: mask {padded_value}")
    if report.mask.ndim == 3:
        text.append("   ")
        text.append(PARTIAL[0], style=PARTIAL[1])
        text.append(" some features masked")
    convention = {("keep", False): "Keras", ("keep", True): "Hugging Face attention_mask",
                  ("ignore", False): "PyTorch key_padding_mask",
                  ("ignore", True): "1 = padding"}[polarity, as_int]
    text.append(f"   ({convention})", style="dim")
    return text


def _diagnostics(report: MaskReport):
    if not report.diagnostics:
        return Text("✓ no problems found", style="bold green")
    blocks = [Text("Diagnostics", style="bold")]
    for diagnostic in report.diagnostics:
        places = ", ".join(f"({seq}, {step})" if step is not None else f"({seq})"
                           for seq, step in diagnostic.locations)
        if diagnostic.count > len(diagnostic.locations):
            places += ", …"
        head = Text("✗ ", style="bold yellow")
        head.append(diagnostic.id, style="bold yellow")
        unit = diagnostic.unit[:-1] if diagnostic.count == 1 else diagnostic.unit
        head.append(f"  {diagnostic.count} {unit}, first at {places}")
        blocks.append(head)
        detail = Text(diagnostic.message)
        detail.append(f"\nfix: {diagnostic.fix}", style="cyan")
        blocks.append(Padding(detail, (0, 0, 0, 2)))
    return Group(*blocks)
