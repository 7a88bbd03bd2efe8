"""Several fields padded at once: their pad values, and their arrays in the npz.

A *field* is one sequence per record: ``input_ids`` and ``labels`` for a
tagger, ``source`` and ``target`` for translation. Each is padded with the
same options, except its pad value (``--value labels=-100``), and record i
of the input is row i of every field's array.

The npz of several fields holds one array per field under its name, plus
``mask`` and ``lengths`` of the first field; a field whose lengths differ
from the first's in any record gets its own ``NAME_mask`` and
``NAME_lengths``. With one field the npz keeps its one-field layout (``inputs``).
"""

from __future__ import annotations

import re

from maskcli.core.errors import UsageError
from maskcli.core.names import member_name

# NAME=V sets one field's pad value. NAME is a field given with --field (any
# text: spaces, other scripts); else a name that starts like an identifier, so
# that a plain value (a number, or a token such as <pad>) never reads as one.
_NAMED_VALUE = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*)=(.*)", re.DOTALL)
# The arrays an npz of several fields holds besides the fields themselves.
RESERVED = ("mask", "lengths", "meta")
MASK_SUFFIX, LENGTHS_SUFFIX = "_mask", "_lengths"
ONE_ARRAY_FORMATS = ("csv", "tsv", "npy")


def split_renames(texts) -> tuple[tuple[str, ...], dict[str, str]]:
    """``--field`` options as (the names to read, {name read: name written}):
    ``NEW=OLD`` reads OLD and writes it as NEW (``token_ids=input_ids``).

    >>> split_renames(["token_ids=input_ids", "labels"])
    (('input_ids', 'labels'), {'input_ids': 'token_ids'})
    """
    read, renames = [], {}
    for text in texts:
        new, equals, old = text.partition("=")
        if equals and new and old:
            if old in renames:
                raise UsageError(f"--field {text}: {old} is already written as {renames[old]}: "
                                 "read each field once")
            renames[old] = new
            read.append(old)
        else:
            read.append(text)
    repeated = next((name for name in read if read.count(name) > 1 and name not in renames), None)
    if repeated is not None:
        raise UsageError(f"--field {repeated} is given twice: name each field once")
    written = [renames.get(name, name) for name in read]
    twice = next((name for name in written if written.count(name) > 1), None)
    if twice is not None:
        raise UsageError(f"--field: two fields would be written as {twice}: give each its own "
                         "name")
    return tuple(read), renames


def split_values(texts, fields=()) -> tuple[str | None, dict[str, str]]:
    """``--value`` options as (the default for every field or None, {field: value}).
    ``fields``: the names given with ``--field``, matched first (longest first).

    >>> split_values(["0", "labels=-100"])
    ('0', {'labels': '-100'})
    >>> split_values(["étiquettes fines=-100"], ["étiquettes fines"])
    (None, {'étiquettes fines': '-100'})
    """
    default, named = None, {}
    for text in texts:
        match = _named_value(text, fields)
        if match is None:
            if default is not None:
                raise UsageError(f"--value is given twice ({default!r} and {text!r}): give one "
                                 "default, and NAME=V for a field's own value")
            default = text
            continue
        name, value = match
        if name in named:
            raise UsageError(f"--value {name}= is given twice: give each field's value once")
        named[name] = value
    return default, named


def _named_value(text: str, fields) -> tuple[str, str] | None:
    """(NAME, V) if ``text`` is NAME=V, else None."""
    for name in sorted(fields, key=len, reverse=True):
        if text.startswith(name + "="):
            return name, text[len(name) + 1:]
    match = _NAMED_VALUE.fullmatch(text)
    return None if match is None else match.groups()


def check_values(values: dict, names: tuple[str, ...]) -> None:
    """Refuse a pad value for a field that is not padded."""
    for name, value in values.items():
        if name not in names:
            padded = ", ".join(names) if names else "none is named"
            raise UsageError(f"--value {name}={value}: {name!r} is not a padded field (fields: "
                             f"{padded}): add --field {name}, or correct the name")


def check_output(fmt: str, fields: tuple[str, ...], mask_as: str | None) -> None:
    """Refuse, before reading, outputs that cannot hold several fields or a
    second mask."""
    if len(fields) > 1 and fmt in ONE_ARRAY_FORMATS:
        raise UsageError(f"{fmt} holds one array, but {len(fields)} fields are padded "
                         f"({', '.join(fields)}): write npz (-o padded.npz), which holds one "
                         "array per field, or jsonl (one object per line)")
    if mask_as is not None and not mask_as.strip():
        raise UsageError("--mask-as needs the name to store the mask under, e.g. padding_mask "
                         "(KerasHub) or attention_mask (Hugging Face)")
    if mask_as is not None and fmt not in ("npz", "parquet"):
        raise UsageError(f"--mask-as {mask_as} adds an array to an npz, but the output is {fmt}: "
                         "write npz (-o padded.npz) or Parquet (-o padded.parquet), or drop "
                         "--mask-as")


def npz_arrays(names: tuple[str, ...], mask_as: str | None) -> None:
    """Refuse field or ``--mask-as`` names that cannot be npz arrays (see
    :func:`maskcli.core.names.member_name`) or would collide with other npz arrays."""
    fields = names if len(names) > 1 else ("inputs",)
    for field in names if len(names) > 1 else ():
        member_name(field, f"--field {field}")
    if mask_as is not None:
        member_name(mask_as, f"--mask-as {mask_as}")
    taken = {name: "the mask" if name == "mask" else f"the array {name!r}" for name in RESERVED}
    for field in fields:
        if field in taken:
            raise UsageError(f"--field {field} would be stored as {field!r}, which is "
                             f"{taken[field]} of the npz: rename the field first")
        taken[field] = f"field {field!r}"
    if len(fields) > 1:
        for field in fields[1:]:
            for suffix in (MASK_SUFFIX, LENGTHS_SUFFIX):
                if field + suffix in taken:
                    raise UsageError(f"field {field!r} may need an array {field + suffix!r}, "
                                     f"which is {taken[field + suffix]}: rename a field first")
                taken[field + suffix] = f"field {field!r}'s {suffix[1:]}"
    if mask_as is not None and mask_as in taken:
        raise UsageError(f"--mask-as {mask_as} names {taken[mask_as]} of the npz: give another "
                         "name, e.g. padding_mask or attention_mask")
