"""An npz whose first array is written as its windows arrive is the file zipfile writes."""

from __future__ import annotations

import io
import zipfile
import zlib

import numpy as np
import pytest

from maskcli.core.packed_layout import layout_arrays
from maskcli.core.packing import Packer, PackOptions
from maskcli.core.padding import Ragged
from maskcli.formats.npz_stream import StreamedMember, crc32_combine
from maskcli.formats.packed_writers import _KeptWriter


@pytest.mark.parametrize("second", [0, 1, 3, 64, 1000, 70_001])
def test_crc32_combine_is_zlibs(second):
    rng = np.random.default_rng(second)
    first, rest = rng.bytes(37), rng.bytes(second)
    assert crc32_combine(zlib.crc32(first), zlib.crc32(rest), second) == zlib.crc32(first + rest)


class _Pipe(io.BytesIO):
    """A stream that cannot seek, as standard output: nothing is streamed."""

    def seekable(self):
        return False

    def tell(self):
        raise OSError("not seekable")


def _write(stream, dtype):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, 500)
    values = rng.integers(0, 1000, int(lengths.sum())).astype(dtype)
    packer = Packer(("ids",), PackOptions(64, window=120), (0,))
    writer = _KeptWriter(stream, "npz")
    for packed in packer.pack([(Ragged(values, lengths),)]):
        writer.write(layout_arrays(packed, "seqio", False, lazy=True))
    writer.close({"meta": 1})
    return writer


@pytest.mark.parametrize("dtype", ["int32", "float64"])
def test_streamed_npz_is_byte_for_byte_the_kept_one(tmp_path, dtype, monkeypatch):
    with open(tmp_path / "streamed.npz", "wb") as stream:
        assert _write(stream, dtype).streamed is not None
    monkeypatch.setattr(StreamedMember, "fits", staticmethod(lambda stream, first: False))
    with open(tmp_path / "kept.npz", "wb") as stream:
        assert _write(stream, dtype).streamed is None
    assert (tmp_path / "streamed.npz").read_bytes() == (tmp_path / "kept.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "streamed.npz") as archive:
        assert archive.testzip() is None  # every CRC checks out, the combined one too
        assert [info.filename for info in archive.infolist()] == [
            "ids.npy", "ids_segment_ids.npy", "ids_positions.npy", "meta.npy"]
    with np.load(tmp_path / "streamed.npz") as packed:
        assert packed["ids"].shape == packed["ids_positions"].shape
        assert packed["ids"].dtype == dtype and packed["ids"].shape[1] == 64


def test_standard_output_is_not_streamed_and_holds_the_same_arrays(tmp_path):
    pipe = _Pipe()
    assert _write(pipe, "int32").streamed is None  # zipfile writes data descriptors instead
    with open(tmp_path / "streamed.npz", "wb") as stream:
        _write(stream, "int32")
    with np.load(io.BytesIO(pipe.getvalue())) as kept, np.load(tmp_path / "streamed.npz") as ours:
        assert kept.files == ours.files
        for name in kept.files:
            np.testing.assert_array_equal(kept[name], ours[name])


def _write_fields(stream, cu_seqlens):
    """Two fields (tokens kept as arrays, not only built from runs), perhaps cu_seqlens."""
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, 30, 300)
    ids = rng.integers(0, 500, int(lengths.sum())).astype("int64")
    labels = rng.integers(-1, 9, int(lengths.sum())).astype("int16")
    packer = Packer(("ids", "labels"), PackOptions(48, window=70), (0, -100))
    writer = _KeptWriter(stream, "npz")
    for packed in packer.pack([(Ragged(ids, lengths), Ragged(labels, lengths))]):
        writer.write(layout_arrays(packed, "seqio", cu_seqlens, lazy=True))
    writer.close({"meta": 2})


@pytest.mark.parametrize("cu_seqlens", [False, True])
def test_members_written_at_their_places_are_the_bytes_zipfile_writes(tmp_path, monkeypatch,
                                                                      cu_seqlens):
    import maskcli.formats.npz_stream as npz_stream

    written = []
    real = npz_stream.write_placed
    monkeypatch.setattr(npz_stream, "write_placed",
                        lambda *args, **kw: written.append(1) or real(*args, **kw))
    with open(tmp_path / "placed.npz", "wb") as stream:
        _write_fields(stream, cu_seqlens)
    assert written  # the placed path ran
    monkeypatch.setattr(npz_stream, "placeable", lambda stream: False)
    with open(tmp_path / "zipfile.npz", "wb") as stream:
        _write_fields(stream, cu_seqlens)
    assert (tmp_path / "placed.npz").read_bytes() == (tmp_path / "zipfile.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "placed.npz") as archive:
        assert archive.testzip() is None
        names = [info.filename for info in archive.infolist()]
    assert names[:6] == ["ids.npy", "ids_segment_ids.npy", "ids_positions.npy", "labels.npy",
                         "labels_segment_ids.npy", "labels_positions.npy"]
    assert names[-1] == "meta.npy" and ("cu_seqlens.npy" in names) == cu_seqlens
    with np.load(tmp_path / "placed.npz") as packed:
        assert packed["labels"].dtype == np.int16 and packed["ids"].dtype == np.int64
        real_steps = packed["ids_segment_ids"] > 0
        assert (packed["labels"][~real_steps] == -100).all()


def test_a_file_opened_to_append_is_written_in_order(tmp_path):
    """With ``>>`` every write goes to the end: nothing is written at an offset."""
    from maskcli.formats.npz_stream import placeable

    with open(tmp_path / "fresh.npz", "wb") as stream:
        _write(stream, "int32")
    (tmp_path / "appended.npz").write_bytes(b"")
    with open(tmp_path / "appended.npz", "ab") as stream:
        assert not placeable(stream)
        assert _write(stream, "int32").streamed is None
    with np.load(tmp_path / "appended.npz") as appended, \
            np.load(tmp_path / "fresh.npz") as fresh:
        assert appended.files == fresh.files
        for name in fresh.files:
            np.testing.assert_array_equal(appended[name], fresh[name])


@pytest.mark.parametrize("command", [["pad"], ["pack", "--length", "4"]])
def test_npz_on_standard_output_appended_to_a_file_is_whole(tmp_path, command):
    """``maskcli pad --to npz >> file``: zipfile must not go back to headers
    that an appending file puts at its end instead (the npz was unreadable)."""
    import subprocess
    import sys

    path = tmp_path / "out.npz"
    path.write_bytes(b"")
    with open(path, "ab") as stdout:
        subprocess.run([sys.executable, "-m", "maskcli", *command, "--to", "npz", "-q"],
                       input=b"[1, 2]\n[3]\n", stdout=stdout, check=True)
    with np.load(path) as arrays, zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert arrays["inputs"].tolist() == ([[1, 2], [0, 3]] if command == ["pad"]
                                             else [[1, 2, 3, 0]])
