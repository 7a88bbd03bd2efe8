"""``maskcli inspect-mask``: the mask Keras would build, shown and diagnosed."""

from __future__ import annotations

import os
import sys

import click

from maskcli.cli.dataset_options import dataset_from, dataset_options
from maskcli.core.errors import UsageError


@click.command("inspect-mask")
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
@click.option("--batch-size", type=click.IntRange(min=1), metavar="B",
              help="Also show how batches of B weigh the real tokens (Keras normalizes a "
                   "masked loss per batch), and the padding that sorting by length saves.")
@click.option("--accumulation-steps", type=click.IntRange(min=1), metavar="K",
              help="Also show how updates that average K micro-batches of --batch-size "
                   "(gradient accumulation) weigh the real tokens.")
@click.option("--replicas", type=click.IntRange(min=1), metavar="R",
              help="With --accumulation-steps: each micro-batch split over R data-parallel "
                   "replicas, each normalizing its own share.")
@click.option("--strict", is_flag=True, help="Exit 1 when any diagnostic fires (for CI).")
@click.option("--svg", type=click.Path(dir_okay=False), metavar="FILE",
              help="Save the display as an SVG image.")
@click.option("--field", metavar="NAME",
              help="An npz of several fields (maskcli pad --field A --field B): the field to "
                   "inspect, with its own mask and pad value. [default: the first]")
@click.option("--ignore", "ignore", metavar="ID", multiple=True,
              help="Silence the diagnostic ID (e.g. pre-padding-rnn), for --strict in CI. "
                   "Repeatable. A labels field (named labels, or padded with -100) has no "
                   "Embedding diagnostics anyway.")
@dataset_options
@click.option("--segment-input", metavar="NAME",
              help="Packed data: the array of segment ids (default: an array named "
                   "*_segment_ids; KerasHub's plain segment_ids are token types, not packing).")
@click.option("--bidirectional", is_flag=True,
              help="Packed data: the attention mask shown and written is block-diagonal "
                   "without the causal triangle.")
@click.pass_context
def inspect_mask_command(ctx, input, mode, mask_value, fmt, output, polarity, as_int, rows,
                         batch_size, strict, svg, field, ignore, segment_input, bidirectional,
                         accumulation_steps=None, replicas=None, **dataset):
    """Build the mask Keras would build from padded data, show it and diagnose it.

    \b
    maskcli inspect-mask padded.npz
    maskcli pad data.jsonl --padding post | maskcli inspect-mask
    maskcli inspect-mask features.npy --mode masking --mask-value -1
    maskcli inspect-mask padded.npz -o mask.npy --polarity ignore
    maskcli inspect-mask padded.npz --format json --strict > report.json
    maskcli inspect-mask padded.npz --batch-size 32   # token weights in batches of 32
    maskcli inspect-mask padded.npz --batch-size 8 --accumulation-steps 4

    Packed data (maskcli pack: NAME_segment_ids, NAME_positions) shows each
    row's documents and the attention mask the model should use (-o writes
    it, rows x steps x steps), and diagnoses positions-not-restarting,
    segments-not-contiguous, segments-out-of-order, padding-between-documents,
    target-crosses-boundary and first-label-not-ignored (docs/packing.md).

    The mask is True at REAL steps (Keras' polarity) unless --polarity ignore.
    Diagnostics: pad-value-inside, partial-timestep, non-finite, all-padding-row,
    pre-padding-rnn, mixed-padding-sides, mask-mismatch (see docs/inspect-mask.md).
    """


    from maskcli.core.diagnose import inspect_mask
    from maskcli.core.masks import with_polarity
    from maskcli.formats.files import atomic_output, check_destination, refuse_overwrite

    terminal = sys.stdout.isatty()
    fmt = fmt or ("table" if terminal else "json")
    if fmt == "npy" and terminal:
        raise UsageError("--format npy writes binary data: redirect standard output "
                         "(> mask.npy) or use -o mask.npy")
    targets = [(path, option) for path, option in ((output, "-o"), (svg, "--svg")) if path]
    if len(targets) == 2 and os.path.abspath(output) == os.path.abspath(svg):
        raise UsageError(f"-o and --svg both name {output}: give two different files")
    for target, option in targets:  # before anything is written, to a file or stdout
        refuse_overwrite(target, input, option=option)
        check_destination(target, option)

    from maskcli.cli.packed_inspect import inspect_packed_command, load_maybe_packed, write_mask
    from maskcli.core.label_fields import check_ignored, silenced

    ignore = check_ignored(ignore)
    padded, arrays = load_maybe_packed(input, field, segment_input,
                                       dataset=dataset_from(dataset, field))
    if arrays is not None:
        return inspect_packed_command(ctx, padded.source, arrays, segment_input, not bidirectional,
                                      fmt, output, rows, strict, svg, padded.meta,
                                      batch_size=batch_size, replicas=replicas,
                                      accumulation_steps=accumulation_steps)
    if segment_input or bidirectional:
        raise UsageError(f"--segment-input and --bidirectional apply to packed data, and "
                         f"{padded.source} holds no NAME_segment_ids array: drop them")
    report = inspect_mask(padded, mode=mode, mask_value=mask_value, batch_size=batch_size,
                          accumulation_steps=accumulation_steps, replicas=replicas)
    report.diagnostics, notes = silenced(report.diagnostics, padded, ignore)
    if padded.meta.get("padded_here"):
        notes.insert(0, f"{padded.source}: {padded.meta['padded_here']}")
    write_mask(with_polarity(report.mask, polarity, as_int), report, output, fmt)
    if fmt == "table" or svg:
        from maskcli.render import inspect as render

        console = render.make_console(to_stdout=fmt == "table", record=bool(svg))
        render.show(console, report, rows=rows, polarity=polarity, as_int=as_int)
        if svg:
            with atomic_output(svg, "--svg") as handle:
                handle.write(render.svg(console, report).encode())
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if fmt != "table":
        for diagnostic in report.diagnostics:
            click.echo(f"warning: {diagnostic.id}: {diagnostic.message}", err=True)
    if strict and report.diagnostics:
        ctx.exit(1)
