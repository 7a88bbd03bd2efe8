"""``maskcli pack``: documents in, rows of exactly L steps out, several documents a row."""

from __future__ import annotations

import functools
import sys

import click

from maskcli.cli.pad_command import _pad_value


@click.command("pack")
@click.argument("input", default="-", metavar="[INPUT]")
@click.option("--length", type=click.IntRange(min=1), required=True, metavar="L",
              help="Steps per packed row.")
@click.option("--window", type=click.IntRange(min=1), metavar="N",
              help="Documents placed together (best-fit decreasing); memory grows with N. "
                   "[default: 50000]")
@click.option("--overflow", type=click.Choice(["split", "truncate"]), default="split",
              show_default=True,
              help="A document longer than L: split into pieces of L (each its own "
                   "document), or keep its first L steps.")
@click.option("--layout", type=click.Choice(["seqio", "flatten"]), default="seqio",
              show_default=True,
              help="seqio: NAME, NAME_segment_ids, NAME_positions per field; flatten: Hugging "
                   "Face's DataCollatorWithFlattening (position_ids, labels -100 at each "
                   "document's first step).")
@click.option("--cu-seqlens", is_flag=True,
              help="Also write cu_seqlens: per row, where its documents start, then its real "
                   "steps (flash-attention's varlen kernels).")
@click.option("--value", "value_texts", multiple=True, metavar="V|NAME=V",
              help="Pad value after a row's last document; NAME=V sets field NAME's own, "
                   "e.g. labels=-100. Repeatable. [default: 0]")
@click.option("--dtype", default="int32", show_default=True, metavar="D",
              help="Output dtype: int32, int64, float32, float64, str.")
@click.option("--from", "fmt_in",
              type=click.Choice(["auto", "jsonl", "json", "text", "parquet", "arrow"]),
              default="auto", show_default=True,
              help="Input format, as for pad.")
@click.option("--field", "fields", metavar="NAME", multiple=True,
              help="The key (jsonl/json) or list column (Parquet/Arrow) holding the "
                   "documents. Repeat it to pack several fields together (same length in "
                   "each record).")
@click.option("--sep", metavar="TEXT",
              help="text: the token separator, '\\t' for a tab [default: any whitespace].")
@click.option("-o", "--output", default="-", metavar="PATH",
              help="Output file (a folder ending in / for npy), written only on success "
                   "[default: standard output]. With INPUT a folder or glob of shards, a folder "
                   "gets one packed shard per input shard.")
@click.option("--to", "fmt_out", type=click.Choice(["auto", "jsonl", "npz", "npy", "parquet"]),
              default="auto", show_default=True,
              help="Output format; auto goes by the extension of -o, jsonl on standard output.")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bar and no summary line.")
def pack(input, length, window, overflow, layout, cu_seqlens, value_texts, dtype, fmt_in,
         fields, sep, output, fmt_out, quiet):
    """Pack documents into rows of exactly L steps, several to a row.

    Documents are placed by best-fit decreasing over a window of documents,
    so rows are nearly full. Each row's documents get segment ids 1..k (0 =
    padding) and positions that restart at 0: give both to the model, so
    that attention stays within a document. Prints the fill (real steps /
    cells) and the padding saved against pad --maxlen L.

    \b
    maskcli pack data.jsonl --length 8
    maskcli pack train.parquet --field input_ids --length 1024 -o packed.npz
    maskcli pack train.parquet --field input_ids --field labels --value labels=-100 \\
        --length 2048 -o packed.parquet
    maskcli pack train.jsonl --field input_ids --layout flatten --cu-seqlens \\
        --length 4096 -o packed.npz
    """
    from maskcli.core.fields import split_values
    from maskcli.core.packing import DEFAULT_WINDOW, PackOptions
    from maskcli.core.padding import parse_dtype
    from maskcli.formats.pack_pipeline import pack_file
    from maskcli.formats.packed_writers import pack_format
    from maskcli.formats.readers import ReadOptions
    from maskcli.formats.shards import is_folder_output, names_shards, pack_shards

    if sep == "":
        raise click.BadParameter("the separator is empty: give one such as ',' or '\\t'",
                                 param_hint="'--sep'")
    if output == "-" and pack_format(output, fmt_out) in ("npz", "parquet") \
            and sys.stdout.isatty():
        raise click.UsageError(f"--to {fmt_out} is binary: write it to a file with -o, or pipe it")
    parsed_dtype = parse_dtype(dtype)
    default, named = split_values(value_texts, fields)
    value = _pad_value("0" if default is None else default, parsed_dtype)
    values = {name: _pad_value(text, parsed_dtype) for name, text in named.items()}
    options = PackOptions(length, window or DEFAULT_WINDOW, overflow)
    read = ReadOptions(fmt_in, fields, "\t" if sep == "\\t" else sep)
    # A folder or glob of shards into a folder: one packed shard per input shard.
    sharded = is_folder_output(output) and names_shards(input)
    progress = None
    if not quiet and sys.stderr.isatty():
        from maskcli.render.progress import ProgressBar

        progress = ProgressBar("packing", unit="shards") if sharded else ProgressBar("packing")
    try:
        run = functools.partial(pack_shards, input, output) if sharded else \
            functools.partial(pack_file, input, output)
        report = run(options=options, read=read, to=fmt_out, dtype=parsed_dtype, value=value,
                     values=values, layout=layout, cu_seqlens=cu_seqlens, progress=progress)
        if sharded:
            report, shards = report
    finally:
        if progress is not None:
            progress.close()
    if report.overflowed:
        what = (f"were split into {report.overflowed + report.pieces} pieces of at most "
                f"{length} steps (--overflow split)" if overflow == "split" else
                f"lost {report.cut_steps} steps at the end (--overflow truncate)")
        click.echo(f"warning: {report.overflowed} of {report.documents} documents were longer "
                   f"than --length {length} and {what}", err=True)
    if report.empty:
        click.echo(f"warning: {report.empty} of {report.documents} documents are empty and "
                   "were skipped", err=True)
    if not quiet:
        click.echo(summary(report) + (f"; {shards} shards into {output}" if sharded else ""),
                   err=True)


def summary(report) -> str:
    """The fill, and the cells saved against padding each document to L."""
    line = (f"packed {report.documents} documents into {report.rows} rows of {report.length}: "
            f"fill {report.fill:.4f} (real steps / cells)")
    if report.documents:
        saved = 1 - report.rows / report.documents
        line += (f"; {saved:.1%} fewer cells than pad --maxlen {report.length} "
                 f"({report.documents} rows)")
    return line
