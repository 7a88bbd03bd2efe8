"""The traces of an audited model, run once per audit: the cause and the
fixes read the same ones.

``mask_rows``: the layer-by-layer mask trace on a sample of the batch;
``padding_trace``: where padding enters, with the extra padding
forward-invariance adds, every input extended by its own padding.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from maskcli.core.errors import MaskcliError
from maskcli.keras import feed, models, trace

if TYPE_CHECKING:
    from maskcli.keras.audit.state import AuditRun

_MASKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PADDING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def mask_rows(run: AuditRun) -> list:
    """The mask trace of the audited model; [] when it cannot be walked."""
    if run not in _MASKS:
        try:
            _MASKS[run] = trace.trace_mask(run.model,
                                           feed.sliced(run.inputs, slice(0, trace.SAMPLE_SIZE)))
        except MaskcliError:  # e.g. a subclassed model, whose call() cannot be walked
            _MASKS[run] = []
    return _MASKS[run]


def padding_trace(run: AuditRun):
    """The padding-effect trace (``trace.PaddingTrace``), or None."""
    if run not in _PADDING:
        model = models.free_length_model(run.model)[0] or run.model
        sample = slice(0, trace.SAMPLE_SIZE)
        batch = run.batch
        if len(batch.arrays) == 1:
            masks, pad_values = run.mask[sample], None
        else:
            masks = {name: pad[sample] for name, pad in batch.paddings.items() if pad is not None}
            pad_values = batch.pad_values
        try:
            _PADDING[run] = trace.trace_padding(model, feed.sliced(run.inputs, sample), masks,
                                                pad_values=pad_values)
        except MaskcliError:  # a model that cannot be walked
            _PADDING[run] = None
    return _PADDING[run]
