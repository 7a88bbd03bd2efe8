"""Names that come from data: column names, field names, npz array names.

A Parquet column or a JSON key may be any text: ``input ids``, ``étiquettes``,
``../../labels``. Such a name reaches two places where it could do harm:

- **An archive member.** An npz holds each array as the member ``NAME.npy``;
  a name with a path separator would put the member outside the archive's
  root, where ``unzip`` writes it outside the folder (as a crafted ``.keras``
  file would). maskcli *refuses* such names, never rewrites them: a renamed
  array is one the user's code would not find. :func:`member_name` is the one
  check, in every writer of npz members.
- **A message.** A name holding a line break or a terminal escape would break
  the one ``Error:`` line or rewrite the terminal. :func:`shown` escapes
  what cannot be printed; every message goes through it on its way out.

Spaces, punctuation and letters of any script are names like any other.
"""

from __future__ import annotations

from maskcli.core.errors import UsageError

# KerasHub's input names, and the Hugging Face names of the same arrays: a
# model input without an array of its own name is fed from these.
HF_NAMES = {"token_ids": "input_ids", "padding_mask": "attention_mask",
            "segment_ids": "token_type_ids"}
# Separators in zip member names (zip says '/'; Windows tools also read '\').
_SEPARATORS = ("/", "\\")


def member_name(name: str, what: str) -> str:
    """``name`` if it can be an npz member name (``name.npy`` at the archive's
    root), else a UsageError naming ``what`` (e.g. ``--field ../labels``)."""
    problem = None
    if not name:
        problem = "is empty"
    elif name in (".", ".."):
        problem = f"is {name!r}, which names a folder"
    elif any(separator in name for separator in _SEPARATORS):
        problem = "holds a path separator ('/' or '\\'), so its member would lie outside " \
                  "the archive's root"
    elif not name.isprintable():
        problem = "holds a control character"
    if problem is not None:
        raise UsageError(f"{shown(what)}: the name {name!r} cannot be an npz array: it {problem}: "
                         "rename it (e.g. pyarrow's table.rename_columns, or the JSON key), "
                         "or write jsonl")
    return name


def shown(text: str) -> str:
    """``text`` with what cannot be printed (line breaks, terminal escapes)
    written as Python escapes, so that it stays on one line and inert."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
