"""Audit that a Keras model's loss ignores padding, or show where it leaks.

``audit_loss`` runs a real Keras model on a padded batch and reports five
checks (each pass, fail or skipped):

- ``loss-parity``: Keras' compiled loss (``evaluate``) equals the reference
  masked loss: the loss per step in numpy, averaged over real steps only (for
  a custom loss: the same loss on the real steps alone, padding removed).
- ``target-invariance``: changing the targets at padded steps does not change
  Keras' loss.
- ``padding-gradient``: d loss / d y_pred is exactly 0 at every padded step.
- ``forward-invariance``: a sequence run alone without its padding, or with
  more padding, gives the same outputs at its real steps.
- ``metric-parity``: each compiled metric equals the same metric on the real
  steps alone.

With ``batch_size``, every model call runs in batches, the checks hold batch
by batch, and a sixth check, ``batch-weighting``, says how unequally
per-batch normalization weighs real tokens (pass, or warn: a failure only
with ``strict``). With an optimizer's ``gradient_accumulation_steps`` (or
``accumulation_steps``, ``replicas``), ``accumulation`` says the same of the
micro-batches one update averages (module ``accumulation``).

The modules: ``batch`` (inputs, targets, the reference mask: True at REAL
steps), ``inputs`` (several named inputs, each with its own padding),
``weights`` (sample weights), ``reference`` (the numpy losses), ``prepare``
(the model, and the output audited), ``state`` (``AuditRun``: the state the
checks share), ``losses`` (the run's reference losses), ``checks`` (one
function per check), ``batched`` (the model calls in batches), ``weighting``
(a batched audit's references and the batch-weighting check), ``cause`` (the
likely cause of a failure), ``report``, ``run``, which ties them together,
and ``files``, which reads what the command names. Imports run one way
(``files`` > ``run`` > ``cause``/``checks``/``losses`` > ``weighting`` >
``state``), as a contract in pyproject.toml checks.
"""

from maskcli.keras.audit.batch import parse_target_pad, synthetic_targets, target_padding_mask
from maskcli.keras.audit.files import audit_files
from maskcli.keras.audit.reference import LOSSES, loss_rtol, per_step_loss
from maskcli.keras.audit.report import AuditReport, Check, Fix
from maskcli.keras.audit.run import audit_loss
from maskcli.keras.audit.suite import CHECK_IDS

__all__ = ["CHECK_IDS", "LOSSES", "AuditReport", "Check", "Fix", "audit_files", "audit_loss",
           "loss_rtol", "parse_target_pad", "per_step_loss", "synthetic_targets",
           "target_padding_mask"]
