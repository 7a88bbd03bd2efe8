"""The HDF5 half of :mod:`maskcli.formats.model_files`: a legacy ``.h5``
model, or the ``model.weights.h5`` inside a ``.keras``, walked with h5py
through its headers (and its string attributes), never its data.

An HDF5 dataset is read into an array of its declared shape, so shape x
itemsize is what it costs; only a filter (gzip, lzf, a plugin) can make HDF5
inflate more than that, and only a link, external storage or a virtual
dataset can make it read another file: those are refused.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path

import numpy as np

from maskcli.core.errors import ModelError
from maskcli.core.limits import format_bytes
from maskcli.formats.model_files import (
    CONFIG_ATTRIBUTES,
    CONFIG_LIMIT,
    MAX_ENTRIES,
    RESAVE,
    config_too_big,
    refuse_over_memory,
    shape_text,
    why,
)

# Filters that never make a chunk larger than its declared size.
_SIZE_KEEPING_FILTERS = {2: "shuffle", 3: "fletcher32"}
# Memory the string attributes of one object may take while read: Keras' own are
# a config (at most CONFIG_LIMIT) and lists of layer and weight names.
STRING_BUDGET = 256 * 2 ** 20


def check_legacy_h5(path: Path, label: str) -> None:
    """Refuse a legacy ``.h5`` model that is not HDF5, or fails :func:`check_h5`."""
    import h5py

    try:
        h5 = h5py.File(path, "r")
    except Exception:  # h5py raises OSError, or others for a damaged superblock
        raise ModelError(f"{label}: not a loadable Keras model (not an HDF5 file): "
                         f"{RESAVE}") from None
    with h5:
        try:
            check_h5(h5, label)
        except ModelError:
            raise
        except Exception as exc:  # a damaged object header or datatype
            raise ModelError(f"{label}: not a loadable Keras model, a damaged HDF5 file "
                             f"({why(exc)}): {RESAVE}") from None


def check_h5(h5, place: str) -> None:
    """Walk every link, dataset and attribute of an open HDF5 file, reading
    headers only (and string attributes), then refuse what would not fit."""
    import h5py

    links = []

    def collect(name: str, link):
        # h5py cannot carry an exception out of this callback: collect, then check.
        links.append((name, link))
        return True if len(links) > MAX_ENTRIES else None  # not None: stop the walk

    h5.visititems_links(collect)
    datasets: list[tuple[str, int]] = []
    attributes: list[tuple[str, int]] = []
    entries = _attributes(h5, "/", place, attributes)
    for name, link in links:
        where = f"/{name}"
        if isinstance(link, h5py.ExternalLink):
            raise ModelError(f"{place}: {where} is a link into another file ({link.filename}), "
                             f"and maskcli reads no file but the model: {RESAVE}")
        if isinstance(link, h5py.SoftLink):
            continue  # a path inside this file: its target is walked under its own name
        obj = h5[name]
        if isinstance(obj, h5py.Dataset):
            datasets.append(_dataset_size(obj, where, place))
        entries += 1 + _attributes(obj, where, place, attributes)
        if entries > MAX_ENTRIES:
            break
    if entries > MAX_ENTRIES:
        raise ModelError(f"{place}: holds more than {MAX_ENTRIES} HDF5 objects and "
                         f"attributes; a Keras model has a few per layer: {RESAVE}")
    refuse_over_memory(place, datasets, "claims", "its datasets")
    refuse_over_memory(place, attributes, "claims", "its attributes")


def _dataset_size(dataset, where: str, place: str) -> tuple[str, int]:
    """``(description, bytes)`` of a dataset as read into memory, from its header."""
    if dataset.is_virtual or dataset.external:
        kind = "a virtual dataset" if dataset.is_virtual else "external storage"
        raise ModelError(f"{place}: dataset {where} keeps its data in other files ({kind}), and "
                         f"maskcli reads no file but the model: {RESAVE}")
    plist = dataset.id.get_create_plist()
    for index in range(plist.get_nfilters()):
        code, _, _, name = plist.get_filter(index)
        if code not in _SIZE_KEEPING_FILTERS:
            raise ModelError(
                f"{place}: dataset {where} is compressed ({name.decode(errors='replace')}), which "
                "Keras never writes: maskcli cannot tell what it inflates to without inflating "
                f"it; {RESAVE}")
    if dataset.dtype.hasobject:
        raise ModelError(f"{place}: dataset {where} holds variable-length values, which no "
                         f"Keras weight is and maskcli cannot size before reading: {RESAVE}")
    shape = dataset.shape or ()  # None: an empty (null) dataspace
    nbytes = math.prod(shape) * dataset.dtype.itemsize if dataset.shape is not None else 0
    return f"dataset {where} ({shape_text(shape, dataset.dtype)})", nbytes


def _attributes(obj, where: str, place: str, sizes: list[tuple[str, int]]) -> int:
    """Append ``(description, bytes)`` for each attribute of ``obj`` to
    ``sizes``, refusing an oversized config; return how many there are."""
    import h5py

    names = list(obj.attrs)
    for name in names:
        attr = obj.attrs.get_id(name)
        what = f"attribute {name} of {where}"
        if not attr.dtype.hasobject:
            shape = attr.shape
            nbytes = math.prod(shape) * attr.dtype.itemsize if shape is not None else 0
        else:
            # Variable-length strings (Keras' model_config, layer_names, weight_names)
            # keep their bytes in the file's heap, and the header says nothing of
            # their number: read them, as Keras will, and measure. HDF5 allocates
            # what each string's descriptor declares (up to 4 GB) before checking it
            # against the heap: the read runs with the address space capped.
            info = h5py.check_string_dtype(attr.dtype)
            count = math.prod(attr.shape) if attr.shape is not None else 0
            if info is None or info.length is not None:
                raise ModelError(f"{place}: {what} holds objects other than strings "
                                 "(references or variable-length arrays), which no Keras "
                                 f"version writes and maskcli cannot size before reading: {RESAVE}")
            if count > MAX_ENTRIES:
                raise ModelError(f"{place}: {what} holds {count} strings, more than the "
                                 f"{MAX_ENTRIES} maskcli reads: {RESAVE}")
            try:
                with _address_space_capped(STRING_BUDGET):
                    value = obj.attrs[name]
            except Exception as exc:  # HDF5: "memory allocation failed"; or MemoryError
                raise ModelError(f"{place}: {what} cannot be read within "
                                 f"{format_bytes(STRING_BUDGET)} ({why(exc)}): its strings "
                                 f"declare more than the file holds; {RESAVE}") from None
            nbytes = len(value) if isinstance(value, (str, bytes)) \
                else sum(len(item) for item in np.asarray(value, dtype=object).flat)
        if where == "/" and name in CONFIG_ATTRIBUTES and nbytes > CONFIG_LIMIT:
            raise ModelError(config_too_big(place, what, "holds", nbytes))
        sizes.append((what, nbytes))
    return len(names)


@contextlib.contextmanager
def _address_space_capped(extra: int):
    """Run with at most ``extra`` more bytes of address space to allocate, on
    Linux (elsewhere, unchanged): an allocation beyond fails at once, instead of
    filling memory. The previous limit is restored afterwards."""
    try:
        import resource  # POSIX only

        status = Path("/proc/self/status").read_text()
        used = int(re.search(r"VmSize:\s+(\d+) kB", status)[1]) * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, TypeError, ValueError, AttributeError):  # not Linux
        yield
        return
    cap = used + extra
    if soft != resource.RLIM_INFINITY and soft <= cap:
        yield  # already as tight
        return
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
