"""A dataset as it is, where a padded batch is expected: audit-loss,
inspect-mask and trace-mask read any dataset input and pad it themselves.

Read: jsonl and json (objects with one sequence per key, or ragged arrays),
Parquet, Arrow (file or stream), a ``datasets`` ``save_to_disk`` directory
(``split`` for a DatasetDict), a folder of shards, a glob. Unpadded data is
padded by :func:`maskcli.formats.pipeline.pad_file` exactly as ``maskcli pad``
would with the same options (``--field``, ``--value NAME=V``, ``--padding``,
``--maxlen``), into a temporary npz read back like any other. Defaults: every
list column (or key) is a field; tables (Parquet, Arrow, datasets) are padded
post, as Hugging Face's tokenizers and collators pad, jsonl pre, as
``pad_sequences`` does; a ``labels`` field (or the targets field) that holds
-100 at real steps is padded with -100, as ``DataCollatorForTokenClassification``
pads it (the padded npz rewritten: the data is read once).
:attr:`Padded.meta` ``padded_here`` says in one sentence how it was padded.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from maskcli.core.errors import InputError, UsageError
from maskcli.core.label_fields import IGNORE_LABEL
from maskcli.core.padded import Padded
from maskcli.formats import datasets_dir

LABELS = "labels"
_TABLE_SUFFIXES = (".parquet", ".pq", ".arrow", ".arrows", ".feather", ".ipc")
_TABLE_MAGIC = (b"PAR1", b"ARROW1", b"\xff\xff\xff\xff")
_PADDED_SUFFIXES = (".npz", ".npy", ".csv", ".tsv")  # padded arrays, never a dataset
_HEAD = 1 << 16


@dataclass(frozen=True)
class DatasetOptions:
    """``maskcli pad``'s options, for a dataset padded inside another command."""

    fields: tuple[str, ...] = ()
    values: tuple[str, ...] = ()  # --value texts: V or NAME=V
    padding: str | None = None  # None: post for tables, pre for jsonl/json
    maxlen: int | None = None
    split: str | None = None
    targets: str | None = None  # the targets field: padded with -100 when it holds -100


def is_dataset(path: str, head: bytes | None = None) -> bool:
    """Whether ``path`` (whose first bytes are ``head``, if read) is a dataset
    to pad rather than padded arrays: several files, a table, or jsonl/json
    records that are objects or ragged arrays."""
    if path != datasets_dir.STDIN and (datasets_dir.several(path) or os.path.isdir(path)):
        return True
    if path != datasets_dir.STDIN and Path(path).suffix.lower() in _TABLE_SUFFIXES:
        return True
    if path != datasets_dir.STDIN and Path(path).suffix.lower() in _PADDED_SUFFIXES:
        return False
    if head is None:
        head = _head(path)
    if head.startswith(_TABLE_MAGIC):
        return True
    return _unpadded_json(head)


def load_input(path: str, options: DatasetOptions = DatasetOptions(), *,
               field: str | None = None, named: bool = False, data: bytes | None = None) -> Padded:
    """The dataset at ``path`` padded as ``maskcli pad`` pads it (``data``: the
    bytes of standard input, already read), read back as
    :func:`maskcli.formats.arrays.load_padded` reads an npz (``field``, ``named``)."""
    from maskcli.formats.arrays import load_padded

    with tempfile.TemporaryDirectory(prefix="maskcli-") as folder:
        name = "<stdin>" if path == datasets_dir.STDIN else path
        if data is not None:
            path = os.path.join(folder, "stdin")
            Path(path).write_bytes(data)
        padded_path = os.path.join(folder, "padded.npz")
        sentence = _pad(path, name, options, padded_path)
        padded = load_padded(padded_path, field=field, named=named)
    described = name if data is not None else datasets_dir.describe(path, options.split)
    source = padded.source.replace(padded_path, described)
    return replace(padded, source=source, meta={**padded.meta, "padded_here": sentence})


