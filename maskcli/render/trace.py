"""The trace-mask table, drawn with rich (imported only by the command, and
only for ``--format table``).

Every cell reads without colour too (NO_COLOR): mask columns say yes or
-, the status is a word, nested layers are indented under their model; the
padding effect is a number, followed by ``enters``, ``inherited`` or
``contains`` where it exceeds the tolerance.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

STATUS_STYLES = {
    "creates": "cyan",
    "propagates": "green",
    "consumes": "blue",
    "drops": "bold red",
    "none": "dim",
}
KIND_SUFFIX = {"layer": "", "operation": " (op)", "model": " (model)"}
PADDING_STYLES = {"enters": "bold red", "inherited": "yellow", "contains": "yellow", "ignored": "dim"}


def render_trace(report: dict, console: Console | None = None) -> None:
    """Print the table of ``trace.report(...)``, then the fix for each layer
    that drops the mask or where padding enters."""
    console = console or Console()
    inputs = ", ".join(f"{item['name']} {tuple(item['shape'])} {item['dtype']}"
                       for item in report["inputs"])
    origin = "a synthetic padded batch" if report["synthetic"] else "a sample of INPUT"
    table = Table(title=f"mask trace of model '{report['model']}'",
                  caption=f"run on {origin}: {inputs}")
    table.add_column("#", justify="right")
    table.add_column("layer", overflow="fold")
    table.add_column("class", overflow="fold")
    table.add_column("mask in", justify="center")
    table.add_column("mask out", justify="center")
    # A model that masks explicitly: which layers receive its mask input (padding_mask).
    receives = {path: item["name"] for item in report.get("mask_inputs", [])
                for path in item["layers"]}
    if report.get("mask_inputs"):
        table.add_column("mask input", justify="center", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("padding effect", no_wrap=True)
    fixes = []
    for number, row in enumerate(report["layers"], 1):
        style = STATUS_STYLES[row["status"]]
        status = Text(row["status"], style=style)
        padding = _padding_cell(row)
        # one note per row: the fix for a dropped mask, then where padding enters
        notes = [row["fix"]] if row["fix"] and row["kind"] != "model" else []
        if row["padding"] == "enters":
            notes.append(f"padding enters here: {row['padding_fix']}")
        if notes:
            fixes.append((number, row["path"], "; ".join(notes)))
            marked, mark_style = (status, style) if row["status"] == "drops" else (
                padding, PADDING_STYLES["enters"])
            marked.append(f" [{len(fixes)}]", style=mark_style)
        cells = [str(number), "  " * row["depth"] + row["name"],
                 row["class"] + KIND_SUFFIX[row["kind"]],
                 "yes" if row["mask_in"] else "-", "yes" if row["mask_out"] else "-"]
        if report.get("mask_inputs"):
            cells.append(receives.get(row["path"], "-"))
        table.add_row(*cells, status, padding)
    console.print(table)
    for note, (number, path, text) in enumerate(fixes, 1):
        console.print(Text.assemble((f"[{note}] ", "bold red"), f"{path} (row {number}): ", text))
    check = report.get("padding_check") or {}
    if check.get("note"):
        console.print(Text(f"padding effect: {check['note']}", style="dim"))


def _padding_cell(row: dict) -> Text:
    """The effect as a number (``-`` when not compared), and the word when
    it exceeds the tolerance."""
    effect, padding = row["padding_effect"], row["padding"]
    value = "-" if effect is None else "0" if effect == 0 else f"{effect:.2g}"
    if padding in (None, "ignored"):
        return Text(value, style="dim")
    return Text(f"{value} {padding}", style=PADDING_STYLES[padding])
