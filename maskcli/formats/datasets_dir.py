"""Datasets of several files: a ``datasets`` ``save_to_disk`` directory, a
folder of shards, a glob, or several paths.

- A ``Dataset.save_to_disk`` directory holds ``state.json``, whose
  ``_data_files`` lists its ``data-*.arrow`` shards (Arrow IPC streams) in
  the dataset's order, and ``dataset_info.json``.
- A ``DatasetDict.save_to_disk`` directory holds ``dataset_dict.json``, whose
  ``splits`` name one such directory each: one is chosen with ``--split NAME``.
- Any other folder: its Parquet, Arrow and jsonl files in name order.
- A glob (``data/*.parquet``): its matches in name order.

:func:`dataset_files` lists the files of any of these, in order; every
command that reads a dataset goes through it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from dataclasses import replace
from pathlib import Path

from maskcli.core.errors import InputError, UsageError
from maskcli.core.names import shown
from maskcli.formats.files import STDIN

SHARD_SUFFIXES = (".arrow", ".feather", ".parquet", ".jsonl", ".ndjson")
# The first bytes of the binary formats, for messages that name them.
MAGIC = ((b"PAR1", "a Parquet file"), (b"ARROW1", "an Arrow IPC file"),
         (b"\xff\xff\xff\xff", "an Arrow IPC stream"), (b"\x93NUMPY", "an npy file"),
         (b"PK\x03\x04", "a zip (npz or .keras) file"))


def is_glob(text: str) -> bool:
    """Whether ``text`` is a pattern rather than the name of an existing file."""
    return text != STDIN and any(char in text for char in "*?[") and not os.path.exists(text)


def is_dataset_dir(path: str) -> bool:
    """Whether ``path`` is a ``save_to_disk`` directory (of a Dataset or a DatasetDict)."""
    folder = Path(path)
    return folder.is_dir() and any((folder / name).is_file() for name in
                                   ("state.json", "dataset_dict.json", "dataset_info.json"))


def splits(path: str) -> list[str] | None:
    """The splits of a ``DatasetDict`` directory, None for any other path."""
    index = Path(path) / "dataset_dict.json"
    if not index.is_file():
        return None
    try:
        names = json.loads(index.read_text(encoding="utf-8"))["splits"]
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise TypeError
        return names
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{index}: no list of 'splits' that can be read: save the dataset "
                         "again with DatasetDict.save_to_disk") from None


def dataset_files(path: str, split: str | None = None) -> list[str]:
    """The files of the dataset at ``path``, in the dataset's order: a
    ``save_to_disk`` directory's shards (of ``split`` for a DatasetDict), a
    folder's data files, a glob's matches, or the one file."""
    names = splits(path)
    if names is not None:
        if split is None:
            raise UsageError(f"{path} is a DatasetDict of splits {', '.join(names)}: choose one "
                             f"with --split NAME, e.g. --split {names[0]}")
        if split not in names:
            raise UsageError(f"--split {shown(split)}: {path} has no such split (splits: "
                             f"{', '.join(names)}): give one of them")
        return dataset_files(str(Path(path) / split))
    if split is not None:
        raise UsageError(f"--split {shown(split)}: {path} is not a DatasetDict directory "
                         "(it has no dataset_dict.json): drop --split")
    if os.path.isdir(path):
        state = Path(path) / "state.json"
        if state.is_file():
            try:
                entries = json.loads(state.read_text(encoding="utf-8"))["_data_files"]
                files = [str(Path(path) / Path(entry["filename"]).name) for entry in entries]
            except (OSError, ValueError, KeyError, TypeError):
                raise InputError(f"{state}: no list of '_data_files' that can be read: save the "
                                 "dataset again with Dataset.save_to_disk") from None
            missing = next((file for file in files if not os.path.isfile(file)), None)
            if missing:
                raise InputError(f"{missing}: listed in {state} but missing: copy the whole "
                                 "directory, or save the dataset again")
            return files
        found = sorted(str(file) for file in Path(path).iterdir() if file.is_file()
                       and not file.name.startswith(".") and file.suffix.lower() in SHARD_SUFFIXES)
        if not found:
            raise InputError(f"{path} is a directory without shards (no "
                             f"{', '.join(SHARD_SUFFIXES)} files, nor the state.json of "
                             "Dataset.save_to_disk): give a file, or '-' to read standard input, "
                             "a folder of shards, or a glob such as 'data/*.parquet'")
        return found
    if is_glob(path):
        found = sorted(match for match in glob.glob(path) if not os.path.isdir(match))
        if not found:
            raise InputError(f"{path}: no file matches this pattern: check the path")
        return found
    return [path]


def several(path: str) -> bool:
    """Whether ``path`` names several files or a dataset directory: a folder or a glob."""
    return path != STDIN and (os.path.isdir(path) or is_glob(path))


def describe(path: str, split: str | None = None) -> str:
    """How messages and reports name the dataset at ``path``."""
    if is_dataset_dir(path):
        count = len(dataset_files(path, split))
        what = f"split {split} of " if split else ""
        return f"{what}the save_to_disk dataset {path} ({count} shard{'s' * (count != 1)})"
    if several(path):
        count = len(dataset_files(path))
        return f"{path} ({count} file{'s' * (count != 1)})"
    return path


def binary_kind(head: bytes) -> str | None:
    """What a binary file is, by its first bytes (``a Parquet file``), or None."""
    return next((kind for magic, kind in MAGIC if head.startswith(magic)), None)


@contextlib.contextmanager
def open_dataset(path: str, read, progress=None, split: str | None = None):
    """Open ``path`` for reading sequences: ``(name, size, Fields)``. One file
    (or ``-``) is read as :func:`maskcli.formats.readers.open_fields` reads it;
    a dataset of several files (:func:`dataset_files`) as one input, file
    after file, each of them with the first file's fields. ``progress(done)``
    hears of the bytes read (one file only)."""
    from maskcli.formats import readers
    from maskcli.formats.files import open_source

    if split is None and not several(path):
        with open_source(path) as source:
            yield source.name, source.size, readers.open_fields(source, read, progress=progress)
        return
    files = dataset_files(path, split)
    stack = contextlib.ExitStack()
    with stack:
        first = readers.open_fields(stack.enter_context(open_source(files[0])), read)
        names = first.names
        yield describe(path, split), None, readers.Fields(
            names, _chained(first.chunks, files[1:], replace(read, fields=names), names))


def _chained(chunks, files: list[str], read, names: tuple[str, ...]):
    """The chunks of the first file, then of each other file: the same fields
    in each, or an error naming the file."""
    from maskcli.formats import readers
    from maskcli.formats.files import open_source

    yield from chunks
    for file in files:
        with open_source(file) as source:
            opened = readers.open_fields(source, read)
            if opened.names != names:
                raise InputError(f"{file} holds the fields {', '.join(opened.names) or '(none)'}, "
                                 f"where the dataset's first file holds {', '.join(names)}: "
                                 "give the files of one dataset")
            yield from opened.chunks
