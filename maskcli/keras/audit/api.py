"""``maskcli.audit_loss``: the audit from Python, on whatever ``fit`` takes.

A path is read exactly as ``maskcli audit-loss`` reads its INPUT (every
format of the command, through :func:`maskcli.keras.audit.files.audit_files`);
arrays, dicts, lists, ``(x, y[, sample_weight])`` tuples, a ``tf.data.Dataset``
or a ``keras.utils.PyDataset`` become arrays first
(:func:`maskcli.keras.fit_data.fit_arrays`). The report is the command's.
"""

from __future__ import annotations

import json
import os

from maskcli.core.errors import UsageError
from maskcli.keras import models
from maskcli.keras.audit import run
from maskcli.keras.audit.report import AuditReport
from maskcli.keras.fit_data import DEFAULT_BATCHES, fit_arrays


def audit_loss(data=None, *, model=None, targets=None, sample_weight=None, mask=None,
               batches: int = DEFAULT_BATCHES, batch_size: int | None = None, mode=None,
               mask_value=None, target_pad=None, arch: str | None = None,
               loss: str | None = None, unsafe: bool = False, limit: int | None = None,
               sample: int | None = None, **options) -> AuditReport:
    """Audit whether ``model``'s loss ignores the padding of ``data``.

    ``data`` is what ``fit`` takes: a path (npz, npy, jsonl, and every other
    format ``maskcli audit-loss`` reads, read as it reads them), an array, a
    list (one array per model input) or dict (by input name) of arrays, a
    tuple ``(x, y)`` or ``(x, y, sample_weight)``, a ``tf.data.Dataset`` or a
    ``keras.utils.PyDataset`` yielding such batches: its first ``batches``
    batches are audited, each a batch of its own, as training runs them.
    Without ``data``, a model that takes packed rows (an input named
    ``*_segment_ids``, or ``segment_input``) is audited on synthetic packed
    rows drawn with ``seed``: ``audit_loss(model=model)``.

    ``model`` is a Keras model (its compiled loss, metrics and weighted
    metrics are audited) or the path of a saved one (loaded in safe mode
    unless ``unsafe``); without it the built-in ``arch`` is built.
    ``targets`` and ``sample_weight`` are arrays, or the name of a field (a
    column of the file, a key of the dict or of each batch); ``sample_weight``
    "mask" weighs by the reference mask. With a path they name files or
    arrays, as the command's options do. ``mask`` (True = real step),
    ``mode``, ``mask_value`` and ``target_pad`` say where the padding is;
    ``batch_size``, ``limit``, ``sample``, ``strict``, ``per_sample``,
    ``output``, ``mask_input``, ``loss``, ``units``, ``seed``, ``train_steps``
    and ``imports`` do what the command's options of the same name do.

    Returns the :class:`~maskcli.keras.audit.report.AuditReport`: its
    ``verdict`` ("ignored" or "leaks"), ``checks``, ``cause`` and
    ``to_dict()`` (the command's JSON). Problems with the arguments raise
    :class:`maskcli.MaskcliError`.
    """
    if isinstance(data, (str, os.PathLike)):
        return _audit_path(os.fspath(data), model=model, targets=targets,
                           sample_weight=sample_weight, mask=mask, batch_size=batch_size,
                           mode=mode, mask_value=mask_value, target_pad=target_pad, arch=arch,
                           loss=loss, unsafe=unsafe, limit=limit, sample=sample, **options)
    if limit is not None or sample is not None:
        raise UsageError("limit and sample choose the sequences of a file: cut the arrays "
                         "yourself, or give a path")
    if isinstance(model, (str, os.PathLike)):
        model = _load(os.fspath(model), unsafe, options.get("verbose", False))
    elif unsafe:
        raise UsageError("unsafe applies to a model given by its path: drop it")
    if data is None:  # a packed model: synthetic packed rows (keras.audit.synthetic_packed)
        return run.audit_loss(None, model=model, targets=targets, sample_weight=sample_weight,
                              mask=mask, target_pad=target_pad, arch=arch, loss=loss,
                              batch_size=batch_size, **options)
    arrays = fit_arrays(data, targets=targets, sample_weight=sample_weight, batches=batches,
                        pad_value=0 if mask_value is None else mask_value,
                        target_pad=target_pad)
    if mode is not None or mask_value is not None:
        if mask is not None:
            raise UsageError("mask gives the mask, mode and mask_value derive one: give one "
                             "or the other")
        if mode is not None:
            mask = _derived_mask(arrays.x, mode, mask_value)
    report = run.audit_loss(arrays.x, targets=arrays.y, sample_weight=arrays.sample_weight,
                            mask=mask, model=model, arch=arch, loss=loss,
                            target_pad=target_pad, batch_size=batch_size or arrays.batch_size,
                            pad_value=0 if mask_value is None else mask_value,
                            source="the data", **options)
    report.notes.extend(arrays.notes)
    return report


def _audit_path(path: str, *, model, targets, sample_weight, mask, mode, mask_value,
                target_pad, **options) -> AuditReport:
    from maskcli.keras.audit.files import audit_files

    for argument, value in (("targets", targets), ("sample_weight", sample_weight),
                            ("mask", mask)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise UsageError(f"{argument}: with a path, give the file or the array name of "
                             f"the {argument}, as audit-loss reads them, not an array")
    model_path = None
    if isinstance(model, (str, os.PathLike)):
        model_path, model = os.fspath(model), None
    named = options.pop("inputs", None) or {}
    return audit_files(
        path, model=model, model_path=model_path, targets_path=_text(targets),
        sample_weight=_text(sample_weight), mask_path=_text(mask), mode=mode,
        mask_value=None if mask_value is None else _text(mask_value),
        target_pad=None if target_pad is None else _text(target_pad),
        named_inputs=tuple(f"{name}={file}" for name, file in named.items()), **options)


def _text(value):
    """A value as the command's option text: paths as they are, numbers and
    lists as the command parses them."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return json.dumps(value.tolist() if hasattr(value, "tolist") else value)


def _load(path: str, unsafe: bool, verbose: bool):
    from maskcli.formats.model_files import check_model_file

    check_model_file(path)
    return models.load_model(path, unsafe=unsafe, verbose=verbose)


def _derived_mask(x, mode: str, mask_value):
    from maskcli.core.masks import compute_mask

    if isinstance(x, (dict, list)):
        raise UsageError("mode derives the mask of one array; with several inputs each "
                         "input's padding comes from its mask input or its pad value: drop mode")
    return compute_mask(x, mode, 0 if mask_value is None else mask_value)
