"""Saved Keras models from other people, bounded before Keras reads them.

A ``--model`` file comes from someone else, just as a data file does, and a
small one can claim, or truly inflate to, more than this machine's memory: a
3 MB ``.keras`` whose ``config.json`` inflates to 3 GB. :func:`check_model_file`
reads the zip directory, the configs (at most :data:`CONFIG_LIMIT` bytes each)
and the HDF5 or npy headers of the weights, never their data, and refuses with
a :class:`ModelError`, in a ``.keras`` zip:

- a member outside the archive's root (``..`` or an absolute path);
- ``config.json`` or ``metadata.json`` over ``CONFIG_LIMIT``;
- weights and assets that would unpack to more than memory (``limits.too_big``,
  the estimate npz data files get), and arrays in ``model.weights.h5`` or
  ``model.weights.npz`` that claim more than memory;
- a member whose stream does not inflate to its declared size and CRC-32, an
  encrypted one, one compressed otherwise than deflate, overlapping members.

Why check the streams: zipfile's ``read()``, which Keras calls, inflates up to
2 GB of a deflated member at once before cutting it to the declared size (and
bzip2 or lzma without any bound), so a declared size bounds Keras only once the
stream is known to end there. A legacy ``.h5`` is checked by
:mod:`maskcli.formats.model_h5`.

No keras or tensorflow here: the check runs before TensorFlow is imported, so
a refused file costs a fraction of a second. zipfile, h5py and numpy load only
inside the functions that need them.
"""

from __future__ import annotations

import io
import math
import re
import zlib
from pathlib import Path

from maskcli.core.errors import ModelError
from maskcli.core.limits import format_bytes, memory_limit, too_big
from maskcli.formats.zips import member_data_offset

# A real config is kilobytes; Keras reads and parses it whole, before any weight.
CONFIG_LIMIT = 4 * 2 ** 20
CONFIG_MEMBERS = ("config.json", "metadata.json")
CONFIG_ATTRIBUTES = ("model_config", "training_config")  # their place in a legacy .h5
WEIGHTS_H5, WEIGHTS_NPZ = "model.weights.h5", "model.weights.npz"
# Zip members, or HDF5 objects plus attributes: a Keras model has a few per layer,
# and walking each costs time, whatever its size.
MAX_ENTRIES = 200_000
_STORED, _DEFLATED = 0, 8  # zip compression methods: Keras stores; a re-zip deflates
_METHODS = {12: "bzip2", 14: "lzma", 93: "zstandard"}
_CHUNK = 2 ** 20  # bytes read, or inflated, at a time
SUFFIXES = (".keras", ".h5", ".hdf5")
_PASSED: set[tuple] = set()  # files (path, inode, size, mtime, memory) that passed in this process
RESAVE = "give a file saved with model.save('model.keras')"
SMALLER = "give a smaller model, or run maskcli on a machine with more memory"


