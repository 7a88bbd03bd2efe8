"""Domain exceptions. The CLI turns each into one ``Error:`` line and exit 2.

Messages are written for the user: they name the place (file, line,
sequence, step) and end with the fix. A message names an option through
:func:`option` (or :func:`spelled`): ``--mask-value`` while a command runs
(:func:`command_line_names`, set by the CLI), ``mask_value`` when maskcli is
called from Python, so that each reader sees the name they typed.
"""

import contextlib
import contextvars

_COMMAND_LINE = contextvars.ContextVar("maskcli_command_line", default=False)


@contextlib.contextmanager
def command_line_names():
    """Within this block, messages name options as the commands spell them."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def option(flag: str, value: str | None = None) -> str:
    """Option ``flag`` (with ``value``) as the reader of the message spells it.

    >>> option("--sample-weight", "mask")  # from Python
    'sample_weight="mask"'
    """
    if _COMMAND_LINE.get():
        return flag if value is None else f"{flag} {value}"
    name = flag.lstrip("-").replace("-", "_")
    return name if value is None else f'{name}="{value}"'


def spelled(command_line: str, python: str) -> str:
    """A phrase that differs between the command line and Python."""
    return command_line if _COMMAND_LINE.get() else python


class MaskcliError(ValueError):
    """A problem with what the user gave maskcli (exit status 2)."""

    exit_code = 2


class InputError(MaskcliError):
    """The input data cannot be used: unreadable, malformed, inconsistent."""


class UsageError(MaskcliError):
    """Options that cannot work together, or a value out of range."""


class ModelError(MaskcliError):
    """A model that cannot be loaded, built or run on the data."""


class PaddingLeakError(MaskcliError):
    """Padding leaks into a model's loss: raised by ``PaddingAudit(on_leak="raise")``.

    ``report`` holds the audit's report; the message names the cause and the fix.
    """

    exit_code = 1

    def __init__(self, message: str, report=None):
        super().__init__(message)
        self.report = report


def where(source: str, line: int | None = None, sequence: int | None = None,
          step: int | None = None, unit: str = "sequence") -> str:
    """Format a location such as ``data.jsonl, line 4 (sequence 3, step 2)``.

    ``unit`` names what ``sequence`` counts: ``row`` for a table's rows.
    """
    place = source
    if line is not None:
        place += f", line {line}"
    inner = []
    if sequence is not None:
        inner.append(f"{unit} {sequence}")
    if step is not None:
        inner.append(f"step {step}")
    if inner:
        place += f" ({', '.join(inner)})"
    return place
