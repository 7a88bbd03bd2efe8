"""Vocabularies: string tokens to integer ids, as Keras' TextVectorization numbers them.

A vocabulary file holds one token per line and line i (counting from 0)
holds the token with id i. Id 0 is padding (an empty line) and id 1 stands
for every out-of-vocabulary token (its line names it, ``[UNK]`` by default):
the list ``TextVectorization.get_vocabulary()`` returns, one entry a line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np

from maskcli.core.errors import InputError, UsageError, where
from maskcli.core.padding import Ragged

OOV_ID = 1  # id 0 is padding
OOV_TOKEN = "[UNK]"


@dataclass
class Vocabulary:
    """``tokens[i]`` is the token with id i; ``tokens[0]`` is padding, ``tokens[1]`` OOV."""

    tokens: list[str]

    def __post_init__(self):
        known = np.array(self.tokens[2:], dtype=str)
        self._order = np.argsort(known, kind="stable")
        self._sorted = known[self._order]

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, chunk: Ragged) -> tuple[Ragged, int]:
        """Map a chunk's tokens to int64 ids; return it and its number of OOV tokens."""
        tokens = _tokens(chunk)
        if not len(self._sorted):
            return replace(chunk, values=np.full(len(tokens), OOV_ID, np.int64)), len(tokens)
        at = np.minimum(np.searchsorted(self._sorted, tokens), len(self._sorted) - 1)
        found = self._sorted[at] == tokens
        ids = np.where(found, self._order[at] + 2, OOV_ID).astype(np.int64)
        return replace(chunk, values=ids), int(len(tokens) - found.sum())


def _tokens(chunk: Ragged) -> np.ndarray:
    values = chunk.values
    if values.ndim > 1 and len(values):
        raise UsageError(f"{chunk.place_of_step(0)}: a vocabulary maps tokens, but the steps are "
                         "feature vectors: drop --vocab/--save-vocab")
    # Numbers are looked up by their text, so a vocabulary of ids still works.
    return values if values.dtype.kind == "U" else values.astype(str)


def build_vocabulary(chunks: list[Ragged]) -> Vocabulary:
    """The vocabulary of ``chunks``: most frequent token first, ties by first appearance.

    The empty token and the OOV token have ids of their own (0 and 1) and are
    left out, as Keras' adapt leaves them out: a vocabulary file cannot hold
    them twice, and both map to id 1 as with ``--vocab``.
    """
    parts = [_tokens(chunk) for chunk in chunks]
    tokens = np.concatenate(parts) if parts else np.empty(0, dtype=str)
    tokens = tokens[(tokens != "") & (tokens != OOV_TOKEN)]
    unique, first, counts = np.unique(tokens, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    return Vocabulary(["", OOV_TOKEN] + unique[order].tolist())


def load_vocabulary(name: str, data: bytes) -> Vocabulary:
    """Parse a vocabulary file (``name`` is for messages)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{where(name, line)}: not UTF-8 text: convert the vocabulary to UTF-8"
                         ) from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines[-1] == "":
        lines.pop()  # the final newline
    if len(lines) < 2 or lines[0] != "" or not lines[1]:
        raise InputError(f"{name}: line 1 must be empty (id 0, padding) and line 2 name the "
                         f"out-of-vocabulary token (id 1, e.g. {OOV_TOKEN}), as "
                         "TextVectorization.get_vocabulary() lists them: add those two lines at "
                         "the top")
    seen = {}
    for index, token in enumerate(lines[1:], 1):
        if not token:
            raise InputError(f"{where(name, index + 1)}: empty token (id {index}): remove the "
                             "line; only line 1 (padding) is empty")
        if token in seen:
            raise InputError(f"{where(name, index + 1)}: duplicate token {token!r}, already on "
                             f"line {seen[token] + 1}: keep one of them")
        seen[token] = index
    return Vocabulary(lines)


def save_vocabulary(vocabulary: Vocabulary, stream: BinaryIO) -> None:
    for token in vocabulary.tokens:
        if "\n" in token or "\r" in token:
            raise InputError(f"token {token!r} holds a line break and cannot be saved one token "
                             "a line: remove line breaks from the tokens")
    stream.write("".join(token + "\n" for token in vocabulary.tokens).encode("utf-8"))
