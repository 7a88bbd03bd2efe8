"""Writing an npz's first array as its windows arrive, before the row count is known.

An npz keeps every window of packed rows until the end, because each
array's npy header holds its row count. For the first array that wait is
not needed: its zip and npy headers have the same length whatever the
count (checked), so they are written with a placeholder first and
rewritten in place at the end, and the windows' data goes to the file while
later windows are still read and packed, on the core that reading leaves
free. zipfile cannot rewrite a member's header, so this member is written
here, byte for byte as ``ZipFile.open(name, "w", force_zip64=True)`` writes
it, and handed to the ZipFile that writes the others: the file is the same.

Its CRC covers the npy header, known only at the end, then the data:
:func:`crc32_combine` joins the two, as zlib's ``crc32_combine`` does.

The arrays kept until the end (segment ids and positions, built a block at
a time) have known sizes once the row count is: :func:`write_placed` gives
each its place in the file, builds them and computes their CRCs at once,
one thread each (both run without the GIL), and writes them from one more
thread, instead of one after the other through zipfile. The bytes are the
same.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable

import numpy as np

_POLY = 0xEDB88320  # CRC-32, reflected


def _multiply(a: int, b: int) -> int:
    """a times b modulo the CRC polynomial (zlib's multmodp)."""
    m, product = 1 << 31, 0
    while m:
        if a & m:
            product ^= b
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
        m >>= 1
    return product


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from ``crc1`` of A, ``crc2`` of B and B's length."""
    shift, power = 1 << 31, 1 << 23  # x**0; x**8, one byte's shift
    while length2:
        if length2 & 1:
            shift = _multiply(power, shift)
        power = _multiply(power, power)
        length2 >>= 1
    return _multiply(shift, crc1) ^ crc2


def npy_header(dtype: np.dtype, shape: tuple) -> bytes:
    """The npy header ``np.save`` writes for an array of ``dtype`` and ``shape``."""
    import numpy.lib.format as npy_format

    out = io.BytesIO()
    npy_format.write_array_header_1_0(out, {"descr": npy_format.dtype_to_descr(dtype),
                                            "fortran_order": False, "shape": shape})
    return out.getvalue()


def fixed_header_length(dtype: np.dtype, step_shape: tuple) -> int | None:
    """The length of the npy header of numbers of ``dtype`` and rows of
    ``step_shape`` when it is the same for any row count (it then can be
    written first and rewritten at the end); None when it is not."""
    lengths = {len(npy_header(np.dtype(dtype), (rows,) + tuple(step_shape)))
               for rows in (0, 10**18)}
    return lengths.pop() if len(lengths) == 1 and np.dtype(dtype).kind in "iuf" else None


class StreamedMember:
    """The first member of an npz, written to a seekable ``stream`` part by part."""

    def __init__(self, stream, name: str, first: np.ndarray):
        self.stream, self.dtype, self.step_shape = stream, first.dtype, first.shape[1:]
        self.rows, self.crc, self.size = 0, 0, 0
        self.header = len(npy_header(self.dtype, (0,) + self.step_shape))
        # as ZipFile.open(name, "w") makes it; FileHeader is called twice, as there
        info = self.info = _member_info(name, stream.tell())
        stream.write(info.FileHeader(True))
        stream.write(b" " * self.header)  # the npy header's place

    @staticmethod
    def fits(stream, first: np.ndarray) -> bool:
        """Whether the headers' length is the same for any row count, and the
        stream can go back to rewrite them."""
        try:
            if stream.tell() != 0 or not stream.seekable() or _appends(stream):
                return False
        except (OSError, AttributeError):
            return False
        return fixed_header_length(first.dtype, first.shape[1:]) is not None \
            and first.flags.c_contiguous

    def write(self, part: np.ndarray) -> None:
        data = np.ascontiguousarray(part, dtype=self.dtype).reshape(-1).view(np.uint8).data
        self.crc = zlib.crc32(data, self.crc)
        self.size += data.nbytes
        self.rows += len(part)
        self.stream.write(data)

    def finish(self) -> zipfile.ZipInfo:
        """Rewrite both headers with the row count, the size and the CRC;
        the stream is left at the member's end, where the next one starts."""
        header = npy_header(self.dtype, (self.rows,) + self.step_shape)
        info = self.info
        info.CRC = crc32_combine(zlib.crc32(header), self.crc, self.size)
        info.file_size = info.compress_size = len(header) + self.size
        end = self.stream.tell()
        self.stream.seek(info.header_offset)
        self.stream.write(info.FileHeader(True))
        self.stream.write(header)
        self.stream.seek(end)
        return info


def _member_info(name: str, offset: int) -> zipfile.ZipInfo:
    """A member's ZipInfo as ``ZipFile.open(name, "w")`` makes it, at ``offset``."""
    info = zipfile.ZipInfo(f"{name}.npy")
    info.compress_type, info.flag_bits, info.external_attr = zipfile.ZIP_STORED, 0, 0o600 << 16
    info.compress_size = info.CRC = 0
    info.header_offset = offset
    return info


def placeable(stream) -> bool:
    """Whether ``stream`` is a file that members can be written into at offsets."""
    try:
        stream.fileno()
        return stream.seekable() and not _appends(stream)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return False


def _appends(stream) -> bool:
    """Whether ``stream`` is a file opened to append (``>>``): every write
    then goes to the end, wherever it was meant to go."""
    import fcntl

    try:
        fd = stream.fileno()
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return False  # not a file: writes go where they are told
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)


