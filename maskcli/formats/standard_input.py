"""Whether standard input holds anything to read, without consuming it."""

from __future__ import annotations

import sys


def nothing_piped() -> str | None:
    """Why standard input has nothing for a command, or None when it may: it
    is a terminal (nothing piped in), closed, or at its end (``< /dev/null``,
    an empty pipe). A pipe still being written waits for its first byte; what
    is read to tell stays there for the reader."""
    stream = sys.stdin
    if stream is None:
        return "standard input is closed"
    try:
        if stream.isatty():
            return "standard input is a terminal (nothing piped in)"
    except (OSError, ValueError):
        return "standard input is closed"
    buffer = getattr(stream, "buffer", stream)
    try:
        peek = getattr(buffer, "peek", None)
        if peek is not None:
            empty = not peek(1)
        elif buffer.seekable():
            where = buffer.tell()
            empty = not buffer.read(1)
            buffer.seek(where)
        else:
            empty = False
    except (OSError, ValueError):
        return None  # the reader says what is wrong
    return "<stdin> is empty" if empty else None
