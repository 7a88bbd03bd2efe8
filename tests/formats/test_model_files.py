"""Model files from other people, bounded before Keras reads them (issue 15).

Each hostile file is made by ``tests/formats/crafted_models.py``, none checked
in. The first tests call ``check_model_file`` directly; the subprocess tests run
``maskcli`` on the issue's files and measure the time and peak memory of the
refusal, and that it happens before TensorFlow is even imported. Real models
saved by Keras, which must pass, are in ``tests/keras/test_saved_models.py``.
"""

from __future__ import annotations

import bz2
import io
import json
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from maskcli.core.errors import ModelError
from maskcli.formats import model_files, model_h5
from maskcli.formats.model_files import check_model_file
from tests.formats import crafted_models as crafted

ROOT = Path(__file__).resolve().parents[2]
MB, GB = crafted.MB, crafted.GB


def write(folder: Path, name: str, payload: bytes) -> Path:
    path = folder / name
    path.write_bytes(payload)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ModelError) as caught:
        check_model_file(str(path))
    return str(caught.value)


def small_memory(monkeypatch, nbytes: int) -> None:
    """Pretend this machine has ``nbytes`` of memory."""
    monkeypatch.setattr("maskcli.core.limits.memory_limit", lambda: nbytes)


def keras_zip(*members: tuple[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("config.json", crafted.CONFIG)
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def npy_header(shape: tuple, dtype: str = "<f4") -> bytes:
    """An npy file of ``shape`` with its header only: no data follows."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue()


# --- the crafted files are what they say ---------------------------------------------

def test_a_deflated_run_really_inflates_to_its_size():
    archive = crafted.raw_zip(crafted.deflated("config.json", 8 * MB),
                              crafted.stored("model.weights.h5", b"x"))
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        assert zipped.testzip() is None  # every CRC-32 matches
        assert zipped.read("config.json") == b" " * (8 * MB)
        assert zipped.getinfo("config.json").compress_size < 16 * 1024


def test_the_issue_file_is_small_and_declares_3_gb():
    archive = crafted.config_bomb()
    assert len(archive) < 4 * MB
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        assert zipped.getinfo("config.json").file_size == 3 * GB


def test_zipfile_inflates_no_more_than_the_declared_size():
    """zipfile, which Keras reads with, stops at the declared 1 KB of a stream
    holding 1 GB: with the CRC-32 of that kilobyte, it reads just that; with the
    CRC-32 of the gigabyte (``config_size_lie``), it finds the CRC wrong."""
    stream, _ = crafted.deflated_run(GB)
    honest_crc = crafted.raw_zip(crafted.Member("config.json", stream, zlib.crc32(b" " * 1024),
                                                1024, zipfile.ZIP_DEFLATED))
    with zipfile.ZipFile(io.BytesIO(honest_crc)) as zipped:
        assert zipped.read("config.json") == b" " * 1024
    with zipfile.ZipFile(io.BytesIO(crafted.config_size_lie())) as zipped, \
            pytest.raises(zipfile.BadZipFile, match="Bad CRC-32"):
        zipped.read("config.json")


# --- refusals, in-process -------------------------------------------------------------

REFUSED = [
    ("config-3-gb", "bomb.keras", crafted.config_bomb,
     "member config.json unpacks to 3.0 GB; a model's config takes kilobytes and maskcli "
     "reads at most 4.0 MB of it"),
    ("metadata-8-mb", "meta.keras", lambda: crafted.raw_zip(
        crafted.stored("config.json", crafted.CONFIG),
        crafted.deflated("metadata.json", 8 * MB)), "member metadata.json unpacks to 8.0 MB"),
    ("config-size-lie", "lie.keras", crafted.config_size_lie,
     "member config.json inflates to more than the 1.0 KB it declares"),
    ("config-size-lie-crc-of-declared", "lie.keras",
     lambda: crafted.config_size_lie(crc_of_declared=True),
     "member config.json inflates to more than the 1.0 KB it declares"),
    ("weights-size-lie", "lie.keras", lambda: crafted.config_size_lie("model.weights.h5"),
     "member model.weights.h5 inflates to more than the 1.0 KB it declares"),
    ("config-crc-wrong", "crc.keras", crafted.bad_crc,
     "member config.json is damaged (its CRC-32 does not match"),
    ("stored-size-mismatch", "stored.keras", lambda: crafted.raw_zip(
        crafted.stored("config.json", crafted.CONFIG),
        crafted.Member("model.weights.h5", b"abcdef", 0, 3)),
     "member model.weights.h5 is damaged (it stores 6 bytes and declares 3)"),
    ("deflated-short", "short.keras", lambda: crafted.raw_zip(
        crafted.stored("config.json", crafted.CONFIG),
        crafted.Member("assets/a.txt", zlib.compress(b"abc")[2:-4], zlib.crc32(b"abc"), 5,
                       zipfile.ZIP_DEFLATED)),
     "member assets/a.txt is damaged (it inflates to 3 bytes and declares 5)"),
    ("deflate-garbage", "garbage.keras", lambda: crafted.raw_zip(
        crafted.stored("config.json", crafted.CONFIG),
        crafted.Member("assets/a.txt", b"\xff" * 20, 0, 5, zipfile.ZIP_DEFLATED)),
     "member assets/a.txt is damaged (zlib: "),
    ("encrypted", "locked.keras", lambda: crafted.raw_zip(
        crafted.Member("config.json", crafted.CONFIG, zlib.crc32(crafted.CONFIG),
                       len(crafted.CONFIG), flags=0x1)),
     "member config.json is encrypted, which Keras cannot read"),
    ("bzip2", "bz.keras", lambda: crafted.raw_zip(
        crafted.stored("config.json", crafted.CONFIG),
        crafted.Member("model.weights.h5", bz2.compress(b"x"), zlib.crc32(b"x"), 1,
                       zipfile.ZIP_BZIP2)),
     "member model.weights.h5 is compressed with bzip2, which Keras never writes"),
    ("cut-short", "cut.keras", lambda: crafted.raw_zip(
        crafted.stored("config.json", crafted.CONFIG),
        crafted.Member("model.weights.h5", b"abc", 0, 10 ** 6, compress_size=10 ** 6)),
     "not a loadable Keras model, the zip archive is cut short"),
    ("weights-claim-16-tb", "claim.keras", crafted.weights_claim,
     "member model.weights.h5 unpacks to 16.0 TB, more than the"),
    ("weights-h5-dataset-3-tb", "wh.keras", crafted.weights_huge_dataset,
     "member model.weights.h5: dataset /w (1000000 x 1000000 float32) claims 3.6 TB, "
     "more than the"),
    ("weights-npz-array-3-tb", "npz.keras", lambda: keras_zip(
        ("model.weights.npz", crafted.raw_zip(crafted.stored("w.npy", npy_header((10 ** 6,
                                                                                   10 ** 6)))))),
     "member model.weights.npz: array w.npy (1000000 x 1000000 float32) claims 3.6 TB"),
    ("weights-npz-not-a-zip", "npz.keras", lambda: keras_zip(("model.weights.npz", b"nope")),
     "member model.weights.npz is not a readable npz file (BadZipFile"),
    ("weights-h5-not-hdf5", "h5.keras", lambda: keras_zip(("model.weights.h5", b"nope")),
     "member model.weights.h5 is not a readable HDF5 file"),
    ("h5-dataset-3-tb", "huge.h5", crafted.h5_huge_dataset,
     "dataset /w (1000000 x 1000000 float32) claims 3.6 TB, more than the"),
    ("h5-model-config-5-mb", "config.h5", lambda: crafted.h5_bytes(
        lambda h5: h5.attrs.create("model_config", " " * (5 * MB))),
     "attribute model_config of / holds 5.0 MB; a model's config takes kilobytes"),
    ("h5-fixed-size-config-5-mb", "fixed.h5", lambda: crafted.h5_bytes(
        lambda h5: h5.attrs.create("model_config", np.bytes_(b" " * (5 * MB))), "latest"),
     "attribute model_config of / holds 5.0 MB"),
    ("h5-compressed-dataset", "gzip.h5", lambda: crafted.h5_bytes(
        lambda h5: h5.create_dataset("g/w", data=np.zeros(100), compression="gzip")),
     "dataset /g/w is compressed (deflate), which Keras never writes"),
    ("h5-variable-length-dataset", "vlen.h5", lambda: crafted.h5_bytes(
        lambda h5: h5.create_dataset("names", data=["a", "b"])),
     "dataset /names holds variable-length values"),
    ("h5-reference-attribute", "attr.h5", lambda: crafted.h5_bytes(
        lambda h5: h5.attrs.create("layer_names", h5.ref, dtype=h5py.ref_dtype)),
     "attribute layer_names of / holds objects other than strings"),
    ("h5-string-declares-4-gb", "string.h5", crafted.h5_string_claim,
     "attribute model_config of / cannot be read within 256.0 MB (OSError: "),
    ("h5-not-hdf5", "text.h5", lambda: b"not HDF5\n",
     "not a loadable Keras model (not an HDF5 file)"),
]


@pytest.mark.parametrize("name, payload, expected", [row[1:] for row in REFUSED],
                         ids=[row[0] for row in REFUSED])
def test_refused(tmp_path, name, payload, expected):
    path = write(tmp_path, name, payload())
    message = refusal(path)
    assert message.startswith(f"--model {path}: ")
    assert expected in message
    assert message.count("\n") == 0


@pytest.mark.parametrize("member", ["../evil.txt", "assets/../../evil.txt", "/etc/evil",
                                    "C:/evil.txt", "..\\evil.txt"])
def test_a_member_outside_the_root_is_refused(tmp_path, member):
    path = write(tmp_path, "slip.keras", crafted.outside_root(member))
    assert f"member {member} lies outside the archive's root" in refusal(path)


def test_a_member_named_with_dots_inside_the_root_is_accepted(tmp_path):
    path = write(tmp_path, "dots.keras", keras_zip(("assets/..vocab/a..b.txt", b"the\n"),
                                                   ("model.weights.h5", crafted.h5_bytes(
                                                       lambda h5: None))))
    assert check_model_file(str(path)) is None


def test_a_file_that_passed_is_read_once_and_again_once_changed(tmp_path, monkeypatch):
    """audit-loss checks a model before TensorFlow loads and load_model checks
    it again: an unchanged file is read once; a file rewritten since is read anew."""
    path = write(tmp_path, "model.keras", keras_zip(("model.weights.h5", crafted.h5_bytes(
        lambda h5: None))))
    reads = []
    check = model_files._check_keras_archive
    monkeypatch.setattr(model_files, "_check_keras_archive",
                        lambda *args: reads.append(args) or check(*args))
    check_model_file(str(path))
    check_model_file(str(path))
    assert len(reads) == 1
    path.write_bytes(keras_zip(("../evil.txt", b"x")))
    assert "lies outside the archive's root" in refusal(path)
    assert len(reads) == 2


def test_overlapping_members_are_refused(tmp_path):
    """Two directory entries on the same data: the trick of zip bombs that
    inflate one stream many times over."""
    data = bytearray(crafted.raw_zip(crafted.stored("config.json", crafted.CONFIG),
                                     crafted.stored("copy.json", crafted.CONFIG)))
    entry = data.rindex(b"PK\x01\x02")
    data[entry + 42:entry + 46] = (0).to_bytes(4, "little")  # copy.json's local header: offset 0
    path = write(tmp_path, "overlap.keras", bytes(data))
    assert "members config.json and copy.json overlap" in refusal(path)


def test_a_zip_without_config_is_not_a_model(tmp_path):
    path = write(tmp_path, "notes.keras", crafted.raw_zip(crafted.stored("notes.txt", b"hi")))
    assert "not a loadable Keras model (no config.json in the archive)" in refusal(path)


def test_members_too_big_together_are_refused_naming_the_largest(tmp_path, monkeypatch):
    small_memory(monkeypatch, 10 * MB)
    path = write(tmp_path, "two.keras", crafted.raw_zip(
        crafted.stored("config.json", crafted.CONFIG),
        crafted.Member("model.weights.h5", b"", 0, 6 * MB),
        crafted.Member("assets/vocab.txt", b"", 0, 7 * MB)))
    assert ("its weights and assets together unpack to 13.0 MB, more than the 10.0 MB of memory "
            "here (the largest: member assets/vocab.txt, 7.0 MB)") in refusal(path)


def test_datasets_too_big_together_are_refused_naming_the_largest(tmp_path, monkeypatch):
    small_memory(monkeypatch, 10 * MB)

    def build(h5):
        h5.create_dataset("a", shape=(MB,), dtype="f4", chunks=(1024,))  # 4 MB
        h5.create_dataset("b", shape=(MB, 2), dtype="f4", chunks=(1024, 2))  # 8 MB

    path = write(tmp_path, "two.h5", crafted.h5_bytes(build))
    assert ("its datasets together claim 12.0 MB, more than the 10.0 MB of memory here "
            "(the largest: dataset /b (1048576 x 2 float32), 8.0 MB)") in refusal(path)


def test_what_fits_in_memory_passes(tmp_path, monkeypatch):
    small_memory(monkeypatch, 13 * MB)
    path = write(tmp_path, "two.keras", crafted.raw_zip(
        crafted.stored("config.json", crafted.CONFIG),
        crafted.Member("model.weights.h5", b"", 0, 6 * MB),
        crafted.Member("assets/vocab.txt", b"", 0, 7 * MB)))
    with pytest.raises(ModelError, match=r"member model.weights.h5 is damaged \(it stores 0"):
        check_model_file(str(path))  # past the memory check, to the streams' own


def test_a_config_at_the_limit_passes(tmp_path):
    path = write(tmp_path, "limit.keras", keras_zip(
        ("metadata.json", b" " * model_files.CONFIG_LIMIT),
        ("model.weights.h5", crafted.h5_bytes(lambda h5: None))))
    assert check_model_file(str(path)) is None


def test_an_external_link_is_refused(tmp_path):
    def build(h5):
        h5["w"] = h5py.ExternalLink("/etc/other.h5", "/w")

    path = write(tmp_path, "link.h5", crafted.h5_bytes(build))
    assert "/w is a link into another file (/etc/other.h5)" in refusal(path)


def test_external_storage_is_refused(tmp_path):
    path = write(tmp_path, "external.h5", crafted.h5_bytes(
        lambda h5: h5.create_dataset("w", shape=(4,), dtype="u1",
                                     external=[("/etc/hostname", 0, 4)])))
    assert "dataset /w keeps its data in other files (external storage)" in refusal(path)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="the cap is Linux's")
def test_the_address_space_cap_is_lifted_afterwards(tmp_path):
    import resource

    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(ModelError):
        check_model_file(str(write(tmp_path, "string.h5", crafted.h5_string_claim())))
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    with model_h5._address_space_capped(64 * MB):
        assert resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY
        with pytest.raises(MemoryError):
            bytearray(256 * MB)
    assert resource.getrlimit(resource.RLIMIT_AS) == before


def test_too_many_entries_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(model_files, "MAX_ENTRIES", 3)
    monkeypatch.setattr(model_h5, "MAX_ENTRIES", 3)
    groups = write(tmp_path, "groups.h5", crafted.h5_bytes(
        lambda h5: [h5.create_group(f"g{i}") for i in range(4)]))
    assert "holds more than 3 HDF5 objects and attributes" in refusal(groups)
    members = write(tmp_path, "members.keras", keras_zip(*[(f"m{i}", b"") for i in range(3)]))
    assert "the archive holds 4 members, more than the 3 maskcli reads" in refusal(members)


def test_a_damaged_zip_directory_is_refused(tmp_path):
    data = bytearray(keras_zip(("model.weights.h5", b"")))
    data[data.rindex(b"PK\x01\x02") + 4:] = b"\xff" * (len(data) - data.rindex(b"PK\x01\x02")
                                                      - 4)  # the last directory entry
    path = write(tmp_path, "damaged.keras", bytes(data))
    message = refusal(path)
    assert "not a loadable Keras model" in message and "model.save('model.keras')" in message


# --- the issue's files, through the command line: time and memory ------------------------

# Peak memory is the kernel's VmHWM of the process: ru_maxrss would carry over the
# pytest process's own peak, which Linux keeps across the fork and exec.
RUNNER = """
import json, re, sys, time
start = time.perf_counter()
from maskcli.cli import main
try:
    main(sys.argv[1:], prog_name="maskcli")
    code = 0
except SystemExit as exc:
    code = exc.code
with open("/proc/self/status") as status:
    peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read())[1])
