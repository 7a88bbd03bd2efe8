"""maskcli: pad sequences, inspect masks and audit masked losses for Keras.

The library core (this package minus ``cli.py`` and ``render.py``) imports
neither click nor rich, and TensorFlow only where a model runs.

Polarity, stated once for the whole package: a ``mask`` is a boolean array
whose True marks a REAL step (Keras' convention); False marks padding.
"""

__version__ = "0.1.0"

from maskcli.errors import MaskcliError, InputError, UsageError  # noqa: E402

__all__ = ["__version__", "MaskcliError", "InputError", "UsageError", "audit_loss"]


def __getattr__(name):
    # The audit pulls in numpy and, when it runs, TensorFlow: load it on first use only.
    if name == "audit_loss":
        from maskcli.audit import audit_loss

        return audit_loss
    raise AttributeError(f"module 'maskcli' has no attribute {name!r}")
