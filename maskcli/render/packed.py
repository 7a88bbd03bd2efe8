"""Rich rendering of ``inspect-mask`` on packed data: each row's documents,
the attention mask the model should use, and the diagnostics."""

from __future__ import annotations

import numpy as np
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from maskcli.core.packed_diagnose import PackedReport
from maskcli.render.inspect import _accumulation, _diagnostics, _weights

# Each document shows its segment id (mod 10) in a colour of its own; padding is grey.
COLOURS = ("green", "cyan", "magenta", "yellow", "blue", "red")
PADDED = ("·", "grey50")
MATRIX_STEPS = 48  # the attention mask is drawn for rows up to this long


def show(console: Console, report: PackedReport, rows: int = 20) -> None:
    """Print the summary, the grid of documents, the attention mask of the
    first row and the diagnostics."""
    s = report.summary
    names = report.names
    title = Text.assemble((report.source, "bold"), f"  packed ({names.layout} layout)  "
                          f"{s['rows']} × {s['steps']}")
    arrays = ", ".join(f"{what} '{name}'" for what, name in (
        ("segment ids", names.segment_ids), ("positions", names.positions),
        ("labels", names.labels)) if name)
    title.append(f"\n{arrays}", style="dim")
    console.print(title)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    per_row = s["documents_per_row"]
    table.add_row("documents", f"{s['documents']} · {per_row['min']} to {per_row['max']} a row")
    table.add_row("real steps", f"{s['real_steps']} · fill {s['fill']:.4f}")
    if report.batch_weighting is not None:  # from each row's real steps, as for padded rows
        table.add_row(f"batches of {report.batch_weighting.batch_size}",
                      _weights(report.batch_weighting))
    if report.accumulation is not None:
        table.add_row(*_accumulation(report.accumulation))
    console.print(table)
    if rows:
        console.print(_grid(report, rows, console.width))
    if len(report.segment_ids) and report.segment_ids.shape[1] <= MATRIX_STEPS:
        console.print(_matrix(report))
    console.print(_diagnostics(report))


def _cells(ids: np.ndarray, budget: int) -> Text:
    text = Text()
    for seg in ids[:budget]:
        if seg > 0:
            text.append(str(int(seg) % 10), style=COLOURS[(int(seg) - 1) % len(COLOURS)])
        else:
            text.append(*PADDED)
    if len(ids) > budget:
        text.append(f" …{len(ids) - budget} more", style="dim italic")
    return text


def _grid(report: PackedReport, rows: int, width: int) -> Group:
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 1))
    table.add_column("row", justify="right", style="dim")
    table.add_column("segments", no_wrap=True, overflow="crop")
    table.add_column("docs", justify="right")
    n = len(report.segment_ids)
    budget = max(12, width - 20)
    counts = np.bincount([doc[0] for doc in report.documents], minlength=n)
    for row in range(min(rows, n)):
        table.add_row(str(row), _cells(report.segment_ids[row], budget), str(counts[row]))
    parts = [table]
    if rows < n:
        parts.append(Text(f"… {n - rows} more rows (--rows {n} shows them all)", style="dim"))
    parts.append(Text("digit: the step's segment id (its document)   · padding", style="dim"))
    return Group(*parts)


def _matrix(report: PackedReport) -> Group:
    """Row 0's attention mask: query steps down, key steps across."""
    mask = report.mask[0]
    kind = "block-diagonal causal" if report.causal else "block-diagonal"
    lines = [Text(f"attention mask the model should use, row 0 ({kind}; query ↓ key →)",
                  style="bold")]
    for query in mask:
        line = Text()
        for keep in query:
            line.append("■" if keep else "·", style="green" if keep else "grey50")
        lines.append(line)
    return Group(*lines)


def render_document_trace(result: dict, console: Console | None = None) -> None:
    """The trace-mask table of a packed model: each layer's document effect."""
    console = console or Console()
    table = Table(title=f"document trace of model '{result['model']}'",
                  caption=f"{result['documents']} "
                          f"{'synthetic ' if result.get('synthetic') else ''}documents, packed and alone "
                          f"(segment ids '{result['segment_input']}')")
    table.add_column("#", justify="right")
    table.add_column("layer", overflow="fold")
    table.add_column("class", overflow="fold")
    table.add_column("document effect", no_wrap=True)
    for number, row in enumerate(result["layers"], 1):
        effect = row["document_effect"]
        cell = Text("-" if effect is None else f"{effect:.3g}")
        if row["mixes"]:
            cell.append("  mixes here", style="bold red")
            if row["additive_mask"]:
                cell.append(" (additive float mask)", style="bold red")
        elif effect is not None and effect > row["tolerance"]:
            cell.append("  inherited", style="yellow")
        table.add_row(str(number), row["path"], row["class"], cell)
    console.print(table)
