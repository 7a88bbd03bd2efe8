"""``maskcli audit-loss``: run a model, prove that its loss ignores padding."""

from __future__ import annotations

import sys

import click

from maskcli.cli.dataset_options import dataset_from, dataset_options
from maskcli.cli.group import ARCH_NAMES, LOSS_NAMES, SEED


@click.command("audit-loss")
@click.argument("input_path", metavar="[INPUT]", required=False)
@click.option("--input", "named_inputs", metavar="NAME=FILE[:ARRAY]", multiple=True,
              help="Feed model input NAME from FILE (npy, jsonl, or an npz array). Repeatable. "
                   "With --input and no INPUT, standard input is not read.")
@click.option("--mask-input", metavar="NAME",
              help="The model input that is a padding mask (1 = real step). Default: inputs "
                   "named padding_mask, attention_mask or *_padding_mask.")
@click.option("--sample-weight", "sample_weight", metavar="FILE|mask",
              help="Sample weights as fit takes them: npy (sequences, steps) or (sequences,), "
                   "or 'mask' for the reference mask. Default: the 'sample_weight' array of "
                   "INPUT or of the targets npz.")
@click.option("--output", metavar="NAME",
              help="The output to audit, for a model with several (default: the only one with "
                   "a compiled loss, or the only one).")
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
@click.option("--batch-size", type=click.IntRange(min=1), metavar="B",
              help="Run every model call in batches of B (memory bounded by B) and add the "
                   "batch-weighting check. Default: one batch, unless that exceeds the "
                   "memory budget.")
@click.option("--accumulation-steps", type=click.IntRange(min=1), metavar="K",
              help="Updates average K micro-batches of --batch-size (gradient accumulation): "
                   "check how that weighs real tokens. Default: the compiled optimizer's "
                   "gradient_accumulation_steps.")
@click.option("--replicas", type=click.IntRange(min=1), metavar="R",
              help="Each micro-batch is split over R data-parallel replicas, each normalizing "
                   "its own share (tf.distribute): add that to the accumulation check.")
@click.option("--limit", type=click.IntRange(min=1), metavar="N",
              help="Audit the first N sequences only (the input is not read whole).")
@click.option("--sample", type=click.IntRange(min=1), metavar="N",
              help="Audit a random sample of N sequences, drawn with --seed (a file, "
                   "not standard input).")
@click.option("--strict", is_flag=True,
              help="A warning (batch-weighting) fails the audit: exit 1.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bar (shown on standard error when it is a terminal and the "
                   "audit takes over 2 seconds).")
@click.option("--per-sample", is_flag=True, help="Add one row per sequence: length, "
                                                 "masked loss, unmasked loss (packed rows: "
                                                 "one per document, its loss packed and "
                                                 "alone).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]),
              help="Output format (default: table on a terminal, json otherwise).")
@click.option("--verbose", is_flag=True, help="Show TensorFlow's logs and Python warnings.")
@click.option("--field", "fields", metavar="NAME", multiple=True,
              help="A dataset INPUT's column (or jsonl key) to pad, as in 'maskcli pad'. "
                   "Repeatable. [default: every list column]")
@dataset_options
@click.option("--segment-input", metavar="NAME",
              help="Packed rows: the model input holding segment ids (default: an input named "
                   "*_segment_ids). Runs segment-isolation, boundary-targets and loss-parity "
                   "(real steps: segment ids > 0) instead of the padding checks "
                   "(docs/packing.md). With no INPUT and nothing piped in, a packed model runs "
                   "on synthetic packed rows (--seed, --maxlen).")
@click.pass_context
def audit_loss(ctx, input_path, named_inputs, mask_input, sample_weight, output, mask_path, mode,
               mask_value, target_pad, targets_path, model_path, arch, unsafe, imports, loss,
               units, seed, train_steps, batch_size, limit, sample, strict, quiet, per_sample,
               fmt, verbose, fields, segment_input, accumulation_steps=None, replicas=None,
               **dataset):
    """Prove that padding is ignored by a Keras model's loss, or show where it leaks.

    Runs a real Keras model on the padded batch and checks loss-parity,
    target-invariance, padding-gradient, forward-invariance and metric-parity;
    with --batch-size, in batches as training runs, plus batch-weighting.
    INPUT (default '-', standard input) is an npz from 'maskcli pad', an npz
    whose arrays are named after the model's inputs, an npy or a jsonl; or a
    dataset as it is (jsonl records, Parquet, Arrow, a save_to_disk directory,
    a glob), padded here as 'maskcli pad' pads it (--field, --value,
    --padding, --maxlen). Model inputs are fed by name, or by their Hugging
    Face names (token_ids <- input_ids, padding_mask <- attention_mask,
    segment_ids <- token_type_ids); labels of -100 are tokens not to score.

    \b
    maskcli pad data.jsonl --padding post -o padded.npz
    maskcli audit-loss padded.npz
    maskcli audit-loss padded.npz --arch embedding-conv      # a deliberate leak: exit 1
    maskcli audit-loss padded.npz --model model.keras --targets y.npy --import layers.py
    maskcli audit-loss x.npy --targets y.npy --target-pad -100 --model tagger.keras
    maskcli audit-loss batch.npz --model bert_tagger.keras --sample-weight mask
    maskcli audit-loss big.npz --batch-size 256 --sample 2000   # as training batches it
    maskcli audit-loss ner_dataset/ --model tagger.keras --targets labels
    maskcli audit-loss x.npz --model m.keras --batch-size 8 --accumulation-steps 4

    Exit status: 0 padding ignored, 1 padding leaks (or a warning with
    --strict), 2 usage or input error.
    """
    import warnings

    from maskcli.keras.audit import audit_files

    if fmt is None:
        fmt = "table" if sys.stdout.isatty() else "json"
    if unsafe and model_path:
        click.echo(f"Warning: --unsafe: loading {model_path} may run code stored in it; "
                   "use it only for files you trust", err=True)
    bar = None
    if not quiet and sys.stderr.isatty():  # never on a pipe
        from maskcli.render.progress import BatchBar

        bar = BatchBar()
    try:
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            report = audit_files(
                input_path, mask_path=mask_path, mode=mode, mask_value=mask_value,
                target_pad=target_pad, targets_path=targets_path, model_path=model_path,
                arch=arch, unsafe=unsafe, imports=imports, loss=loss, units=units, seed=seed,
                train_steps=train_steps, per_sample=per_sample, verbose=verbose,
                named_inputs=named_inputs, sample_weight=sample_weight, output=output,
                mask_input=mask_input, batch_size=batch_size, limit=limit, sample=sample,
                strict=strict, progress=bar, dataset=dataset_from(dataset, fields=fields),
                accumulation_steps=accumulation_steps, replicas=replicas,
                segment_input=segment_input)
    finally:
        if bar:
            bar.close()
    if fmt == "json":
        click.echo(report.to_json())
        for check in report.checks:
            if check.status == "warn":
                click.echo(f"warning: {check.id}: {check.detail}", err=True)
    else:
        from maskcli.render.audit import render_report

        render_report(report)
    ctx.exit(report.exit_code)
