"""The audit of a model on packed rows: ``segment-isolation`` and
``boundary-targets``.

Packed inputs are not padded ones: position 0 starts every document, and
segment ids, not a pad value, say where one ends. So a model whose inputs
include segment ids (``NAME_segment_ids``, or ``segment_input``) is audited
here instead of by the padding checks:

- ``segment-isolation``: every document of a packed row gives the same
  outputs at its steps, and the same loss, as when it runs alone, unpacked
  (its own row, positions 0.., padding after it);
- ``boundary-targets``: no next-token target at a document's last step is the
  first token of the next document (skipped without targets);
- ``loss-parity`` and, in batches, ``batch-weighting``: the padded audit's
  checks of Keras' own loss, on the real steps (``segment_ids > 0``), with
  the sample weights, batches and training steps of the padded audit
  (:mod:`maskcli.keras.audit.packed_loss`).

On a leak the cause names where documents mix (the first layer whose output
changes, :mod:`maskcli.keras.trace.packed`), and the fixes that maskcli can
try on the data (positions restarted, an additive mask made boolean, the
crossing labels set to -100) are tried and marked verified.
"""

from __future__ import annotations

import numpy as np

from maskcli.core.packed_diagnose import crossing_targets, restarted_positions
from maskcli.core.packed_layout import IGNORE_INDEX
from maskcli.keras import models
from maskcli.keras.audit import fixes as padded_fixes
from maskcli.keras.audit import packed_loss
from maskcli.keras.audit.packed_isolation import CHECK_ID, Setup, isolation
from maskcli.keras.audit.packed_loss import PARITY_ID, PackedOptions
from maskcli.keras.audit.reference import loss_spec
from maskcli.keras.audit.report import AuditReport, Check, Fix
from maskcli.keras.trace.packed import PackedBatch, call, trace_documents

PADDED_CHECKS = (PARITY_ID, "batch-weighting", "accumulation")  # on the real steps

BOUNDARY_ID = "boundary-targets"
_RNN = ("LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM")


def audit_packed(model, spec, batch: PackedBatch, *, label: str, targets=None, seed: int = 0,
                 targets_label: str = "targets",
                 options: PackedOptions | None = None) -> AuditReport:
    """Audit ``model`` (compiled, its inputs ``spec``) on the packed ``batch``.
    ``options``: the sample weights, batch size, training steps, per-document
    rows and strictness, as the padded audit takes them."""
    options = options or PackedOptions()
    loss = loss_spec(model.loss)
    given = targets is not None
    keras = packed_loss.prepare(model, spec, label, loss, batch, targets, seed, targets_label,
                                options)  # trained here with --train-steps
    run = keras.run
    setup = Setup(model, spec, loss, run.batching.size, keras.weights)
    isolated = isolation(setup, batch, batch.arrays, keras.targets, packed=run.out)
    checks = [isolated.check, _boundary_check(batch, targets, targets_label)]
    checks += packed_loss.keras_checks(keras, options.strict)
    failed = [check.id for check in checks if check.status == "fail"]
    report = AuditReport(
        verdict="leaks" if failed else "ignored", loss=loss.name, keras_loss=run.keras_loss,
        masked_loss=run.masked_loss if keras.skipped is None else packed_loss.masked_loss(
            keras, loss),
        unmasked_loss=run.unmasked_loss, checks=checks, versions=models.versions(),
        model=label, rtol=run.rtol, sequences=int(batch.segment_ids.shape[0]),
        steps=int(batch.segment_ids.size), real_steps=int((batch.segment_ids > 0).sum()),
        removed_loss=run.removed_loss, batch_size=run.batching.size, batches=len(run.slices),
        batch_size_auto=run.batching.auto,
        per_document=isolated.rows if options.per_sample else None)
    padded_checks = [check.id for check in checks if check.id in PADDED_CHECKS]
    report.notes.append(f"packed inputs ('{batch.names.segment_ids}'): {len(batch.docs)} "
                        "documents compared with each run alone, unpacked (positions 0..); "
                        f"of the padding checks, {', '.join(padded_checks) or 'none'} "
                        f"{'applies' if len(padded_checks) < 2 else 'apply'}, on the real "
                        "steps (segment ids > 0)")
    report.notes.extend(run.notes)
    if run.batching.auto:
        report.notes.append(f"{len(batch.segment_ids)} rows x {batch.steps} steps exceed the "
                            "memory budget of one model call: the audit ran in batches of "
                            f"{run.batching.size} (choose them with --batch-size)")
    if failed:
        causes, fixes = _cause_and_fixes(setup, batch, keras.targets, failed, given)
        if PARITY_ID in failed:
            causes.append(packed_loss.loss_cause(run))
        weighed, tried = packed_loss.weighting_causes(run, failed)
        causes, fixes = causes + weighed, fixes + tried
        report.cause, report.fixes = "; ".join(causes), fixes
        if PARITY_ID in failed:  # the padded audit's fixes of the loss, each tried
            padded_fixes.add_fixes(run, report)
    return report


