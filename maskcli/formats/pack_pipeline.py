"""``maskcli pack`` end to end: read chunks, cast, pack window by window, write.

The input is read by the readers ``pad`` uses (every format, several
fields); windows of documents are packed by :mod:`maskcli.core.packing` and
laid out by :mod:`maskcli.core.packed_layout`; the output appears only once
everything is written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import BinaryIO

import numpy as np

from maskcli.core import fields
from maskcli.core.errors import UsageError
from maskcli.core.packed_layout import array_names, check_layout, layout_arrays
from maskcli.core.packing import Packer, PackOptions, PackReport
from maskcli.core.padding import cast, pad_value
from maskcli.formats import readers
from maskcli.formats.files import STDIN, open_source, refuse_overwrite
from maskcli.formats.packed_writers import open_packed_writer, pack_format

INT32 = np.dtype("int32")
KEPT = ("npz", "npy")  # formats whose writer keeps every window until the end


def pack_file(input: str = STDIN, output: str = STDIN, *, options: PackOptions,
              read: readers.ReadOptions = readers.ReadOptions(), to: str = "auto",
              dtype: np.dtype = INT32, value=0, values: dict | None = None,
              layout: str = "seqio", cu_seqlens: bool = False,
              stdout: BinaryIO | None = None,
              progress: Callable[[int, int | None], None] | None = None) -> PackReport:
    """Pack the documents of ``input`` into rows of ``options.length`` steps,
    written to ``output`` (``-``: ``stdout``).

    ``value`` is the pad value after each row's last document, ``values``
    a field's own (``{"labels": -100}``). ``layout`` is ``seqio`` or
    ``flatten``; ``cu_seqlens`` adds the per-row document offsets.
    """
    fmt = pack_format(output, to)
    values = values or {}
    check_layout(layout, read.fields, dtype)
    if output != STDIN:
        refuse_overwrite(output.rstrip("/") or output, input)
    read = replace(read, numbers=dtype.kind != "U", chunk_rows=options.window)
    with open_source(input) as source:
        report_progress = None if progress is None else (lambda done: progress(done, source.size))
        opened = readers.open_fields(source, read, progress=report_progress)
        names = opened.names or ("inputs",)
        fields.check_values(values, opened.names)
        _check_names(names, layout, cu_seqlens)
        pads = [pad_value(values.get(name, value), dtype) for name in names]
        packer = Packer(names, options, pads)
        meta = {"packed": {"length": options.length, "layout": layout,
                           "window": options.window, "overflow": options.overflow,
                           "fields": list(names)},
                "fields": list(names), "values": dict(zip(names, pads)), "value": pads[0],
                "dtype": str(dtype)}
        with open_packed_writer(output, fmt, stdout or sys.stdout.buffer) as writer:
            for packed in packer.pack(_cast(opened.chunks, dtype)):
                writer.write(layout_arrays(packed, layout, cu_seqlens, lazy=fmt in KEPT))
            writer.close(meta)
    return packer.report


def _cast(chunks, dtype: np.dtype) -> Iterator:
    for chunk in chunks:
        yield tuple(cast(part, dtype) for part in chunk)


def _check_names(names: tuple[str, ...], layout: str, cu_seqlens: bool) -> None:
    """Refuse fields whose arrays would collide with other arrays written."""
    written = array_names(names, layout, cu_seqlens)
    for name in names:
        if name in ("meta", "position_ids", "cu_seqlens"):
            raise UsageError(f"--field {name} is the name of an array the packed output "
                             "holds besides the fields: rename the field first")
    if len(set(written)) != len(written):
        twice = next(name for name in written if written.count(name) > 1)
        raise UsageError(f"two packed arrays would both be named {twice!r}: rename a field "
                         "first")
