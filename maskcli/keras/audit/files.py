"""``audit_loss`` on files, as ``maskcli audit-loss`` runs it: INPUT and the
``--input``, ``--targets``, ``--mask`` and ``--sample-weight`` files."""

from __future__ import annotations

import functools
import os
from dataclasses import replace

from maskcli.core.accumulation import check_accumulation
from maskcli.core.errors import InputError, UsageError
from maskcli.core.masks import compute_mask, parse_value
from maskcli.core.padded import Padded, check_mask
from maskcli.formats import dataset_input
from maskcli.formats.arrays import (
    load_array,
    load_padded,
    named_input_files,
    npz_arrays,
    split_array_spec,
)
from maskcli.formats.dataset_input import DatasetOptions
from maskcli.formats.model_files import check_model_file
from maskcli.formats.sampling import (
    Part,
    Selection,
    load_array_part,
    load_npz_part,
    load_padded_part,
    start_part,
)
from maskcli.formats.standard_input import nothing_piped
from maskcli.keras import feed, models
from maskcli.keras.audit import hf_labels, hf_names, synthetic_packed
from maskcli.keras.audit.batch import parse_target_pad
from maskcli.keras.audit.report import AuditReport
from maskcli.keras.audit.run import audit_loss
from maskcli.keras.audit.weights import MASK
from maskcli.keras.feed import Places


