"""maskcli: pad sequences, inspect masks and audit masked losses for Keras.

The layers, bottom to top (each imports only those below it):
``core`` (numpy), ``formats`` (files), ``keras`` (the only one that imports
keras/tensorflow, lazily), ``render`` (rich), and ``cli``/``api`` on top.

Polarity, stated once for the whole package: a ``mask`` is a boolean array
whose True marks a REAL step (Keras' convention); False marks padding.
"""

__version__ = "0.1.0"

from maskcli.core.errors import (  # noqa: E402
    InputError,
    MaskcliError,
    ModelError,
    PaddingLeakError,
    UsageError,
)

# Everything below loads numpy (or more) on first use only, so that
# `maskcli --help` and `import maskcli` stay fast.
_LAZY = {
    "pad_sequences": "maskcli.formats.padding",  # lists, numpy object arrays, Arrow arrays
    "pad_fields": "maskcli.formats.padding",
    "PaddedField": "maskcli.formats.padding",
    "inspect_mask": "maskcli.api",
    "MaskReport": "maskcli.core.diagnose",
    "audit_loss": "maskcli.keras.audit.api",  # TensorFlow itself loads only when a model runs
    "PaddingAudit": "maskcli.keras.callback",  # loads Keras: it is a Keras callback
    "trace_mask": "maskcli.keras.trace",
    "trace_padding": "maskcli.keras.trace",
    "trace_packed": "maskcli.keras.trace.packed",  # where the documents of packed rows mix
    "pad_arrow": "maskcli.formats.arrow_map",  # pyarrow loads with it, not with maskcli
    "pad_arrow_batches": "maskcli.formats.arrow_map",
    "pack_arrow": "maskcli.formats.arrow_pack",
    "pack_arrow_batches": "maskcli.formats.arrow_pack",
}

__all__ = ["__version__", "MaskcliError", "InputError", "UsageError", "ModelError",
           "PaddingLeakError", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'maskcli' has no attribute {name!r}")
