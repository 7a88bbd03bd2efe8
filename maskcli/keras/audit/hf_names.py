"""What an audit of a dataset assumed, stated: the array or column each model
input was fed from, the targets (a ``labels`` column found by its name, or
synthetic ones), and how the dataset was padded. ``--input NAME=ARRAY``
names an array or column of INPUT, as ``--targets labels`` does."""

from __future__ import annotations

import os

from maskcli.core.padded import Padded
from maskcli.formats.arrays import split_array_spec
from maskcli.keras.audit.report import AuditReport

LABELS = "labels"


def input_columns(texts, padded: Padded | None) -> tuple[dict, list[str]]:
    """``--input NAME=ARRAY`` options that name an array or column of INPUT
    (and no file): {NAME: array}; and the other options, which name files."""
    columns, files = {}, []
    held = padded.extra if padded is not None else {}
    for text in texts:
        name, equals, spec = text.partition("=")
        if equals and name and spec in held and not os.path.exists(split_array_spec(spec)[0]):
            columns[name] = held[spec]
        else:
            files.append(text)
    return columns, files


class Stated:
    """Collects what the audit assumed, and states it in the report."""

    def __init__(self, padded: Padded | None, user_model: bool, texts=(), columns=None):
        self.padded, self.user_model = padded, user_model
        # --input NAME=ARRAY options that named an array or column of INPUT
        self.columns = {text.partition("=")[0]: text.partition("=")[2] for text in texts
                        if text.partition("=")[0] in (columns or {})}
        self.fed_from: dict = {}
        self.notes: list[str] = []
        self.targets: str | None = None

    def targets_path(self, targets_path: str | None) -> str | None:
        """``--targets``, else the ``labels`` column of a dataset INPUT with a
        model of the user's (a Hugging Face dataset's targets): stated in the
        report. (An npz names its targets ``targets``: its ``labels`` may be
        anything.)"""
        self.targets = targets_path
        extra = self.padded.extra if self.padded is not None else {}
        dataset = self.padded is not None and "padded_here" in self.padded.meta
        if targets_path is None and self.user_model and dataset and LABELS in extra \
                and "targets" not in extra:  # a dataset's column: an npz names its targets
            self.targets = LABELS
            self.notes.append(f"the targets are the '{LABELS}' of {self.padded.source}, found by "
                              "their name; give --targets to choose others")
            return LABELS
        return targets_path

    def state(self, report: AuditReport, targets) -> None:
        if self.padded is not None and self.padded.meta.get("padded_here"):
            report.padding = f"{self.padded.source}: {self.padded.meta['padded_here']}"
        fed_from = {**self.fed_from, **self.columns}
        if any(name != column for name, column in fed_from.items()):
            report.inputs = fed_from
            report.notes.append("model inputs fed from INPUT's arrays: " + ", ".join(
                f"{name} <- {column}" + (" (--input)" if name in self.columns
                                         else " (its Hugging Face name)" if name != column
                                         else "")
                for name, column in fed_from.items())
                + "; give --input NAME=ARRAY to feed one from another")
        if targets is None and self.user_model:
            report.targets = "synthetic"
            report.notes.append("the targets are SYNTHETIC (random, from --seed): the audit "
                                "checks the masking, not your labels; give --targets FILE or "
                                "--targets COLUMN to audit with your own")
        elif self.targets and self.padded is not None and self.targets in self.padded.extra \
                and not os.path.exists(self.targets):  # a column of INPUT, named in the JSON
            report.targets = self.targets
        report.notes.extend(self.notes)
