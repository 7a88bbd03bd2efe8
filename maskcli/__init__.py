"""maskcli: pad sequences, inspect masks and audit masked losses for Keras.

The library core (this package minus ``cli.py`` and ``render.py``) imports
neither click nor rich, and TensorFlow only where a model runs.

Polarity, stated once for the whole package: a ``mask`` is a boolean array
whose True marks a REAL step (Keras' convention); False marks padding.
"""

__version__ = "0.1.0"

from maskcli.errors import MaskcliError, InputError, UsageError  # noqa: E402

__all__ = ["__version__", "MaskcliError", "InputError", "UsageError", "pad_sequences"]


def __getattr__(name):
    # numpy loads only when the library is used, so `maskcli --help` stays fast.
    if name == "pad_sequences":
        from maskcli.padding import pad_sequences

        return pad_sequences
    raise AttributeError(f"module 'maskcli' has no attribute {name!r}")
