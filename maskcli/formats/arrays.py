"""Reading already padded arrays: the inputs of inspect-mask and audit-loss.

Accepted: an npz written by ``maskcli pad`` (``inputs``, ``mask``, ``lengths``,
``meta``; also ``targets`` when reading targets), an npy, a jsonl with one
padded array per line, or a csv/tsv with one padded row per line. Standard
input is sniffed: npy starts with ``\\x93NUMPY``, npz with ``PK``.

An npz of several fields (``maskcli pad --field A --field B``) names them in
``meta["fields"]``: the first field is read as the inputs, or the one asked
for, with its own mask (``NAME_mask`` when it has one) and pad value; every
other array stays in :attr:`Padded.extra`.

Nothing is ever unpickled: every ``np.load`` has ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from maskcli.core.errors import InputError, MaskcliError, UsageError, where
from maskcli.core.limits import too_big
from maskcli.core.padded import Padded, check_mask
from maskcli.formats.files import STDIN, open_source

FORMATS = ("auto", "npz", "npy", "jsonl", "csv", "tsv")
_EXTENSIONS = {".npz": "npz", ".npy": "npy", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}
# The keys of the JSON string stored as ``meta`` in an npz from ``maskcli pad``.
META_KEYS = ("padding", "truncating", "value", "maxlen", "dtype")
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with files, an empty zip
_INT64_MIN, _UINT64_MAX = -(2 ** 63), 2 ** 64 - 1  # the integers numpy reads as numbers


def read_bytes(path: str = STDIN) -> tuple[str, bytes]:
    with open_source(path) as src:
        return src.name, src.stream.read()


def sniff_format(path: str, data: bytes) -> str:
    """The format of ``data``: by the file extension, else by its first bytes."""
    ext = Path(path).suffix.lower() if path != STDIN else ""
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if data.startswith(NPY_MAGIC):
        return "npy"
    if data.startswith(ZIP_MAGIC):
        return "npz"
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"[", b"{"):
        return "jsonl"
    return "tsv" if b"\t" in data[:4096] else "csv"


def load_padded(path: str = STDIN, fmt: str = "auto", field: str | None = None,
                named: bool = False, dataset=None) -> Padded:
    """Read padded inputs (plus mask/lengths/meta from an npz).

    ``field``: the field of an npz of several fields (from ``maskcli pad
    --field A --field B``) to read as the inputs (default: the first).
    ``named``: an npz may hold arrays named after a model's inputs instead of
    one ``inputs`` array (``token_ids``, ``padding_mask``, ...), as an npz of
    several fields does. Its ``inputs`` is then None, and every array but
    ``mask``, ``lengths`` and ``meta`` is in ``extra``; ``mask`` is checked
    later, against the input it belongs to. A dataset that is not padded yet
    (Parquet, Arrow, a save_to_disk directory, jsonl records, ...) is padded
    as ``maskcli pad`` pads it, with ``dataset``'s options (see
    :mod:`maskcli.formats.dataset_input`).
    """
    from maskcli.formats import dataset_input

    if fmt == "auto" and path != STDIN and dataset_input.is_dataset(path):  # padded here
        return dataset_input.load_input(path, dataset or dataset_input.DatasetOptions(),
                                        field=field, named=named)
    name, data = read_bytes(path)
    if fmt == "auto" and path == STDIN and data and dataset_input.is_dataset(path, data[:1 << 16]):
        return dataset_input.load_input(path, dataset or dataset_input.DatasetOptions(),
                                        field=field, named=named, data=data)
    fmt = sniff_format(path, data) if fmt == "auto" else fmt
    if not data:
        raise InputError(f"{name} is empty: give padded data, e.g. from 'maskcli pad -o x.npz'")
    if fmt == "npz":
        arrays = _load_npz(name, data)
        meta = _parse_meta(name, arrays.pop("meta", None))
        if meta.get("fields") and not named:
            return _field_of(name, arrays, meta, field)
        if field is not None and field != "inputs":
            raise UsageError(f"--field {field}: {name} holds one field, 'inputs': drop --field, "
                             "or pad several with 'maskcli pad --field A --field B'")
        if "inputs" not in arrays and not named:
            raise InputError(
                f"{name} has no 'inputs' array (it has: {', '.join(sorted(arrays)) or 'none'}): "
                "write it with 'maskcli pad -o FILE.npz'")
        inputs = arrays.pop("inputs", None)
        mask = arrays.pop("mask", None)
        lengths = arrays.pop("lengths", None)
        if inputs is None:
            for key, array in arrays.items():
                _check_dtype(f"{name}, array '{key}'", array)
            return Padded(None, name, mask, lengths, meta, arrays)
        if mask is not None:
            mask = check_mask(name, mask, inputs)
        return Padded(_check_dtype(name, inputs), name, mask, lengths, meta, arrays)
    if field is not None:
        raise UsageError(f"--field {field}: {name} is {fmt}, which holds one array: --field "
                         "picks a field of an npz written by 'maskcli pad --field A --field B' "
                         "(-o padded.npz, or --to npz in a pipe)")
    return Padded(_check_dtype(name, _load_dense(name, data, fmt)), name)


def _field_of(name: str, arrays: dict, meta: dict, field: str | None) -> Padded:
    """One field of an npz of several fields, with its own mask, lengths and pad
    value; the other arrays (other fields, their masks) go to ``extra``."""
    fields = meta["fields"]
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise InputError(f"{name}: 'fields' in 'meta' is not a list of names: write the file "
                         "with 'maskcli pad'")
    chosen = fields[0] if field is None else field
    if chosen not in fields:
        raise UsageError(f"--field {chosen}: {name} has no field {chosen!r} (fields: "
                         f"{', '.join(fields)}): give one of them")
    if chosen not in arrays:
        raise InputError(f"{name} has no {chosen!r} array, yet its 'meta' lists it: write the "
                         "file with 'maskcli pad'")
    inputs = _check_dtype(name, arrays.pop(chosen))
    own = chosen != fields[0] and f"{chosen}_mask" in arrays
    mask_name, lengths_name = (f"{chosen}_mask", f"{chosen}_lengths") if own else ("mask", "lengths")
    taken = chosen == fields[0] or own  # the first field's mask stays in extra for the others
    mask = (arrays.pop if taken else arrays.get)(mask_name, None)
    lengths = (arrays.pop if taken else arrays.get)(lengths_name, None)
    values = meta.get("values") if isinstance(meta.get("values"), dict) else {}
    maxlens = meta.get("maxlens") if isinstance(meta.get("maxlens"), dict) else {}
    meta = {**meta, "value": values.get(chosen, meta.get("value")),
            "maxlen": maxlens.get(chosen, meta.get("maxlen"))}
    _check_pad_value(name, meta["value"])
    source = f"{name}, field {chosen!r}"
    if mask is not None:
        mask = check_mask(source, mask, inputs)
    return Padded(inputs, source, mask, lengths, meta, arrays, tuple(fields), chosen)


def split_array_spec(spec: str) -> tuple[str, str | None]:
    """``FILE.npz:ARRAY`` -> (``FILE.npz``, ``ARRAY``); anything else -> (spec, None).

    Only a name ending in ``.npz`` before the last colon splits, so that other
    paths keep their colons.
    """
    path, colon, key = spec.rpartition(":")
    if colon and key and (path.lower().endswith(".npz") or _dataset_path(path)):
        return path, key
    return spec, None


def load_array(path: str, fmt: str = "auto", key: str | None = None) -> np.ndarray:
    """Read one array (targets, or a mask) from npy, npz (``key``), jsonl or csv."""
    from maskcli.formats import dataset_input

    if fmt == "auto" and _dataset_path(path):
        padded = dataset_input.load_input(path, named=True)
        arrays = {**padded.extra, **({"inputs": padded.inputs} if padded.inputs is not None
                                     else {})}
        if key in arrays:
            return _check_dtype(f"{padded.source}, column {key!r}", arrays[key])
        columns = [name for name in padded.fields or arrays]
        if len(columns) == 1 or key is None:
            return _check_dtype(padded.source, arrays[columns[0]])
        raise InputError(f"{padded.source} has no column {key!r} (columns: {', '.join(columns)}): "
                         f"name one with {path}:COLUMN")
    name, data = read_bytes(path)
    if not data:
        raise InputError(f"{name} is empty: give an npy, npz, jsonl or csv file")
    fmt = sniff_format(path, data) if fmt == "auto" else fmt
    if fmt != "npz":
        return _check_dtype(name, _load_dense(name, data, fmt))
    arrays = _load_npz(name, data)
    if key in arrays:
        return _check_dtype(name, arrays[key])
    if len(arrays) == 1:
        return _check_dtype(name, next(iter(arrays.values())))
    raise InputError(f"{name} has no '{key}' array (it has: {', '.join(sorted(arrays))}): "
                     f"save the array under the name '{key}'")


def named_input_files(texts, load: bool = True) -> dict:
    """``--input NAME=FILE[:ARRAY]`` options -> {NAME: array}. An npz gives
    its array ARRAY, by default the one named NAME (or its only array).
    ``load=False``: {NAME: "FILE[:ARRAY]"}, checked but not read."""
    arrays = {}
    for text in texts:
        name, equals, spec = text.partition("=")
        if not equals or not name or not spec:
            raise UsageError(f"--input {text}: write it as NAME=FILE or NAME=FILE.npz:ARRAY, "
                             "e.g. --input segment_ids=segments.npy")
        if name in arrays:
            raise UsageError(f"--input {name} is given twice: give each input once")
        if not load:
            arrays[name] = spec
            continue
        path, key = split_array_spec(spec)
        arrays[name] = load_array(path, key=key or name)
    return arrays


def _dataset_path(path: str) -> bool:
    """Whether ``path`` is a dataset file or folder (Parquet, Arrow, save_to_disk)."""
    from maskcli.formats import dataset_input

    return path != STDIN and (Path(path).exists() or "*" in path) and dataset_input.is_dataset(path)


def npz_arrays(path: str) -> dict[str, np.ndarray]:
    """Every array of an npz file, by name (e.g. to look for an optional one)."""
    name, data = read_bytes(path)
    return {key: _check_dtype(name, array) for key, array in _load_npz(name, data).items()}


def _check_dtype(name: str, array: np.ndarray) -> np.ndarray:
    """Refuse what no mask can be built from: records, complex numbers, dates."""
    if array.dtype.kind not in "biufUS":
        raise InputError(f"{name} holds {array.dtype} values: give numbers (token ids or "
                         "features) or string tokens, e.g. re-save it with arr.astype('float32')")
    return array


def _load_npy(name: str, data: bytes) -> np.ndarray:
    if not data.startswith(NPY_MAGIC):
        hint = ": it is a zip, give it a .npz name" if data.startswith(ZIP_MAGIC) else ""
        raise InputError(f"{name} is not an npy file (no numpy header){hint}: "
                         "save the array with np.save")
    return _np_load(name, data, "npy", "np.save")


def _load_npz(name: str, data: bytes) -> dict[str, np.ndarray]:
    if not data.startswith(ZIP_MAGIC):
        hint = ": it is an npy, give it a .npy name" if data.startswith(NPY_MAGIC) else ""
        raise InputError(f"{name} is not an npz file (not a zip){hint}: "
                         "save the arrays with np.savez or 'maskcli pad -o FILE.npz'")
    return _np_load(name, data, "npz", "np.savez or 'maskcli pad -o FILE.npz'")


def _np_load(name: str, data: bytes, kind: str, fix: str):
    """``np.load`` without pickles, every failure an InputError."""
    try:
        if kind == "npy":
            return np.load(io.BytesIO(data), allow_pickle=False)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            # a small compressed npz can unpack to more than memory holds
            over = too_big(sum(info.file_size for info in npz.zip.infolist()))
            if over:
                raise InputError(f"{name}: its arrays would take {over}: give a smaller file")
            return {key: npz[key] for key in npz.files}
    except MaskcliError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InputError(f"{name} holds pickled Python objects, which maskcli never loads: "
                             "save numeric or string arrays instead") from None
        raise InputError(f"{name} is not a valid {kind} file ({exc}): re-save it with {fix}") from None
    except MemoryError:
        raise InputError(f"{name} declares an array larger than this machine's memory: "
                         f"re-save it with {fix}") from None
    except Exception as exc:  # a corrupt header or zip raises many kinds
        raise InputError(f"{name} is not a valid {kind} file, it may be truncated "
                         f"({type(exc).__name__}: {exc}): re-save it with {fix}") from None


def _parse_meta(name: str, meta: np.ndarray | None) -> dict:
    if meta is None:
        return {}
    try:
        parsed = json.loads(str(meta[()]))
    except (ValueError, TypeError, IndexError):
        raise InputError(f"{name}: 'meta' is not a JSON string: write the file with 'maskcli pad'") from None
    if not isinstance(parsed, dict):
        raise InputError(f"{name}: 'meta' is not a JSON object: write the file with 'maskcli pad'")
    _check_pad_value(name, parsed.get("value"))
    return parsed


def _check_pad_value(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, type(None))):
        raise InputError(f"{name}: the pad value {json.dumps(value)} in 'meta' is neither a "
                         "number nor a token: write the file with 'maskcli pad'")


def _load_dense(name: str, data: bytes, fmt: str) -> np.ndarray:
    if fmt == "npy":
        return _load_npy(name, data)
    if fmt not in ("jsonl", "csv", "tsv"):
        raise UsageError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"{where(name, line)}: not UTF-8 text: convert it to UTF-8, "
                         "or give an npy/npz file") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        rows.append((number, _parse_row(name, number, line, fmt)))
    return stack_rows(name, rows)


def stack_rows(name: str, rows: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """Padded rows (line number, row) of a jsonl/csv/tsv file as one array;
    rows of different shapes mean the data is not padded."""
    if not rows:
        raise InputError(f"{name} holds no rows: give padded data, one sequence per line")
    first_line, first = rows[0]
    for number, row in rows:
        if row.shape != first.shape:
            raise InputError(
                f"{where(name, number)}: row shape {row.shape} differs from line {first_line}'s "
                f"{first.shape}: the data is not padded; pad it first with 'maskcli pad'")
    return np.stack([row for _, row in rows])


def _parse_row(name: str, number: int, line: str, fmt: str) -> np.ndarray:
    if fmt == "jsonl":
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where(name, number)}: malformed JSON ({exc.msg}, column {exc.colno}): "
                             "fix the line; each line must be one JSON array") from None
        except RecursionError:
            raise InputError(f"{where(name, number)}: JSON nested too deeply: each line must be "
                             "one array of numbers, or of feature vectors") from None
        if isinstance(value, dict):  # e.g. the jsonl of 'maskcli pad --field A --field B'
            keys = ", ".join(map(repr, list(value)[:10])) or "none"
            raise InputError(f"{where(name, number)}: an object (keys: {keys}), not a padded "
                             "array: write one padded array per line; padded fields are read "
                             "from an npz (maskcli pad -o padded.npz, or --to npz in a pipe), "
                             "which keeps each field under its name")
        if not isinstance(value, list):
            kind = {str: "a string", bool: "a boolean", type(None): "null"}.get(type(value),
                                                                                "a number")
            raise InputError(f"{where(name, number)}: expected a JSON array, got {kind}: "
                             "write one padded array per line")
    else:
        sep = "\t" if fmt == "tsv" else ","
        value = [cell.strip() for cell in line.split(sep)]
        try:
            value = [float(cell) if not _is_int(cell) else int(cell) for cell in value]
        except ValueError:
            bad = next(c for c in value if not _is_number(c))
            raise InputError(f"{where(name, number)}: {bad!r} is not a number: "
                             f"{fmt} input must hold numbers only, no header") from None
    try:
        row = np.array(value)
    except ValueError:
        raise InputError(f"{where(name, number)}: ragged row (steps of different sizes): "
                         "give every step the same number of features") from None
    if row.dtype.kind not in "biuf":
        step, bad = _first_non_number(value)
        place = where(name, number, step=step)
        if isinstance(bad, int):
            raise InputError(f"{place}: the integer {bad} does not fit in 64 bits: "
                             "give smaller ids, or write the value as a float")
        raise InputError(f"{place}: {json.dumps(bad)} is not a number: give numbers only "
                         "(map tokens to ids first with 'maskcli pad --vocab')")
    return row


def _first_non_number(value: list) -> tuple[int, object]:
    """The step and the first element of a row that numpy read as objects or
    strings: not a number, or an integer beyond 64 bits."""
    return next((step, element) for step, item in enumerate(value)
                for element in (item if isinstance(item, list) else [item])
                if not (isinstance(element, float)
                        or isinstance(element, int) and _INT64_MIN <= element <= _UINT64_MAX))


def _is_int(cell: str) -> bool:
    try:
        int(cell)
        return True
    except ValueError:
        return False


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False
