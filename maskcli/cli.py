"""The command line: parse options, call the core, render. Nothing else.

Exit status, for every command: 0 ok, 1 the check the command performs
failed, 2 usage or input error (one ``Error:`` line on stderr).
"""

from __future__ import annotations

import io
import json
import os
import sys

import click
import numpy as np

from maskcli import __version__
from maskcli.diagnose import inspect_mask
from maskcli.errors import MaskcliError, UsageError
from maskcli.files import atomic_output, refuse_overwrite
from maskcli.masks import MODES, POLARITIES, with_polarity


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


@main.command("inspect-mask")
@click.argument("input", default="-", metavar="[INPUT]")
@click.option("--mode", type=click.Choice(MODES),
              help="Build the mask as Embedding(mask_zero=True), Masking, or per value. "
                   "[default: the npz mask, else embedding for 2-D and masking for 3-D data]")
@click.option("--mask-value", metavar="V",
              help="The pad id / mask value. [default: the npz meta value, else 0]")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "npy"]),
              help="What goes to standard output. [default: table on a terminal, else json]")
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the mask to FILE (.npy).")
@click.option("--polarity", type=click.Choice(POLARITIES), default="keep", show_default=True,
              help="keep: True at real steps (Keras); ignore: True at padded steps "
                   "(PyTorch key_padding_mask).")
@click.option("--as-int", is_flag=True,
              help="Write the mask as 1/0 int64 (Hugging Face attention_mask) instead of booleans.")
@click.option("--rows", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many sequences the grid shows.")
@click.option("--strict", is_flag=True, help="Exit 1 when any diagnostic fires (for CI).")
@click.option("--svg", type=click.Path(dir_okay=False), metavar="FILE",
              help="Save the display as an SVG image.")
@click.pass_context
def inspect_mask_command(ctx, input, mode, mask_value, fmt, output, polarity, as_int, rows,
                         strict, svg):
    """Build the mask Keras would build from padded data, show it and diagnose it.

    \b
    maskcli inspect-mask padded.npz
    maskcli pad data.jsonl --padding post | maskcli inspect-mask
    maskcli inspect-mask features.npy --mode masking --mask-value -1
    maskcli inspect-mask padded.npz -o mask.npy --polarity ignore
    maskcli inspect-mask padded.npz --format json --strict > report.json

    The mask is True at REAL steps (Keras' polarity) unless --polarity ignore.
    Diagnostics: pad-value-inside, partial-timestep, non-finite, all-padding-row,
    pre-padding-rnn, mixed-padding-sides, mask-mismatch (see the README).
    """
    terminal = sys.stdout.isatty()
    fmt = fmt or ("table" if terminal else "json")
    if fmt == "npy" and terminal:
        raise UsageError("--format npy writes binary data: redirect standard output "
                         "(> mask.npy) or use -o mask.npy")
    targets = [path for path in (output, svg) if path]
    if len(targets) == 2 and os.path.abspath(output) == os.path.abspath(svg):
        raise UsageError(f"-o and --svg both name {output}: give two different files")
    for target in targets:
        refuse_overwrite(target, input)

    report = inspect_mask(input, mode=mode, mask_value=mask_value)
    written = with_polarity(report.mask, polarity, as_int)
    if output:
        with atomic_output(output) as handle:
            np.save(handle, written)
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, written)
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
    elif fmt == "json":
        click.echo(json.dumps(report.to_dict()))
    if fmt == "table" or svg:
        from maskcli import render

        console = render.make_console(to_stdout=fmt == "table", record=bool(svg))
        render.show(console, report, rows=rows, polarity=polarity, as_int=as_int)
        if svg:
            with atomic_output(svg) as handle:
                handle.write(render.svg(console, report).encode())
    if fmt != "table":
        for diagnostic in report.diagnostics:
            click.echo(f"warning: {diagnostic.id}: {diagnostic.message}", err=True)
    if strict and report.diagnostics:
        ctx.exit(1)
