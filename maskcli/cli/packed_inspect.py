"""``maskcli inspect-mask`` on packed data: the part of the command that reads
packed rows (see :mod:`maskcli.core.packed_diagnose`) and shows them."""

from __future__ import annotations

import json

import click

from maskcli.core.errors import InputError


def write_mask(mask, report, output: str | None, fmt: str) -> None:
    """``mask`` to ``output`` (.npy, atomically) and, as ``fmt`` asks, to
    standard output (npy bytes) or the report as JSON: for both kinds of data."""
    import io
    import sys

    import numpy as np

    from maskcli.formats.files import atomic_output

    if output:
        with atomic_output(output) as handle:
            np.save(handle, mask)
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, mask)
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
    elif fmt == "json":
        click.echo(json.dumps(report.to_dict()))


def load_maybe_packed(path: str, field: str | None, segment_input: str | None,
                      dataset=None):
    """The data of INPUT, and its arrays by name when they are packed (else None)."""
    from maskcli.core.packed_diagnose import packed_names
    from maskcli.formats.arrays import load_padded

    try:
        padded = load_padded(path, field=field, dataset=dataset)
    except InputError:
        if path == "-":
            raise
        padded = load_padded(path, named=True)  # arrays named after a model's inputs
        if packed_names(padded.extra, segment_input, flatten=False) is None:
            raise
    arrays = dict(padded.extra)
    if padded.inputs is not None:
        arrays[padded.field or "inputs"] = padded.inputs
    packed = padded.meta.get("packed")
    flatten = (isinstance(packed, dict) and packed.get("layout") == "flatten") \
        or "cu_seqlens" in arrays  # position_ids and labels alone may be a padded batch
    if packed_names(arrays, segment_input, flatten) is None:
        return padded, None
    return padded, arrays


def inspect_packed_command(ctx, source, arrays, segment_input, causal, fmt, output, rows, strict,
                           svg, meta=None, **weighing):
    """Diagnose packed ``arrays``, print them as ``fmt``, and write the
    attention mask the model should use to ``output`` (.npy). ``weighing``:
    ``batch_size``, ``accumulation_steps`` and ``replicas``, whose token
    weights are shown from the rows' real steps."""
    from maskcli.core.packed_diagnose import inspect_packed
    from maskcli.formats.files import atomic_output

    packed = (meta or {}).get("packed")
    flatten = (isinstance(packed, dict) and packed.get("layout") == "flatten") \
        or "cu_seqlens" in arrays
    report = inspect_packed(arrays, source, segment_input, causal=causal, flatten=flatten,
                            **weighing)
    write_mask(report.mask, report, output, fmt)
    if fmt == "table" or svg:
        from maskcli.render import inspect as render
        from maskcli.render import packed

        console = render.make_console(to_stdout=fmt == "table", record=bool(svg))
        packed.show(console, report, rows=rows)
        if svg:
            with atomic_output(svg, "--svg") as handle:
                handle.write(console.export_svg(title=f"maskcli inspect-mask {source}").encode())
    if fmt != "table":
        for diagnostic in report.diagnostics:
            click.echo(f"warning: {diagnostic.id}: {diagnostic.message}", err=True)
    if strict and report.diagnostics:
        ctx.exit(1)