def audit_files(input_path: str | None = "-", *, mask_path: str | None = None,
                mode: str | None = None, mask_value: str | None = None,
                target_pad: str | None = None, targets_path: str | None = None,
                model_path: str | None = None, arch: str | None = None, unsafe: bool = False,
                imports=(), loss: str | None = None, units: int | None = None, seed: int = 0,
                train_steps: int = 0, per_sample: bool = False, verbose: bool = False,
                named_inputs=(), sample_weight: str | None = None, output: str | None = None,
                mask_input: str | None = None, batch_size: int | None = None,
                limit: int | None = None, sample: int | None = None, strict: bool = False,
                progress=None, model=None, dataset=None, accumulation_steps: int | None = None,
                replicas: int | None = None, segment_input: str | None = None) -> AuditReport:
    """``audit_loss`` on files, as ``maskcli audit-loss`` runs it.

    The reference mask comes from ``mask_path``, else the npz ``mask``, else
    ``mode``/``mask_value`` as in inspect-mask; or from the targets with
    ``target_pad``. ``imports`` run the user's own code before loading.
    ``named_inputs``: ``NAME=FILE[:ARRAY]`` texts (``--input``), each feeding
    one model input; ``input_path`` None reads no INPUT (all inputs given so).
    ``sample_weight``: a file (npy, npz ``sample_weight``, jsonl) or ``mask``;
    without it, the ``sample_weight`` array of INPUT or of the targets npz.
    ``limit`` audits the first sequences, ``sample`` a random sample drawn
    with ``seed``: every file is then read in part, cut to the same rows
    (:mod:`maskcli.formats.sampling`). ``batch_size``, ``strict`` and
    ``progress`` are ``audit_loss``'s. ``model``: a Keras model already in
    memory, in place of ``model_path``. ``accumulation_steps`` and ``replicas`` are
    ``audit_loss``'s too. ``dataset``: the padding options of an
    INPUT that is a dataset to pad (:mod:`maskcli.formats.dataset_input`);
    ``--input NAME=ARRAY`` then also names an array or column of INPUT.
    """
    check_accumulation(batch_size, accumulation_steps, replicas)  # before any file is read
    derive = mode is not None or mask_value is not None
    if unsafe and not model_path:
        raise UsageError("--unsafe applies to --model only: drop it")
    if model_path and arch:
        raise UsageError("--arch and --model both name a model: give one of them")
    if mask_path and derive:
        raise UsageError("--mask gives the mask, --mode/--mask-value derive one: give one or "
                         "the other")
    if target_pad is not None and (mask_path or derive):
        raise UsageError("--target-pad derives the mask from the targets: drop --mask, --mode "
                         "and --mask-value")
    nothing = None
    if input_path is None and not named_inputs:
        input_path = "-"
        if model_path or model is not None:  # a packed model runs without INPUT (#21)
            nothing = nothing_piped()
            input_path = None if nothing else input_path
    selection = Selection(limit, sample, seed)
    dataset = dataset or DatasetOptions()
    dataset_input.check_options(dataset, input_path)
    files = _Files(selection, replace(dataset, targets=targets_path or "labels"))
    padded = files.padded(input_path) if input_path is not None else None
    columns, file_inputs = hf_names.input_columns(named_inputs, padded)
    given = {**files.named_inputs(file_inputs), **columns}
    stated = hf_names.Stated(padded, model_path is not None or model is not None,
                             named_inputs, columns)
    targets_path = stated.targets_path(targets_path)
    source = Places(padded.source if padded is not None else "the --input files",
                    {name: f"--input {name}={spec}"
                     for name, spec in named_input_files(named_inputs, load=False).items()})
    targets = _targets(targets_path, padded, files)
    weights = _weights(sample_weight, padded, targets_path, files)
    if weights[0] is None and model_path is not None and hf_labels.holds_ignore_label(targets):
        weights = hf_labels.labelled(targets), hf_labels.weights_label(targets_path)

    if model_path:
        check_model_file(model_path)  # a refused file costs no TensorFlow import
    if model_path or imports:
        keras = models.import_keras(verbose)  # before the user's code imports it, unsafe or not
        # Seeded before the model exists: its Dropout layers draw their seeds when they
        # are loaded, and --train-steps trains with them.
        keras.utils.set_random_seed(seed)
        models.import_user_code(imports)
    if model_path:
        model = models.load_model(model_path, unsafe=unsafe, verbose=verbose)
    if nothing:  # no INPUT, nothing piped in: synthetic rows for a packed model
        return synthetic_packed.audit_without_input(
            audit_loss, model, why=nothing, segment_input=segment_input, steps=dataset.maxlen,
            given={"--targets": targets_path, "--mask": mask_path, "--mode": mode,
                   "--mask-value": mask_value, "--target-pad": target_pad,
                   "--sample-weight": sample_weight, "--limit": limit, "--sample": sample},
            loss=loss, units=units, seed=seed, train_steps=train_steps, per_sample=per_sample,
            verbose=verbose, output=output, mask_input=mask_input, batch_size=batch_size,
            strict=strict, model_label=f"--model {model_path}" if model_path else None,
            accumulation_steps=accumulation_steps, replicas=replicas)
    spec = feed.model_inputs(model) if model is not None else None
    if padded is not None and not given and (spec is None or (
            len(spec.names) == 1 and spec.names[0] not in padded.extra)):
        padded = padded.one_field(skip=(targets_path,))  # the model takes one array
    pad_value = (parse_value(mask_value, "--mask-value") if mask_value is not None
                 else padded.numeric_pad_value("--mask-value") if padded is not None else None)
    pad_value = 0 if pad_value is None else pad_value
    inputs, file_mask = _model_arrays(padded, given, spec, source, stated.fed_from)
    several = isinstance(inputs, dict) and len(inputs) > 1
    if several and mode is not None:
        raise UsageError("--mode derives the mask of one array; with several inputs each "
                         "input's padding comes from its mask input or its pad value "
                         "(--mask-value): drop --mode")
    mask = None
    if mask_path:
        mask = files.array(mask_path, "mask", f"the mask {mask_path}")
        if not several:
            mask = check_mask(f"--mask {mask_path}", mask, _one(inputs))
    elif derive and not several:
        mask = compute_mask(_one(inputs), mode, pad_value)
    elif target_pad is None and not several:
        mask = file_mask
    pad_values = ({name: _pad_value(padded, name, mask_value, pad_value) for name in inputs}
                  if isinstance(inputs, dict) else None)
    targets_label = (_targets_label(targets_path, padded, source) if targets_path
                     else f"the targets in {source}")
    run = functools.partial(
        audit_loss, inputs, mask=mask, targets=targets,
                      target_pad=None if target_pad is None else parse_target_pad(target_pad),
                      arch=arch, loss=loss, units=units, seed=seed,
                      train_steps=train_steps, per_sample=per_sample, pad_value=pad_value,
                      verbose=verbose, source=source,
                      model_label=f"--model {model_path}" if model_path else None,
                      targets_label=targets_label,
                      sample_weight=weights[0], sample_weight_label=weights[1], output=output,
                      mask_input=mask_input, pad_values=pad_values,
                      mask_label=f"--mask {mask_path}" if mask_path else "the mask",
                      recorded_masks=_recorded_masks(padded) if several else None,
                      file_mask=file_mask if several else None,
                      batch_size=batch_size, strict=strict,
                      accumulation_steps=accumulation_steps, replicas=replicas,
                      segment_input=segment_input,
                      **({"progress": progress} if progress else {}))
    if hf_labels.scores_ignored_steps(model, targets, output):
        label = f"--model {model_path}" if model_path else "the model"
        report = hf_labels.leak_report(model, label, targets, targets_path or "the targets",
                                       lambda other: run(model=other))
    else:
        report = run(model=model)
        if hf_labels.holds_ignore_label(targets):
            hf_labels.explain_metrics(report, targets_path or "the targets")
    stated.state(report, targets)
    if files.part is not None:
        part = files.part
        report.selection = {"method": "sample" if sample is not None else "first",
                            "sequences": len(part.rows), "total": part.total,
                            "seed": seed if sample is not None else None,
                            "text": part.describe()}
    return report


