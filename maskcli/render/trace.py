"""The trace-mask table, drawn with rich (imported only by the command, and
only for ``--format table``).

Every cell reads without colour too (NO_COLOR): mask columns say yes or
-, the status is a word, nested layers are indented under their model.
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


def render_trace(report: dict, console: Console | None = None) -> None:
    """Print the table of ``trace.report(...)``, then the fix for each drop."""
    console = console or Console()
    inputs = ", ".join(f"{item['name']} {tuple(item['shape'])} {item['dtype']}"
                       for item in report["inputs"])
    origin = "a synthetic padded batch" if report["synthetic"] else "a sample of INPUT"
    table = Table(title=f"mask trace of model '{report['model']}'",
                  caption=f"run on {origin}: {inputs}")
    table.add_column("#", justify="right")
    table.add_column("layer")
    table.add_column("class")
    table.add_column("mask in", justify="center")
    table.add_column("mask out", justify="center")
    table.add_column("status")
    fixes = []
    for number, row in enumerate(report["layers"], 1):
        style = STATUS_STYLES[row["status"]]
        status = Text(row["status"], style=style)
        if row["fix"] and row["kind"] != "model":
            fixes.append((number, row))
            status.append(f" [{len(fixes)}]", style=style)
        table.add_row(str(number), "  " * row["depth"] + row["name"],
                      row["class"] + KIND_SUFFIX[row["kind"]],
                      "yes" if row["mask_in"] else "-", "yes" if row["mask_out"] else "-",
                      status)
    console.print(table)
    for note, (number, row) in enumerate(fixes, 1):
        console.print(Text.assemble((f"[{note}] ", "bold red"), f"{row['path']} (row {number}): ",
                                    row["fix"]))