def _pad(path: str, name: str, options: DatasetOptions, output: str) -> str:
    """Pad ``path`` into the npz ``output``; the sentence that says how."""
    from maskcli.core.fields import split_renames, split_values
    from maskcli.core.masks import parse_value
    from maskcli.core.padding import PadOptions, parse_dtype
    from maskcli.formats.ignore_label_padding import pad_with_ignore_label
    from maskcli.formats.pipeline import pad_file
    from maskcli.formats.readers import ReadOptions

    files = datasets_dir.dataset_files(path, options.split)
    table = _is_table(files[0])
    read_names, renames = split_renames(options.fields)
    read_names = read_names or _list_fields(files[0], table)
    fields = tuple(renames.get(name, name) for name in read_names)  # as written
    padding = options.padding or ("post" if table else "pre")
    default, named = split_values(options.values, fields)
    dtype = parse_dtype("int32")
    value = parse_value("0" if default is None else default, "--value")
    read = ReadOptions(fields=read_names)

    def run(values: dict):
        pad_options = PadOptions.make(options.maxlen, dtype, padding, "pre" if padding == "pre"
                                      else "post", value, None)
        return pad_file(path, output, options=pad_options, read=read, to="npz",
                        values={key: parse_value(text, f"--value {key}=")
                                for key, text in values.items()}, split=options.split,
                        renames=renames)

    report = run(named)
    labels = [key for key in dict.fromkeys((options.targets, LABELS)) if key in fields
              and key not in named]
    if labels and report.sequences:  # the labels' padding is -100 too, as the collators pad it
        labels = pad_with_ignore_label(output, labels)  # in the npz: the data is read once
        named = {**named, **{key: str(IGNORE_LABEL) for key in labels}}
    if report.sequences == 0:
        raise InputError(f"{name} holds no sequences: give a dataset with rows")
    shown = [f"{renames[key]}={key}" if key in renames else key for key in read_names]
    args = [name] + [f"--field={key}" if key.startswith("-") else f"--field {shlex.quote(key)}"
                     for key in shown]
    args += ([f"--value {shlex.quote(default)}"] if default is not None else [])
    args += [f"--value {shlex.quote(f'{key}={text}')}" for key, text in named.items()]
    args += [f"--padding {padding}"] + ([f"--maxlen {options.maxlen}"] if options.maxlen else [])
    width = (f"--maxlen {options.maxlen}" if options.maxlen is not None
             else "its longest row" if len(fields) < 2 else "each field's longest row")
    return (f"{report.sequences} rows padded here as 'maskcli pad {' '.join(args)}' pads them "
            f"({padding}, to {width}: {report.maxlen} steps)")


def _is_table(path: str) -> bool:
    return Path(path).suffix.lower() in _TABLE_SUFFIXES or _head(path).startswith(_TABLE_MAGIC)


def _list_fields(path: str, table: bool) -> tuple[str, ...]:
    """Every list column of a table, every list-valued key of the first jsonl
    or json record; () for bare arrays."""
    if table:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            if _head(path).startswith(b"PAR1"):
                schema = pq.read_schema(path)
            elif _head(path).startswith(b"ARROW1"):
                schema = pa.ipc.open_file(path).schema
            else:
                schema = pa.ipc.open_stream(pa.OSFile(path)).schema
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: its columns cannot be read ({str(exc).splitlines()[0]}): "
                             "re-export it, e.g. with Dataset.to_parquet") from None
        return tuple(column.name for column in schema  # masks (lists of booleans) are not fields
                     if (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
                         or pa.types.is_fixed_size_list(column.type))
                     and not pa.types.is_boolean(column.type.value_type))
    record = _first_record(_head(path))
    if isinstance(record, dict):
        return tuple(key for key, value in record.items() if isinstance(value, list))
    return ()


def _head(path: str) -> bytes:
    if path == datasets_dir.STDIN or not os.path.isfile(path):
        return b""
    try:
        with open(path, "rb") as handle:
            return handle.read(_HEAD)
    except OSError:  # the reader that follows says what is wrong, naming the file
        return b""


def _first_record(head: bytes):
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"[") and not text[1:].lstrip().startswith((b"[", b"{")):
        line = text.split(b"\n", 1)[0]
        try:
            return json.loads(line)
        except (ValueError, RecursionError):
            return None
    if text.startswith(b"["):  # a json document: its first record
        text = text[1:].lstrip()
    try:
        return json.JSONDecoder().raw_decode(text.decode("utf-8", "replace"))[0]
    except (ValueError, RecursionError):
        return None


def _unpadded_json(head: bytes) -> bool:
    """Whether jsonl/json text holds records (objects) or arrays of different lengths."""
    record = _first_record(head)
    if isinstance(record, dict):
        return True
    lines = head.removeprefix(b"\xef\xbb\xbf").splitlines()[:-1] or head.splitlines()[:1]
    lengths = set()
    for line in lines[:1000]:
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):
            return False
        if not isinstance(row, list):
            return False
        lengths.add(len(row))
    return len(lengths) > 1


def check_options(options: DatasetOptions, path: str | None) -> None:
    """Refuse padding options given for an input that is already padded."""
    given = [name for name, value in (("--padding", options.padding), ("--maxlen", options.maxlen),
                                      ("--value", options.values), ("--split", options.split))
             if value]
    if given and path is not None and not is_dataset(path):
        raise UsageError(f"{given[0]} pads a dataset, but {path} is already padded: drop "
                         f"{given[0]}, or give the dataset itself")
