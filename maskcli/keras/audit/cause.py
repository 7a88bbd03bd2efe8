"""The likely cause of a failed audit, in one sentence with its fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maskcli.core.errors import MaskcliError
from maskcli.keras import models, trace
from maskcli.keras.audit.values import close, equal, show

if TYPE_CHECKING:
    from maskcli.keras.audit.run import AuditRun


def likely_cause(audit: AuditRun, failed: list[str]) -> str:
    """Name the likely cause of the failed checks: the one place where it is
    decided (a layer-by-layer mask trace can refine the "no mask" case here)."""
    padded = ~audit.mask
    if "target-invariance" in failed and audit.nonfinite_padded_targets:
        return (f"the targets hold NaN or inf at {audit.nonfinite_padded_targets} padded steps, "
                "and Keras applies the mask by multiplication (NaN x 0 = NaN): "
                "fill padded targets with 0 or any finite value")
    if audit.time_axis and not audit.target_padded:
        if audit.out_mask is None:
            cause = f"the model's output carries no mask: {_where_mask_dies(audit)}"
            entry = _where_padding_enters(audit) if "forward-invariance" in failed else None
            return f"{cause}; {entry}" if entry else cause
        kept = int((audit.out_mask & padded).sum())
        if kept:
            values = models.masking_values(audit.model)
            pad = audit.pad_step
            if values and np.ndim(pad) <= 1 and not any(np.all(equal(np.asarray(pad), v))
                                                        for v in values):
                return (f"the model's mask keeps {kept} padded steps: Masking(mask_value="
                        f"{values[0]:g}) does not match the pad value {show(pad)}: "
                        "set mask_value to the pad value")
            return (f"the model's mask keeps {kept} padded steps: it does not match the padding "
                    "(check mask_zero / mask_value against the pad value)")
        hidden = int((~audit.out_mask & audit.mask).sum())
        if hidden and "loss-parity" in failed:
            return (f"the model's mask hides {hidden} real steps (e.g. a real token equal to the "
                    "pad value): the loss skips them")
    if "loss-parity" in failed and audit.time_axis:
        share = audit.mask.sum() / audit.mask.size
        keras_loss, masked = audit.keras_loss, audit.masked_loss
        if close(keras_loss, masked * share, audit.rtol):
            return (f"the loss divides by all steps, padding included (Keras' loss = masked loss x "
                    f"real share {share:.3f}): divide by the number of real steps instead")
        if close(keras_loss, audit.unmasked_loss, audit.rtol):
            return "the loss averages over all steps: it ignores the mask"
    if "forward-invariance" in failed:
        return _where_padding_enters(audit, with_drop=True) or (
            "padding changes what the model computes at real steps: a layer mixes padded "
            "steps into real ones (convolution, pooling, attention or a bidirectional RNN "
            "without the mask)")
    if failed == ["metric-parity"] and audit.mask_blind_metrics:
        blind = audit.mask_blind_metrics
        return (f"{'metric' if len(blind) == 1 else 'metrics'} {', '.join(blind)} "
                f"{'ignores' if len(blind) == 1 else 'ignore'} the mask (Keras masks only "
                "mean-style metrics such as accuracy or mae): compute them on real steps only")
    return "the loss depends on padded steps: " + ", ".join(failed) + " failed"


def _where_mask_dies(audit: AuditRun) -> str:
    """The first layer that drops the mask, from a layer-by-layer trace, with its fix."""
    try:
        rows = trace.trace_mask(audit.model, audit.inputs[:trace.SAMPLE_SIZE])
    except MaskcliError:  # e.g. a subclassed model, whose call() cannot be walked
        rows = []
    leak = trace.first_leak(rows)
    fix = next((row.fix for row in rows if row.status == "drops" and row.kind != "model"
                and row.fix), None)
    if leak:
        return f"{leak}: {fix}" if fix else leak
    return ("a layer or a tensor operation drops it (plain arithmetic such as x * 2.0 on a "
            "symbolic tensor does so silently): set supports_masking = True, pass mask= "
            "explicitly, or use a mask-aware layer")


def _where_padding_enters(audit: AuditRun, with_drop: bool = False) -> str | None:
    """The layer where padding enters real steps, from a trace of its padding
    effect with the extra padding forward-invariance adds, with its fix."""
    model = models.free_length_model(audit.model)[0] or audit.model
    try:
        traced = trace.trace_padding(model, audit.inputs[:trace.SAMPLE_SIZE],
                                     audit.mask[:trace.SAMPLE_SIZE])
    except MaskcliError:  # a model that cannot be walked: the generic cause stands
        return None
    return trace.padding_cause(traced, with_drop)
