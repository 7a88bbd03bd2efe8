"""Keras' own loss on packed rows: the options of a training run (sample
weights, batches, training steps) and the padded audit's checks of the loss.

Packed rows are padded after their last document: the real steps are those
of a document, ``segment_ids > 0``. The audit runs Keras on the packed batch
as ``fit`` would (an :class:`~maskcli.keras.audit.state.AuditRun` whose
reference mask is that of the real steps), so that the padded audit's own
code applies unchanged:

- ``sample_weight`` (one per step or per row, or "mask": ``segment_ids > 0``)
  weighs Keras' loss, the reference loss and each document's loss;
- ``batch_size`` runs every model call in batches of that many rows and adds
  ``batch-weighting``;
- ``train_steps`` trains the model in place first, on the targets and weights;
- ``accumulation_steps`` and ``replicas`` (or the compiled optimizer's
  ``gradient_accumulation_steps``), with ``batch_size`` the micro-batch, add
  ``accumulation``: how updates of K micro-batches weigh the real steps
  (:mod:`maskcli.keras.audit.accumulation`, its fix tried as there);
- ``loss-parity`` compares Keras' loss with the correctly masked loss over
  the real steps. On packed rows it is a warning (a failure with
  ``strict``): the verdict is about the documents, and Keras' loss that
  counts the padding after the last document (or divides by it: the default
  reduction with sample weights) is said, with its fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskcli.core.errors import InputError, ModelError, option, spelled
from maskcli.keras.audit import accumulation, batched, weighting
from maskcli.keras.audit.cause import likely_cause
from maskcli.keras.audit.inputs import Batch
from maskcli.keras.audit.packed_isolation import ignored_targets
from maskcli.keras.audit.reference import LossSpec, reduced, spec_per_step
from maskcli.keras.audit.report import Check
from maskcli.keras.audit.state import AuditRun
from maskcli.keras.audit.suite import run_checks
from maskcli.keras.audit.weights import check_measured, step_weights
from maskcli.keras.trace.packed import PackedBatch

PARITY_ID = "loss-parity"
MEAN_WITH_WEIGHTS = "mean_with_sample_weight"


@dataclass
class PackedOptions:
    """What ``audit_loss`` passes on for packed rows: the padded audit's
    options of the same names."""

    sample_weight: object = None  # (rows, steps), (rows,), "mask" or None
    sample_weight_label: str = "sample weights"
    batch_size: int | None = None
    train_steps: int = 0
    per_sample: bool = False
    strict: bool = False
    source: str = "inputs"
    progress: batched.Progress = batched.no_progress
    accumulation_steps: int | None = None
    replicas: int | None = None


@dataclass
class KerasSide:
    """Keras on the packed batch: the run (its model output ``run.out``, the
    targets ``run.y`` Keras takes, the weights), and why Keras' loss cannot
    be computed (None when it can)."""

    run: AuditRun
    targets: np.ndarray
    skipped: str | None = None

    @property
    def weights(self) -> np.ndarray | None:
        """One float64 weight per step (None without sample weights)."""
        run = self.run
        return None if run.weights is None or not run.time_axis else step_weights(
            run.weights, run.mask)


def prepare(model, spec, label: str, loss: LossSpec, batch: PackedBatch, targets, seed: int,
            targets_label: str, options: PackedOptions) -> KerasSide:
    """Run the model on the packed batch (in batches of ``batch_size``), set
    the weights and the targets, and train ``train_steps`` steps."""
    real = batch.segment_ids > 0
    paddings = {name: real if np.ndim(array) >= 2 and np.shape(array)[:2] == real.shape
                else None for name, array in batch.arrays.items()}
    steps = batch.steps
    batching = batched.plan(len(real), steps, options.batch_size)
    run = AuditRun(model, label, loss, Batch(spec, dict(batch.arrays), paddings), real,
                   options.source, None, batching=batching, progress=options.progress)
    run.set_weights(options.sample_weight, options.sample_weight_label)
    skipped = _unscorable(targets, loss, targets_label)
    if skipped is None:
        run.set_targets(targets, seed, targets_label)
        used = run.y
    else:
        if options.train_steps:
            raise InputError(f"{option('--train-steps')} {options.train_steps}: Keras cannot "
                             f"train on these targets: {skipped}")
        used = np.asarray(targets)
    if options.train_steps:
        run.train(options.train_steps)
    accumulation.configure(run, options.accumulation_steps, options.replicas)
    return KerasSide(run, used, skipped)


def _unscorable(targets, loss: LossSpec, targets_label: str) -> str | None:
    """Why Keras cannot compute its loss on ``targets``: labels of -100 that
    a sparse cross-entropy without ``ignore_class=-100`` reads as a class."""
    if targets is None or loss.kind != "sparse_categorical_crossentropy":
        return None
    targets = np.asarray(targets)
    ignored = ignored_targets(targets, LossSpec(loss.name, loss.kind))
    if not ignored.any() or loss.ignore_class == -100:
        return None
    return (f"{targets_label} hold -100 at {int(ignored.sum())} steps, and {loss.name} has no "
            "ignore_class=-100: it reads -100 as a class id (TensorFlow fails on it), so "
            "Keras' loss is not computed; compile the loss with ignore_class=-100")


def keras_checks(side: KerasSide, strict: bool) -> list[Check]:
    """``loss-parity`` (and with batches ``batch-weighting``, with
    accumulation ``accumulation``), the padded audit's own, on the real steps
    of the packed rows. Sets the run's
    ``keras_loss``, ``masked_loss`` and the other references."""
    run = side.run
    run.keras_loss = run.masked_loss = run.unmasked_loss = run.removed_loss = None
    run.rtol = 1e-5
    if side.skipped is not None:
        return [Check(PARITY_ID, "skipped", detail=side.skipped)] + _not_weighed(
            run, side.skipped)
    check_measured(run)
    try:
        results = run_checks(run, only=[PARITY_ID, weighting.CHECK_ID, accumulation.CHECK_ID],
                             strict=strict)
    except ModelError as exc:  # Keras' evaluate cannot run: the documents are still compared
        run.keras_loss = None
        return [Check(PARITY_ID, "skipped", detail=str(exc))] + _not_weighed(run, str(exc))
    for check in results:
        if check.id == PARITY_ID and check.status == "fail":
            why = loss_cause(run)
            if not strict:
                check.status = "warn"
                why += ("; a warning on packed rows (the documents are the verdict): "
                        + spelled("--strict", "strict=True") + " fails it")
            check.detail = f"{check.detail}; {why}"
    return results


def _not_weighed(run: AuditRun, why: str) -> list[Check]:
    """``accumulation``, skipped when Keras' loss of each micro-batch cannot
    be computed: said, never left out."""
    if not accumulation.applies(run):
        return []
    return [Check(accumulation.CHECK_ID, "skipped",
                  detail=f"Keras' loss of each micro-batch cannot be computed: {why}")]


def weighting_causes(run: AuditRun, failed: list[str]) -> tuple[list[str], list]:
    """The causes (and the tried fix) when ``accumulation`` or
    ``batch-weighting`` failed (``strict``), as the padded audit says them."""
    if accumulation.CHECK_ID in failed:
        return [accumulation.cause(run)], accumulation.fixes(run)
    if weighting.CHECK_ID in failed:
        return [weighting.cause(run)], []
    return [], []


def loss_cause(run: AuditRun) -> str:
    """Why Keras' loss differs from the loss over the real steps."""
    padded = ~run.mask
    if run.weights is None and run.time_axis and (run.out_mask is None
                                                  or (run.out_mask & padded).any()):
        counted = int(padded.sum()) if run.out_mask is None else int(
            (run.out_mask & padded).sum())
        return (f"Keras' loss counts the {counted} padded steps after the rows' last "
                "documents: no Keras mask and no sample weight leaves them out: pass "
                f"sample_weight = segment_ids > 0 ({option('--sample-weight', 'mask')}) and "
                f"compile the loss with reduction=\"{MEAN_WITH_WEIGHTS}\"")
    return likely_cause(run, [PARITY_ID])


def masked_loss(side: KerasSide, loss: LossSpec) -> float | None:
    """The correctly masked loss over the real steps (weighted, the ignored
    labels left out), computed in numpy: for targets Keras cannot take."""
    run, targets = side.run, np.asarray(side.targets)
    if loss.kind is None or not run.time_axis or targets.shape[:2] != run.mask.shape:
        return None
    ignored = ignored_targets(targets, loss)
    safe = np.where(ignored, 0, targets)
    if ignored.ndim > 2:
        ignored = ignored.all(axis=tuple(range(2, ignored.ndim)))
    counted = run.mask & ~ignored
    weights = (np.ones(run.mask.shape) if side.weights is None else side.weights) * counted
    return reduced(loss, spec_per_step(loss, safe, run.out), weights, counted)
