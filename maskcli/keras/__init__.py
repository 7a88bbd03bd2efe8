"""The Keras layer: loading and building models, the loss audit, the mask trace.

The only part of maskcli that imports keras or tensorflow, and only when a
model runs (:func:`maskcli.keras.models.import_keras`), so that importing
these modules stays cheap.
"""
