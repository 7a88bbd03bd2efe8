"""``maskcli trace-mask`` on packed rows: each layer's document effect, and
the layer where the documents of a row start to mix."""

from __future__ import annotations

import json

import click

from maskcli.core.errors import UsageError


def trace_packed(ctx, model, batch, fmt: str, segment_input: str | None) -> bool:
    """Trace ``model`` on ``batch`` when its inputs are packed (segment ids);
    False, doing nothing, when they are not."""
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
    if batch.synthetic:
        raise UsageError(f"model '{model.name}' takes packed rows ('{packed.names.segment_ids}'): "
                         "give INPUT, packed rows from 'maskcli pack' named after its inputs")
    with models.full_float32():
        traced = trace_documents(model, spec, packed)
    result = {"model": model.name, **traced.to_dict(), "documents": len(packed.docs),
              "segment_input": packed.names.segment_ids, "versions": models.versions()}
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