def write_placed(stream, members: list[tuple[str, np.dtype, tuple, int, Callable[[], Iterable]]],
                 workers: int = 2) -> list[zipfile.ZipInfo]:
    """Write npz members after ``stream``'s position, each at its own offset,
    up to ``workers`` built at once and one writing thread; leave the stream
    at their end.

    Each member is ``(name, dtype, shape, nbytes, blocks)``: ``blocks()``
    yields its data, ``nbytes`` in all, as buffers. Returns their ZipInfos,
    in order, for the central directory (:func:`open_after`).
    """
    from concurrent.futures import ThreadPoolExecutor

    stream.flush()
    fd, offset, jobs = stream.fileno(), stream.tell(), []
    for name, dtype, shape, nbytes, blocks in members:
        info = _member_info(name, offset)
        header = npy_header(dtype, shape)
        info.file_size = info.compress_size = len(header) + nbytes
        start = offset + len(info.FileHeader(True))  # its length is the same whatever the CRC
        jobs.append((info, header, start, nbytes, blocks))
        offset = start + info.file_size
    # each member is built and its CRC computed in a thread of its own, but one thread writes
    # them all: writes into one file take its inode's lock in turn, and a second writer spun
    # on that lock, a core lost for as long as the writes took
    with ThreadPoolExecutor(1, thread_name_prefix="maskcli-write") as writer, \
            ThreadPoolExecutor(max(1, min(workers, len(jobs))),
                               thread_name_prefix="maskcli-member") as pool:
        for done in [pool.submit(_write_member, writer, fd, *job) for job in jobs]:
            done.result()  # a failed write raises here
    stream.seek(offset)
    return [job[0] for job in jobs]


def _write_member(writer, fd: int, info: zipfile.ZipInfo, header: bytes, start: int,
                  nbytes: int, blocks: Callable[[], Iterable]) -> None:
    crc, at = zlib.crc32(header), start
    writes = [writer.submit(_write_at, fd, header, at)]
    at += len(header)
    for block in blocks():
        crc = zlib.crc32(block, crc)
        writes.append(writer.submit(_write_at, fd, block, at))  # holds the block till written
        at += memoryview(block).nbytes
        while len(writes) > 2:  # at most two blocks of this member wait in memory
            writes.pop(0).result()
    for write in writes:
        write.result()
    if at - start - len(header) != nbytes:
        raise RuntimeError(f"member {info.filename}: {at - start - len(header)} bytes written "
                           f"for {nbytes}")
    info.CRC = crc
    _write_at(fd, info.FileHeader(True), info.header_offset)


def _write_at(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def in_order(stream):
    """``stream``, or where it appends (``>> file``) a view of it that cannot
    seek: zipfile then writes every member in order, with data descriptors,
    as on a pipe, rather than going back to headers that the writes would
    append at the end instead."""
    return _AppendOnly(stream) if _appends(stream) else stream


class _AppendOnly:
    def __init__(self, stream):
        self.stream = stream

    def seek(self, *args):
        raise OSError("a file opened to append cannot seek")

    def seekable(self) -> bool:
        return False

    def __getattr__(self, name):
        return getattr(self.stream, name)


def open_after(stream, members: list[zipfile.ZipInfo]) -> zipfile.ZipFile:
    """A ZipFile that writes on from ``stream``'s position, whose central
    directory lists ``members`` (written before it) first."""
    archive = zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
    for info in members:
        archive.filelist.append(info)
        archive.NameToInfo[info.filename] = info
    return archive
