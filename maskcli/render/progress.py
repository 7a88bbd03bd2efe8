"""Progress bars on standard error: ``ProgressBar`` for long runs of
``maskcli pad`` (bytes of the input), ``BatchBar`` for ``maskcli audit-loss``
(batches of each model call).

The commands use them only when standard error is a terminal. They stay
hidden for their first seconds, so that quick runs print nothing and never
import rich. ``pad``'s needs the input's size, so standard input gets none.
"""

from __future__ import annotations

import time

DELAY = 1.0  # seconds of work before a bar is worth showing


class ProgressBar:
    """Call with ``(done, total)`` bytes as the work goes; ``close()`` at the end.
    With ``unit`` (e.g. ``"shards"``) it counts those instead of bytes."""

    def __init__(self, label: str, delay: float = DELAY, console=None, unit: str | None = None):
        self.label, self.unit = label, unit
        self.shown_from = time.monotonic() + delay
        self.console = console  # a rich Console; default: standard error
        self.progress = None

    def __call__(self, done: int, total: int | None) -> None:
        if total is None:
            return
        if self.progress is None:
            if time.monotonic() < self.shown_from:
                return
            self._start(total)
        self.progress.update(self.task, completed=done)

    def _start(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        amount = (DownloadColumn(),) if self.unit is None else (MofNCompleteColumn(),
                                                                TextColumn(self.unit))
        # Only stderr: data goes to stdout, which rich must not redirect.
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 *amount, TimeRemainingColumn(),
                                 console=self.console or Console(stderr=True), transient=True,
                                 redirect_stdout=False, redirect_stderr=False)
        self.task = self.progress.add_task(self.label, total=total)
        self.progress.start()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


AUDIT_DELAY = 2.0  # seconds since the audit started before its bar shows


class BatchBar:
    """Call with ``(what runs, batches done, batches in all)`` as the audit
    goes (forward pass, evaluate, forward-invariance, training); ``close()``
    at the end. One line, whose label and count follow the current stage."""

    def __init__(self, delay: float = AUDIT_DELAY, console=None):
        self.shown_from = time.monotonic() + delay
        self.console = console  # a rich Console; default: standard error
        self.progress = None
        self.stage = None

    def __call__(self, label: str, done: int, total: int) -> None:
        if self.progress is None:
            if time.monotonic() < self.shown_from:
                return
            self._start(label, total)
        if label != self.stage:
            self.stage = label
            self.progress.reset(self.task, total=total, description=f"audit-loss: {label}")
        self.progress.update(self.task, completed=done)

    def _start(self, label: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("batches"), TimeElapsedColumn(),
                                 console=self.console or Console(stderr=True), transient=True,
                                 redirect_stdout=False, redirect_stderr=False)
        self.task = self.progress.add_task(f"audit-loss: {label}", total=total)
        self.stage = label
        self.progress.start()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
