"""The audit-loss report as rich tables, for a terminal.

Imported lazily by the command, only for ``--format table``: rich is loaded
nowhere else on the audit path. NO_COLOR is honoured by rich itself.
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from maskcli.keras.audit import AuditReport, Check

_STATUS = {"pass": ("pass", "green"), "fail": ("FAIL", "bold red"),
           "skipped": ("skipped", "yellow"), "warn": ("WARN", "bold yellow")}


def render_report(report: AuditReport, console: Console | None = None) -> None:
    """Print the checks table, the verdict paragraph and the per-sample table."""
    console = console or Console()
    title = f"audit-loss: {report.model}, loss {report.loss}"
    if report.targets == "synthetic":  # said first: every value below rests on them
        title += ", SYNTHETIC targets"
    table = Table(title=title, title_justify="left")
    for name, justify in (("check", "left"), ("Keras value", "right"), ("reference", "right"),
                          ("difference", "right"), ("status", "left")):
        table.add_column(name, justify=justify)
    for check in report.checks:
        for label, value, reference in _rows(check):
            text, style = _STATUS[check.status]
            table.add_row(label, _number(value), _number(reference),
                          _difference(value, reference), Text(text, style=style))
    console.print(table)
    details = Table.grid(padding=(0, 1))
    details.add_column(no_wrap=True)
    details.add_column(style="dim")
    for check in report.checks:
        details.add_row(f"  {check.id}", check.detail)
    console.print(details)
    console.print()
    console.print(_verdict(report))
    if report.per_sample is not None:
        console.print()
        console.print(_per_sample_table(report))
    if report.per_document is not None:
        console.print()
        console.print(_per_document_table(report))


def _rows(check: Check):
    """One row per value: metric-parity holds one value per metric."""
    if isinstance(check.value, dict):
        for name, value in check.value.items():
            yield f"{check.id} ({name})", value, check.reference.get(name)
    else:
        yield check.id, check.value, check.reference


def _verdict(report: AuditReport) -> Text:
    scope = (f"{report.real_steps} real of {report.steps} steps in {report.sequences} "
             f"sequences; rtol {report.rtol:.1e}")
    if report.batch_size is not None and report.batches > 1:
        scope += f"; {report.batches} batches of {report.batch_size}"
    if report.selection is not None:
        scope += f"; audited {report.selection['text']}"
    if report.verdict == "ignored":
        text = Text("padding ignored", style="bold green")
        text.append(f": every applicable check passes ({scope}).", style="")
    else:
        text = Text("padding leaks", style="bold red")
        text.append(f": {', '.join(report.failed)} failed ({scope}).\nLikely cause: "
                    f"{report.cause}.", style="")
    for fix in report.fixes:
        mark = {True: "verified", False: "tried, still leaks", None: "not tried"}[fix.verified]
        text.append(f"\nFix ({fix.kind}, {mark}): {fix.text}", style="")
        if fix.tried:
            text.append(f" [{fix.tried}]", style="dim")
    for check_id in report.warned:
        text.append(f"\nWarning: {check_id} (see its detail above); it fails the audit with "
                    "--strict.", style="yellow")
    if report.padding:
        text.append(f"\nData: {report.padding}.", style="")
    for note in report.notes:
        text.append(f"\nNote: {note}.", style="")
    versions = ", ".join(f"{name} {version}" for name, version in report.versions.items())
    text.append(f"\n({versions})", style="dim")
    return text


def _per_sample_table(report: AuditReport) -> Table:
    table = Table(title="per sequence", title_justify="left")
    for name in ("sequence", "length", "masked loss", "unmasked loss"):
        table.add_column(name, justify="right")
    for row in report.per_sample:
        table.add_row(str(row["sequence"]), str(row["length"]), _number(row["masked_loss"]),
                      _number(row["unmasked_loss"]))
    return table


def _per_document_table(report: AuditReport) -> Table:
    """Packed rows: one line per document, its loss packed and alone."""
    table = Table(title="per document", title_justify="left")
    for name in ("row", "segment", "start", "length", "packed loss", "alone loss"):
        table.add_column(name, justify="right")
    for doc in report.per_document:
        table.add_row(str(doc["row"]), str(doc["segment"]), str(doc["start"]),
                      str(doc["length"]), _number(doc["packed_loss"]),
                      _number(doc["alone_loss"]))
    return table


def _number(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    return "NaN" if math.isnan(value) else f"{value:.6g}"


def _difference(value, reference) -> str:
    if not isinstance(value, float) or not isinstance(reference, float):
        return "-"
    return _number(value - reference)
