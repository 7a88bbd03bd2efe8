"""Labels of -100: the tokens Hugging Face's label aligners and collators
mark as not to be scored (the [CLS] and [SEP] tokens, a word's continuation
pieces, and the padding).

A step labelled -100 is not a token to score, padded or not: the reference
loss and every reference metric leave it out, and the audit says whether
Keras does. Measured on Keras 3.15.1 (``/work/shared/KERAS_MASKING.md``):

- ``SparseCategoricalCrossentropy(ignore_class=-100)`` leaves those steps
  out of the loss and of its mean; without ``ignore_class`` the class id -100
  makes the loss fail (TensorFlow: "Received a label value of -100"), so the
  audit cannot run it: the verdict is ``leaks``, and the fix
  (``ignore_class=-100``) is tried on a copy of the model.
- Metrics do not know ``ignore_class``: ``sparse_categorical_accuracy``
  counts every step, and weighted by ``attention_mask`` still counts the
  [CLS]/[SEP] steps. Only sample weights equal to ``labels != -100``, on a
  metric compiled as ``weighted_metrics=``, count the labelled tokens alone.
  The audit weighs Keras' metrics (and loss) so, as ``fit`` does with those
  weights, and says so.
"""

from __future__ import annotations

import numpy as np

from maskcli.core.label_fields import IGNORE_LABEL, holds_ignore_label
from maskcli.keras.audit.reference import loss_spec
from maskcli.keras.audit.report import AuditReport, Check, Fix

CHECK_ID = "ignored-labels"


def labelled(targets) -> np.ndarray:
    """The sample weights that leave the -100 steps out: 1.0 where labelled."""
    targets = np.asarray(targets)
    if targets.ndim == 3 and targets.shape[-1] == 1:
        targets = targets[..., 0]
    return (targets != IGNORE_LABEL).astype("float32")


def weights_label(label: str) -> str:
    """How the report names the weights the audit assumes for -100 labels."""
    return (f"sample_weight = ({label} != -100), as fit(x, {label}, sample_weight=...) would "
            "take them: the one weighting that leaves the -100 steps out of Keras' metrics "
            "(give --sample-weight to audit other weights)")


def scores_ignored_steps(model, targets, output: str | None = None) -> bool:
    """Whether the model's loss is sparse cross-entropy without ignore_class
    while the targets hold -100: it would score (or fail on) those steps."""
    if model is None or not holds_ignore_label(targets) or output is not None:
        return False
    try:
        spec = loss_spec(model.loss)
    except Exception:  # several outputs, a loss maskcli does not know
        return False
    return spec.kind == "sparse_categorical_crossentropy" and spec.ignore_class is None


def ignore_class_fix_text(label: str, from_logits: bool) -> str:
    return ("compile the loss with keras.losses.SparseCategoricalCrossentropy("
            f"{'from_logits=True, ' if from_logits else ''}ignore_class=-100) so that the steps "
            f"whose {label} are -100 are not scored (Hugging Face's label for [CLS], [SEP], "
            "continuation pieces and padding)")


def leak_report(model, label: str, targets, targets_label: str, run_audit) -> AuditReport:
    """The report of a loss that scores the -100 steps (sparse cross-entropy
    without ignore_class). ``run_audit(model)`` audits another model on the
    same data: the fix is tried on a copy recompiled with ignore_class=-100."""
    from maskcli.keras import models

    spec = loss_spec(model.loss)
    targets = np.asarray(targets)
    steps = int((targets == IGNORE_LABEL).sum())
    fixed, tried = _recompiled(model)
    verified, extra, rtol = None, [], 1e-5
    if fixed is not None:
        try:
            report = run_audit(fixed)
        except Exception as exc:  # noqa: BLE001 (the fix could not be tried: say so)
            tried = f"{tried}; its audit failed: {str(exc).splitlines()[0]}"
        else:
            rtol = report.rtol
            loss_checks = [check for check in report.checks if check.id != "metric-parity"]
            verified = not any(check.status == "fail" for check in loss_checks)
            tried += f": its audit: {report.verdict}" + (
                f" ({', '.join(report.failed)} failed)" if report.failed else "")
            if "metric-parity" in report.failed:
                extra.append(Fix(metric_fix_text(report, targets_label), "compile"))
    detail = (f"{targets_label} hold -100 at {steps} steps, and the loss {spec.name} has no "
              "ignore_class: Keras cannot leave those steps out (TensorFlow fails on the class "
              "id -100)")
    cause = (f"the loss scores the steps labelled -100 in {targets_label}: {spec.name} has no "
             "ignore_class; compile it with ignore_class=-100")
    return AuditReport(
        verdict="leaks", loss=spec.name, keras_loss=None, masked_loss=None, unmasked_loss=None,
        checks=[Check(CHECK_ID, "fail", steps, 0, detail)], versions=models.versions(),
        model=label, rtol=rtol, sequences=int(targets.shape[0]), steps=int(targets[..., 0].size
                                                                           if targets.ndim == 3
                                                                           else targets.size),
        real_steps=int((targets != IGNORE_LABEL).sum()), cause=cause,
        fixes=[Fix(ignore_class_fix_text(targets_label, spec.from_logits), "compile", verified,
                   tried)] + extra)


def _recompiled(model):
    """A copy of ``model`` (same weights) compiled as before but with
    ignore_class=-100; (None, why) when it cannot be made."""
    from maskcli.keras import models

    keras = models.import_keras()
    spec = loss_spec(model.loss)
    try:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        config = dict(model.get_compile_config() or {})
        config["loss"] = keras.losses.serialize(keras.losses.SparseCategoricalCrossentropy(
            from_logits=spec.from_logits, ignore_class=IGNORE_LABEL))
        copy.compile_from_config(config)
    except Exception as exc:  # noqa: BLE001 (a model Keras cannot copy)
        return None, f"the model could not be copied to try it ({str(exc).splitlines()[0]})"
    return copy, "audited a copy of the model recompiled with ignore_class=-100"


def metric_fix_text(report: AuditReport, targets_label: str) -> str:
    """The whole fix of metrics that count the -100 steps, in one message."""
    check = next((c for c in report.checks if c.id == "metric-parity"), None)
    names = ", ".join(check.value) if check is not None and isinstance(check.value, dict) \
        else "the metrics"
    return (f"compile {names} as weighted_metrics=[...] (not metrics=) and pass fit "
            f"sample_weight = ({targets_label} != -100).astype('float32'): Keras' metrics "
            "know no ignore_class, and weights of attention_mask still count the -100 steps "
            "of [CLS] and [SEP]; only weights of the labelled tokens give the metric over them")


def explain_metrics(report: AuditReport, targets_label: str) -> None:
    """A report whose metrics count the -100 steps: its cause and its fix, in one message."""
    if report.verdict != "leaks" or "metric-parity" not in report.failed:
        return
    text = metric_fix_text(report, targets_label)
    report.cause = (("the metrics count the steps labelled -100: " + text)
                    if report.failed == ["metric-parity"] else report.cause)
    if not any(fix.text == text for fix in report.fixes):
        report.fixes.append(Fix(text, "compile"))