print(json.dumps({"exit": code, "seconds": time.perf_counter() - start,
                  "peak_rss_mb": peak_kb / 1024, "tensorflow": "tensorflow" in sys.modules}))
"""

FILES = {
    "bomb.keras": (crafted.config_bomb, "member config.json unpacks to 3.0 GB"),
    "lie.keras": (lambda: crafted.config_size_lie(crc_of_declared=True),
                  "member config.json inflates to more than the 1.0 KB it declares"),
    "crc.keras": (crafted.bad_crc, "member config.json is damaged (its CRC-32 does not match"),
    "claim.keras": (crafted.weights_claim, "member model.weights.h5 unpacks to 16.0 TB"),
    "wh.keras": (crafted.weights_huge_dataset, "dataset /w (1000000 x 1000000 float32) claims"),
    "slip.keras": (crafted.outside_root, "member ../evil.txt lies outside the archive's root"),
    "huge.h5": (crafted.h5_huge_dataset, "dataset /w (1000000 x 1000000 float32) claims 3.6 TB"),
    "string.h5": (crafted.h5_string_claim, "attribute model_config of / cannot be read within"),
}


def run_maskcli(*args) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, "-c", RUNNER, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    *output, report = proc.stdout.splitlines()
    return proc, json.loads(report)


@pytest.mark.parametrize("command", ["audit-loss", "trace-mask"])
@pytest.mark.parametrize("name", FILES)
def test_refused_fast_in_little_memory_before_tensorflow(tmp_path, name, command):
    """Before: the 3 GB config took 29 s and 7 GB. Now each file is refused
    without TensorFlow, in well under the memory its claim would need."""
    payload, expected = FILES[name]
    path = write(tmp_path, name, payload())
    data = tmp_path / "ids.npy"
    np.save(data, np.array([[5, 3, 0], [7, 0, 0]]))
    args = (command, data, "--model", path) if command == "audit-loss" \
        else (command, "--model", path)
    proc, report = run_maskcli(*args, "--format", "json")

    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert report["exit"] == 2, proc.stderr
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"--model {path}: " in errors[0] and expected in errors[0]
    assert report["tensorflow"] is False  # refused before TensorFlow is imported
    assert report["peak_rss_mb"] < 300, report
    assert report["seconds"] < 5, report
