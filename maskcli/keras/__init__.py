"""The Keras layer: loading and building models, the loss audit, the mask trace.

The only part of maskcli that imports keras or tensorflow, and only when a
model runs (:func:`maskcli.keras.models.import_keras`), so that importing
these modules stays cheap.
"""


def __getattr__(name):
    # ``maskcli.keras.PaddingAudit`` is a Keras callback class: Keras loads on first use.
    if name in ("PaddingAudit", "PaddingLeakWarning"):
        from maskcli.keras import callback

        return getattr(callback, name)
    raise AttributeError(f"module 'maskcli.keras' has no attribute {name!r}")
