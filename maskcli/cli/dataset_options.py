"""The options of a dataset padded inside audit-loss, inspect-mask and
trace-mask: those of ``maskcli pad``, with the same names and meanings."""

from __future__ import annotations

import click

DATASET_HELP = ("a dataset INPUT (jsonl/json records, Parquet, Arrow, a save_to_disk "
                "directory, a folder or glob of shards) is padded as 'maskcli pad' pads it")


def dataset_options(command):
    """Add --split, --value, --padding and --maxlen (pad's options) to ``command``."""
    for option in reversed((
        click.option("--split", metavar="NAME",
                     help="The split of a DatasetDict save_to_disk directory, e.g. train."),
        click.option("--value", "values", metavar="V|NAME=V", multiple=True,
                     help=f"Pad value, as in 'maskcli pad' ({DATASET_HELP}). [default: 0; a "
                          "labels field holding -100 is padded with -100]"),
        click.option("--padding", type=click.Choice(["pre", "post"]),
                     help="Pad a dataset INPUT before or after each sequence. [default: post "
                          "for Parquet, Arrow and save_to_disk (Hugging Face's), pre for jsonl]"),
        click.option("--maxlen", type=click.IntRange(min=0), metavar="N",
                     help="Pad and truncate a dataset INPUT to N steps. [default: the longest]"),
    )):
        command = option(command)
    return command


def dataset_from(options: dict, field: str | None = None, fields=()):
    """The DatasetOptions of the parsed options (``field``/``fields``: --field)."""
    from maskcli.formats.dataset_input import DatasetOptions

    return DatasetOptions(fields=tuple(fields), values=tuple(options.get("values") or ()),
                          padding=options.get("padding"), maxlen=options.get("maxlen"),
                          split=options.get("split"))
