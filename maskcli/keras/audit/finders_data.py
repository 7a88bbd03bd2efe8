"""Finders of data and compile fixes: the targets, the sample weights, the
loss' reduction, the weighted metrics, the pad value. Each is tried (see
:mod:`~maskcli.keras.audit.trial`) before it is suggested."""

from __future__ import annotations

import numpy as np

from maskcli.keras import models
from maskcli.keras.audit.cause import file_reduction, mask_zero
from maskcli.keras.audit.fixes import finder, tried
from maskcli.keras.audit.report import AuditReport, Fix
from maskcli.keras.audit.trial import Trial
from maskcli.keras.audit.values import equal, finite_steps, show
from maskcli.keras.audit.weights import step_weights, weighted_padding

MEAN_WITH_WEIGHTS = "mean_with_sample_weight"
LOSS_CHECKS = ("loss-parity", "target-invariance", "padding-gradient")


@finder
def padded_targets(trial: Trial, report: AuditReport) -> list[Fix]:
    """NaN or inf targets at padded steps: Keras masks by multiplying."""
    run = trial.run
    if not run.nonfinite_padded_targets or "target-invariance" not in report.failed:
        return []
    y = run.y.astype(np.float32)
    y[~run.mask & ~finite_steps(run.y)] = 0
    return [tried(f"fill the {run.nonfinite_padded_targets} padded targets that hold NaN or inf "
                  "with 0 (any finite value: Keras masks by multiplying, and NaN x 0 = NaN)",
                  "data", trial.targets(y, "padded targets set to 0"))]


@finder
def masking_value(trial: Trial, report: AuditReport) -> list[Fix]:
    """A Masking layer whose mask_value is not what padded steps hold."""
    run = trial.run
    values, pad = models.masking_values(run.model), run.pad_step
    if (not values or pad is None or run.out_mask is None or not (run.out_mask & ~run.mask).any()
            or np.ndim(pad) > 1):
        return []
    pad, value = np.asarray(pad), values[0]
    if np.all(equal(pad, value)):
        return []
    outcome = trial.pad_value(value, f"every feature of the padded steps set to {value:g}")
    if np.ndim(pad) == 1 and len(set(pad.tolist())) > 1:
        # [-1, -1, 0]: Masking masks a step only when EVERY feature equals mask_value
        return [tried(f"pad every feature of the padded steps with {value:g}: they hold "
                      f"{show(pad)}, partly the pad value, and Masking masks a step only when "
                      "all its features equal mask_value, so no mask_value can match them",
                      "data", outcome)]
    return [tried(f"pad with Masking's mask_value {value:g} instead of {show(pad)}", "data",
                  outcome),
            Fix(f"set Masking(mask_value={show(pad)}): the padded steps hold {show(pad)}",
                "model")]


@finder
def pad_id(trial: Trial, report: AuditReport) -> list[Fix]:
    """Embedding(mask_zero=True) with another pad id (RoBERTa pads with 1)."""
    run = trial.run
    pad = run.pad_step
    if (not mask_zero(run.model) or pad is None or np.ndim(pad) != 0 or pad == 0
            or run.out_mask is None):
        return []
    zeros = int(((np.asarray(run.batch.arrays[run.driver or run.batch.names[0]]) == 0)
                 & run.mask).sum()) if run.driver or len(run.batch.arrays) == 1 else 0
    return [Fix(f"mask the pad id {show(pad)}, not 0: compute the mask as ids != {show(pad)} "
                "(a layer whose compute_mask returns it, or pass it as mask=) instead of "
                f"Embedding(mask_zero=True), which keeps the padded steps"
                + (f" and masks the {zeros} real steps holding id 0" if zeros else ""), "model")]


