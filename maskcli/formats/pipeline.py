"""``maskcli pad`` end to end: read chunks, map tokens, cast, pad, write.

With ``maxlen`` given, chunks stream through with bounded memory (rows
stream out; npy/npz keep only the padded chunks). Without it, the ragged
input is kept (compact: no padding) until the longest sequence is known.

Several fields (``--field`` repeated) travel together, one Ragged per field
in each chunk; each is padded with the same options and its own pad value.
With ``maxlen`` every field is cut and padded to it; without, each field is
padded to its own longest sequence (as ``tf.data``'s ``padded_batch`` does).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO

import numpy as np

from maskcli.core import fields
from maskcli.core.errors import UsageError
from maskcli.core.limits import too_big
from maskcli.core.padding import (
    PadOptions,
    Ragged,
    cast,
    check_memory,
    pad_chunk,
    pad_value,
    padded_dtype,
)
from maskcli.formats import readers, writers
from maskcli.formats.datasets_dir import open_dataset
from maskcli.formats.files import (
    STDIN,
    atomic_output,
    check_destination,
    open_source,
    refuse_overwrite,
)
from maskcli.formats.vocab import Vocabulary, build_vocabulary, load_vocabulary, save_vocabulary

Chunk = tuple[Ragged, ...]  # one Ragged per field, the same records in each


@dataclass
class PadReport:
    """What happened, for the messages on stderr."""

    source: str = ""
    sequences: int = 0
    truncated: int = 0  # sequences longer than maxlen (of the first field)
    maxlen: int = 0  # the truncation length used (of the first field)
    shape: tuple = ()  # of the first field's padded array
    fields: tuple[str, ...] = ()  # the padded fields, when named
    truncated_fields: dict = field(default_factory=dict)  # field name -> sequences cut
    tokens: int = 0  # tokens mapped through a vocabulary
    oov: int = 0  # of which out of vocabulary
    oov_token: str = ""


def pad_file(input: str = STDIN, output: str = STDIN, *, options: PadOptions = PadOptions(),
             read: readers.ReadOptions = readers.ReadOptions(), to: str = "auto",
             vocab: str | None = None, save_vocab: str | None = None,
             stdout: BinaryIO | None = None,
             progress: Callable[[int, int | None], None] | None = None,
             values: dict | None = None, mask_as: str | None = None,
             split: str | None = None, renames: dict | None = None) -> PadReport:
    """Pad the sequences of ``input`` into ``output`` (``-``: ``stdout``).

    ``values`` maps a field name to its own pad value (``options.value`` is
    every other field's). ``mask_as`` also writes the mask as int32 under that
    name (npz only). ``input`` may be a dataset of several files, read as one
    (a ``save_to_disk`` directory, of ``split`` for a DatasetDict; a folder; a
    glob: :mod:`maskcli.formats.datasets_dir`). ``renames`` writes a field
    read under one name under another ({read: written}, ``--field NEW=OLD``).
    ``progress``, if given, is called as the input is read with the bytes read
    so far and the input's size (None for standard input).
    """
    fmt = writers.output_format(output, to)
    values = values or {}
    fields.check_output(fmt, read.fields, mask_as)
    _check_paths(input, output, vocab, save_vocab)
    if (vocab or save_vocab) and options.dtype.kind not in "iu":
        raise UsageError(f"a vocabulary maps tokens to integer ids, but --dtype is {options.dtype}: "
                         "use an integer dtype such as int32 (the default)")
    vocabulary = _load(vocab) if vocab else None
    read = replace(read, numbers=options.dtype.kind != "U" and not (vocab or save_vocab))
    report = PadReport()
    with contextlib.ExitStack() as outputs:
        sizes = []  # of the one input file, for the progress bar
        report_progress = None if progress is None else (lambda done: progress(done, sizes[0]))
        report.source, size, opened = outputs.enter_context(
            open_dataset(input, read, report_progress, split))
        sizes.append(size)
        names = tuple((renames or {}).get(name, name) for name in opened.names)
        fields.check_values(values, names)
        fields.check_output(fmt, names, mask_as)
        if fmt == "npz":
            fields.npz_arrays(names, mask_as)
        elif fmt == "parquet":
            from maskcli.formats.parquet_out import check_names

            check_names(names or ("inputs",), mask_as)
        each = [replace(options, value=pad_value(values[name], options.dtype))
                if name in values else options for name in names or (None,)]
        chunks: Iterable[Chunk] = opened.chunks
        if save_vocab:
            chunks = list(chunks)
            vocabulary = build_vocabulary([part for chunk in chunks for part in chunk
                                           if _mapped(part, chunk)])
            vocab_file = outputs.enter_context(atomic_output(save_vocab, "--save-vocab"))
            save_vocabulary(vocabulary, vocab_file)
        chunks = _cast_all(chunks, vocabulary, options, report)
        maxlens = [options.maxlen] * len(each)
        if options.maxlen is None:  # each field to its own longest sequence
            chunks = list(chunks)
            maxlens = [max((int(chunk[index].lengths.max()) for chunk in chunks
                            if len(chunk[index].lengths)), default=0)
                       for index in range(len(each))]
        stream = stdout or sys.stdout.buffer
        if output != STDIN:
            stream = outputs.enter_context(atomic_output(output))
        several = names if len(names) > 1 else ()
        writer = writers.open_writer(stream, fmt, options.dtype, several, mask_as, names)
        shape = None
        truncated = [0] * len(each)
        for chunk in _at_least_one(chunks, len(each), options):
            if writer.keeps_chunks:  # every padded chunk is kept until close
                _check_kept(report.sequences + len(chunk[0].lengths), chunk, each, maxlens)
            parts = [pad_chunk(part, part_options, maxlen) + (part.lengths,)
                     for part, part_options, maxlen in zip(chunk, each, maxlens)]
            writer.write_fields(parts)
            report.sequences += len(chunk[0].lengths)
            for index, (part, maxlen) in enumerate(zip(chunk, maxlens)):
                truncated[index] += int((part.lengths > maxlen).sum())
            shape = parts[0][0].shape[1:]
        writer.close(_meta(each, maxlens, several, mask_as))
    report.maxlen, report.shape = maxlens[0], (report.sequences,) + shape
    report.truncated, report.fields = truncated[0], names
    report.truncated_fields = dict(zip(names, truncated))
    return report


def _meta(each: list[PadOptions], maxlens: list[int], names: tuple[str, ...],
          mask_as: str | None) -> dict:
    """What the npz records: the one-field keys (of the first field), then each
    field's pad value and truncation length."""
    meta = {**each[0].meta, "maxlen": maxlens[0]}
    if names:
        meta["fields"] = list(names)
        meta["values"] = {name: options.value for name, options in zip(names, each)}
        meta["maxlens"] = dict(zip(names, maxlens))
    if mask_as:
        meta["mask_as"] = mask_as
    return meta


def _check_kept(rows: int, chunk: Chunk, each: list[PadOptions], maxlens: list[int]) -> None:
    """Refuse, before padding more, padded fields (and masks) of ``rows``
    sequences that would not fit in memory."""
    dtypes = [padded_dtype(part.values.dtype, options) for part, options in zip(chunk, each)]
    if len(chunk) == 1:
        check_memory(rows, chunk[0].values.shape[1:], dtypes[0], each[0], maxlens[0])
        return
    need = sum(rows * options.width(maxlen) * (math.prod(part.values.shape[1:]) * dtype.itemsize
                                               + 1)
               for part, options, maxlen, dtype in zip(chunk, each, maxlens, dtypes))
    over = too_big(need)
    if over:
        fix = "give a smaller --maxlen" if each[0].maxlen is not None else "give --maxlen"
        raise UsageError(f"padding {rows} sequences of {len(chunk)} fields would take {over}: "
                         f"{fix}")


def _check_paths(input: str, output: str, vocab: str | None, save_vocab: str | None) -> None:
    if output != STDIN:
        refuse_overwrite(output, input, vocab)
        check_destination(output)  # before reading: the input may take minutes
    if vocab and save_vocab:
        raise UsageError("--vocab and --save-vocab exclude each other: give the vocabulary to "
                         "use, or have one built from the input, not both")
    if save_vocab is None:
        return
    if save_vocab == STDIN:
        raise UsageError("--save-vocab needs a file name: standard output carries the padded data")
    if output != STDIN and os.path.abspath(save_vocab) == os.path.abspath(output):
        raise UsageError(f"--save-vocab {save_vocab} is also the -o output: give two paths")
    try:
        refuse_overwrite(save_vocab, input)
    except UsageError:
        raise UsageError(f"--save-vocab {save_vocab} is the input file itself: write the "
                         "vocabulary to another path") from None
    check_destination(save_vocab, "--save-vocab")


def _load(path: str) -> Vocabulary:
    with open_source(path) as source:
        return load_vocabulary(source.name, source.stream.read())


def _cast_all(chunks: Iterable[Chunk], vocabulary: Vocabulary | None, options: PadOptions,
              report: PadReport) -> Iterator[Chunk]:
    for chunk in chunks:
        cast_chunk = []
        for part in chunk:
            if vocabulary is not None and _mapped(part, chunk):
                part, oov = vocabulary.encode(part)
                report.tokens += len(part.values)
                report.oov += oov
                report.oov_token = vocabulary.tokens[1]
            cast_chunk.append(cast(part, options.dtype))
        yield tuple(cast_chunk)


def _mapped(part: Ragged, chunk: Chunk) -> bool:
    """Whether a vocabulary maps this field: a field of strings, or a lone field
    (its numbers are ids looked up by their text); a field of numbers beside
    others (a tagger's labels beside its tokens) keeps its numbers."""
    return len(chunk) == 1 or part.values.dtype.kind == "U"


def _at_least_one(chunks: Iterable[Chunk], count: int, options: PadOptions) -> Iterator[Chunk]:
    """The chunks, or one empty chunk for an input without sequences (an empty
    array is still written, with the right dtype and width)."""
    empty = True
    for chunk in chunks:
        empty = False
        yield chunk
    if empty:
        yield tuple(cast(Ragged(np.empty(0), np.zeros(0, np.int64)), options.dtype)
                    for _ in range(count))
