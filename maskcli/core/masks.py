"""The masks Keras builds from padded data, computed with numpy.

A mask is a boolean array, True = real step (Keras' polarity).

- ``embedding``: ``Embedding(mask_zero=True)``; 2-D ids, a step is real where
  ``id != pad_value`` (Keras itself only knows pad_value 0).
- ``masking``: ``keras.layers.Masking(mask_value)``; 3-D features, a step is
  real where ANY feature differs from mask_value, i.e. it is masked only when
  ALL features equal it. NaN never equals itself, so Masking(nan) masks nothing.
- ``elementwise``: the per-value (n, steps, features) mask people build by hand
  when Masking's all-features rule is not what they want.
"""

from __future__ import annotations

import numpy as np

from maskcli.core.errors import UsageError

MODES = ("embedding", "masking", "elementwise")
# How a written mask marks steps: ``keep`` = True at real steps (Keras, and
# Hugging Face's attention_mask as 1/0); ``ignore`` = True at padded steps
# (PyTorch's key_padding_mask).
POLARITIES = ("keep", "ignore")


def default_mode(inputs: np.ndarray) -> str:
    """``embedding`` for 2-D data, ``masking`` for 3-D data (as Keras models use them)."""
    return "masking" if inputs.ndim >= 3 else "embedding"


def compute_mask(inputs: np.ndarray, mode: str | None = None, mask_value=0) -> np.ndarray:
    """Return the mask Keras would build from ``inputs`` under ``mode``.

    >>> compute_mask(np.array([[0, 5, 0, 7]]), "embedding").tolist()
    [[False, True, False, True]]
    """
    inputs = np.asarray(inputs)
    mode = mode or default_mode(inputs)
    if mode not in MODES:
        raise UsageError(f"unknown mask mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "embedding":
        if inputs.ndim != 2:
            raise UsageError(
                f"--mode embedding needs 2-D token ids, got shape {inputs.shape}: "
                "use --mode masking or --mode elementwise for feature vectors")
        return _not_equal(inputs, mask_value)
    if inputs.ndim != 3:
        raise UsageError(
            f"--mode {mode} needs 3-D data (sequences, steps, features), got shape "
            f"{inputs.shape}: use --mode embedding for 2-D token ids")
    per_value = _not_equal(inputs, mask_value)
    return per_value if mode == "elementwise" else per_value.any(axis=-1)


def step_mask(mask: np.ndarray) -> np.ndarray:
    """Reduce a mask to one value per step: an elementwise mask keeps a step
    when any of its features is kept."""
    return mask.any(axis=-1) if mask.ndim == 3 else mask


def with_polarity(mask: np.ndarray, polarity: str = "keep", as_int: bool = False) -> np.ndarray:
    """Return ``mask`` (True = real step) in the convention another library wants.

    >>> with_polarity(np.array([True, False]), "ignore", as_int=True).tolist()
    [0, 1]
    """
    if polarity not in POLARITIES:
        raise UsageError(f"unknown polarity {polarity!r}: use one of {', '.join(POLARITIES)}")
    mask = np.asarray(mask, dtype=bool)
    if polarity == "ignore":
        mask = ~mask
    # int64, as Hugging Face tokenizers return attention_mask.
    return mask.astype(np.int64) if as_int else mask


def _not_equal(inputs: np.ndarray, value) -> np.ndarray:
    if inputs.dtype.kind in "US":
        return np.asarray(inputs != str(value))
    # numpy compares a Python number exactly with any numeric dtype, even one
    # that cannot hold it (int8 data != 1000 is True everywhere).
    return np.asarray(inputs != value)


def parse_value(text: str | float | int, option: str | None = None):
    """Parse a pad/mask value from the command line: an int, or a float such
    as ``-1.5``, ``nan`` or ``-inf``. ``option`` names it in the error."""
    if not isinstance(text, str):
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        named = f"{option} {text!r}" if option else repr(text)
        raise UsageError(f"{named} is not a number: give a value such as 0, -1 or nan") from None
