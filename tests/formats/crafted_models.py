"""Hostile model files, made in memory for the tests (none is checked in).

Each function returns the bytes of one file. The zips are written byte by byte
(``raw_zip``) where ``zipfile`` cannot say what a hostile writer says: a
deflated member that really inflates to gigabytes, a size the data does not
have. The ``.h5`` files are written with h5py into memory.
"""

from __future__ import annotations

import functools
import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass

MB = 2 ** 20
GB = 2 ** 30
# A config Keras could parse; the checks never get as far as building it.
CONFIG = json.dumps({"class_name": "Sequential", "config": {"name": "crafted", "layers": []},
                     "module": "keras", "registered_name": None}).encode()


@dataclass(frozen=True)
class Member:
    """One member of a hand-written zip: its stored bytes and what it declares."""

    name: str
    data: bytes  # as stored in the archive
    crc: int
    file_size: int  # the uncompressed size declared in the headers
    method: int = zipfile.ZIP_STORED
    flags: int = 0  # bit 0: encrypted
    compress_size: int | None = None  # the stored size declared (default: the truth)


def stored(name: str, content: bytes) -> Member:
    return Member(name, content, zlib.crc32(content), len(content))


@functools.lru_cache(maxsize=4)
def deflated_run(size: int, byte: bytes = b" ") -> tuple[bytes, int]:
    """A raw deflate stream that truly inflates to ``size`` copies of ``byte``
    (``size`` a multiple of 1 MB), and the CRC-32 of what it inflates to.

    A full flush ends each megabyte's block on a byte boundary with a fresh
    dictionary, so one compressed megabyte repeats: 3 GB cost 3 MB and no
    3 GB of compressing."""
    chunk = byte * MB
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty final block
    crc = 0
    for _ in range(size // MB):
        crc = zlib.crc32(chunk, crc)
    return block * (size // MB) + end, crc


def deflated(name: str, size: int, declared: int | None = None) -> Member:
    """A member inflating to ``size`` spaces; ``declared`` (default: the
    truth) is the size its headers claim."""
    data, crc = deflated_run(size)
    return Member(name, data, crc, size if declared is None else declared, zipfile.ZIP_DEFLATED)


def raw_zip(*members: Member) -> bytes:
    """A zip archive holding ``members`` exactly as given, zip64 size fields
    where a declared size needs them."""
    out, central = io.BytesIO(), io.BytesIO()
    for member in members:
        name = member.name.encode()
        offset = out.tell()
        stored_size = len(member.data) if member.compress_size is None else member.compress_size
        sizes = (stored_size, member.file_size)
        extra = b""
        if max(sizes) >= 0xFFFFFFFF:
            extra = struct.pack("<HHQQ", 1, 16, member.file_size, stored_size)
            sizes = (0xFFFFFFFF, 0xFFFFFFFF)
        version = 45 if extra else 20
        out.write(struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", version, 0, member.flags,
                              member.method, 0, 0x21, member.crc, *sizes, len(name), len(extra)))
        out.write(name + extra + member.data)
        central.write(struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", version, 3, version, 0,
                                  member.flags, member.method, 0, 0x21, member.crc, *sizes,
                                  len(name), len(extra), 0, 0, 0, 0o644 << 16, offset))
        central.write(name + extra)
    start = out.tell()
    out.write(central.getvalue())
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members),
                          len(central.getvalue()), start, 0))
    return out.getvalue()


def h5_bytes(build, libver=None) -> bytes:
    """An HDF5 file made in memory by ``build(h5py.File)``; ``libver="latest"``
    lets an attribute exceed 64 KB."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver=libver) as h5:
        build(h5)
    return buffer.getvalue()


def huge_dataset(h5) -> None:
    """A 3.6 TB float32 dataset, chunked so that none of it is written."""
    h5.create_dataset("w", shape=(10 ** 6, 10 ** 6), dtype="f4", chunks=(1, 1024))


# --- the files ------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def config_bomb() -> bytes:
    """A 3 MB .keras whose config.json inflates to 3 GB of spaces: the issue's file."""
    return raw_zip(deflated("config.json", 3 * GB), stored("model.weights.h5", b""))


def weights_claim() -> bytes:
    """A .keras whose model.weights.h5 declares 16 TB (it stores a few bytes)."""
    return raw_zip(stored("config.json", CONFIG),
                   Member("model.weights.h5", b"\x89HDF\r\n", zlib.crc32(b"\x89HDF\r\n"),
                          2 ** 44))


def weights_huge_dataset() -> bytes:
    """A .keras whose model.weights.h5 is a small HDF5 file claiming a 3.6 TB dataset."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", CONFIG)
        archive.writestr("model.weights.h5", h5_bytes(huge_dataset))
    return buffer.getvalue()


def outside_root(name: str = "../evil.txt") -> bytes:
    """A .keras with a member whose path leaves the archive's folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", CONFIG)
        archive.writestr("model.weights.h5", b"")
        archive.writestr(name, b"written outside the folder it is extracted to\n")
    return buffer.getvalue()


def bad_crc() -> bytes:
    """A .keras whose stored config.json has one byte changed after zipping."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", CONFIG)
        archive.writestr("model.weights.h5", b"")
    data = bytearray(buffer.getvalue())
    at = data.index(CONFIG)
    data[at + 2] ^= 0x20  # '"class_name"' -> '"Class_name"': still JSON, no longer what was zipped
    return bytes(data)


def config_size_lie(name: str = "config.json", crc_of_declared: bool = False) -> bytes:
    """A .keras whose member ``name`` declares 1 KB but inflates to 1 GB.

    The CRC-32 is that of the whole gigabyte, or (``crc_of_declared``) of the
    first kilobyte: then zipfile finds nothing wrong, yet its ``read()``
    inflates the gigabyte before cutting it to 1 KB."""
    data, crc = deflated_run(GB)
    if crc_of_declared:
        crc = zlib.crc32(b" " * 1024)
    members = {"config.json": stored("config.json", CONFIG),
               "model.weights.h5": stored("model.weights.h5", b"")}
    members[name] = Member(name, data, crc, 1024, zipfile.ZIP_DEFLATED)
    return raw_zip(*members.values())


def h5_huge_dataset() -> bytes:
    """A legacy .h5 model (a model_config attribute) whose one dataset claims 3.6 TB."""
    def build(h5):
        h5.attrs["model_config"] = CONFIG.decode()
        huge_dataset(h5)

    return h5_bytes(build)


def h5_string_claim() -> bytes:
    """A legacy .h5 whose model_config string declares 4 GB, in a 6 KB file.

    A variable-length string is stored as a descriptor (its length, 4 bytes,
    then the address of the global heap collection holding its bytes): the
    length is patched. HDF5 allocates that much before finding that the heap
    object is 777 bytes."""
    data = bytearray(h5_bytes(lambda h5: h5.attrs.create("model_config", "x" * 777)))
    at = data.index(struct.pack("<IQ", 777, data.index(b"GCOL")))
    data[at:at + 4] = struct.pack("<I", 2 ** 32 - 1)
    return bytes(data)