def _tokens(batch: PackedBatch):
    name = batch.names.tokens
    return None if name is None or name not in batch.arrays else np.asarray(batch.arrays[name])


def _boundary_check(batch: PackedBatch, targets, targets_label: str) -> Check:
    tokens = _tokens(batch)
    if targets is None or tokens is None:
        why = "no targets were given" if targets is None else "no token input to compare with"
        return Check(BOUNDARY_ID, "skipped", detail=f"{why}: next-token targets not checked")
    crossing = crossing_targets(batch.segment_ids, tokens, targets)
    if crossing is None:
        return Check(BOUNDARY_ID, "skipped",
                     detail=f"{targets_label} are not next-token labels of "
                            f"'{batch.names.tokens}': not checked")
    count = int(crossing.sum())
    if not count:
        return Check(BOUNDARY_ID, "pass", 0, 0, "no target crosses a document boundary")
    row, step = (int(i) for i in np.argwhere(crossing)[0])
    return Check(BOUNDARY_ID, "fail", count, 0,
                 f"{count} targets cross a document boundary: the last step of a document is "
                 f"labelled with the next document's first token (first at row {row}, step "
                 f"{step})")


def _cause_and_fixes(setup: Setup, batch, targets, failed, given):
    causes, fixes = [], []
    names = batch.names
    model, spec = setup.model, setup.spec
    if CHECK_ID in failed:
        positions = batch.arrays.get(names.positions) if names.positions else None
        restarted = restarted_positions(batch.segment_ids)
        if positions is not None and not np.array_equal(
                np.where(batch.segment_ids > 0, positions, 0), restarted):
            causes.append(f"the positions input '{names.positions}' does not restart at each "
                          "document: a document later in a row is seen at other positions "
                          "than alone")
            arrays = {**batch.arrays, names.positions: restarted.astype(
                np.asarray(positions).dtype)}
            fixes.append(_data_fix(
                setup, batch, arrays, targets,
                f"re-run with '{names.positions}' restarted at each document (0, 1, ... per "
                "document, 0 at padding; maskcli pack writes them so)",
                "restarted the positions and compared every document with itself alone again"))
        additive = _additive_inputs(batch)
        for name in additive:
            arrays = {**batch.arrays, name: np.asarray(batch.arrays[name]) == 0}
            fixes.append(_data_fix(
                setup, batch, arrays, targets,
                f"convert '{name}' to a boolean mask (True where it holds 0): it is additive "
                "(0 keep, -1e9 drop), and MultiHeadAttention reads an attention_mask as "
                "True/1 = may attend, so it is read inverted",
                f"converted '{name}' to booleans and compared the documents again"))
            causes.append(f"'{name}' is an additive float mask (0 keep, -1e9 drop): "
                          "MultiHeadAttention's attention_mask reads it inverted")
        data_only = any(fix.verified for fix in fixes)  # the data alone was the leak
        traced = batch
        if names.positions and causes and "restart" in causes[0]:  # the layers on fixed data
            traced = PackedBatch({**batch.arrays, names.positions: restarted}, names,
                                 batch.segment_ids, batch.docs)
        trace = trace_documents(model, spec, traced, setup.size) \
            if spec is not None and not data_only else None
        if trace is not None and trace.mixes is not None:
            text, fix = _layer_cause(setup, batch, trace.mixes)
            causes.append(text)
            if fix:
                fixes.append(Fix(fix, "model"))
        elif not causes:
            causes.append("documents mix inside the model (no single layer found): make "
                          "attention block-diagonal by segment, read the positions input, and "
                          "keep convolutions and RNNs from crossing documents")
    if BOUNDARY_ID in failed:
        causes.append("targets cross a document boundary: a document's last step is trained "
                      "to predict the next document's first token")
        fixes.append(_boundary_fix(batch, targets, CHECK_ID not in failed))
    return causes, sorted(fixes, key=lambda fix: fix.verified is not True)