def check_model_file(path: str, label: str | None = None) -> None:
    """Refuse the model file ``path`` if Keras could not read it within this
    machine's memory, or if it reaches outside itself; return None if it is fine.

    ``label`` starts every message (default ``--model PATH``). Keras still
    decides whether what passes is a loadable model.
    """
    label = label or f"--model {path}"
    p = Path(path)
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "no such file"
        raise ModelError(f"{label}: {what}: give a saved .keras model file")
    if p.suffix not in SUFFIXES:
        raise ModelError(f"{label}: not a .keras file: save the model with "
                         "model.save('model.keras')")
    # The commands check a file before TensorFlow loads, and load_model checks
    # again just before Keras reads it: the same unchanged file passes once.
    stat = p.stat()
    identity = (str(p.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, memory_limit())
    if identity in _PASSED:
        return
    if p.suffix == ".keras":
        _check_keras_archive(p, label)
    else:
        from maskcli.formats.model_h5 import check_legacy_h5

        check_legacy_h5(p, label)
    _PASSED.add(identity)


# --- .keras: a zip ------------------------------------------------------------------

def _check_keras_archive(path: Path, label: str) -> None:
    import zipfile

    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        # Keras would say "File not found" about it
        raise ModelError(f"{label}: not a loadable Keras model (not a zip archive, as .keras "
                         f"files are): {RESAVE}") from None
    except Exception as exc:  # a damaged central directory raises many kinds
        raise ModelError(f"{label}: not a loadable Keras model, its zip directory is damaged "
                         f"({why(exc)}): {RESAVE}") from None
    with archive, open(path, "rb") as raw:
        infos = archive.infolist()
        _check_directory(infos, label)
        starts = _check_layout(raw, infos, label)
        for info in infos:
            _check_stream(raw, info, starts[id(info)], f"{label}: member {info.filename}")
        names = {info.filename for info in infos}
        if WEIGHTS_H5 in names:
            _check_weights_h5(_member_file(archive, raw, WEIGHTS_H5, starts),
                              f"{label}: member {WEIGHTS_H5}")
        if WEIGHTS_NPZ in names:
            _check_weights_npz(_member_file(archive, raw, WEIGHTS_NPZ, starts),
                               f"{label}: member {WEIGHTS_NPZ}")


def _check_directory(infos, label: str) -> None:
    """What the zip directory alone tells: names, and declared sizes."""
    if len(infos) > MAX_ENTRIES:
        raise ModelError(f"{label}: the archive holds {len(infos)} members, more than the "
                         f"{MAX_ENTRIES} maskcli reads; a Keras model has a handful: {RESAVE}")
    for info in infos:
        if _outside_root(info.filename):
            raise ModelError(f"{label}: member {info.filename} lies outside the archive's "
                             "root (a '..' or an absolute path), where no Keras model "
                             f"writes: {RESAVE}")
    if not any(info.filename == CONFIG_MEMBERS[0] for info in infos):
        raise ModelError(f"{label}: not a loadable Keras model (no {CONFIG_MEMBERS[0]} in "
                         f"the archive): {RESAVE}")
    for info in infos:
        if info.filename in CONFIG_MEMBERS and info.file_size > CONFIG_LIMIT:
            raise ModelError(config_too_big(label, f"member {info.filename}", "unpacks to",
                                            info.file_size))
    refuse_over_memory(label, [(f"member {info.filename}", max(info.file_size,
                                                              info.compress_size))
                               for info in infos if info.filename not in CONFIG_MEMBERS],
                       "unpacks to", "its weights and assets")


def _outside_root(name: str) -> bool:
    """Whether a member's path leaves the folder it would be extracted to."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) is not None \
        or ".." in parts


def _check_layout(raw, infos, label: str) -> dict[int, int]:
    """Where each member's data starts (by ``id(info)``), once every member
    is stored or deflated, not encrypted, inside the file, and overlaps none
    other (a zip bomb's trick: many entries inflating the same data)."""
    size = raw.seek(0, 2)
    starts, spans = {}, []
    for info in infos:
        what = f"{label}: member {info.filename}"
        if info.flag_bits & 0x1:
            raise ModelError(f"{what} is encrypted, which Keras cannot read: {RESAVE}")
        if info.compress_type not in (_STORED, _DEFLATED):
            method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
            raise ModelError(f"{what} is compressed with {method}, which Keras never writes and "
                             f"maskcli cannot bound without inflating it: {RESAVE}")
        start = member_data_offset(raw, info)
        if start is None:
            raise ModelError(f"{what} is damaged (no local header where the zip directory "
                             f"points): {RESAVE}")
        starts[id(info)] = start
        spans.append((info.header_offset, starts[id(info)] + info.compress_size, info.filename))
    spans.sort()
    for (_, end, name), (start, _, other) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise ModelError(f"{label}: members {name} and {other} overlap, which no zip writer "
                             f"does but a zip bomb: {RESAVE}")
    if spans and max(end for _, end, _ in spans) > size:
        raise ModelError(f"{label}: not a loadable Keras model, the zip archive is cut short: "
                         f"{RESAVE}")
    return starts


def _check_stream(raw, info, start: int, what: str) -> None:
    """Check a member's data against its declared size and CRC-32, inflating
    it a megabyte at a time and stopping as soon as it passes that size.

    zipfile's ``read()``, which Keras calls, inflates up to 2 GB of a deflated
    member in one step before cutting it to the declared size: a declared
    size bounds Keras only once the stream is known to end there. Every
    deflated member is checked; of stored ones, which zipfile never reads
    past their stored bytes, the small ones (each config among them).
    """
    if info.compress_type == _STORED:
        if info.compress_size != info.file_size:
            raise ModelError(f"{what} is damaged (it stores {info.compress_size} bytes and "
                             f"declares {info.file_size}): {RESAVE}")
        if info.file_size > CONFIG_LIMIT:
            return  # its bytes are on disk, no more; Keras reads each once
    total, crc = 0, 0
    try:
        for out in _member_bytes(raw, info, start):
            total += len(out)
            if total > info.file_size:
                raise ModelError(f"{what} inflates to more than the "
                                 f"{format_bytes(info.file_size)} it declares: the file was "
                                 f"altered; {RESAVE}")
            crc = zlib.crc32(out, crc)
    except zlib.error as exc:
        raise ModelError(f"{what} is damaged (zlib: {exc}): {RESAVE}") from None
    if total != info.file_size:
        raise ModelError(f"{what} is damaged (it inflates to {total} bytes and declares "
                         f"{info.file_size}): {RESAVE}")
    if crc != info.CRC:
        raise ModelError(f"{what} is damaged (its CRC-32 does not match: the bytes were "
                         f"altered): {RESAVE}")


def _member_bytes(raw, info, start: int):
    """A member's bytes as zipfile gets them, at most a megabyte at a time."""
    raw.seek(start)
    inflate = zlib.decompressobj(-15) if info.compress_type == _DEFLATED else None
    left = info.compress_size  # zipfile reads no more of the stream than this
    while left > 0:
        data = raw.read(min(left, _CHUNK))
        if not data:
            return
        left -= len(data)
        if inflate is None:
            yield data
            continue
        while True:
            out = inflate.decompress(data, _CHUNK)
            yield out
            data = inflate.unconsumed_tail
            if inflate.eof:
                return
            if not data and len(out) < _CHUNK:
                break  # this input is spent and no output is pending


def _member_file(archive, raw, name: str, starts: dict[int, int]):
    """Member ``name`` (the last of that name, as Keras reads it) as a file."""
    info = archive.getinfo(name)
    if info.compress_type == _STORED:  # as Keras writes it: a window on the file itself
        return _Window(raw, starts[id(info)], info.file_size)
    return io.BytesIO(archive.read(info))  # its stream inflates to file_size, which fits


def _check_weights_h5(member, place: str) -> None:
    """The datasets and attributes of the weights, from their headers."""
    import h5py

    from maskcli.formats.model_h5 import check_h5

    try:
        with h5py.File(member, "r") as h5:
            check_h5(h5, place)
    except ModelError:
        raise
    except Exception as exc:  # not HDF5, or a damaged one: h5py raises many kinds
        raise ModelError(f"{place} is not a readable HDF5 file ({why(exc)}): {RESAVE}") from None


class _Window(io.RawIOBase):
    """Bytes ``[start, start + size)`` of an open file, as a file of their own.

    h5py seeks all over an HDF5 file; through zipfile (Python 3.11) each
    backward seek would re-read the member from its start.
    """

    def __init__(self, raw, start: int, size: int):
        super().__init__()
        self._raw, self._start, self._size, self._pos = raw, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._size)[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        self._raw.seek(self._start + self._pos)
        data = self._raw.read(max(0, min(len(buffer), self._size - self._pos)))
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def _check_weights_npz(member, place: str) -> None:
    """The arrays of an npz weights store: numpy allocates each header's shape."""
    import zipfile

    import numpy as np

    arrays = []
    try:
        with zipfile.ZipFile(member) as npz:
            if len(npz.infolist()) > MAX_ENTRIES:
                raise ModelError(f"{place} holds more than {MAX_ENTRIES} arrays: {RESAVE}")
            for info in npz.infolist():
                with npz.open(info) as stream:
                    version = np.lib.format.read_magic(stream)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(stream)
                arrays.append((f"array {info.filename} ({shape_text(shape, dtype)})",
                               max(math.prod(shape) * dtype.itemsize, info.file_size)))
    except ModelError:
        raise
    except Exception as exc:  # not a zip, not npy headers: numpy and zipfile raise many kinds
        raise ModelError(f"{place} is not a readable npz file ({why(exc)}): {RESAVE}") from None
    refuse_over_memory(place, arrays, "claims", "its arrays")


# --- messages -----------------------------------------------------------------------

def refuse_over_memory(place: str, sized: list[tuple[str, int]], verb: str,
                        whole: str) -> None:
    """Refuse when the sizes together exceed memory, naming the largest.
    ``verb`` is singular ("claims"); ``whole`` names them all ("its datasets")."""
    over = too_big(sum(size for _, size in sized))
    if not over:
        return
    largest, size = max(sized, key=lambda item: item[1])
    if too_big(size):  # one alone is too big: name it alone
        raise ModelError(f"{place}: {largest} {verb} {too_big(size)}: {SMALLER}")
    first, _, rest = verb.partition(" ")
    plural = " ".join(filter(None, (first.removesuffix("s"), rest)))
    raise ModelError(f"{place}: {whole} together {plural} {over} (the largest: {largest}, "
                     f"{format_bytes(size)}): {SMALLER}")


def config_too_big(place: str, what: str, verb: str, nbytes: int) -> str:
    """The message for a config over ``CONFIG_LIMIT``."""
    return (f"{place}: {what} {verb} {format_bytes(nbytes)}; a model's config takes kilobytes "
            f"and maskcli reads at most {format_bytes(CONFIG_LIMIT)} of it: {RESAVE}")


def shape_text(shape: tuple, dtype) -> str:
    """``(3, 4), float32`` -> ``3 x 4 float32``."""
    return f"{' x '.join(map(str, shape)) or 'scalar'} {dtype}"


def why(error: BaseException) -> str:
    """An exception's class and first line, for a message."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__
