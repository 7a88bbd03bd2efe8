"""``maskcli trace-mask``: follow the mask through a model, layer by layer."""

from __future__ import annotations

import json
import sys

import click

from maskcli.cli.dataset_options import dataset_from, dataset_options
from maskcli.cli.group import ARCH_NAMES, SEED
from maskcli.core.errors import InputError, UsageError


@click.command("trace-mask")
@click.argument("input_path", metavar="[INPUT]", required=False)
@click.option("--model", "model_path", metavar="FILE.keras",
              help="A saved Keras model, loaded in safe mode.")
@click.option("--arch", type=click.Choice(ARCH_NAMES),
              help="A built-in model instead of --model (embedding-conv drops the mask "
                   "on purpose).")
@click.option("--input", "named_inputs", metavar="NAME=FILE[:ARRAY]", multiple=True,
              help="Feed model input NAME from FILE (npy, jsonl, or an npz array). Repeatable.")
@click.option("--mask-input", metavar="NAME",
              help="The model input that is a padding mask (1 = real step). Default: inputs "
                   "named padding_mask, attention_mask or *_padding_mask.")
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
@dataset_options
@click.option("--segment-input", metavar="NAME",
              help="Packed rows: the model input holding segment ids (default: an input named "
                   "*_segment_ids). Traces where documents mix instead of padding; without "
                   "INPUT, on synthetic packed rows (--seed; --maxlen N steps for a model of "
                   "open length, default 16).")
