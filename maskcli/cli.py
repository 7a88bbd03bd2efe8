"""The command line: parse options, call the core, render. Nothing else.

Exit status, for every command: 0 ok, 1 the check the command performs
failed, 2 usage or input error (one ``Error:`` line on stderr).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

import click

from maskcli import __version__
from maskcli.errors import MaskcliError, UsageError

# Choices spelled out here so that `--help` loads neither numpy nor TensorFlow;
# a test checks they equal the core's.
ARCH_NAMES = ["embedding-lstm", "embedding-gru", "embedding-dense", "embedding-conv",
              "masking-lstm"]
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


@main.command("inspect-mask")
@click.argument("input", default="-", metavar="[INPUT]")
@click.option("--mode", type=click.Choice(["embedding", "masking", "elementwise"]),
              help="Build the mask as Embedding(mask_zero=True), Masking, or per value. "
                   "[default: the npz mask, else embedding for 2-D and masking for 3-D data]")
@click.option("--mask-value", metavar="V",
              help="The pad id / mask value. [default: the npz meta value, else 0]")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "npy"]),
              help="What goes to standard output. [default: table on a terminal, else json]")
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the mask to FILE (.npy).")
@click.option("--polarity", type=click.Choice(["keep", "ignore"]), default="keep", show_default=True,
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
    import io

    import numpy as np

    from maskcli.diagnose import inspect_mask
    from maskcli.files import atomic_output, refuse_overwrite
    from maskcli.masks import with_polarity

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
@click.option("--arch", type=click.Choice(ARCH_NAMES),
              help="A built-in model instead of --model (embedding-conv drops the mask "
                   "on purpose).")
@click.option("--import", "imports", metavar="PATH", multiple=True,
              help="Import this Python file or module first, so that the custom layers it "
                   "registers are known. This runs your code. Repeatable.")
@click.option("--unsafe", is_flag=True,
              help="Load a model whose loading runs code stored in it (trusted files only).")
@click.option("--units", default=8, show_default=True, help="Units of the built-in model.")
@click.option("--seed", type=SEED, default=0, show_default=True,
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
    fmt = fmt or ("table" if sys.stdout.isatty() else "json")
    padded = load_padded(input_path) if input_path is not None else None
    if pad_value is not None:
        pad_value = parse_value(pad_value, "--pad-value")
    elif padded is not None:
        pad_value = padded.numeric_pad_value("--pad-value")

    from maskcli import models, trace  # loads TensorFlow: only now

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
@main.command()
@click.argument("input", default="-", metavar="[INPUT]")
@click.option("--maxlen", type=click.IntRange(min=0), metavar="N",
              help="Pad and truncate to N steps [default: the longest sequence].")
@click.option("--padding", type=click.Choice(["pre", "post"]), default="pre", show_default=True,
              help="Pad before or after each sequence (Keras' default: pre).")
@click.option("--truncating", type=click.Choice(["pre", "post"]), default="pre",
              show_default=True, help="Cut long sequences at the front or the end.")
@click.option("--value", "value_text", default="0", show_default=True, metavar="V",
              help="Pad value: a number (nan and -inf too), or a string with --dtype str.")
@click.option("--dtype", default="int32", show_default=True, metavar="D",
              help="Output dtype: int32, int64, float32, float64, str (as wide as the longest "
                   "token), ...")
@click.option("--pad-to-multiple-of", type=click.IntRange(min=1), metavar="K",
              help="Round the padded length up to a multiple of K.")
@click.option("--vocab", metavar="FILE",
              help="Map string tokens to ids with this vocabulary: line i holds the token of "
                   "id i; id 0 is padding, id 1 out-of-vocabulary.")
@click.option("--save-vocab", metavar="FILE",
              help="Build the vocabulary from the input (most frequent first), write it to "
                   "FILE and map tokens with it.")
@click.option("--from", "fmt_in", type=click.Choice(["auto", "jsonl", "json", "text"]),
              default="auto", show_default=True,
              help="Input format; auto goes by the extension (.jsonl/.ndjson, .json, .txt) "
                   "and sniffs standard input.")
@click.option("--field", metavar="NAME",
              help="jsonl/json of objects: the key holding each sequence, e.g. input_ids.")
@click.option("--sep", metavar="TEXT",
              help="text: the token separator, '\\t' for a tab [default: any whitespace].")
@click.option("-o", "--output", default="-", metavar="PATH",
              help="Output file, written only on success [default: standard output].")
@click.option("--to", "fmt_out", type=click.Choice(["auto", "jsonl", "csv", "tsv", "npy", "npz"]),
              default="auto", show_default=True,
              help="Output format; auto goes by the extension of -o, jsonl on standard output.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bar (shown on a terminal when a file takes over a second).")
def pad(input, maxlen, padding, truncating, value_text, dtype, pad_to_multiple_of, vocab,
        save_vocab, fmt_in, field, sep, output, fmt_out, quiet):
    """Pad and truncate sequences exactly like keras.utils.pad_sequences.

    INPUT is a jsonl, json or text file, or - for standard input (the default).
    Options named as in Keras come first, with Keras' defaults.

    \b
    maskcli pad sample_data/keras_guide.jsonl --padding post
    maskcli pad data.jsonl --maxlen 64 --padding post -o padded.npz
    maskcli pad records.jsonl --field input_ids --to csv
    maskcli pad sentences.txt --save-vocab vocab.txt --padding post
    """
    from maskcli import writers
    from maskcli.masks import parse_value
    from maskcli.padding import PadOptions, parse_dtype
    from maskcli.pipeline import pad_file
    from maskcli.readers import ReadOptions

    if sep == "":
        raise click.BadParameter("the separator is empty: give one such as ',' or '\\t'",
                                 param_hint="'--sep'")
    if output == "-" and writers.output_format(output, fmt_out) in writers.BINARY_FORMATS \
            and sys.stdout.isatty():
        raise click.UsageError(f"--to {fmt_out} is binary: write it to a file with -o, or pipe it")
    parsed_dtype = parse_dtype(dtype)
    value = value_text
    if parsed_dtype.kind != "U":
        try:
            value = parse_value(value_text)
        except MaskcliError as exc:
            raise click.BadParameter(str(exc), param_hint="'--value'") from None
    options = PadOptions.make(maxlen, parsed_dtype, padding, truncating, value, pad_to_multiple_of)
    read = ReadOptions(fmt_in, field, "\t" if sep == "\\t" else sep)
    progress = None
    if not quiet and _stderr_is_terminal():
        from maskcli.render_progress import ProgressBar

        progress = ProgressBar("padding")
    try:
        report = pad_file(input, output, options=options, read=read, to=fmt_out, vocab=vocab,
                          save_vocab=save_vocab, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    if report.truncated:
        side = "front" if truncating == "pre" else "end"
        click.echo(f"warning: {report.truncated} of {report.sequences} sequences were longer than "
                   f"--maxlen {report.maxlen} and lost steps at the {side} "
                   f"(--truncating {truncating})", err=True)
    if report.oov:
        click.echo(f"warning: {report.oov} of {report.tokens} tokens are not in the vocabulary "
                   f"and became id 1 ({report.oov_token})", err=True)
    if not report.sequences:
        click.echo(f"warning: {report.source} holds no sequences: wrote an empty array of shape "
                   f"{report.shape}", err=True)


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


@main.command("audit-loss")
@click.argument("input_path", metavar="[INPUT]", default="-")
@click.option("--mask", "mask_path", metavar="FILE",
              help="Reference mask (npy, True = real step). Default: the npz 'mask', "
                   "else derived by --mode/--mask-value.")
@click.option("--mode", type=click.Choice(["embedding", "masking", "elementwise"]),
              help="Derive the mask as this layer would (default: embedding for 2-D, "
                   "masking for 3-D).")
@click.option("--mask-value", metavar="V",
              help="Pad value the derived mask looks for (default: the npz meta value, else 0).")
@click.option("--target-pad", metavar="V",
              help="Padding lives in the targets: a step is padding where its target equals V "
                   "(a number such as -100, or a JSON list such as [0,0,1]).")
@click.option("--targets", "targets_path", metavar="FILE",
              help="Targets: npy, npz ('targets') or jsonl. Default: the npz 'targets', "
                   "else synthetic ones from --seed.")
@click.option("--model", "model_path", metavar="FILE.keras",
              help="A saved Keras model, loaded in safe mode.")
@click.option("--arch", type=click.Choice(ARCH_NAMES),
              help="A built-in model (default: embedding-lstm for 2-D ids, masking-lstm for 3-D).")
@click.option("--unsafe", is_flag=True,
              help="Load --model even if that runs code stored in it (trusted files only).")
@click.option("--import", "imports", metavar="PATH", multiple=True,
              help="Import a .py file or module first (registers custom layers, losses, "
                   "metrics). Runs that code. Repeatable.")
@click.option("--loss", type=click.Choice(LOSS_NAMES),
              help="Loss to audit (default mse; a compiled --model's own loss is audited).")
@click.option("--units", type=click.IntRange(min=1), help="Width of a built-in model (default 8).")
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the built-in model's weights, the synthetic targets and training.")
@click.option("--train-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Train this many steps on the batch before auditing.")
@click.option("--per-sample", is_flag=True, help="Add one row per sequence: length, "
                                                 "masked loss, unmasked loss.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]),
              help="Output format (default: table on a terminal, json otherwise).")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's logs and Python warnings.")
@click.pass_context
def audit_loss(ctx, input_path, mask_path, mode, mask_value, target_pad, targets_path, model_path,
               arch, unsafe, imports, loss, units, seed, train_steps, per_sample, fmt, verbose):
    """Prove that padding is ignored by a Keras model's loss, or show where it leaks.

    Runs a real Keras model on the padded batch and checks loss-parity,
    target-invariance, padding-gradient, forward-invariance and metric-parity.

    \b
    maskcli pad data.jsonl --padding post -o padded.npz
    maskcli audit-loss padded.npz
    maskcli audit-loss padded.npz --arch embedding-conv      # a deliberate leak: exit 1
    maskcli audit-loss padded.npz --model model.keras --targets y.npy --import layers.py
    maskcli audit-loss x.npy --targets y.npy --target-pad -100 --model tagger.keras

    Exit status: 0 padding ignored, 1 padding leaks, 2 usage or input error.
    """
    import warnings

    from maskcli.audit import audit_files

    if fmt is None:
        fmt = "table" if sys.stdout.isatty() else "json"
    if unsafe and model_path:
        click.echo(f"Warning: --unsafe: loading {model_path} may run code stored in it; "
                   "use it only for files you trust", err=True)
    with warnings.catch_warnings():
        if not verbose:
            warnings.simplefilter("ignore")
        report = audit_files(
            input_path, mask_path=mask_path, mode=mode, mask_value=mask_value,
            target_pad=target_pad, targets_path=targets_path, model_path=model_path, arch=arch,
            unsafe=unsafe, imports=imports, loss=loss, units=units, seed=seed,
            train_steps=train_steps, per_sample=per_sample, verbose=verbose)
    if fmt == "json":
        click.echo(report.to_json())
    else:
        from maskcli.render_audit import render_report

        render_report(report)
    ctx.exit(report.exit_code)
