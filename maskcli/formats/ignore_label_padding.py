"""A labels field padded with -100 after the fact, without reading the dataset again.

A dataset padded inside audit-loss, inspect-mask or trace-mask
(:mod:`maskcli.formats.dataset_input`) pads its ``labels`` field (or the
targets field) with -100 when it holds -100 at real steps, as Hugging Face's
``DataCollatorForTokenClassification`` pads it. Whether it does is known only
once the data is read, so the npz written by
:func:`maskcli.formats.pipeline.pad_file` is rewritten here: -100 at the
field's padded steps (where its mask, which the npz records, is False: the
padding side and truncation are in it already) and in the pad value the
``meta`` records, the npz ``maskcli pad --value labels=-100`` writes. The
rewrite goes to a temporary file renamed over the npz: never half a file.
"""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import numpy.lib.format as npy_format

from maskcli.core.label_fields import IGNORE_LABEL, holds_ignore_label
from maskcli.formats.files import atomic_output


def pad_with_ignore_label(path: str, candidates: list[str]) -> list[str]:
    """The fields among ``candidates`` that hold -100 at real steps, in the npz
    at ``path`` written by ``pad_file``; their padded steps become -100 there,
    and the pad value its ``meta`` records for them."""
    with np.load(path, allow_pickle=False) as arrays:
        meta = json.loads(str(arrays["meta"][()]))
        names = meta.get("fields") or []  # several fields: each under its name
        changed = {}
        found = []
        for key in candidates:
            member = key if names else "inputs"
            mask_member = meta["masks"][key] if names else "mask"
            if key not in (names or [key]) or member not in arrays.files:
                continue
            labels, mask = arrays[member], arrays[mask_member]
            if not holds_ignore_label(labels, mask):
                continue
            found.append(key)
            if _value(meta, key, names) == IGNORE_LABEL:
                continue  # padded with -100 already (--value -100 for every field)
            labels[~mask] = IGNORE_LABEL
            changed[member] = labels
            if names:
                meta["values"][key] = IGNORE_LABEL
            if not names or key == names[0]:  # the one-field keys are the first field's
                meta["value"] = IGNORE_LABEL
    if changed:
        changed["meta"] = np.array(json.dumps(meta))
        _rewrite(path, changed)
    return found


def _value(meta: dict, key: str, names: list[str]):
    return meta["values"][key] if names else meta["value"]


def _rewrite(path: str, changed: dict[str, np.ndarray]) -> None:
    """The npz at ``path`` with the arrays ``changed`` replaced, every other
    member copied as it is, in the same order and layout as the writer's."""
    with zipfile.ZipFile(path) as source, atomic_output(path) as stream, \
            zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as target:
        for info in source.infolist():
            name = info.filename.removesuffix(".npy")
            with target.open(info.filename, "w", force_zip64=True) as member:
                if name in changed:
                    npy_format.write_array(member, changed[name], allow_pickle=False)
                else:
                    with source.open(info) as original:
                        shutil.copyfileobj(original, member, 1 << 20)
