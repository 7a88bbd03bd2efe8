"""Follow the Keras mask through a model, layer by layer.

``walk`` runs the model node by node and reads the mask on every tensor;
``batches`` checks the user's data against the model or makes a synthetic
padded batch; ``graph`` finds the layer graph and the layers on it.
"""

from maskcli.keras.trace.batches import (
    arch_inputs,
    check_fits,
    has_padding,
    masking_value,
    model_inputs,
    padded_batch,
    synthetic_inputs,
)
from maskcli.keras.trace.walk import SAMPLE_SIZE, STATUSES, TraceRow, first_leak, report, trace_mask

__all__ = ["SAMPLE_SIZE", "STATUSES", "TraceRow", "arch_inputs", "check_fits", "first_leak",
           "has_padding", "masking_value", "model_inputs", "padded_batch", "report",
           "synthetic_inputs", "trace_mask"]
