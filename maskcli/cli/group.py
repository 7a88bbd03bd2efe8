"""The ``maskcli`` group: what every command shares.

Domain errors become one ``Error:`` line and exit status 2, a broken pipe a
quiet exit, Ctrl-C exit status 130.
"""

from __future__ import annotations

import contextlib
import os
import sys

import click

from maskcli import __version__
from maskcli.core.errors import MaskcliError

# Choices spelled out here so that `--help` loads neither numpy nor TensorFlow;
# a test checks they equal the core's.
ARCH_NAMES = ["embedding-lstm", "embedding-gru", "embedding-dense", "embedding-conv",
              "masking-lstm", "transformer", "transformer-unmasked"]
SEED = click.IntRange(0, 2**32 - 1)  # what numpy and Keras take as a seed
LOSS_NAMES = ["mse", "mae", "binary_crossentropy", "categorical_crossentropy",
              "sparse_categorical_crossentropy"]


class InputFailure(click.ClickException):
    """A core error shown as one ``Error:`` line, exit status 2."""

    exit_code = 2



class MaskcliGroup(click.Group):
    """Turns domain errors into clean messages, a broken pipe into a quiet exit
    and Ctrl-C into exit status 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MaskcliError as exc:
            raise InputFailure(str(exc)) from None
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly.
            _drop_stdout()
            ctx.exit(0)
        except KeyboardInterrupt:
            # Ctrl-C: -o files were removed on the way out. Exit 130, the
            # shell's code for SIGINT, not 1, which means "the check failed".
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except OSError as exc:
            # Inputs and -o files have messages of their own; what is left is
            # standard output on a full or failing disk.
            _drop_stdout()
            place = exc.filename or "standard output"
            raise InputFailure(f"writing {place} failed ({exc.strerror or exc}): "
                               "free some space, or write elsewhere") from None



def _drop_stdout() -> None:
    """Point stdout at /dev/null, so that Python's final flush cannot raise again."""
    with contextlib.suppress(OSError):  # a stdout without a file descriptor (tests)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())



@click.group(cls=MaskcliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="maskcli")
def main():
    """Pad sequences, inspect their masks, and audit that padding is ignored.

    \b
    maskcli pad data.jsonl --padding post -o padded.npz
    maskcli inspect-mask padded.npz
    maskcli audit-loss padded.npz
    maskcli trace-mask --model model.keras padded.npz

    A mask is True at real steps (Keras' polarity). Exit status: 0 ok,
    1 the check failed, 2 usage or input error, 130 interrupted.
    """
