"""The likely cause of a failed audit, in one sentence with its fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maskcli.core.errors import option
from maskcli.keras import models, trace
from maskcli.keras.audit import traced
from maskcli.keras.audit.values import close, equal, show
from maskcli.keras.audit.weights import weighted_padding

if TYPE_CHECKING:
    from maskcli.keras.audit.state import AuditRun

def sample_weight_fix() -> str:
    """The fix for a loss that Keras cannot mask: what KerasHub's preprocessors do."""
    return f"pass sample_weight (0 at padding), e.g. {option('--sample-weight', 'mask')}"


def mask_zero(model) -> bool:
    """Whether an ``Embedding(mask_zero=True)`` in ``model`` makes its mask."""
    keras = models.import_keras()
    return any(isinstance(layer, keras.layers.Embedding) and layer.mask_zero
               for layer in models.flat_layers(model))


def file_reduction(model) -> str | None:
    """The reduction the compile_config saved in the model's file names, if any."""
    config = getattr(model, "saved_compile_config", None)
    loss = config.get("loss") if isinstance(config, dict) else None
    return (loss.get("config") or {}).get("reduction") if isinstance(loss, dict) else None


def likely_cause(audit: AuditRun, failed: list[str]) -> str:
    """Name the likely cause of the failed checks: the one place where it is
    decided (a layer-by-layer mask trace can refine the "no mask" case here).
    A metric the sample weights never reach is named too, whatever else failed."""
    cause = _first_cause(audit, failed)
    if "metric-parity" in failed and failed != ["metric-parity"] and audit.unweighted_metrics:
        cause += "; also " + _unweighted_metrics(audit)
    return cause


def _unweighted_metrics(audit: AuditRun) -> str:
    names = ", ".join(audit.unweighted_metrics)
    return (f"the sample weights never reach metric {names}: Keras weighs only the "
            "metrics compiled as weighted_metrics=, so it counts padded steps: compile "
            "it as weighted_metrics=[...] instead of metrics=[...]")


def _first_cause(audit: AuditRun, failed: list[str]) -> str:
    padded = ~audit.mask
    if "target-invariance" in failed and audit.nonfinite_padded_targets:
        return (f"the targets hold NaN or inf at {audit.nonfinite_padded_targets} padded steps, "
                "and Keras applies the mask by multiplication (NaN x 0 = NaN): "
                "fill padded targets with 0 or any finite value")
    weighted = weighted_padding(audit.weights, audit.mask)
    if audit.time_axis and weighted and (audit.out_mask is None
                                         or (audit.out_mask & padded).any()):
        return (f"sample_weight is non-zero at {weighted} padded steps, and nothing else masks "
                "them: the loss counts those steps: give weights that are 0 at padding, "
                f"e.g. {option('--sample-weight', 'mask')}")
    if audit.time_axis and not audit.target_padded:
        if audit.out_mask is None and audit.weights is None:
            cause = _no_mask(audit)
            entry = _where_padding_enters(audit) if "forward-invariance" in failed else None
            return f"{cause}; {entry}" if entry else cause
        if audit.out_mask is not None:
            cause = _mask_mismatch(audit, failed)
            if cause:
                return cause
    if "loss-parity" in failed and audit.time_axis:
        cause = _reduction(audit)
        if cause:
            return cause
    if "forward-invariance" in failed:
        entry = _where_padding_enters(audit, with_drop=True)
        if audit.empty_sequence:
            empty = f"a sequence of padding only breaks the model: {audit.empty_sequence}"
            return f"{entry}; {empty}" if entry else empty
        return entry or (
            "padding changes what the model computes at real steps: a layer mixes padded "
            "steps into real ones (convolution, pooling, attention or a bidirectional RNN "
            "without the mask)")
    if failed == ["metric-parity"] and audit.unweighted_metrics:
        return _unweighted_metrics(audit)
    if failed == ["metric-parity"] and audit.mask_blind_metrics:
        blind = audit.mask_blind_metrics
        return (f"{'metric' if len(blind) == 1 else 'metrics'} {', '.join(blind)} "
                f"{'ignores' if len(blind) == 1 else 'ignore'} the mask (Keras masks only "
                "mean-style metrics such as accuracy or mae): compute them on real steps only")
    if failed == ["metric-parity"] and audit.out_mask is None and audit.weights is None:
        return ("the metrics count padded steps: the model's output carries no mask: "
                f"{sample_weight_fix()} (Keras weighs the metrics with them too)")
    return "the loss depends on padded steps: " + ", ".join(failed) + " failed"


