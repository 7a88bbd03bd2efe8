"""``audit-loss`` without data, on a model that takes packed rows.

A packed model (an input named ``*_segment_ids``, or ``segment_input``) can be
audited before any data exists: it runs on synthetic packed rows drawn with
``seed`` (:mod:`maskcli.keras.trace.packed_synthetic`, the rows ``trace-mask``
uses without INPUT), with synthetic targets, and gets the packed audit
(``segment-isolation``; ``boundary-targets`` needs real next-token targets and
is skipped). Any other model still needs its data.
"""

from __future__ import annotations

import functools

from maskcli.core.errors import InputError, UsageError
from maskcli.keras.trace.packed_synthetic import synthetic_packed, takes_packed_rows

# Arguments that describe the user's data: without data they have nothing to describe.
DATA_ARGUMENTS = ("targets", "mask", "target_pad", "sample_weight", "file_mask",
                  "recorded_masks")


def without_data(audit):
    """Let ``audit`` (``audit_loss(inputs, *, model=..., ...)``) run with
    ``inputs`` None: a packed model is then audited on synthetic packed rows,
    ``synthetic_steps`` long when the model leaves its length open."""

    @functools.wraps(audit)
    def audit_loss(inputs=None, *args, synthetic_steps: int | None = None, **options):
        if inputs is not None:
            return audit(inputs, *args, **options)
        return synthetic_audit(audit, steps=synthetic_steps, **options)

    return audit_loss


def synthetic_audit(audit, *, model=None, seed: int = 0, segment_input: str | None = None,
                    steps: int | None = None, **options):
    """``audit`` of ``model`` on synthetic packed rows drawn with ``seed``; a
    UsageError for a model that takes no packed rows."""
    if model is None:
        raise UsageError("no data to audit: give the inputs (synthetic packed rows are made "
                         "for a model of yours whose inputs include *_segment_ids)")
    given = [name for name in DATA_ARGUMENTS if options.get(name) is not None]
    if given:
        raise UsageError(f"{given[0]} belongs to data, and none was given: give the data too "
                         "(without data a packed model is audited on synthetic rows, with "
                         "synthetic targets)")
    made = synthetic_packed(model, seed, segment_input, steps, options.get("mask_input"))
    if made is None:
        raise UsageError(f"no data to audit: model '{model.name}' takes no packed rows (no "
                         "input named *_segment_ids; --segment-input names another), and only "
                         "a packed model is audited on synthetic rows: give the data")
    arrays, rows = made
    report = audit(arrays, model=model, seed=seed, segment_input=segment_input, **options)
    report.notes.insert(0, f"no data given: audited on {rows.describe()}, with SYNTHETIC "
                           "targets; boundary-targets needs your own next-token targets: "
                           "give INPUT, rows from 'maskcli pack', to check them")
    report.inputs = {name: "synthetic" for name in arrays}
    report.targets = "synthetic"
    return report


def audit_without_input(audit, model, *, why: str, given: dict, segment_input: str | None,
                        steps: int | None = None, **options):
    """``audit-loss`` with no INPUT and nothing on standard input (``why``): a
    packed ``model`` is audited on synthetic rows (``steps``: ``--maxlen``);
    any other model, or options that describe INPUT (``given``: their values
    by option), is an error."""
    if model is None or not takes_packed_rows(model, segment_input):
        raise InputError(f"{why}: give INPUT, padded data, e.g. from 'maskcli pad -o x.npz' "
                         "(only a model that takes packed rows runs without it, on synthetic "
                         "rows)")
    refused = next((option for option, value in given.items() if value), None)
    if refused:
        raise UsageError(f"{refused} describes INPUT, and there is none ({why}): give INPUT, "
                         f"or drop {refused} to audit the model on synthetic packed rows")
    return audit(None, model=model, segment_input=segment_input, synthetic_steps=steps,
                 **options)
