"""``maskcli trace-mask`` on packed rows: each layer's document effect, and
the layer where the documents of a row start to mix."""

from __future__ import annotations

import json

import click

from maskcli.core.errors import UsageError


def trace_packed(ctx, model, batch, fmt: str, segment_input: str | None, seed: int = 0,
                 steps: int | None = None) -> bool:
    """Trace ``model`` on ``batch`` when its inputs are packed (segment ids);
    False, doing nothing, when they are not. Without INPUT (a synthetic
    ``batch``) the model runs on synthetic packed rows drawn with ``seed``,
    ``steps`` long when the model leaves its length open (``--maxlen``)."""
    import numpy as np

    from maskcli.keras import models
    from maskcli.keras.feed import model_inputs
    from maskcli.keras.trace.packed import packed_batch, trace_documents

    spec = model_inputs(model)
    arrays = dict(zip(batch.names, batch.arrays))
    if spec is None or len(arrays) < 2:
        if segment_input:
            raise UsageError(f"--segment-input {segment_input}: packed data needs a model with "
                             "named inputs, the segment ids one of them")
        return False
    packed = packed_batch(arrays, list(arrays), segment_input)
    if packed is None:
        return False
    rows = None
    if batch.synthetic:  # no INPUT: synthetic packed rows, not the padded batch
        from maskcli.keras.trace.packed_synthetic import synthetic_packed

        arrays, rows = synthetic_packed(model, seed, segment_input, steps)
        packed = packed_batch(arrays, list(arrays), segment_input)
        click.echo(f"note: no INPUT: traced on {rows.describe()} (--seed)", err=True)
    with models.full_float32():
        traced = trace_documents(model, spec, packed)
    result = {"model": model.name, **traced.to_dict(), "documents": len(packed.docs),
              "segment_input": packed.names.segment_ids, "synthetic": rows is not None,
              "inputs": [{"name": name, "shape": list(np.shape(array)),
                          "dtype": str(np.asarray(array).dtype)}
                         for name, array in packed.arrays.items()],
              "versions": models.versions()}
    if rows is not None:
        result["seed"] = seed
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        from maskcli.render.packed import render_document_trace

        render_document_trace(result)
    if traced.note:
        click.echo(f"note: {traced.note}", err=True)
    first = traced.mixes
    if first is not None:
        click.echo(f"documents mix: at layer '{first.path}' ({first.kind}), the first whose "
                   "output at a document's steps differs from the document run alone", err=True)
        ctx.exit(1)
    click.echo(f"documents isolated: {len(packed.docs)} documents give every layer the same "
               "output packed as alone", err=True)
    return True
