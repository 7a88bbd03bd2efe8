"""Finders of fixes from what the model's layers do: the layer that drops the
mask (or turns every step real), and the layer where padding enters real
steps, with the fix its kind needs; a model fix cannot be tried (verified
None), the padding side it may call for is tried by re-padding the batch."""

from __future__ import annotations

import numpy as np

from maskcli.core.extend import pre_padded_rows
from maskcli.keras.audit import traced
from maskcli.keras.audit.fixes import finder, tried
from maskcli.keras.audit.report import AuditReport, Fix
from maskcli.keras.audit.trial import Trial

LOSS_CHECKS = ("loss-parity", "target-invariance", "padding-gradient")


@finder
def mask_lost(trial: Trial, report: AuditReport) -> list[Fix]:
    """The layer where the mask stops: dropped, or merged into all real steps."""
    run = trial.run
    if not run.time_axis or not set(LOSS_CHECKS) & set(report.failed):
        return []
    keeps_padding = run.out_mask is not None and bool((run.out_mask & ~run.mask).any())
    if (run.out_mask is not None and not keeps_padding) or run.weights is not None:
        return []  # masked, or weighted: no mask to lose
    row = next((row for row in traced.mask_rows(run)
                if row.status == "drops" and row.kind != "model" and row.fix), None)
    if row is None:
        return []
    return [Fix(f"at {row.kind} '{row.path}' ({row.cls}): {row.fix}", "model")]


@finder
def padding_entry(trial: Trial, report: AuditReport) -> list[Fix]:
    """The layer where padding enters real steps; on pre-padded data, padding
    post is tried too (it helps a causal layer, not a last state)."""
    run = trial.run
    if "forward-invariance" not in report.failed:
        return []
    fixes = []
    padding = traced.padding_trace(run)
    row = padding.enters if padding is not None else None
    if row is not None and row.padding_fix:
        fixes.append(Fix(f"at {row.kind} '{row.path}' ({row.cls}): {row.padding_fix}", "model"))
    if pre_padded_rows(run.mask).any():
        loss_too = set(LOSS_CHECKS) & set(report.failed) and run.out_mask is None \
            and run.weights is None
        if loss_too:  # the loss needs the weights as well: padding alone cannot fix it
            outcome = trial.padding("post", weights=run.mask.astype(np.float32),
                                    reduction="mean_with_sample_weight")
            text = ("pad post (maskcli pad --padding post), and pass sample_weight = the mask "
                    "with reduction=\"mean_with_sample_weight\"")
        else:
            outcome = trial.padding("post")
            text = "pad post (maskcli pad --padding post)"
        fixes.append(tried(text, "data", outcome))
    return fixes


@finder
def empty_sequence(trial: Trial, report: AuditReport) -> list[Fix]:
    """A sequence of padding only gives NaN or inf."""
    problem = trial.run.empty_sequence
    if not problem or "forward-invariance" not in report.failed:
        return []
    return [Fix(f"keep a sequence of padding only finite: {problem}", "model")]
