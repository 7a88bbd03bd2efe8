"""``maskcli pad``: raw sequences in, padded arrays out."""

from __future__ import annotations

import sys

import click

from maskcli.core.errors import MaskcliError


@click.command("pad")
@click.argument("input", default="-", metavar="[INPUT]")
@click.option("--maxlen", type=click.IntRange(min=0), metavar="N",
              help="Pad and truncate to N steps [default: the longest sequence].")
@click.option("--padding", type=click.Choice(["pre", "post"]), default="pre", show_default=True,
              help="Pad before or after each sequence (Keras' default: pre).")
@click.option("--truncating", type=click.Choice(["pre", "post"]), default="pre",
              show_default=True, help="Cut long sequences at the front or the end.")
@click.option("--value", "value_texts", multiple=True, metavar="V|NAME=V",
              help="Pad value: a number (nan and -inf too), or a string with --dtype str; "
                   "NAME=V sets field NAME's own, e.g. labels=-100. Repeatable. [default: 0]")
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
@click.option("--from", "fmt_in",
              type=click.Choice(["auto", "jsonl", "json", "text", "parquet", "arrow"]),
              default="auto", show_default=True,
              help="Input format; auto goes by the extension (.jsonl/.ndjson, .json, .txt, "
                   ".parquet, .arrow/.feather) and by the first bytes.")
@click.option("--field", "fields", metavar="NAME", multiple=True,
              help="The key (jsonl/json objects) or list column (Parquet/Arrow) holding the "
                   "sequences, e.g. input_ids; NEW=OLD writes column OLD as NEW, e.g. "
                   "token_ids=input_ids. Repeat it to pad several fields at once.")
@click.option("--sep", metavar="TEXT",
              help="text: the token separator, '\\t' for a tab [default: any whitespace].")
@click.option("-o", "--output", default="-", metavar="PATH",
              help="Output file, written only on success [default: standard output]; a folder "
                   "(existing, or ending in /) gets one output shard per input shard.")
@click.option("--to", "fmt_out", type=click.Choice(["auto", "jsonl", "csv", "tsv", "npy", "npz",
                                                         "parquet"]),
              default="auto", show_default=True,
              help="Output format; auto goes by the extension of -o, jsonl on standard output.")
@click.option("--mask-as", metavar="NAME",
              help="npz, parquet: also write the mask as int32 1/0 under NAME, e.g. padding_mask "
                   "(KerasHub) or attention_mask (Hugging Face).")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bar (shown on a terminal when a file takes over a second).")
@click.option("--split", metavar="NAME",
              help="The split of a DatasetDict save_to_disk directory, e.g. train.")
def pad(input, maxlen, padding, truncating, value_texts, dtype, pad_to_multiple_of, vocab,
        save_vocab, fmt_in, fields, sep, output, fmt_out, mask_as, quiet, split):
    """Pad and truncate sequences exactly like keras.utils.pad_sequences.

    INPUT is a jsonl, json, text, Parquet or Arrow file, or - for standard
    input (the default); or several read as one: a datasets save_to_disk
    directory (--split NAME for a DatasetDict), a folder or a glob of shards.
    Options named as in Keras come first, with Keras' defaults.

    \b
    maskcli pad sample_data/keras_guide.jsonl --padding post
    maskcli pad data.jsonl --maxlen 64 --padding post -o padded.npz
    maskcli pad records.jsonl --field input_ids --to csv
    maskcli pad sentences.txt --save-vocab vocab.txt --padding post
    maskcli pad train.parquet --field input_ids --field labels --value labels=-100 \\
        --padding post --mask-as padding_mask -o train.npz
    """
    from maskcli.core.fields import split_renames, split_values
    from maskcli.core.padding import PadOptions, parse_dtype
    from maskcli.formats import writers
    from maskcli.formats.pipeline import pad_file
    from maskcli.formats.readers import ReadOptions
    from maskcli.formats.shards import is_folder_output, pad_shards

    if sep == "":
        raise click.BadParameter("the separator is empty: give one such as ',' or '\\t'",
                                 param_hint="'--sep'")
    if output == "-" and writers.output_format(output, fmt_out) in writers.BINARY_FORMATS \
            and sys.stdout.isatty():
        raise click.UsageError(f"--to {fmt_out} is binary: write it to a file with -o, or pipe it")
    parsed_dtype = parse_dtype(dtype)
    fields, renames = split_renames(fields)
    written = tuple(renames.get(name, name) for name in fields)
    default, named = split_values(value_texts, written)
    value = _pad_value("0" if default is None else default, parsed_dtype)
    values = {name: _pad_value(text, parsed_dtype) for name, text in named.items()}
    options = PadOptions.make(maxlen, parsed_dtype, padding, truncating, value, pad_to_multiple_of)
    read = ReadOptions(fmt_in, fields, "\t" if sep == "\\t" else sep)
    sharded = is_folder_output(output)
    progress = None
    if not quiet and _stderr_is_terminal():
        from maskcli.render.progress import ProgressBar

        progress = ProgressBar("padding", unit="shards") if sharded else ProgressBar("padding")
    try:
        if sharded:  # one output shard per input shard
            report, shards = pad_shards(input, output, options=options, read=read, to=fmt_out,
                                        vocab=vocab, save_vocab=save_vocab, values=values,
                                        mask_as=mask_as, progress=progress, renames=renames)
        else:
            report = pad_file(input, output, options=options, read=read, to=fmt_out,
                              vocab=vocab, save_vocab=save_vocab, progress=progress,
                              values=values, mask_as=mask_as, renames=renames, split=split)
    finally:
        if progress is not None:
            progress.close()
    if sharded:
        click.echo(f"padded {report.sequences} sequences of {shards} shards into {output}",
                   err=True)
    side = "front" if truncating == "pre" else "end"
    several = len(report.fields) > 1
    for name, truncated in (report.truncated_fields.items() if several
                            else [(None, report.truncated)]):
        if truncated:
            click.echo(f"warning: {f'{name}: ' if several else ''}{truncated} of "
                       f"{report.sequences} sequences were longer than --maxlen {report.maxlen} "
                       f"and lost steps at the {side} (--truncating {truncating})", err=True)
    if report.oov:
        click.echo(f"warning: {report.oov} of {report.tokens} tokens are not in the vocabulary "
                   f"and became id 1 ({report.oov_token})", err=True)
    if not report.sequences:
        click.echo(f"warning: {report.source} holds no sequences: wrote an empty array of shape "
                   f"{report.shape}", err=True)


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _pad_value(text: str, dtype):
    """A --value as the dtype wants it: the text for str, else a number."""
    from maskcli.core.masks import parse_value

    if dtype.kind == "U":
        return text
    try:
        return parse_value(text)
    except MaskcliError as exc:
        raise click.BadParameter(str(exc), param_hint="'--value'") from None
