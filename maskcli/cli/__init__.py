"""The command line: parse options, call the core, render. Nothing else.

Exit status, for every command: 0 ok, 1 the check the command performs
failed, 2 usage or input error (one ``Error:`` line on stderr).

The group lives in ``group``, each command in a module of its own; this
module registers them.
"""

import os
import sys

# numpy loads OpenBLAS, which starts a thread per core as it loads: measured
# 0.07 s of every command's start on 2 cores. No command does linear algebra
# that threads would speed up, and the variable must be set before numpy
# loads. A value the user set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from maskcli import __version__  # noqa: E402
from maskcli.cli.audit_command import audit_loss  # noqa: E402
from maskcli.cli.group import ARCH_NAMES, LOSS_NAMES, SEED, InputFailure, main  # noqa: E402
from maskcli.cli.inspect_command import inspect_mask_command  # noqa: E402
from maskcli.cli.pack_command import pack  # noqa: E402
from maskcli.cli.pad_command import pad  # noqa: E402
from maskcli.cli.trace_command import trace_mask  # noqa: E402

for command in (pad, pack, inspect_mask_command, audit_loss, trace_mask):
    main.add_command(command)


def run() -> None:
    """The ``maskcli`` program: :func:`main`, then an exit without Python's teardown.

    Tearing down numpy, pyarrow and click's modules took 0.04 s after every
    command had finished (TensorFlow's, more), time in which nothing is
    left to do: every output was written, renamed and closed, and every
    thread's work collected, before the command returned. Standard output and
    error are flushed first; a reader gone by then (``| head``) is a quiet
    end, as anywhere else. Anything other than an exit status (a crash) goes
    through Python's own exit, traceback and all.
    """
    try:
        main(prog_name="maskcli")
        status = 0
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise
        status = exc.code or 0
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(status)

__all__ = ["ARCH_NAMES", "LOSS_NAMES", "SEED", "InputFailure", "__version__", "audit_loss",
           "inspect_mask_command", "main", "pack", "pad", "run", "trace_mask"]