def _no_mask(audit: AuditRun) -> str:
    """No Keras mask reaches the output and no weight masks the loss."""
    rows = _trace(audit)
    drop = next((row for row in rows if row.status == "drops" and row.kind != "model"), None)
    if drop is not None:  # there was a mask, and a layer lost it
        leak = trace.first_leak(rows)
        return f"the model's output carries no mask: {leak}: {drop.fix}" if drop.fix else \
            f"the model's output carries no mask: {leak}"
    explicit = [name for name in audit.batch.mask_inputs]
    if explicit:
        names = " and ".join(f"'{name}'" for name in explicit)
        return (f"the loss averages over padded steps: {sample_weight_fix()} (the model masks "
                f"explicitly through its input {names}, which Keras' loss cannot see: no Keras "
                "mask reaches the output)")
    leak = trace.first_leak(rows) if rows else None
    if leak is None:
        leak = ("a layer or a tensor operation drops it (plain arithmetic such as x * 2.0 on a "
                "symbolic tensor does so silently): set supports_masking = True, pass mask= "
                "explicitly, or use a mask-aware layer")
    if not leak.startswith("the model's output"):
        leak = f"the model's output carries no mask: {leak}"
    return f"the loss averages over padded steps: {sample_weight_fix()}; {leak}"


def _trace(audit: AuditRun) -> list:
    """The layer-by-layer mask trace of the audited model on a sample of the batch."""
    return traced.mask_rows(audit)


def _mask_mismatch(audit: AuditRun, failed: list[str]) -> str | None:
    """The model's own mask keeps padded steps, or hides real ones."""
    kept = int((audit.out_mask & ~audit.mask).sum())
    hidden = int((~audit.out_mask & audit.mask).sum())
    if kept:
        values = models.masking_values(audit.model)
        pad = audit.pad_step
        if (values and pad is not None and np.ndim(pad) <= 1
                and not any(np.all(equal(np.asarray(pad), v)) for v in values)):
            if np.ndim(pad) == 1 and len(set(np.asarray(pad).tolist())) > 1:
                return (f"the model's mask keeps {kept} padded steps: they hold {show(pad)}, "
                        f"only partly Masking's mask_value {values[0]:g}, and Masking masks a "
                        "step only when every feature equals it, so no mask_value can match "
                        f"them: pad every feature with {values[0]:g}")
            return (f"the model's mask keeps {kept} padded steps: Masking(mask_value="
                    f"{values[0]:g}) does not match the pad value {show(pad)}: "
                    "set mask_value to the pad value")
        if pad is not None and np.ndim(pad) == 0 and pad != 0 and mask_zero(audit.model):
            zeros = f", and the {hidden} real steps holding id 0 are masked" if hidden else ""
            return (f"the model's mask keeps {kept} padded steps: Embedding(mask_zero=True) "
                    f"masks id 0, and the padding is id {show(pad)}: the padded steps are kept"
                    f"{zeros}: compute the mask as ids != {show(pad)} instead of mask_zero")
        merged = next((row for row in _trace(audit) if row.status == "drops" and row.mask_out),
                      None)
        if merged is not None:
            return (f"the model's mask keeps {kept} padded steps: {trace.first_leak([merged])}: "
                    f"{merged.fix}")
        return (f"the model's mask keeps {kept} padded steps: it does not match the padding "
                "(check mask_zero / mask_value against the pad value)")
    if hidden and "loss-parity" in failed:
        return (f"the model's mask hides {hidden} real steps (e.g. a real token equal to the "
                "pad value): the loss skips them")
    return None


def _reduction(audit: AuditRun) -> str | None:
    """A loss that divides by the wrong count: all steps, padding included.

    Each reference is reduced batch by batch and averaged as ``evaluate``
    averages, so that a batched audit (``--batch-size``) is judged alike."""
    share = audit.mask.sum() / audit.mask.size
    keras_loss, all_steps = audit.keras_loss, audit.all_steps_loss
    if audit.weights is not None and audit.spec.kind is not None:
        saved = file_reduction(audit.model)
        if close(keras_loss, all_steps, audit.rtol) and saved == "mean_with_sample_weight":
            return (f"the loss divides the weighted sum by all {audit.mask.size} steps, padding "
                    f"included: the loaded model's loss is reduced with {audit.spec.reduction}, "
                    "though the file's compile_config says reduction=\"mean_with_sample_weight\" "
                    "(KerasHub task models recompile with their own defaults when they load): "
                    "compile it again after loading")
        if close(keras_loss, all_steps, audit.rtol):
            return (f"the loss divides the weighted sum by all {audit.mask.size} steps, padding included "
                    "(Keras' default reduction, sum_over_batch_size, counts steps, not "
                    "weights), so the padding's share shrinks the loss and each batch's "
                    "gradient scale: compile the loss with reduction=\"mean_with_sample_weight\", "
                    "which divides by the weights (the mean over real steps)")
    if all_steps is not None and close(keras_loss, all_steps, audit.rtol):
        return (f"the loss divides by all steps, padding included (Keras' loss = masked loss x "
                f"real share {share:.3f}): divide by the number of real steps instead")
    if close(keras_loss, audit.unmasked_loss, audit.rtol):
        return "the loss averages over all steps: it ignores the mask"
    return None


def _where_padding_enters(audit: AuditRun, with_drop: bool = False) -> str | None:
    """The layer where padding enters real steps, from a trace of its padding
    effect with the extra padding forward-invariance adds, with its fix. Every
    input is extended by its own padding, as forward-invariance extends it."""
    traced_padding = traced.padding_trace(audit)
    if traced_padding is None:  # a model that cannot be walked: the generic cause stands
        return None
    return trace.padding_cause(traced_padding, with_drop)
