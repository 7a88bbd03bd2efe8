"""inspect-mask on a labels field, and diagnostics silenced by id.

A labels field (Hugging Face's ``labels``, or any field padded with -100)
is not fed to an Embedding: -100 marks tokens not to score ([CLS], [SEP],
continuation pieces) as well as padding, and the mask that matters is the
recorded one. The diagnostics that read the values as an Embedding or
Masking layer would (``pad-value-inside``, ``partial-timestep``,
``mask-mismatch``) do not apply to it. ``--ignore ID`` silences any
diagnostic by its id, for a CI gate with ``--strict``.
"""

from __future__ import annotations

import numpy as np

from maskcli.core.errors import UsageError
from maskcli.core.padded import Padded

IGNORE_LABEL = -100  # Hugging Face's label of the tokens not to score
DIAGNOSTICS = ("pad-value-inside", "partial-timestep", "non-finite", "all-padding-row",
               "pre-padding-rnn", "mixed-padding-sides", "mask-mismatch")
VALUE_DIAGNOSTICS = ("pad-value-inside", "partial-timestep", "mask-mismatch")



def holds_ignore_label(labels, mask=None) -> bool:
    """Whether integer ``labels`` hold -100 anywhere, or only at the real steps
    of ``mask`` (True = real step), if given: a field padded with -100 holds
    none by its padding alone (None holds nothing)."""
    if labels is None:
        return False
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        return False
    held = labels == IGNORE_LABEL
    if mask is not None:  # (sequences, steps), the labels may have more axes
        mask = np.asarray(mask, dtype=bool)
        held &= mask.reshape(mask.shape + (1,) * (held.ndim - mask.ndim))
    return bool(held.any())

def is_labels(padded: Padded) -> bool:
    """Whether ``padded`` is a labels field: named ``labels`` (or ``*_labels``),
    or padded with -100."""
    name = padded.field or ""
    value = padded.meta.get("value")
    return name == "labels" or name.endswith("_labels") or value == IGNORE_LABEL


def check_ignored(ids) -> tuple[str, ...]:
    unknown = [given for given in ids if given not in DIAGNOSTICS]
    if unknown:
        raise UsageError(f"--ignore {unknown[0]}: no such diagnostic (ids: "
                         f"{', '.join(DIAGNOSTICS)}): give one of them")
    return tuple(ids)


def silenced(diagnostics: list, padded: Padded, ignore=()) -> tuple[list, list[str]]:
    """The diagnostics that apply, and a note for each reason others were left out."""
    notes, drop = [], set(ignore)
    if is_labels(padded):
        applies = [d for d in diagnostics if d.id in VALUE_DIAGNOSTICS]
        drop |= set(VALUE_DIAGNOSTICS)
        notes.append(f"{padded.field or 'this field'} is a labels field (-100 marks the tokens "
                     "not scored, padding included): no Embedding reads it, so "
                     f"{', '.join(VALUE_DIAGNOSTICS)} do not apply"
                     + (f" ({len(applies)} left out)" if applies else ""))
    kept = [d for d in diagnostics if d.id not in drop]
    if ignore:
        notes.append(f"ignored by --ignore: {', '.join(ignore)}")
    return kept, notes