class _Files:
    """Reads every file of an audit: whole, or (with --limit/--sample) the
    rows the first file chose, from each file alike."""

    def __init__(self, selection: Selection, dataset: DatasetOptions | None = None):
        self.selection = selection
        self.dataset = dataset or DatasetOptions()
        self.part: Part | None = None

    def padded(self, path: str) -> Padded:
        if not self.selection.active or dataset_input.is_dataset(path):
            if self.selection.active:
                raise UsageError(f"--limit and --sample read part of a padded file, and "
                                 f"{path} is a dataset padded here: pad the part you want "
                                 "first, e.g. with 'maskcli pad --field ...', or drop them")
            return load_padded(path, named=True, dataset=self.dataset)
        self.part = load_padded_part(path, self.selection, named=True)
        return self.part.padded

    def array(self, path: str, key: str, label: str):
        """An array file (``FILE.npz:ARRAY`` picks an npz array; default ``key``)."""
        path, array = split_array_spec(path)
        if not self.selection.active:
            return load_array(path, key=array or key)
        if self.part is None:  # no INPUT: the first --input file chooses the rows
            values, self.part = start_part(path, array or key, self.selection)
            return values
        return load_array_part(path, self.part, array or key, label)

    def named_inputs(self, texts) -> dict:
        if not self.selection.active:
            return named_input_files(texts)
        parsed = named_input_files(texts, load=False)
        return {name: self.array(spec, name, f"--input {name}") for name, spec in parsed.items()}

    def npz_arrays(self, path: str) -> dict:
        if not self.selection.active or self.part is None:
            return npz_arrays(path)
        return load_npz_part(path, self.part, path)


def _targets_label(targets_path: str, padded: Padded | None, source: str) -> str:
    if padded is not None and targets_path in padded.extra and not os.path.exists(targets_path):
        return f"the targets '{targets_path}' in {source}"
    return f"--targets {targets_path}"


def _one(inputs):
    return next(iter(inputs.values())) if isinstance(inputs, dict) else inputs


def _targets(targets_path: str | None, padded: Padded | None, files: _Files):
    """The targets: a file, an array of INPUT named by ``--targets NAME`` (such
    as the ``labels`` field of ``maskcli pad --field input_ids --field labels``),
    else INPUT's ``targets`` array, else None (synthetic targets)."""
    extra = padded.extra if padded is not None else {}
    if targets_path and not os.path.exists(split_array_spec(targets_path)[0]) and extra:
        if targets_path in extra:
            return extra[targets_path]
        raise InputError(f"--targets {targets_path}: no such file, nor an array of "
                         f"{padded.source} (it has: {', '.join(sorted(extra))}): "
                         "give a targets file or the name of one of those arrays")
    if targets_path:
        return files.array(targets_path, "targets", f"targets {targets_path}")
    return extra.get("targets")


def _weights(option: str | None, padded: Padded | None, targets_path: str | None,
             files: _Files):
    """The sample weights and how messages name them."""
    if option == MASK:
        return MASK, "--sample-weight mask"
    if option:
        return (files.array(option, "sample_weight", f"--sample-weight {option}"),
                f"--sample-weight {option}")
    if padded is not None and "sample_weight" in padded.extra:
        return padded.extra["sample_weight"], f"the sample_weight in {padded.source}"
    path = split_array_spec(targets_path)[0] if targets_path else ""
    if path.lower().endswith(".npz"):
        weights = files.npz_arrays(path).get("sample_weight")
        if weights is not None:
            return weights, f"the sample_weight in {path}"
    return None, "sample weights"


def _model_arrays(padded: Padded | None, given: dict, spec, source: str, fed_from=None):
    """The model's inputs (one array, or a dict by name) and INPUT's npz mask."""
    file_mask = padded.mask if padded is not None else None
    if spec is None or (len(spec.names) == 1 and not given and padded is not None
                        and padded.inputs is not None):
        if given:
            if spec is None and len(given) == 1:
                return next(iter(given.values())), file_mask
            raise UsageError("--input names a model input: give it with --model")
        if padded.inputs is None:
            held = ", ".join(sorted(padded.extra)) or "nothing"
            raise UsageError(f"{source} has no 'inputs' array (it has: {held}): an npz of named "
                             "arrays feeds a --model by its input names; else write it with "
                             "'maskcli pad -o FILE.npz'")
        return padded.inputs, file_mask
    found = {}
    if padded is not None:
        found = dict(padded.extra)
        if padded.inputs is None:
            found.update({key: value for key, value in (("mask", padded.mask),
                                                        ("lengths", padded.lengths))
                          if value is not None})
    single = padded.inputs if padded is not None else None
    return feed.match_inputs(spec, found, given, single, source, fed_from), file_mask


def _recorded_masks(padded: Padded | None) -> dict:
    """The per-field masks ``maskcli pad`` records: ``meta`` ``masks`` names the
    array of each field; else ``NAME_mask``."""
    if padded is None:
        return {}
    masks = {key[:-len("_mask")]: value for key, value in padded.extra.items()
             if key.endswith("_mask")}
    named = padded.meta.get("masks")
    if isinstance(named, dict):
        for field, key in named.items():
            array = padded.mask if key == "mask" else padded.extra.get(key)
            if array is not None:
                masks[field] = array
    return masks


def _pad_value(padded: Padded | None, name: str, option: str | None, default):
    if option is not None or padded is None:
        return default
    value = padded.pad_value_of(name)
    if value is None:
        return default
    try:
        return parse_value(value, "--mask-value")
    except UsageError:
        return default