@finder
def sample_weights(trial: Trial, report: AuditReport) -> list[Fix]:
    """The loss counts padded steps and no Keras mask reaches it: weights 0 at
    padding, divided by the weights (a fix only with mean_with_sample_weight
    beside it, unless the loss is already reduced so)."""
    run = trial.run
    if not run.time_axis or run.target_padded or not set(LOSS_CHECKS) & set(report.failed):
        return []
    fixes = []
    mask_weights = run.mask.astype(np.float32)
    if weighted_padding(run.weights, run.mask):  # weights given, not 0 at padding
        weights = step_weights(run.weights, run.mask) * run.mask
        fixes.append(tried(f"give {run.weights_label} that are 0 at the "
                           f"{weighted_padding(run.weights, run.mask)} padded steps they weigh "
                           "(multiply them by the mask, or --sample-weight mask)", "data",
                           trial.weights(weights, "weights set to 0 at padding")))
        mask_weights = weights
    elif run.weights is not None or (run.out_mask is not None and not (run.out_mask & ~run.mask).any()):
        return fixes  # the padding is weighted 0 or masked: not a matter of weights
    reduction = run.spec.reduction
    if reduction != MEAN_WITH_WEIGHTS and not fixes:
        fixes.append(tried("pass sample_weight = the mask (0 at padding, --sample-weight mask) "
                           f"with the loss' reduction as it is ({reduction})", "data",
                           trial.weights(mask_weights, "sample_weight = the mask")))
    if reduction != MEAN_WITH_WEIGHTS:
        fixes.append(tried(
            f"pass sample_weight = the mask (0 at padding, --sample-weight mask) and compile the "
            f"loss with reduction=\"{MEAN_WITH_WEIGHTS}\", which divides by the weights (the "
            "default divides by all steps, padding included)", "data",
            trial.weights(mask_weights, "sample_weight = the mask, loss recompiled on a clone "
                          f"with reduction={MEAN_WITH_WEIGHTS}", reduction=MEAN_WITH_WEIGHTS)))
    return fixes


@finder
def weighted_reduction(trial: Trial, report: AuditReport) -> list[Fix]:
    """Weights 0 at padding, and a reduction that divides by all steps."""
    run = trial.run
    if (run.weights is None or weighted_padding(run.weights, run.mask) or not run.time_axis
            or "loss-parity" not in report.failed or run.spec.reduction == MEAN_WITH_WEIGHTS):
        return []
    text = (f"compile the loss with reduction=\"{MEAN_WITH_WEIGHTS}\": it divides the weighted "
            f"sum by the weights; {run.spec.reduction} divides it by all steps, padding included")
    wanted = file_reduction(run.model)
    if wanted == MEAN_WITH_WEIGHTS:
        text = (f"the loaded model's loss is reduced with {run.spec.reduction}, though the "
                f"file's compile_config says reduction=\"{MEAN_WITH_WEIGHTS}\" (KerasHub task "
                "models recompile with their own defaults when they load): compile it again "
                f"after loading, with reduction=\"{MEAN_WITH_WEIGHTS}\"")
    return [tried(text, "compile", trial.compiled(
        f"loss recompiled on a clone with reduction={MEAN_WITH_WEIGHTS}",
        reduction=MEAN_WITH_WEIGHTS))]


@finder
def weighted_metrics(trial: Trial, report: AuditReport) -> list[Fix]:
    run = trial.run
    if "metric-parity" not in report.failed:
        return []
    fixes = []
    if run.unweighted_metrics:
        names = ", ".join(run.unweighted_metrics)
        fixes.append(tried(f"compile metric {names} as weighted_metrics=[...] instead of "
                           "metrics=[...]: Keras hands the sample weights to those only",
                           "compile", trial.compiled("metrics recompiled on a clone as "
                                                     "weighted_metrics", weighted_metrics=True)))
    if run.mask_blind_metrics:
        fixes.append(Fix(f"compute {', '.join(run.mask_blind_metrics)} on the real steps only: "
                         "Keras' confusion-matrix metrics ignore the mask", "model"))
    return fixes