@click.pass_context
def trace_mask(ctx, input_path, model_path, arch, named_inputs, mask_input, imports, unsafe, units,
               seed, pad_value, fmt, verbose, segment_input, **dataset):
    """Follow the mask through a model, layer by layer.

    Runs the model on the first 64 sequences of INPUT ('-' reads standard
    input; an npz whose arrays are named after the model's inputs feeds each)
    or, when INPUT is omitted, on a small synthetic padded batch that fits the
    model's input. Prints one row per layer, in execution order:
    whether a mask reaches it, whether its output carries one, and its status:
    creates, propagates, consumes (uses it and by design returns none), drops
    (the leak, with the likely fix) or none. It runs the batch a second time
    with 4 more padding steps per sequence: each layer's padding effect is the
    largest change of its output at real steps, and the first layer whose
    effect appears while its inputs have none is where padding enters (with
    the likely fix). A model that masks explicitly through a mask input
    (padding_mask) is named so, with the layers that receive it.

    \b
    maskcli trace-mask --arch embedding-conv
    maskcli trace-mask --arch transformer-unmasked
    maskcli trace-mask --model model.keras --import layers.py padded.npz
    maskcli trace-mask --model bert_tagger.keras batch.npz
    maskcli trace-mask --model model.keras --format json | jq '.layers[]'

    Exit status: 0 the mask goes where it should and padding never reaches a
    real step; 1 a layer drops the mask, a padded input reaches an output with
    a time axis and no mask (unless the model masks explicitly through a mask
    input), or padding enters real steps; 2 usage or input error.
    """
    if not model_path and not arch:
        raise UsageError("no model: give --model FILE.keras or --arch NAME")
    if model_path and arch:
        raise UsageError("--model and --arch exclude each other: give one of them")
    if unsafe and not model_path:
        raise UsageError("--unsafe applies to --model only")
    if (named_inputs or mask_input) and not model_path:
        raise UsageError("--input and --mask-input name the inputs of a --model: give --model")
    # numpy and the model code load only now, to keep --help fast
    from maskcli.core.masks import parse_value
    from maskcli.formats.arrays import load_padded, named_input_files
    fmt = fmt or ("table" if sys.stdout.isatty() else "json")
    padded = (load_padded(input_path, named=True, dataset=dataset_from(dataset))
              if input_path is not None else None)
    from maskcli.keras.audit.hf_names import input_columns

    columns, named_inputs = input_columns(named_inputs, padded)
    given = {**named_input_files(named_inputs), **columns}
    if padded is not None and padded.meta.get("padded_here"):
        click.echo(f"note: {padded.source}: {padded.meta['padded_here']}", err=True)
    if arch and padded is not None:
        padded = padded.one_field()  # an npz of several fields: the first, as inspect-mask
    if pad_value is not None:
        pad_value = parse_value(pad_value, "--pad-value")
    elif padded is not None:
        pad_value = padded.numeric_pad_value("--pad-value")

    if model_path:
        from maskcli.formats.model_files import check_model_file

        check_model_file(model_path)  # a refused file costs no TensorFlow import
    from maskcli.keras import (
        models,  # loads TensorFlow: only now
        trace,
    )

    models.import_keras(verbose)
    models.import_user_code(imports)
    if model_path:
        if unsafe:
            click.echo(f"Warning: --unsafe: loading {model_path} may run code stored in it",
                       err=True)
        model = models.load_model(model_path, unsafe, verbose)
        padded = _one_array(model, padded, given)
        if not padded and not given and not trace.walkable(model):
            raise UsageError(f"--model {model_path}: a subclassed model has no input shape to "
                             "make a synthetic batch from: give INPUT, padded data that fits it")
        synthetic = None
    else:
        if padded is not None and padded.inputs is None:
            raise InputError(f"{padded.source} has no 'inputs' array (it has: "
                             f"{', '.join(sorted(padded.extra)) or 'none'}): --arch models take "
                             "one array: write it with 'maskcli pad -o FILE.npz'")
        synthetic = None if padded else [trace.arch_inputs(arch, pad_value or 0.0, seed)]
        data = padded.inputs if padded else synthetic[0]
        model = models.build_arch(arch, data, units=units, seed=seed, pad_value=pad_value or 0,
                                  verbose=verbose)
    places = {name: f"--input {name}={spec}"
              for name, spec in named_input_files(named_inputs, load=False).items()}
    batch = trace.traced_batch(model, padded, given, pad_value, seed, mask_input, synthetic,
                               places)
    from maskcli.cli.packed_trace import trace_packed

    if trace_packed(ctx, model, batch, fmt, segment_input, seed, dataset.get("maxlen")):
        return  # packed rows: where documents mix, not padding
    if batch.note:
        click.echo(batch.note, err=True)
    with models.full_float32():
        traced = trace.trace_padding(model, batch.inputs, batch.masks,
                                     pad_values=batch.pad_values)
    found = trace.mask_inputs(model, mask_input) if trace.walkable(model) else []
    result = trace.report(traced.rows, model=model.name, inputs=batch.arrays,
                          input_names=batch.names, synthetic=batch.synthetic,
                          padded=batch.padded, versions=models.versions(),
                          padding=traced.summary, mask_inputs=found)
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        from maskcli.render.trace import render_trace

        render_trace(result)
    if not traced.measured:
        click.echo(f"note: {traced.note}", err=True)
    if result["leak"]:
        click.echo(f"mask leak: {result['leak']}", err=True)
    if result["enters"]:
        click.echo(trace.padding_cause(traced, with_drop=False), err=True)
    if not result["ok"]:
        ctx.exit(1)
    padding_ok = (f"; padding ok: {traced.extra_steps} more padding steps change no layer's "
                  "output at real steps" if traced.measured else "")
    unmeasured = [row.path for row in traced.rows if row.is_output and row.padding is None]
    if traced.measured and unmeasured:  # e.g. after a 'valid' convolution: not the inputs' steps
        padding_ok = (f"; padding not compared at the output (layer '{unmeasured[0]}': its "
                      "shape follows the padded length, see audit-loss forward-invariance)")
    if result["explicit_mask"]:
        click.echo(f"explicit mask: {result['explicit_mask']}{padding_ok}", err=True)
        return
    click.echo("mask ok: no layer drops it" + (", and it reaches every output with a time axis"
                                               if batch.padded else "") + padding_ok, err=True)


def _one_array(model, padded, given):
    """INPUT for a model that takes one array: an npz of several fields gives
    its first field (unless an array is named after the model's input), whose
    pad value is the file's ('meta' value)."""
    from maskcli.keras.feed import model_inputs

    spec = model_inputs(model)
    if padded is None or given or (spec is not None and (
            len(spec.names) > 1 or spec.names[0] in padded.extra)):
        return padded
    return padded.one_field()
