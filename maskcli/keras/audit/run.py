"""Run an audit: prepare the model and the batch, run every check, report."""

from __future__ import annotations

import numpy as np

from maskcli.core.accumulation import check_accumulation
from maskcli.core.batching import check_batch_size
from maskcli.core.errors import InputError, UsageError, option, spelled
from maskcli.core.masks import step_mask
from maskcli.keras import feed, models
from maskcli.keras.audit import accumulation, batched, fixes, losses, weighting
from maskcli.keras.audit.batch import (
    boolean_mask,
    checked_inputs,
    checked_targets,
    reference_mask,
    target_padding_mask,
)
from maskcli.keras.audit.cause import likely_cause
from maskcli.keras.audit.inputs import Batch, named_batch
from maskcli.keras.audit.packed import audit_packed
from maskcli.keras.audit.packed_loss import PackedOptions
from maskcli.keras.audit.prepare import built_in_model, user_model
from maskcli.keras.audit.reference import loss_spec
from maskcli.keras.audit.report import AuditReport
from maskcli.keras.audit.state import AuditRun
from maskcli.keras.audit.suite import run_checks
from maskcli.keras.audit.synthetic_packed import without_data
from maskcli.keras.audit.weights import check_measured
from maskcli.keras.trace.packed import packed_batch


