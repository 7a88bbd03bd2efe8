"""The numpy core: padding, masks and their diagnostics.

Imports numpy only: neither click, rich, pyarrow nor keras/tensorflow, so it
runs in a notebook or a data pipeline without loading a framework.
"""
