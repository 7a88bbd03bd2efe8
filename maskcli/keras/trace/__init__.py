"""Follow the Keras mask through a model, layer by layer.

``walk`` runs the model node by node and reads the mask on every tensor;
``effect`` runs it twice, with and without extra padding, and finds where
padding enters real steps (``record`` does it for subclassed models, ``fixes``
chooses the fix); ``explicit`` finds the mask inputs (``padding_mask``) and
the layers they reach; ``data`` is the batch a trace runs on;
``batches`` checks the user's data against the model or makes a synthetic
padded batch; ``graph`` finds the layer graph and the layers on it.
"""

from maskcli.keras.trace.batches import (
    arch_inputs,
    check_fits,
    check_named_fits,
    has_padding,
    masking_value,
    model_inputs,
    padded_batch,
    synthetic_inputs,
    synthetic_mask,
)
from maskcli.keras.trace.data import TracedBatch, traced_batch
from maskcli.keras.trace.effect import (
    EXTRA_PADDING,
    FORWARD_RTOL,
    PaddingTrace,
    input_masks,
    is_mask_input,
    padding_cause,
    trace_padding,
)
from maskcli.keras.trace.explicit import explicit_verdict, mask_inputs
from maskcli.keras.trace.graph import walkable
from maskcli.keras.trace.walk import SAMPLE_SIZE, STATUSES, TraceRow, first_leak, report, trace_mask

__all__ = ["EXTRA_PADDING", "FORWARD_RTOL", "SAMPLE_SIZE", "STATUSES", "PaddingTrace", "TraceRow",
           "TracedBatch", "arch_inputs", "check_fits", "check_named_fits", "explicit_verdict",
           "first_leak", "has_padding", "input_masks", "is_mask_input", "mask_inputs",
           "masking_value", "model_inputs", "padded_batch", "padding_cause", "report",
           "synthetic_inputs", "synthetic_mask", "trace_mask", "trace_padding", "traced_batch",
           "walkable"]
