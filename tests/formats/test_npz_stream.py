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
