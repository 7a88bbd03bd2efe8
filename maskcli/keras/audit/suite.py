"""The checks of an audit, run in order on an ``AuditRun``: the whole audit,
or the few checks a tried fix must make pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

from maskcli.keras.audit import accumulation, checks, losses, weighting
from maskcli.keras.audit.reference import loss_rtol
from maskcli.keras.audit.report import Check

if TYPE_CHECKING:
    from maskcli.keras.audit.state import AuditRun

CHECK_IDS = ("loss-parity", "target-invariance", "padding-gradient", "forward-invariance",
             "metric-parity")
# Checks that read the loss at padded steps: they need an output with a time axis.
TIME_AXIS_CHECKS = CHECK_IDS[:3]
_LOSS_CHECKS = {"loss-parity": checks.loss_parity, "target-invariance": checks.target_invariance,
                "padding-gradient": checks.padding_gradient}


def run_checks(run: AuditRun, only: list[str] | None = None, strict: bool = False) -> list[Check]:
    """Run the audit's checks on ``run`` (``only``: just those) and return them
    in the report's order. Sets the run's Keras loss and its references."""
    wanted = set(CHECK_IDS + (weighting.CHECK_ID, accumulation.CHECK_ID) if only is None
                 else only)
    run.rtol = loss_rtol(run.mask.size)
    run.keras_loss = float(run.evaluate()["loss"])
    run.removed_loss = run.masked_loss = run.unmasked_loss = run.token_mean_loss = None
    run.all_steps_loss = None  # what a loss that divides by all steps would report
    metric_check = None
    if "metric-parity" in wanted:  # first: it reads the metrics evaluate() left
        metric_check = checks.metric_parity(run)
    if run.time_axis:
        losses.set_references(run)
        results = [_LOSS_CHECKS[cid](run) for cid in TIME_AXIS_CHECKS if cid in wanted]
    else:
        reason = (f"the output (shape {run.out.shape}) has no time axis: the loss sees "
                  "whole sequences, never a padded step")
        if run.out.ndim >= 3:  # e.g. after a 'valid' convolution: its steps are not the inputs'
            reason = (f"the output (shape {run.out.shape}) has no axis of the inputs' "
                      f"{run.mask.shape[1]} steps: which of its steps are padding is unknown")
        if only is None:
            run.notes.append(f"{reason.split(':')[0]}: only forward-invariance and "
                             "metric-parity apply")
        results = [Check(cid, "skipped", detail=reason) for cid in TIME_AXIS_CHECKS
                   if cid in wanted]
    if "forward-invariance" in wanted:
        results.append(checks.forward_invariance(run))
    if metric_check is not None:
        results.append(metric_check)
    if weighting.CHECK_ID in wanted and run.batching.size and not run.batching.auto:
        results.append(weighting.batch_weighting_check(run, strict))
    if accumulation.CHECK_ID in wanted and accumulation.applies(run):
        results.append(accumulation.accumulation_check(run, strict))
    return results
