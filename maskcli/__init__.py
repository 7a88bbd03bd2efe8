"""maskcli: pad sequences, inspect masks and audit masked losses for Keras.

The library core (this package minus ``cli.py`` and the ``render*.py``
modules) imports neither click nor rich, and TensorFlow only where a model
runs (through ``models.py``).

Polarity, stated once for the whole package: a ``mask`` is a boolean array
whose True marks a REAL step (Keras' convention); False marks padding.
"""

__version__ = "0.1.0"

from maskcli.errors import MaskcliError, InputError, UsageError  # noqa: E402

# Everything below loads numpy (or more) on first use only, so that
# `maskcli --help` and `import maskcli` stay fast.
_LAZY = {
    "pad_sequences": "maskcli.padding",
    "inspect_mask": "maskcli.diagnose",
    "MaskReport": "maskcli.diagnose",
    "audit_loss": "maskcli.audit",  # TensorFlow itself loads only when a model runs
}

__all__ = ["__version__", "MaskcliError", "InputError", "UsageError", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maskcli' has no attribute {name!r}")
