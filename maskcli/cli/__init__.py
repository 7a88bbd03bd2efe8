"""The command line: parse options, call the core, render. Nothing else.

Exit status, for every command: 0 ok, 1 the check the command performs
failed, 2 usage or input error (one ``Error:`` line on stderr).

The group lives in ``group``, each command in a module of its own; this
module registers them.
"""

from maskcli import __version__
from maskcli.cli.audit_command import audit_loss
from maskcli.cli.group import ARCH_NAMES, LOSS_NAMES, SEED, InputFailure, main
from maskcli.cli.inspect_command import inspect_mask_command
from maskcli.cli.pack_command import pack
from maskcli.cli.pad_command import pad
from maskcli.cli.trace_command import trace_mask

for command in (pad, pack, inspect_mask_command, audit_loss, trace_mask):
    main.add_command(command)

__all__ = ["ARCH_NAMES", "LOSS_NAMES", "SEED", "InputFailure", "__version__", "audit_loss",
           "inspect_mask_command", "main", "pack", "pad", "trace_mask"]