@without_data  # no inputs: a packed model runs on synthetic packed rows (#21)
def audit_loss(inputs, *, mask=None, targets=None, target_pad=None, model=None,
               arch: str | None = None, loss: str | None = None, units: int | None = None,
               seed: int = 0, train_steps: int = 0, per_sample: bool = False, pad_value=0,
               verbose: bool = False, source: str = "inputs",
               model_label: str | None = None, targets_label: str = "targets",
               sample_weight=None, sample_weight_label: str = "sample weights",
               output: str | None = None, mask_input: str | None = None,
               pad_values: dict | None = None, recorded_masks: dict | None = None,
               file_mask=None, batch_size: int | None = None, strict: bool = False,
               mask_label: str = "the mask", accumulation_steps: int | None = None,
               replicas: int | None = None,
               progress: batched.Progress = batched.no_progress,
               reseed: bool = True, segment_input: str | None = None) -> AuditReport:
    """Audit whether ``model``'s loss ignores the padding of ``inputs``.

    ``inputs`` is an array, or for a model with several inputs a dict (by
    input name) or a list (in the model's order). ``mask`` (True = real step)
    is the reference padding mask; without it the mask is derived from
    ``inputs`` and ``pad_value`` as Embedding(mask_zero) or Masking would, or
    from ``targets`` equal to ``target_pad``; with several inputs it is the
    padding of the inputs the output's time axis follows (mask inputs such as
    ``padding_mask``, or ``mask_input``, mark real steps with 1).
    ``sample_weight`` ((sequences, steps) or (sequences,), or "mask" for the
    reference mask) weighs the loss as ``fit`` does. ``model`` is a Keras
    model (compiled or not; ``output`` picks one of several outputs); without
    it the built-in ``arch`` is built. Without ``targets``, synthetic ones
    from ``seed`` are used; messages call them ``targets_label``.
    ``train_steps`` trains ``model`` in place before the audit. ``batch_size``
    runs every model call in batches of that size (every input, the targets
    and the weights cut alike) and adds the batch-weighting check (``strict``:
    its warning fails the audit); ``progress(what, done, total)`` hears of
    each batch. ``reseed`` False leaves the global random seeds (Python,
    numpy, TensorFlow) as they are, for an audit inside a training run.
    ``accumulation_steps`` (default: the compiled optimizer's
    ``gradient_accumulation_steps``) and ``replicas`` add the accumulation
    check: updates of that many micro-batches of ``batch_size``, each split
    over ``replicas`` data-parallel replicas. Packed inputs (an input named
    ``*_segment_ids``, or ``segment_input``) get the packed audit instead
    (:mod:`maskcli.keras.audit.packed`), with the same weights, batches,
    training steps, accumulation and per-sample rows (one per document). For example
    ``audit_loss(np.array([[3, 1, 0, 0], [2, 2, 1, 0]])).verdict`` is
    "ignored" (the built-in embedding-lstm masks its loss).
    """
    if train_steps < 0:
        raise UsageError(f"{option('--train-steps')} must be 0 or more, got {train_steps}")
    if batch_size is not None:
        check_batch_size(batch_size)
    check_accumulation(batch_size, accumulation_steps, replicas)
    if model is not None and arch is not None:
        raise UsageError(f"{option('--arch')} and {option('--model')} both name a model: give "
                         "one of them")
    spec = feed.model_inputs(model) if model is not None else None
    feed.check_mask_input(mask_input, spec.names if spec is not None else None)
    if model is None and isinstance(inputs, dict) and len(inputs) > 1:
        raise UsageError(f"several inputs need {option('--model')}: the built-in "
                         f"{option('--arch')} models take one array")
    arrays = _named_arrays(inputs, spec, source)
    if arrays is not None and len(arrays) == 1 and (spec is None or len(spec.names) == 1):
        name, inputs = next(iter(arrays.items()))  # one array: the single-input audit
        pad_value = (pad_values or {}).get(name, pad_value)
        arrays = None
    if arrays is None:
        inputs = checked_inputs(inputs, source)
        if spec is not None and feed.is_mask_input(spec.names[0], mask_input):
            feed.mask_input_padding(spec.names[0], inputs, source)  # 0/1 only, as with several
        sequences = inputs.shape[0]
        if spec is not None and len(spec.names) > 1:
            raise InputError(f"{source} holds one array, and the model takes {len(spec.names)} "
                             f"named inputs ({', '.join(spec.names)}): give an npz whose arrays "
                             "are named after them, or "
                             + spelled("--input NAME=FILE for each",
                                       "a dict of arrays by those names"))
    else:
        feed.check_shapes(spec, arrays, source)
        sequences = len(next(iter(arrays.values())))
    if targets is not None:
        targets = checked_targets(targets, sequences, targets_label)
    given = None if mask is None else boolean_mask(mask)
    if given is None and arrays is None:
        given = None if file_mask is None else step_mask(np.asarray(file_mask))
    real = None
    if model is None:
        real = reference_mask(inputs, given, targets, target_pad, pad_value, source, targets_label)

    keras = models.import_keras(verbose)
    if reseed:
        keras.utils.set_random_seed(seed)
    if model is None:
        model, label = built_in_model(arch, loss, units, seed, inputs, targets, real, pad_value,
                                      verbose)
    else:
        model, label = user_model(model, loss, units, output)
    if model_label:  # the file's name, and the output chosen of several
        label = model_label + (label[label.index(", output "):] if ", output " in label else "")
    if segment_input is not None and arrays is None:
        raise UsageError(f"{option('--segment-input')} {segment_input}: packed data needs a "
                         f"{option('--model')} that takes the segment ids as a named input")
    packed = None if arrays is None else packed_batch(arrays, list(arrays), segment_input)
    if packed is not None:  # packed rows are not padded ones: the segment-isolation audit
        with models.full_float32():
            return audit_packed(model, spec, packed, label=label, targets=targets, seed=seed,
                                targets_label=targets_label, options=PackedOptions(
                                    sample_weight, sample_weight_label, batch_size,
                                    train_steps, per_sample, strict, source, progress,
                                    accumulation_steps, replicas))
    spec_loss = loss_spec(model.loss)
    target_padded = None
    if target_pad is not None:
        target_padded = "--target-pad defines the padding by the targets themselves"
    elif (spec_loss.ignore_class is not None and targets is not None and given is None
          and (arrays is None or file_mask is None)):
        target_pad = spec_loss.ignore_class  # label padding, the way --target-pad defines it
        target_padded = (f"ignore_class={spec_loss.ignore_class} defines the padding by the "
                         "targets themselves")
    if arrays is None:
        if real is None:
            real = reference_mask(inputs, given, targets, target_pad, pad_value, source,
                                  targets_label)
        batch = Batch.single(inputs, real, spec)
    else:
        batch = named_batch(spec, arrays, source=source, mask_input=mask_input,
                            pad_values=pad_values, recorded_masks=recorded_masks,
                            file_mask=file_mask)
        if target_pad is not None:
            if targets is None:
                raise UsageError(f"{option('--target-pad')} needs the targets: give "
                                 f"{option('--targets', 'FILE')}")
            given = target_padding_mask(targets, target_pad, targets_label)
            mask_label = f"the padding of {targets_label} (--target-pad)"
    steps = max((array.shape[1] for array in batch.arrays.values() if array.ndim >= 2),
                default=1)
    batching = batched.plan(batch.sequences, steps, batch_size)
    with models.full_float32():
        audit = AuditRun(model, label, spec_loss, batch, real, source, target_padded,
                         given=given, file_mask=file_mask, batching=batching, progress=progress,
                         given_label=mask_label)
        audit.set_weights(sample_weight, sample_weight_label)
        audit.set_targets(targets, seed, targets_label)
        audit.train(train_steps)
        accumulation.configure(audit, accumulation_steps, replicas)
        return report(audit, per_sample, strict)


