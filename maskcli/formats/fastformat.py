"""Integer rows as text, vectorised: the fast path of the jsonl/csv/tsv writers.

Python prints a million padded rows one ``str(list)`` at a time, which takes
longer than parsing them. Here every value's text comes from a table built
once by numpy: one cell of 8 (or 16) bytes per value in the range seen,
holding the text, NUL filler, then what follows the value (``", "``, or the
row end ``"]\\n["``). One ``take`` lays a chunk's cells out in order and one
``bytes.translate`` drops the filler. The result is byte for byte what
``str(row.tolist())`` or ``",".join(map(str, row))`` gives per row; for
anything else (3-D data, no columns, values spanning too wide a range or too
long for a cell) :meth:`IntRows.format` returns None and the writer formats
with Python.
"""

from __future__ import annotations

import numpy as np

MAX_RANGE = 1 << 20  # values in one table; token ids fit, a wider spread takes Python


class IntRows:
    """Formats 2-D integer arrays, one row per line: ``[1, 2]`` (jsonl) or ``1,2``."""

    def __init__(self, sep: str, brackets: bool):
        self.open = b"[" if brackets else b""
        self.sep = sep.encode()
        # A row ends with the next row's opening bracket; the last one is cut off.
        self.end = (b"]\n[" if brackets else b"\n")
        self.low = self.high = 0
        self.cells = None  # per value: its cell inside a row, and its cell ending a row

    def format(self, padded: np.ndarray) -> bytes | None:
        if padded.ndim != 2 or 0 in padded.shape or padded.dtype.kind not in "iu":
            return None
        if not self._covers(int(padded.min()), int(padded.max())):
            return None
        index = np.subtract(padded, self.low, dtype=np.int64)
        inside, last = self.cells
        cells = inside.take(index)
        cells[:, -1] = last.take(index[:, -1])
        text = self.open + cells.tobytes().translate(None, b"\0")
        return text[:len(text) - len(self.open)]

    def _covers(self, low: int, high: int) -> bool:
        """Make the table cover ``low..high``: with what it covered if it can, else alone."""
        ranges = [(low, high)]
        if self.cells is not None:
            if self.low <= low and high <= self.high:
                return True
            ranges.insert(0, (min(low, self.low), max(high, self.high)))
        for low, high in ranges:
            if high - low < MAX_RANGE:
                width = max(len(str(low)), len(str(high)))  # the extremes print longest
                size = next((s for s in (8, 16) if width + len(self.end) <= s), None)
                if size is not None:
                    self.cells = self._table(low, high, width, size)
                    self.low, self.high = low, high
                    return True
        return False

    def _table(self, low: int, high: int, width: int, size: int) -> tuple:
        # numpy prints integers as Python does, NUL-padded to the width asked.
        texts = np.arange(low, high + 1, dtype=np.int64).astype(f"S{width}").view(np.uint8)
        tables = []
        for after in (self.sep, self.end):
            table = np.zeros((high - low + 1, size), dtype=np.uint8)
            table[:, :width] = texts.reshape(-1, width)
            table[:, size - len(after):] = np.frombuffer(after, np.uint8)
            tables.append(table.view(f"V{size}").reshape(-1))  # one item per cell: fast take
        return tuple(tables)
