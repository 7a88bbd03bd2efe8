"""The command line: parse options, call the core, render. Nothing else.

Exit status, for every command: 0 ok, 1 the check the command performs
failed, 2 usage or input error (one ``Error:`` line on stderr).
"""

from __future__ import annotations

import contextlib
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
            # The reader went away (`| head`): stop quietly.
            _drop_stdout()
            ctx.exit(0)
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
@main.command("trace-mask")
@click.argument("input_path", metavar="[INPUT]", required=False)
@click.option("--model", "model_path", metavar="FILE.keras",
              help="A saved Keras model, loaded in safe mode.")
@click.option("--arch", metavar="NAME",
              help="A built-in model instead of --model, e.g. embedding-lstm or embedding-conv "
                   "(an unknown name lists them all).")
@click.option("--import", "imports", metavar="PATH", multiple=True,
              help="Import this Python file or module first, so that the custom layers it "
                   "registers are known. This runs your code. Repeatable.")
@click.option("--unsafe", is_flag=True,
              help="Load a model whose loading runs code stored in it (trusted files only).")
@click.option("--units", default=8, show_default=True, help="Units of the built-in model.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of the built-in model's weights and of the synthetic batch.")
@click.option("--pad-value", metavar="V",
              help="The pad value of INPUT, to tell whether it is padded, and the mask_value of "
                   "--arch masking-lstm  [default: from maskcli pad's npz, else the model's "
                   "Masking value, else 0]")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]),
              help="Output format  [default: table on a terminal, json otherwise]")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's and Keras' own messages.")
@click.pass_context
def trace_mask(ctx, input_path, model_path, arch, imports, unsafe, units, seed, pad_value, fmt,
               verbose):
    """Follow the mask through a model, layer by layer.

    Runs the model on the first 64 sequences of INPUT ('-' reads standard
    input) or, when INPUT is omitted, on a small synthetic padded batch that
    fits the model's input. Prints one row per layer, in execution order:
    whether a mask reaches it, whether its output carries one, and its status:
    creates, propagates, consumes (uses it and by design returns none), drops
    (the leak, with the likely fix) or none.

    \b
    maskcli trace-mask --arch embedding-conv
    maskcli trace-mask --model model.keras --import layers.py padded.npz
    maskcli trace-mask --model model.keras --format json | jq '.layers[]'

    Exit status: 0 the mask goes where it should; 1 a layer drops it, or a
    padded input reaches an output with a time axis and no mask; 2 usage or
    input error.
    """
    if not model_path and not arch:
        raise UsageError("no model: give --model FILE.keras or --arch NAME")
    if model_path and arch:
        raise UsageError("--model and --arch exclude each other: give one of them")
    if unsafe and not model_path:
        raise UsageError("--unsafe applies to --model only")
    # numpy and the model code load only now, to keep --help fast
    from maskcli.arrays import load_padded
    from maskcli.masks import parse_value
    from maskcli.models import ARCHS

    if arch and arch not in ARCHS:
        raise UsageError(f"unknown --arch {arch!r}: use one of {', '.join(ARCHS)}")
    fmt = fmt or ("table" if sys.stdout.isatty() else "json")
    padded = load_padded(input_path) if input_path is not None else None
    from maskcli import models, trace  # loads TensorFlow: only now

    if pad_value is not None:
        pad_value = parse_value(pad_value)
    elif padded is not None:
        pad_value = trace.recorded_pad_value(padded)

    models.import_keras(verbose)
    models.import_user_code(imports)
    if model_path:
        if unsafe:
            click.echo(f"Warning: --unsafe: loading {model_path} may run code stored in it",
                       err=True)
        model = models.load_model(model_path, unsafe, verbose)
        synthetic = None if padded else trace.synthetic_inputs(model, seed)
    else:
        synthetic = None if padded else [trace.arch_inputs(arch, pad_value or 0.0, seed)]
        data = padded.inputs if padded else synthetic[0]
        model = models.build_arch(arch, data, units=units, seed=seed, pad_value=pad_value or 0,
                                  verbose=verbose)
    if padded:
        trace.check_fits(model, padded.inputs, padded.source)
        if pad_value is None:
            pad_value = trace.masking_value(model) or 0
        inputs = [padded.inputs[:trace.SAMPLE_SIZE]]
        is_padded = trace.has_padding(padded.inputs, padded.mask, pad_value)
        if not is_padded:
            click.echo(f"note: {padded.source} has no padded step: only dropped masks are "
                       "checked", err=True)
    else:
        inputs = synthetic
        # the synthetic batch pads its shorter sequences whenever it has 2 steps or more
        is_padded = min(batch.shape[1] for batch in inputs) > 1
    rows = trace.trace_mask(model, inputs if len(inputs) > 1 else inputs[0])
    result = trace.report(rows, model=model.name, inputs=inputs, synthetic=synthetic is not None,
                          input_names=[ref.name for ref in trace.model_inputs(model)],
                          padded=is_padded, versions=models.versions())
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        from maskcli.render_trace import render_trace

        render_trace(result)
    if result["leak"]:
        click.echo(f"mask leak: {result['leak']}", err=True)
        ctx.exit(1)
    click.echo("mask ok: no layer drops it" + (", and it reaches every output with a time axis"
                                               if is_padded else ""), err=True)