def _named_arrays(inputs, spec, source: str) -> dict | None:
    """``inputs`` as one array per model input name, or None for one array."""
    if isinstance(inputs, dict):
        arrays = {str(name): np.asarray(array) for name, array in inputs.items()}
        if spec is None:
            if len(arrays) != 1:
                raise UsageError(f"{source}: {len(arrays)} named inputs, and the model takes one "
                                 "array: give that array")
            return arrays
        return feed.match_inputs(spec, arrays, {}, None, source)
    if isinstance(inputs, (list, tuple)) and spec is not None and len(spec.names) > 1:
        if len(inputs) != len(spec.names):
            raise InputError(f"{source}: {len(inputs)} arrays for the model's "
                             f"{len(spec.names)} inputs ({', '.join(spec.names)}): give one "
                             "array per input, in that order")
        return {name: np.asarray(array) for name, array in zip(spec.names, inputs)}
    return None


def report(run: AuditRun, per_sample: bool, strict: bool = False) -> AuditReport:
    """Run every check on ``run`` and report them, with the likely cause."""
    check_measured(run)  # an audit of nothing would pass every check
    results = run_checks(run, strict=strict)
    if run.batching.auto:
        run.notes.append(f"{run.mask.shape[0]} sequences x {run.mask.shape[1]} steps "
                         f"exceed the memory budget of one model call: the audit ran in "
                         f"batches of {run.batching.size}, and Keras' loss is the average "
                         "of their losses (choose the batches with --batch-size)")
    failed = [check.id for check in results if check.status == "fail"]
    cause = _cause(run, failed)
    found = AuditReport(
        verdict="leaks" if failed else "ignored",
        loss=run.spec.name, keras_loss=run.keras_loss, masked_loss=run.masked_loss,
        unmasked_loss=run.unmasked_loss, checks=results, versions=models.versions(),
        model=run.label, rtol=run.rtol, sequences=int(run.mask.shape[0]),
        steps=int(run.mask.size), real_steps=int(run.mask.sum()),
        per_sample=losses.per_sample(run) if per_sample else None,
        cause=cause, notes=run.notes, removed_loss=run.removed_loss,
        batch_size=run.batching.size, batches=len(run.slices),
        batch_size_auto=run.batching.auto)
    if failed:
        found.fixes.extend(accumulation.fixes(run))
    fixes.add_fixes(run, found)  # each tried before it is suggested; those above kept
    return found


def _cause(run: AuditRun, failed: list[str]) -> str | None:
    if accumulation.CHECK_ID in failed and set(failed) <= {accumulation.CHECK_ID,
                                                          weighting.CHECK_ID}:
        return accumulation.cause(run)  # the optimizer's own averaging, said first
    failed = [f for f in failed if f != accumulation.CHECK_ID]
    if failed == [weighting.CHECK_ID]:
        return weighting.cause(run)
    return likely_cause(run, [f for f in failed if f != weighting.CHECK_ID]) if failed \
        else None
