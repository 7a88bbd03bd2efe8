"""Padded data in memory: what inspect-mask and audit-loss work on.

A ``mask`` is True at real steps (Keras' polarity), False at padding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskcli.core.errors import InputError, MaskcliError
from maskcli.core.masks import parse_value


@dataclass
class Padded:
    """Padded data as read from a file. ``mask`` is True at real steps.

    ``inputs`` is None for an npz whose arrays are named after a model's
    inputs (they are in ``extra`` then)."""

    inputs: np.ndarray | None
    source: str
    mask: np.ndarray | None = None
    lengths: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # other npz arrays, e.g. targets
    fields: tuple[str, ...] = ()  # the npz arrays that are padded fields, in order
    field: str | None = None  # which of them ``inputs`` is

    def pad_value_of(self, name: str):
        """The pad value recorded for field ``name`` (``meta`` ``values``, as
        ``maskcli pad`` writes one per field), else the file's, else None."""
        values = self.meta.get("values")
        if isinstance(values, dict) and name in values:
            return values[name]
        return self.pad_value

    def one_field(self, skip=()) -> Padded:
        """This data as the one array of a model that takes one: itself, or for
        an npz of several fields (``maskcli pad --field A --field B``) read by
        name, its first field not in ``skip`` (the targets' field), with that
        field's mask, lengths and pad value, as inspect-mask reads the first
        field. The other fields stay in ``extra`` (``--targets labels``)."""
        fields = self.meta.get("fields")
        if self.inputs is not None or not isinstance(fields, list):
            return self
        chosen = next((name for name in fields if name not in skip and name in self.extra), None)
        if chosen is None:
            return self
        masks = self.meta.get("masks") if isinstance(self.meta.get("masks"), dict) else {}
        own = masks.get(chosen, "mask" if chosen == fields[0] else f"{chosen}_mask")
        mask, lengths = self.mask, self.lengths
        if own != "mask":
            mask, lengths = self.extra.get(own), self.extra.get(f"{chosen}_lengths")
        inputs = self.extra[chosen]
        if mask is not None:
            mask = check_mask(f"{self.source}, field '{chosen}'", mask, inputs)
        meta = {**self.meta, "value": self.pad_value_of(chosen)}
        extra = {key: value for key, value in self.extra.items() if key != chosen}
        return Padded(inputs, self.source, mask, lengths, meta, extra, tuple(fields), chosen)

    @property
    def pad_value(self):
        """The pad value recorded by ``maskcli pad``, or None."""
        return self.meta.get("value")

    def numeric_pad_value(self, option: str):
        """The recorded pad value as a number (``"nan"`` -> nan), or None.
        ``option`` is the option that gives it instead, for the error."""
        value = self.pad_value
        if not isinstance(value, str):
            return value
        try:
            return parse_value(value)
        except MaskcliError:
            raise InputError(f"{self.source}: the pad value {value!r} in 'meta' is not a number: "
                             f"give the pad value with {option}") from None


def check_mask(name: str, mask, inputs: np.ndarray) -> np.ndarray:
    """Return ``mask`` as booleans (True = real step) if it fits ``inputs``:
    one value per step (sequences, steps), or per value; 0/1 are accepted."""
    mask = np.asarray(mask)
    if mask.shape not in (inputs.shape[:2], inputs.shape):
        raise InputError(f"{name}: mask of shape {mask.shape} does not fit the inputs of shape "
                         f"{inputs.shape}: give a {inputs.shape[:2]} (sequences, steps) mask, "
                         "True = real step")
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise InputError(f"{name}: mask holds values other than 0/1 or True/False: "
                         "give a boolean mask with True = real step")
    return mask.astype(bool)
