"""``segment-isolation``: every document of a packed row against itself alone.

Each document runs twice: in its packed row, and alone in a row of its own
(at the row's start, positions 0.., padding after it; see
:func:`maskcli.keras.trace.packed.alone_arrays`). Its outputs at its steps,
and its loss, must be the same. The loss of a document is weighted by the
sample weights at its steps (a per-step weight travels with its document
when it runs alone; a per-row weight is its row's), and reduced as the
compiled loss reduces (:func:`maskcli.keras.audit.reference.reduced`): the
packed and the alone loss of a document are the same sum over the same
weights, so any difference is the other documents of the row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskcli.core.packed_layout import IGNORE_INDEX
from maskcli.keras.audit.reference import LossSpec, loss_rtol, reduced, spec_per_step
from maskcli.keras.audit.report import Check
from maskcli.keras.trace.packed import (
    PackedBatch,
    alone_arrays,
    call,
    document_changes,
    tolerance,
)

CHECK_ID = "segment-isolation"


@dataclass
class Setup:
    """What every isolation run of one audit shares: the model (its inputs
    ``spec``), its loss, the batch size of its calls (None: one call), and
    the sample weights, one per step (None: unweighted)."""

    model: object
    spec: object
    loss: LossSpec
    size: int | None = None
    weights: np.ndarray | None = None


@dataclass
class Isolation:
    """The check, and per document (in ``batch.docs`` order) its row,
    segment, first step, length and loss packed and alone (None when the
    loss has no numpy reference or none of its steps counts)."""

    check: Check
    rows: list[dict]


def isolation(setup: Setup, batch: PackedBatch, arrays: dict, targets,
              packed=None) -> Isolation:
    """Each document of ``arrays`` (``batch`` with some arrays changed)
    packed against the same document alone: outputs and loss. ``packed``:
    the model's output on ``arrays`` when already computed."""
    if packed is None:
        packed = call(setup.model, setup.spec, arrays, setup.size)
    alone = call(setup.model, setup.spec, alone_arrays(batch, arrays), setup.size)
    changes = document_changes(batch, packed, alone)
    tol = tolerance(packed, alone)
    losses = document_losses(batch, packed, alone, np.asarray(targets), setup.loss,
                             setup.weights)
    rtol = max(loss_rtol(int((batch.segment_ids > 0).sum())), 1e-4)
    loss_bad = [i for i, (p, a) in enumerate(losses)
                if p is not None and not np.isclose(p, a, rtol=rtol, atol=1e-6)]
    out_bad = [] if changes is None else list(np.flatnonzero(changes > tol))
    bad = sorted(set(out_bad) | set(loss_bad))
    value = None if changes is None else float(changes.max(initial=0.0))  # the largest change
    compared = any(p is not None for p, _ in losses)
    if bad:
        row, segment, start, end = batch.docs[bad[0]]
        packed_loss, alone_loss = losses[bad[0]]
        detail = (f"{len(bad)} of {len(batch.docs)} documents change when packed: first row "
                  f"{row}, document {segment} (steps {start}-{end - 1})"
                  + (f", output changed by {changes[bad[0]]:.3g} (tolerance {tol:.2g})"
                     if changes is not None else "")
                  + (f", loss {packed_loss:.6g} packed against {alone_loss:.6g} alone"
                     if packed_loss is not None else ""))
    else:
        detail = (f"all {len(batch.docs)} documents give the same outputs and loss packed as "
                  "alone")
    if setup.weights is not None and compared:
        detail += " (each document's loss weighted by its sample weights)"
    status = "fail" if bad else "pass"
    if changes is None and not compared:
        status, detail = "skipped", (f"the output has shape {tuple(packed.shape)}, no step axis "
                                     f"of the rows' {batch.steps} steps: documents not compared")
    rows = [{"row": int(row), "segment": int(segment), "start": int(start),
             "length": int(end - start), "packed_loss": p, "alone_loss": a}
            for (row, segment, start, end), (p, a) in zip(batch.docs, losses)]
    return Isolation(Check(CHECK_ID, status, value, tol, detail), rows)


def ignored_targets(targets: np.ndarray, loss: LossSpec) -> np.ndarray:
    """True where a target is not scored: -100 (Hugging Face's label of the
    steps not to score) or the loss' ``ignore_class``."""
    ignored = targets == IGNORE_INDEX if targets.dtype.kind in "iu" else np.zeros(
        targets.shape, bool)
    if loss.ignore_class is not None:
        ignored = ignored | (targets == loss.ignore_class)
    return ignored


def document_losses(batch: PackedBatch, packed, alone, targets: np.ndarray, loss: LossSpec,
                    weights: np.ndarray | None = None) -> list[tuple]:
    """The loss of each document, packed and alone: (None, None) for every
    document when the loss has no numpy reference or the targets are not one
    per step, and for a document none of whose steps counts."""
    none = [(None, None)] * len(batch.docs)
    if loss.kind is None or targets.shape[:2] != batch.segment_ids.shape:
        return none
    ignored = ignored_targets(targets, loss)
    safe = np.where(ignored, 0, targets) if ignored.any() else targets
    if ignored.ndim > 2:
        ignored = ignored.all(axis=tuple(range(2, ignored.ndim)))
    per_step = spec_per_step(loss, safe, packed)
    step_w = np.ones(batch.segment_ids.shape) if weights is None else weights
    result = []
    for i, (row, _, start, end) in enumerate(batch.docs):
        keep = ~ignored[row, start:end]
        w = step_w[row, start:end] * keep
        if not keep.any() or (loss.reduction != "sum" and not w.any()):
            result.append((None, None))
            continue
        alone_steps = spec_per_step(loss, safe[row, start:end], alone[i, :end - start])
        result.append((reduced(loss, per_step[row, start:end], w, keep),
                       reduced(loss, alone_steps, w, keep)))
    return result
