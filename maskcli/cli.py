"""The command line: parse options, call the core, render. Nothing else.

Exit status, for every command: 0 ok, 1 the check the command performs
failed, 2 usage or input error (one ``Error:`` line on stderr).
"""

from __future__ import annotations

import os
import sys

import click

from maskcli import __version__
from maskcli.errors import MaskcliError


class InputFailure(click.ClickException):
    """A core error shown as one ``Error:`` line, exit status 2."""

    exit_code = 2


class MaskcliGroup(click.Group):
    """Turns domain errors into clean messages and a broken pipe into a quiet exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MaskcliError as exc:
            raise InputFailure(str(exc)) from None
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, and keep Python's
            # final flush of stdout from raising again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)


@click.group(cls=MaskcliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="maskcli")
def main():
    """Pad sequences, inspect their masks, and audit that padding is ignored.

    \b
    maskcli pad data.jsonl --padding post -o padded.npz
    maskcli inspect-mask padded.npz
    maskcli audit-loss padded.npz

    Exit status: 0 ok, 1 the check failed, 2 usage or input error.
    """
