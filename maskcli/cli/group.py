"""The ``maskcli`` group: what every command shares.

Domain errors and usage errors become one ``Error:`` line and exit status 2,
a broken pipe a quiet exit; Ctrl-C, SIGTERM and SIGHUP remove the ``-o``
files being written and exit 128 + the signal's number (130, 143, 129), as
a shell reports a process killed by it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

import click
from click.exceptions import NoArgsIsHelpError

from maskcli import __version__
from maskcli.core.errors import MaskcliError, command_line_names
from maskcli.core.names import shown

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



class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, as Ctrl-C raises
    KeyboardInterrupt: every clean-up that runs for Ctrl-C (the ``-o`` file's
    temporary file removed) runs for these too."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# What each stop says on stderr, by signal; exit status 128 + its number.
_STOPS = {signal.SIGINT: "Interrupted."}
_STOPS.update({getattr(signal, name): text for name, text in
               (("SIGTERM", "Terminated."), ("SIGHUP", "Hangup.")) if hasattr(signal, name)})


class MaskcliGroup(click.Group):
    """Turns domain and usage errors into one ``Error:`` line, a broken pipe
    into a quiet exit and a stop (Ctrl-C, SIGTERM, SIGHUP) into 128 + its
    signal number."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise  # plain `maskcli`: the help, as asked
        except click.UsageError as exc:  # maskcli's own options: --verison
            raise _one_line(exc) from None

    def invoke(self, ctx):
        with _signals_stop():
            try:
                with command_line_names():  # messages name --options, not Python arguments
                    return super().invoke(ctx)
            except MaskcliError as exc:
                raise InputFailure(shown(str(exc))) from None
            except click.UsageError as exc:
                # A parse error may carry no context: the command is the one invoked.
                command = " ".join(filter(None, (ctx.command_path, ctx.invoked_subcommand)))
                raise _one_line(exc, command) from None
            except BrokenPipeError:
                # The reader went away (`| head`): stop quietly.
                _drop_stdout()
                ctx.exit(0)
            except KeyboardInterrupt as exc:
                # -o files were removed on the way out. Exit 128 + the signal's
                # number (130 for Ctrl-C), not 1, which means "the check failed".
                signum = getattr(exc, "signum", signal.SIGINT)
                click.echo(_STOPS.get(signum, "Stopped."), err=True)
                ctx.exit(128 + signum)
            except OSError as exc:
                # Inputs and -o files have messages of their own; what is left is
                # standard output on a full or failing disk.
                _drop_stdout()
                place = exc.filename or "standard output"
                raise InputFailure(shown(f"writing {place} failed ({exc.strerror or exc}): "
                                         "free some space, or write elsewhere")) from None



def _one_line(exc: click.UsageError, command: str = "maskcli") -> InputFailure:
    """Click's usage error as one ``Error:`` line that points to ``--help``.

    Click would print ``Usage:`` and ``Try ... --help`` lines around it;
    maskcli's contract is one line, which scripts and people can grep.
    """
    message = " ".join(exc.format_message().split())  # a Choice's list may wrap
    if exc.ctx is not None and exc.ctx.command_path:
        command = exc.ctx.command_path
    return InputFailure(shown(f"{message.rstrip('.')} (see '{command} --help')"))


@contextlib.contextmanager
def _signals_stop():
    """SIGTERM and SIGHUP raise :class:`Stopped` for the block, then the
    handlers before it come back (the command may run inside another program)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can set handlers, and only it gets signals
        return
    previous = {}
    for signum in _STOPS:
        if signum != signal.SIGINT:
            previous[signum] = signal.signal(signum, _stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def _stop(signum, frame):
    raise Stopped(signum)


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
    1 the check failed, 2 usage or input error, 130 interrupted (Ctrl-C),
    143 terminated (SIGTERM), 129 hung up (SIGHUP).
    """