def _data_fix(setup: Setup, batch, arrays, targets, text, tried) -> Fix:
    again = isolation(setup, batch, arrays, targets).check
    return Fix(text, "data", verified=again.status == "pass",
               tried=f"{tried}: {again.detail}")


def _boundary_fix(batch, targets, isolated: bool) -> Fix:
    fixed = np.array(targets, copy=True)
    crossing = crossing_targets(batch.segment_ids, _tokens(batch), fixed)
    count = int(crossing.sum())
    fixed[crossing] = IGNORE_INDEX
    left = int(crossing_targets(batch.segment_ids, _tokens(batch), fixed).sum())
    return Fix(f"set the targets at each document's last step to {IGNORE_INDEX} (or weigh them "
               "0), so that no document is trained across its boundary",
               "data", verified=left == 0 and isolated,
               tried=f"set {count} boundary targets to {IGNORE_INDEX} and counted again: "
                     f"{left} cross a boundary"
                     + ("" if isolated else f"; {CHECK_ID} still fails"))


def _additive_inputs(batch: PackedBatch) -> list[str]:
    found = []
    for name, array in batch.arrays.items():
        array = np.asarray(array)
        if (array.dtype.kind == "f" and array.ndim >= 2 and array.size
                and array.min() <= -1e4 and array.max() <= 0):
            found.append(name)
    return found


def _layer_cause(setup: Setup, batch, row) -> tuple[str, str | None]:
    """Where documents mix, by the layer, and the model fix."""
    where = f"layer '{row.path}' ({row.kind})"
    names = batch.names
    if row.additive_mask:
        return (f"documents mix at {where}: its attention_mask is an additive float mask "
                "(0 keep, -1e9 drop, Hugging Face's internal form), which MultiHeadAttention "
                "reads inverted (True/1 = may attend)",
                "hand the attention layer a boolean mask: segment_ids[:, :, None] == "
                "segment_ids[:, None, :] (and causal), not ops.where(mask, 0, -1e9)")
    if "Attention" in row.kind:
        return (f"documents mix at {where}: its attention mask ignores the segments "
                f"('{names.segment_ids}'), so a document attends to the others in its row",
                f"pass attention_mask = {names.segment_ids}[:, :, None] == "
                f"{names.segment_ids}[:, None, :] (and use_causal_mask=True for a decoder)")
    position = (f"documents mix at {where}: the position embedding does not read the positions "
                f"input '{names.positions}': positions run along the whole row instead of "
                "restarting at each document",
                f"embed the positions input '{names.positions}' (an Embedding of it) instead of "
                "positions 0..L-1 along the row")
    if "Position" in row.kind:
        return position
    if "Conv" in row.kind:
        return (f"documents mix at {where}: a convolution runs across document boundaries (its "
                "kernel reads steps of the neighbouring document)",
                "zero the steps of other documents before the convolution, or drop it from "
                "packed training")
    if any(name in row.kind for name in _RNN):
        return (f"documents mix at {where}: a recurrent layer carries its state from one "
                "document into the next",
                "reset the state at each document (run documents unpacked through the RNN)")
    if _ignores_positions(setup, batch):  # a layer of another kind, the positions unread
        return position
    return (f"documents mix at {where}: its output at a document's steps depends on the other "
            "documents of the row", None)


def _ignores_positions(setup: Setup, batch) -> bool:
    """Whether changing the positions input changes nothing."""
    name = batch.names.positions
    if name is None or name not in batch.arrays:
        return False
    positions = np.asarray(batch.arrays[name])
    shifted = {**batch.arrays, name: (positions + 1) % max(2, positions.max() + 1)}
    model, spec, size = setup.model, setup.spec, setup.size
    return np.array_equal(call(model, spec, batch.arrays, size), call(model, spec, shifted, size))
