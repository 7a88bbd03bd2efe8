"""``maskcli pad|pack SHARDS -o FOLDER/``: one output shard per input shard.

A dataset prepared on a cluster lives as many shards (a ``save_to_disk``
directory, a folder or a glob of Parquet, Arrow or jsonl files). With ``-o``
an existing folder, or a path ending in ``/``, each input shard is padded
alone by :func:`maskcli.formats.pipeline.pad_file` (streamed, written to a
temporary file and renamed into place) into ``FOLDER/STEM.EXT``, in the
dataset's order; a shard already written stays whole if a later one fails.
Every shard is padded to the same ``--maxlen``, which is therefore required,
so the output shards share one schema. The format is ``--to`` (Parquet by
default: fixed-size list columns, masks and lengths, as ``maskcli.pad_arrow``
writes them). ``pack`` packs each shard alone, by
:func:`maskcli.formats.pack_pipeline.pack_file`, the same way.

The shards are listed by :func:`shard_files`: a ``save_to_disk`` directory
in the order of its ``state.json``, a folder's Parquet, Arrow and jsonl files
or a glob's matches in name order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from maskcli.core.errors import UsageError
from maskcli.core.packing import PackReport
from maskcli.core.padding import PadOptions
from maskcli.formats import datasets_dir, readers
from maskcli.formats.datasets_dir import SHARD_SUFFIXES  # noqa: F401 (where it used to live)
from maskcli.formats.files import STDIN, refuse_overwrite
from maskcli.formats.pack_pipeline import pack_file
from maskcli.formats.pipeline import PadReport, pad_file

EXTENSIONS = {"jsonl": ".jsonl", "csv": ".csv", "tsv": ".tsv", "npy": ".npy", "npz": ".npz",
              "parquet": ".parquet"}
PACK_EXTENSIONS = {"jsonl": ".jsonl", "npz": ".npz", "parquet": ".parquet",
                   "npy": "/"}  # pack writes npy as a folder of arrays


def names_shards(path: str) -> bool:
    """Whether ``path`` names several shards: a folder, or a glob that is not a file's name."""
    return datasets_dir.several(path)


def is_folder_output(output: str) -> bool:
    """Whether ``-o`` names a folder of shards: an existing folder, or a path ending in ``/``."""
    return output != STDIN and (output.endswith(("/", os.sep)) or os.path.isdir(output))


def shard_files(path: str, split: str | None = None) -> list[str]:
    """The shards of ``path``, in the dataset's order (see
    :func:`maskcli.formats.datasets_dir.dataset_files`)."""
    return datasets_dir.dataset_files(path, split)


def pad_shards(inputs: str, output: str, *, options: PadOptions,
               read: readers.ReadOptions = readers.ReadOptions(), to: str = "auto",
               vocab: str | None = None, save_vocab: str | None = None,
               values: dict | None = None, mask_as: str | None = None,
               progress: Callable[[int, int], None] | None = None,
               renames: dict | None = None) -> tuple[PadReport, int]:
    """Pad each shard of ``inputs`` into the folder ``output``: the report of
    them all (sequences and truncations added up) and the number of shards.
    ``progress`` is called with ``(shards done, shards in all)``."""
    if options.maxlen is None:
        raise UsageError(f"-o {output} writes one shard per input shard, each padded alone, and "
                         "the shards of one dataset must share one width: give --maxlen N")
    if save_vocab:
        raise UsageError(f"--save-vocab builds one vocabulary from one input, but -o {output} "
                         "pads each shard alone: build it first from the whole dataset, then "
                         "pad the shards with --vocab FILE")
    fmt, pairs = _shards(inputs, output, to, EXTENSIONS)
    total = PadReport(source=inputs)
    for done, (shard, target) in enumerate(pairs, 1):
        report = pad_file(shard, target, options=options, read=read, to=fmt, vocab=vocab,
                          values=values, mask_as=mask_as, renames=renames)
        _add(total, report)
        if progress is not None:
            progress(done, len(pairs))
    return total, len(pairs)


def pack_shards(inputs: str, output: str, *, progress: Callable[[int, int], None] | None = None,
                to: str = "auto", **options) -> tuple[PackReport, int]:
    """Pack each shard of ``inputs`` alone into the folder ``output`` with
    ``pack_file``'s ``options``: the counts of them all, and the number of shards."""
    fmt, pairs = _shards(inputs, output, to, PACK_EXTENSIONS)
    total = PackReport()
    for done, (shard, target) in enumerate(pairs, 1):
        report = pack_file(shard, target, to=fmt, **options)
        for name, count in vars(report).items():
            setattr(total, name, count if name == "length" else getattr(total, name) + count)
        if progress is not None:
            progress(done, len(pairs))
    return total, len(pairs)


def _shards(inputs: str, output: str, to: str, extensions: dict) -> tuple[str, list]:
    """The output format, and each input shard with its output path."""
    fmt = "parquet" if to == "auto" else to
    if fmt not in extensions:
        raise UsageError(f"--to {fmt} cannot be written per shard: use one of "
                         f"{', '.join(extensions)}")
    if inputs == STDIN:
        raise UsageError(f"-o {output} writes one shard per input file: give a folder or a glob "
                         "of them, not standard input")
    files = shard_files(inputs)
    folder = _folder(output)
    return fmt, list(zip(files, _targets(files, folder, extensions[fmt])))


def _folder(output: str) -> Path:
    folder = Path(output)
    if folder.is_dir():
        return folder
    if folder.exists():
        raise UsageError(f"-o {output} is a file, not a folder: give a folder for the shards")
    if not folder.parent.is_dir():
        raise UsageError(f"-o {output}: folder {folder.parent} does not exist: create it first")
    folder.mkdir()
    return folder


def _targets(files: list[str], folder: Path, extension: str) -> list[str]:
    """``FOLDER/STEM.EXT`` per shard, refused where two shards would share a
    name or a shard would be written over an input."""
    targets, seen = [], {}
    for shard in files:
        target = str(folder / Path(shard).stem) + extension
        if target in seen:
            raise UsageError(f"{seen[target]} and {shard} would both be written to {target}: "
                             "give shards with different names")
        seen[target] = shard
        refuse_overwrite(target.rstrip("/"), *files)
        targets.append(target)
    return targets


def _add(total: PadReport, report: PadReport) -> None:
    total.sequences += report.sequences
    total.truncated += report.truncated
    total.maxlen, total.fields = report.maxlen, report.fields
    total.shape = (total.sequences,) + report.shape[1:]
    for name, truncated in report.truncated_fields.items():
        total.truncated_fields[name] = total.truncated_fields.get(name, 0) + truncated
    total.tokens += report.tokens
    total.oov += report.oov
    total.oov_token = report.oov_token or total.oov_token
