"""``maskcli pad`` end to end: read chunks, map tokens, cast, pad, write.

With ``maxlen`` given, chunks stream through with bounded memory (rows
stream out; npy/npz keep only the padded chunks). Without it, the ragged
input is kept (compact: no padding) until the longest sequence is known.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np

from maskcli.core.errors import UsageError
from maskcli.core.padding import PadOptions, Ragged, cast, check_memory, pad_chunk, padded_dtype
from maskcli.formats import readers, writers
from maskcli.formats.files import STDIN, atomic_output, open_source, refuse_overwrite
from maskcli.formats.vocab import Vocabulary, build_vocabulary, load_vocabulary, save_vocabulary


@dataclass
class PadReport:
    """What happened, for the messages on stderr."""

    source: str = ""
    sequences: int = 0
    truncated: int = 0  # sequences longer than maxlen
    maxlen: int = 0  # the truncation length used
    shape: tuple = ()
    tokens: int = 0  # tokens mapped through a vocabulary
    oov: int = 0  # of which out of vocabulary
    oov_token: str = ""


def pad_file(input: str = STDIN, output: str = STDIN, *, options: PadOptions = PadOptions(),
             read: readers.ReadOptions = readers.ReadOptions(), to: str = "auto",
             vocab: str | None = None, save_vocab: str | None = None,
             stdout: BinaryIO | None = None,
             progress: Callable[[int, int | None], None] | None = None) -> PadReport:
    """Pad the sequences of ``input`` into ``output`` (``-``: ``stdout``).

    ``progress``, if given, is called as the input is read with the bytes read
    so far and the input's size (None for standard input).
    """
    fmt = writers.output_format(output, to)
    _check_paths(input, output, vocab, save_vocab)
    if (vocab or save_vocab) and options.dtype.kind not in "iu":
        raise UsageError(f"a vocabulary maps tokens to integer ids, but --dtype is {options.dtype}: "
                         "use an integer dtype such as int32 (the default)")
    vocabulary = _load(vocab) if vocab else None
    read = replace(read, numbers=options.dtype.kind != "U" and not (vocab or save_vocab))
    report = PadReport()
    with open_source(input) as source, contextlib.ExitStack() as outputs:
        report.source = source.name
        report_progress = None if progress is None else (lambda done: progress(done, source.size))
        chunks: Iterable[Ragged] = readers.read_chunks(source, read, progress=report_progress)
        if save_vocab:
            chunks = list(chunks)
            vocabulary = build_vocabulary(chunks)
            save_vocabulary(vocabulary, outputs.enter_context(atomic_output(save_vocab)))
        chunks = _cast_all(chunks, vocabulary, options, report)
        maxlen = options.maxlen
        if maxlen is None:
            chunks = list(chunks)
            maxlen = max((int(chunk.lengths.max()) for chunk in chunks if len(chunk.lengths)),
                         default=0)
        stream = stdout or sys.stdout.buffer
        if output != STDIN:
            stream = outputs.enter_context(atomic_output(output))
        writer = writers.open_writer(stream, fmt, options.dtype)
        shape = None
        for chunk in _at_least_one(chunks, options):
            if writer.keeps_chunks:  # every padded chunk is kept until close
                check_memory(report.sequences + len(chunk.lengths), chunk.values.shape[1:],
                             padded_dtype(chunk.values.dtype, options), options, maxlen)
            padded, mask = pad_chunk(chunk, options, maxlen)
            writer.write(padded, mask, chunk.lengths)
            report.sequences += len(chunk.lengths)
            report.truncated += int((chunk.lengths > maxlen).sum())
            shape = padded.shape[1:]
        writer.close({**options.meta, "maxlen": maxlen})
    report.maxlen, report.shape = maxlen, (report.sequences,) + shape
    return report


def _check_paths(input: str, output: str, vocab: str | None, save_vocab: str | None) -> None:
    if output != STDIN:
        refuse_overwrite(output, input, vocab)
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


def _load(path: str) -> Vocabulary:
    with open_source(path) as source:
        return load_vocabulary(source.name, source.stream.read())


def _cast_all(chunks: Iterable[Ragged], vocabulary: Vocabulary | None, options: PadOptions,
              report: PadReport) -> Iterator[Ragged]:
    for chunk in chunks:
        if vocabulary is not None:
            chunk, oov = vocabulary.encode(chunk)
            report.tokens += len(chunk.values)
            report.oov += oov
            report.oov_token = vocabulary.tokens[1]
        yield cast(chunk, options.dtype)


def _at_least_one(chunks: Iterable[Ragged], options: PadOptions) -> Iterator[Ragged]:
    """The chunks, or one empty chunk for an input without sequences (an empty
    array is still written, with the right dtype and width)."""
    empty = True
    for chunk in chunks:
        empty = False
        yield chunk
    if empty:
        yield cast(Ragged(np.empty(0), np.zeros(0, np.int64)), options.dtype)
