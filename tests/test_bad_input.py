"""The catalogue of bad inputs: every command, every reader.

Each row of ``CASES`` is one bad (or odd but accepted) input. One check holds
for every row (:func:`test_bad_input`):

- exit 2, with exactly one ``Error:`` line on stderr that names the place (a
  file, a line, a step, an option) and the fix, and no traceback;
- no output file and no temporary ``.part`` file left behind: the folder
  holds exactly the files the row wrote;
- every input file unchanged, byte for byte (sha256 before and after).

Rows with ``exit_code=0`` are odd inputs that are accepted (a UTF-8 BOM,
CRLF line ends, a Lambda model with ``--unsafe``): they must succeed, write
what they are asked to and still leave their inputs unchanged.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import invoke
from tests.formats import crafted_models as crafted

Payload = bytes | Callable[[], bytes]


# --- payloads ----------------------------------------------------------------

def npy(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def meta(**fields) -> np.ndarray:
    return np.array(json.dumps({"padding": "post", "truncating": "post", "value": 0,
                                "maxlen": 3, "dtype": "int64", **fields}))


IDS = np.array([[5, 3, 0], [7, 0, 0]])  # two post-padded sequences of token ids
RAGGED_OBJECTS = np.array([[1, 2], [3]], dtype=object)  # only a pickle can hold it
NOT_A_ZIP = b"this is not a zip archive\n"


def zip_without_config() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "a zip, but no Keras model inside")
    return buffer.getvalue()


# --- the catalogue -------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One bad input. In ``args``, ``place`` and ``fix``, ``{d}`` is the row's
    folder; ``{model:NAME}`` in ``args`` is a saved model copied into it."""

    id: str
    args: tuple[str, ...]
    files: dict[str, Payload] = field(default_factory=dict)
    place: str = ""  # in the Error: line: where the problem is
    fix: str = ""  # in the Error: line: what to do about it
    exit_code: int = 2
    stdin: bytes | None = None
    prepare: Callable[[Path], None] | None = None  # makes what bytes cannot (sockets, modes)
    outputs: dict[str, object] = field(default_factory=dict)  # accepted rows: file -> array
    # (an npz's 'inputs'), or file -> {field: array} for an npz of several fields
    stderr: str = ""  # accepted rows: a message expected on stderr


def inspect(name: str, *options: str) -> tuple[str, ...]:
    """inspect-mask on ``{d}/name``, asked to write a mask file too."""
    return ("inspect-mask", f"{{d}}/{name}", "--format", "json", "-o", "{d}/mask.npy", *options)


def unreadable(folder: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode, so chmod 000 cannot make it "
                    "unreadable here; the socket and read-error rows cover files that "
                    "cannot be read even by root")
    (folder / "locked.jsonl").chmod(0)


def a_socket(folder: Path) -> None:
    """A Unix socket: it exists, yet open() fails for everyone, root included."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(folder / "socket.jsonl"))


def failing_reads(folder: Path) -> None:
    """A file that opens but whose read fails with EIO: /proc/self/mem at offset 0."""
    if not Path("/proc/self/mem").exists():
        pytest.skip("needs Linux's /proc/self/mem")
    (folder / "failing.npy").symlink_to("/proc/self/mem")


def directory(folder: Path) -> None:
    (folder / "folder.npz").mkdir()
    (folder / "folder.keras").mkdir()


READERS = [
    # JSON lines
    Case("jsonl-malformed-line-3", inspect("bad.jsonl"), {"bad.jsonl": b"[1, 2]\n[3, 4]\n[5, 6\n"},
         "{d}/bad.jsonl, line 3", "fix the line; each line must be one JSON array"),
    # jsonl records with sequences are padded in (#25); one without any is refused
    Case("jsonl-not-an-array", inspect("obj.jsonl"), {"obj.jsonl": b'{"ids": 5}\n'},
         "{d}/obj.jsonl, line 1 (sequence 0): an object, not an array (keys: 'ids')",
         "name the field holding the sequence with --field"),
    Case("jsonl-a-string-not-an-array", inspect("text.jsonl"), {"text.jsonl": b'"1 2 0"\n'},
         "{d}/text.jsonl, line 1: expected a JSON array, got a string",
         "write one padded array per line"),
    Case("jsonl-ragged-rows", inspect("ragged.jsonl"), {"ragged.jsonl": b"[1, 2, 3]\n[4, 5]\n"},
         "{d}/ragged.jsonl, line 2", "pad it first with 'maskcli pad'"),
    Case("jsonl-ragged-feature-vectors", inspect("feat.jsonl"),
         {"feat.jsonl": b"[[1, 2], [3, 4]]\n[[1, 2], [3]]\n"},
         "{d}/feat.jsonl, line 2", "give every step the same number of features"),
    Case("jsonl-mixed-element-types", inspect("mixed.jsonl"), {"mixed.jsonl": b'[1, "a", 3]\n'},
         "{d}/mixed.jsonl, line 1 (step 1)", "give numbers only"),
    Case("jsonl-null", inspect("null.jsonl"), {"null.jsonl": b"[1, 2]\n[3, null]\n"},
         "{d}/null.jsonl, line 2 (step 1)", "give numbers only"),
    Case("jsonl-integer-overflow", inspect("big.jsonl"),
         {"big.jsonl": b"[1, 99999999999999999999999]\n"},
         "{d}/big.jsonl, line 1 (step 1)", "give smaller ids, or write the value as a float"),
    Case("jsonl-nested-too-deep", inspect("deep.jsonl"), {"deep.jsonl": b"[" * 100_000 + b"\n"},
         "{d}/deep.jsonl, line 1", "each line must be one array of numbers"),
    Case("non-utf8-bytes", inspect("latin1.jsonl"), {"latin1.jsonl": b"[1, 2]\n[\xe9, 0]\n"},
         "{d}/latin1.jsonl, line 2", "convert it to UTF-8"),
    Case("empty-file", inspect("empty.jsonl"), {"empty.jsonl": b""},
         "{d}/empty.jsonl is empty", "give padded data"),
    Case("blank-lines-only", inspect("blank.jsonl"), {"blank.jsonl": b"\n  \n\r\n"},
         "{d}/blank.jsonl holds no rows", "one sequence per line"),
    Case("utf8-bom-accepted", inspect("bom.jsonl"), {"bom.jsonl": b"\xef\xbb\xbf[5, 3, 0]\n[7, 0, 0]\n"},
         exit_code=0, outputs={"mask.npy": IDS != 0}),
    Case("crlf-accepted", inspect("crlf.jsonl"), {"crlf.jsonl": b"[5, 3, 0]\r\n[7, 0, 0]\r\n"},
         exit_code=0, outputs={"mask.npy": IDS != 0}),
    Case("csv-bom-and-crlf-accepted", inspect("ids.csv"), {"ids.csv": b"\xef\xbb\xbf5,3,0\r\n7,0,0\r\n"},
         exit_code=0, outputs={"mask.npy": IDS != 0}),
    # csv
    Case("csv-header", inspect("head.csv"), {"head.csv": b"a,b,c\n5,3,0\n"},
         "{d}/head.csv, line 1", "numbers only, no header"),
    Case("csv-ragged-rows", inspect("ragged.csv"), {"ragged.csv": b"5,3,0\n7,0\n"},
         "{d}/ragged.csv, line 2", "pad it first"),
    # npy / npz
    Case("zero-byte-npz", inspect("empty.npz"), {"empty.npz": b""},
         "{d}/empty.npz is empty", "give padded data"),
    Case("truncated-npy", inspect("cut.npy"), {"cut.npy": npy(np.arange(400).reshape(20, 20))[:300]},
         "{d}/cut.npy", "re-save it with np.save"),
    Case("truncated-npy-header", inspect("head.npy"), {"head.npy": npy(IDS)[:40]},
         "{d}/head.npy", "re-save it with np.save"),
    Case("truncated-npz", inspect("cut.npz"), {"cut.npz": npz(inputs=IDS, mask=IDS != 0)[:200]},
         "{d}/cut.npz", "re-save it with np.savez"),
    Case("npy-pickled-objects", inspect("objects.npy"),
         {"objects.npy": npy(RAGGED_OBJECTS, allow_pickle=True)},
         "{d}/objects.npy holds pickled Python objects", "save numeric or string arrays instead"),
    Case("npz-pickled-objects", inspect("objects.npz"), {"objects.npz": npz(inputs=RAGGED_OBJECTS)},
         "{d}/objects.npz holds pickled Python objects", "save numeric or string arrays instead"),
    Case("npz-pickled-mask", inspect("mask.npz"),
         {"mask.npz": npz(inputs=IDS, mask=np.array([[1, 1, None]] * 2, dtype=object))},
         "{d}/mask.npz holds pickled Python objects", "save numeric or string arrays instead"),
    Case("npz-named-npy", inspect("zip.npy"), {"zip.npy": npz(inputs=IDS)},
         "{d}/zip.npy is not an npy file", "give it a .npz name"),
    Case("npy-named-npz", inspect("array.npz"), {"array.npz": npy(IDS)},
         "{d}/array.npz is not an npz file", "give it a .npy name"),
    Case("npy-records", inspect("records.npy"),
         {"records.npy": npy(np.zeros((2, 3), dtype=[("id", "i4"), ("weight", "f4")]))},
         "{d}/records.npy holds", "re-save it with arr.astype('float32')"),
    Case("npy-complex", inspect("complex.npy"), {"complex.npy": npy(IDS + 1j)},
         "{d}/complex.npy holds complex128 values", "re-save it with arr.astype('float32')"),
    Case("npy-one-dimension", inspect("flat.npy"), {"flat.npy": npy(np.arange(4))},
         "{d}/flat.npy: expected 2-D token ids", "pad the sequences first with 'maskcli pad'"),
    Case("npy-no-sequences", inspect("none.npy"), {"none.npy": npy(np.zeros((0, 4)))},
         "{d}/none.npy holds no sequences", "give at least one padded sequence"),
    Case("npz-without-inputs", inspect("other.npz"), {"other.npz": npz(x=IDS)},
         "{d}/other.npz has no 'inputs' array", "write it with 'maskcli pad -o FILE.npz'"),
    Case("npz-meta-not-json", inspect("meta.npz"), {"meta.npz": npz(inputs=IDS, meta=np.array("{oops"))},
         "{d}/meta.npz: 'meta' is not a JSON string", "write the file with 'maskcli pad'"),
    Case("npz-meta-pad-value-a-list", inspect("meta.npz"),
         {"meta.npz": npz(inputs=IDS, meta=meta(value=[0, 1]))},
         "{d}/meta.npz: the pad value [0, 1] in 'meta'", "write the file with 'maskcli pad'"),
    Case("npz-mask-wrong-shape", inspect("mask.npz"),
         {"mask.npz": npz(inputs=IDS, mask=np.ones((2, 4), dtype=bool))},
         "{d}/mask.npz: mask of shape (2, 4) does not fit the inputs of shape (2, 3)",
         "give a (2, 3) (sequences, steps) mask"),
    Case("npz-mask-not-boolean", inspect("mask.npz"), {"mask.npz": npz(inputs=IDS, mask=IDS)},
         "{d}/mask.npz: mask holds values other than 0/1", "give a boolean mask"),
    # files that cannot be read
    Case("directory-as-input", inspect("folder.npz"), prepare=directory,
         place="{d}/folder.npz is a directory", fix="give a file, or '-'"),
    Case("missing-file", inspect("missing.npz"),
         place="{d}/missing.npz: no such file", fix="check the path"),
    Case("unreadable-file", inspect("locked.jsonl"), {"locked.jsonl": b"[1, 0]\n"},
         "{d}/locked.jsonl: permission denied", "make the file readable", prepare=unreadable),
    Case("socket-as-input", inspect("socket.jsonl"), prepare=a_socket,
         place="{d}/socket.jsonl: cannot open", fix="give a regular file"),
    Case("read-error", inspect("failing.npy"), prepare=failing_reads,
         place="{d}/failing.npy: reading failed", fix="check the file and the disk"),
    # standard input
    Case("stdin-malformed-json", ("inspect-mask", "-", "--format", "json"), stdin=b"[1, 2]\n[3,\n",
         place="<stdin>, line 2", fix="fix the line"),
    Case("stdin-pickled-npy", ("inspect-mask", "--format", "json"),
         stdin=npy(RAGGED_OBJECTS, allow_pickle=True),
         place="<stdin> holds pickled Python objects", fix="save numeric or string arrays"),
]

INSPECT_OPTIONS = [
    Case("inspect-unknown-mode", inspect("ids.npy", "--mode", "lstm"), {"ids.npy": npy(IDS)},
         "'--mode'", "'embedding', 'masking', 'elementwise'"),
    Case("inspect-unknown-format", ("inspect-mask", "{d}/ids.npy", "--format", "xml"),
         {"ids.npy": npy(IDS)}, "'--format'", "'table', 'json', 'npy'"),
    Case("inspect-unknown-polarity", inspect("ids.npy", "--polarity", "both"),
         {"ids.npy": npy(IDS)}, "'--polarity'", "'keep', 'ignore'"),
    Case("inspect-mask-value-not-a-number", inspect("ids.npy", "--mask-value", "zero"),
         {"ids.npy": npy(IDS)}, "--mask-value 'zero'", "give a value such as 0, -1 or nan"),
    Case("inspect-negative-rows", inspect("ids.npy", "--rows", "-1"), {"ids.npy": npy(IDS)},
         "'--rows'", "x>=0"),
    Case("inspect-batch-size-zero", inspect("ids.npy", "--batch-size", "0"),
         {"ids.npy": npy(IDS)}, "'--batch-size'", "x>=1"),
    Case("inspect-masking-mode-on-ids", inspect("ids.npy", "--mode", "masking"),
         {"ids.npy": npy(IDS)}, "--mode masking needs 3-D data", "use --mode embedding"),
    Case("inspect-output-over-input", ("inspect-mask", "{d}/ids.npy", "-o", "{d}/ids.npy"),
         {"ids.npy": npy(IDS)}, "-o {d}/ids.npy is the input file itself", "write to another path"),
    Case("inspect-output-in-missing-folder", ("inspect-mask", "{d}/ids.npy", "--format", "json",
                                              "-o", "{d}/no/mask.npy"),
         {"ids.npy": npy(IDS)}, "folder {d}/no does not exist", "create it first"),
    Case("inspect-output-is-a-directory", ("inspect-mask", "{d}/ids.npy", "--format", "json",
                                           "-o", "{d}/folder.npz"),
         {"ids.npy": npy(IDS)}, "'-o' / '--output': File '{d}/folder.npz' is a directory",
         "is a directory", prepare=directory),
]


def trace(*args: str) -> tuple[str, ...]:
    return ("trace-mask", *args, "--format", "json")


TRACE = [
    Case("keras-file-not-a-zip", trace("--model", "{d}/text.keras"), {"text.keras": NOT_A_ZIP},
         "--model {d}/text.keras: not a loadable Keras model",
         "give a file saved with model.save('model.keras')"),
    Case("keras-zip-without-model", trace("--model", "{d}/notes.keras"),
         {"notes.keras": zip_without_config},
         "--model {d}/notes.keras: not a loadable Keras model", "model.save('model.keras')"),
    Case("keras-file-a-directory", trace("--model", "{d}/folder.keras"), prepare=directory,
         place="--model {d}/folder.keras: is a directory", fix="give a saved .keras model file"),
    Case("keras-file-missing", trace("--model", "{d}/missing.keras"),
         place="--model {d}/missing.keras: no such file", fix="give a saved .keras model file"),
    Case("model-not-a-keras-file", trace("--model", "{d}/ids.npy"), {"ids.npy": npy(IDS)},
         "--model {d}/ids.npy: not a .keras file", "model.save('model.keras')"),
    Case("h5-file-not-a-model", trace("--model", "{d}/text.h5"), {"text.h5": NOT_A_ZIP},
         "--model {d}/text.h5: not a loadable Keras model", "model.save('model.keras')"),
    # untrusted model files, bounded before Keras reads them (tests/formats/test_model_files.py)
    Case("keras-config-inflates-to-3-gb", trace("--model", "{d}/bomb.keras"),
         {"bomb.keras": crafted.config_bomb},
         "--model {d}/bomb.keras: member config.json unpacks to 3.0 GB",
         "give a file saved with model.save('model.keras')"),
    Case("keras-config-declares-less-than-it-inflates", trace("--model", "{d}/lie.keras"),
         {"lie.keras": lambda: crafted.config_size_lie(crc_of_declared=True)},
         "--model {d}/lie.keras: member config.json inflates to more than the 1.0 KB it declares",
         "give a file saved with model.save('model.keras')"),
    Case("keras-config-crc-wrong", trace("--model", "{d}/crc.keras"),
         {"crc.keras": crafted.bad_crc},
         "--model {d}/crc.keras: member config.json is damaged (its CRC-32 does not match",
         "give a file saved with model.save('model.keras')"),
    Case("keras-weights-claim-16-tb", trace("--model", "{d}/claim.keras"),
         {"claim.keras": crafted.weights_claim},
         "--model {d}/claim.keras: member model.weights.h5 unpacks to 16.0 TB, more than the",
         "give a smaller model, or run maskcli on a machine with more memory"),
    Case("keras-weights-dataset-claims-3-tb", trace("--model", "{d}/wh.keras"),
         {"wh.keras": crafted.weights_huge_dataset},
         "--model {d}/wh.keras: member model.weights.h5: dataset /w (1000000 x 1000000 float32) "
         "claims 3.6 TB", "give a smaller model"),
    Case("keras-member-outside-the-root", trace("--model", "{d}/slip.keras"),
         {"slip.keras": crafted.outside_root},
         "--model {d}/slip.keras: member ../evil.txt lies outside the archive's root",
         "give a file saved with model.save('model.keras')"),
    Case("h5-dataset-claims-3-tb", trace("--model", "{d}/huge.h5"),
         {"huge.h5": crafted.h5_huge_dataset},
         "--model {d}/huge.h5: dataset /w (1000000 x 1000000 float32) claims 3.6 TB",
         "give a smaller model"),
    Case("h5-string-declares-4-gb", trace("--model", "{d}/string.h5"),
         {"string.h5": crafted.h5_string_claim},
         "--model {d}/string.h5: attribute model_config of / cannot be read within 256.0 MB",
         "give a file saved with model.save('model.keras')"),
    Case("lambda-model-refused", trace("--model", "{model:lambda}"),
         place="--model {d}/lambda.keras: refused", fix="if you trust the file, pass --unsafe"),
    Case("lambda-model-accepted-with-unsafe", trace("--model", "{model:lambda}", "--unsafe"),
         exit_code=0, stderr="Warning: --unsafe: loading {d}/lambda.keras may run code"),
    Case("model-naming-os-system", trace("--model", "{model:os_system}"),
         place="--model {d}/os_system.keras", fix="(function 'system')"),
    Case("model-naming-os-system-unsafe", trace("--model", "{model:os_system}", "--unsafe"),
         place="--model {d}/os_system.keras", fix="(function 'system')"),
    Case("data-shape-does-not-fit-model", trace("--model", "{model:ids}", "{d}/cube.npy"),
         {"cube.npy": npy(np.ones((2, 3, 4)))},
         "{d}/cube.npy: data of shape (2, 3, 4) does not fit the model's input 'tokens'",
         "give data of that shape, or omit INPUT"),
    Case("ids-outside-the-embedding", trace("--model", "{model:ids}", "{d}/ids.npy"),
         {"ids.npy": npy(np.array([[5, 3, 50], [7, 0, 0]]))},
         "{d}/ids.npy (sequence 0, step 2): id 50 is outside Embedding", "ids must lie in 0..19"),
    Case("fractional-ids", trace("--model", "{model:ids}", "{d}/ids.npy"),
         {"ids.npy": npy(IDS + 0.5)}, "{d}/ids.npy: Embedding", "give integer ids"),
    Case("trace-malformed-json", trace("--arch", "embedding-lstm", "{d}/bad.jsonl"),
         {"bad.jsonl": b"[1, 0]\n[2, 0\n"}, "{d}/bad.jsonl, line 2", "fix the line"),
    Case("trace-meta-pad-value-not-a-number", trace("--arch", "embedding-lstm", "{d}/ids.npz"),
         {"ids.npz": npz(inputs=IDS, meta=meta(value="<pad>"))},
         "{d}/ids.npz: the pad value '<pad>' in 'meta'", "give the pad value with --pad-value"),
    Case("arch-unknown", trace("--arch", "transformer-xl"), place="'--arch'",
         fix="'embedding-lstm', 'embedding-gru'"),
    Case("arch-takes-other-rank", trace("--arch", "embedding-lstm", "{d}/cube.npy"),
         {"cube.npy": npy(np.ones((2, 3, 4)))}, "--arch embedding-lstm takes 2-D token ids",
         "use --arch masking-lstm"),
    Case("arch-larger-than-memory", trace("--arch", "embedding-lstm", "{d}/huge_ids.npy"),
         {"huge_ids.npy": npy(np.array([[1, 2 ** 50, 0]]))},
         "--arch embedding-lstm with --units 8: its weights would take",
         "map tokens to small ids"),
    Case("units-zero", trace("--arch", "embedding-lstm", "--units", "0"),
         place="--units", fix="at least 1"),
    Case("seed-negative", trace("--arch", "embedding-lstm", "--seed", "-1"),
         place="'--seed'", fix="0<=x<=4294967295"),
    Case("trace-unknown-format", ("trace-mask", "--arch", "embedding-lstm", "--format", "xml"),
         place="'--format'", fix="'table', 'json'"),
    Case("trace-pad-value-not-a-number", trace("--arch", "masking-lstm", "--pad-value", "pad"),
         place="'pad' is not a number", fix="give a value such as 0, -1 or nan"),
    Case("no-model", trace(), place="no model", fix="give --model FILE.keras or --arch NAME"),
    Case("model-and-arch", trace("--model", "{d}/m.keras", "--arch", "embedding-lstm"),
         place="--model and --arch", fix="give one of them"),
    Case("unsafe-without-model", trace("--arch", "embedding-lstm", "--unsafe"),
         place="--unsafe", fix="applies to --model only"),
    Case("import-missing-file", trace("--arch", "embedding-lstm", "--import", "{d}/layers.py"),
         place="--import {d}/layers.py: no such file", fix="check the path"),
    Case("import-raises", trace("--arch", "embedding-lstm", "--import", "{d}/boom.py"),
         {"boom.py": b"raise RuntimeError('boom')\n"},
         "--import {d}/boom.py: importing it failed: RuntimeError: boom", "fix the module"),
    Case("import-calls-sys-exit", trace("--arch", "embedding-lstm", "--import", "{d}/script.py"),
         {"script.py": b"import sys\nsys.exit(3)\n"},
         "--import {d}/script.py: importing it called sys.exit(3)", "if __name__ == '__main__'"),
]


def pad(name: str, *options: str) -> tuple[str, ...]:
    """pad ``{d}/name`` into ``{d}/out.npz``."""
    return ("pad", f"{{d}}/{name}", "-o", "{d}/out.npz", *options)


SEQUENCES = b"[1, 2, 3]\n[4, 5]\n"
PADDED = np.array([[1, 2, 3], [0, 4, 5]], dtype=np.int32)  # SEQUENCES, padded as Keras does
VOCAB_WITH_DUPLICATE = b"\n[UNK]\nthe\ncat\nthe\n"

PAD = [
    # usage errors: click's own, on one line that points to --help (no Usage:/Try lines)
    Case("option-misspelled", pad("seq.jsonl", "--maxln", "3"), {"seq.jsonl": SEQUENCES},
         "No such option '--maxln'", "Did you mean '--maxlen'? (see 'maskcli pad --help')"),
    Case("option-without-its-value", ("trace-mask", "--model"),
         place="Option '--model' requires an argument", fix="(see 'maskcli trace-mask --help')"),
    Case("command-misspelled", ("padd", "{d}/seq.jsonl"), {"seq.jsonl": SEQUENCES},
         "No such command 'padd'", "Did you mean 'pad'? (see 'maskcli --help')"),
    Case("group-option-unknown", ("--colour", "pad"), place="No such option '--colour'",
         fix="(see 'maskcli --help')"),
    Case("pad-mixed-element-types", pad("mixed.jsonl"), {"mixed.jsonl": b'[1, 2]\n[3, "cat"]\n'},
         "{d}/mixed.jsonl, line 2 (sequence 1, step 1)", "give numbers only (token ids), or "
         "strings only"),
    Case("pad-ragged-feature-vectors", pad("feat.jsonl"),
         {"feat.jsonl": b"[[1, 2], [3, 4]]\n[[5, 6], [7]]\n"},
         "{d}/feat.jsonl, line 2 (sequence 1, step 1)", "give every step the same number"),
    Case("pad-integer-overflows-int32", pad("big.jsonl"), {"big.jsonl": b"[1, 3000000000]\n"},
         "{d}/big.jsonl, line 1 (sequence 0, step 1): 3000000000 is out of range for int32",
         "use a wider dtype such as int64"),
    Case("pad-integer-beyond-64-bits", pad("huge.jsonl", "--dtype", "int64"),
         {"huge.jsonl": b"[1, 99999999999999999999999]\n"},
         "{d}/huge.jsonl, line 1 (sequence 0, step 1)", "give numbers that fit int64"),
    Case("pad-text-integer-overflows-int8", pad("ids.txt", "--dtype", "int8"),
         {"ids.txt": b"1 2 300\n"}, "{d}/ids.txt, line 1 (sequence 0, step 2)",
         "use a wider dtype"),
    Case("pad-value-overflows-dtype", pad("seq.jsonl", "--dtype", "int8", "--value", "1000"),
         {"seq.jsonl": SEQUENCES}, "pad value 1000 is out of range for int8",
         "give a smaller value, or a wider dtype"),
    Case("pad-fraction-into-integers", pad("frac.jsonl"), {"frac.jsonl": b"[1, 2.5]\n"},
         "{d}/frac.jsonl, line 1 (sequence 0, step 1)", "use the dtype float32"),
    Case("pad-negative-maxlen", pad("seq.jsonl", "--maxlen", "-1"), {"seq.jsonl": SEQUENCES},
         "'--maxlen'", "x>=0"),
    Case("pad-maxlen-larger-than-memory", pad("seq.jsonl", "--maxlen", str(10 ** 14)),
         {"seq.jsonl": SEQUENCES}, "padding 2 sequences to 100000000000000 steps would take",
         "give a smaller --maxlen"),
    Case("pad-maxlen-larger-than-memory-jsonl", ("pad", "{d}/seq.jsonl", "-o", "{d}/out.jsonl",
                                                 "--maxlen", str(10 ** 14)),
         {"seq.jsonl": SEQUENCES}, "padding 2 sequences to 100000000000000 steps",
         "give a smaller --maxlen"),
    Case("pad-maxlen-beyond-64-bits", pad("seq.jsonl", "--maxlen", str(10 ** 23)),
         {"seq.jsonl": SEQUENCES}, f"padding 2 sequences to {10 ** 23} steps would take",
         "give a smaller --maxlen"),
    Case("pad-longest-sequence-larger-than-memory", pad("seq.jsonl", "--pad-to-multiple-of",
                                                         str(10 ** 14)),
         {"seq.jsonl": SEQUENCES}, "padding 2 sequences to 100000000000000 steps",
         "give a smaller --pad-to-multiple-of"),
    Case("pad-vocab-duplicate-tokens", pad("words.txt", "--vocab", "{d}/vocab.txt"),
         {"words.txt": b"the cat\n", "vocab.txt": VOCAB_WITH_DUPLICATE},
         "{d}/vocab.txt, line 5: duplicate token 'the', already on line 3", "keep one of them"),
    Case("pad-vocab-without-header", pad("words.txt", "--vocab", "{d}/vocab.txt"),
         {"words.txt": b"the cat\n", "vocab.txt": b"the\ncat\n"},
         "{d}/vocab.txt: line 1 must be empty", "add those two lines at the top"),
    Case("pad-vocab-and-save-vocab", pad("words.txt", "--vocab", "{d}/vocab.txt", "--save-vocab",
                                         "{d}/new.txt"),
         {"words.txt": b"the cat\n", "vocab.txt": b"\n[UNK]\nthe\n"},
         "--vocab and --save-vocab exclude each other", "not both"),
    Case("pad-unknown-padding", pad("seq.jsonl", "--padding", "middle"), {"seq.jsonl": SEQUENCES},
         "'--padding'", "'pre', 'post'"),
    Case("pad-unknown-truncating", pad("seq.jsonl", "--truncating", "both"),
         {"seq.jsonl": SEQUENCES}, "'--truncating'", "'pre', 'post'"),
    Case("pad-unknown-dtype", pad("seq.jsonl", "--dtype", "int128"), {"seq.jsonl": SEQUENCES},
         "unknown dtype 'int128'", "use int32, int64, float32, float64 or str"),
    Case("pad-object-dtype", pad("seq.jsonl", "--dtype", "object"), {"seq.jsonl": SEQUENCES},
         "dtype object is not supported", "use str"),
    Case("pad-unknown-input-format", pad("seq.jsonl", "--from", "xml"), {"seq.jsonl": SEQUENCES},
         "'--from'", "'auto', 'jsonl', 'json', 'text'"),
    Case("pad-unknown-output-format", pad("seq.jsonl", "--to", "xml"),
         {"seq.jsonl": SEQUENCES}, "'--to'", "'npz', 'parquet'"),
    Case("pad-value-not-a-number", pad("seq.jsonl", "--value", "none"), {"seq.jsonl": SEQUENCES},
         "'--value'", "give a value such as 0, -1 or nan"),
    Case("pad-empty-separator", pad("ids.txt", "--sep", ""), {"ids.txt": b"1 2\n"},
         "'--sep'", "give one such as ','"),
    Case("pad-malformed-json-line-2", pad("bad.jsonl"), {"bad.jsonl": b"[1, 2]\n[3, 4\n"},
         "{d}/bad.jsonl, line 2", "fix the line"),
    Case("pad-malformed-json-document", pad("bad.json"), {"bad.json": b"[[1, 2],\n [3 4]]\n"},
         "{d}/bad.json, line 2", "the file holds one JSON array of arrays"),
    Case("pad-json-nested-too-deep", pad("deep.jsonl"), {"deep.jsonl": b"[" * 100_000 + b"\n"},
         "{d}/deep.jsonl, line 1: JSON nested too deeply", "each line holds one array"),
    Case("pad-null-token", pad("null.jsonl"), {"null.jsonl": b"[1, null]\n"},
         "{d}/null.jsonl, line 1 (sequence 0, step 1)", "give token ids, numbers or strings"),
    Case("pad-object-without-field", pad("records.jsonl"),
         {"records.jsonl": b'{"input_ids": [1, 2]}\n'},
         "{d}/records.jsonl, line 1 (sequence 0)", "--field input_ids"),
    Case("pad-non-utf8", pad("latin1.txt", "--dtype", "str"), {"latin1.txt": b"caf\xe9 au lait\n"},
         "{d}/latin1.txt, line 1: not UTF-8 text", "iconv -f latin1 -t UTF-8"),
    Case("pad-utf16", pad("wide.txt"), {"wide.txt": "1 2\n".encode("utf-16")},
         "{d}/wide.txt is UTF-16 text", "convert it to UTF-8"),
    Case("pad-output-over-input", ("pad", "{d}/seq.jsonl", "-o", "{d}/seq.jsonl"),
         {"seq.jsonl": SEQUENCES}, "-o {d}/seq.jsonl is the input file itself",
         "write to another path"),
    Case("pad-directory-as-input", pad("folder.npz"), prepare=directory,
         place="{d}/folder.npz is a directory", fix="give a file, or '-'"),
    Case("pad-stdin-malformed", ("pad", "-", "-o", "{d}/out.npz"), stdin=b"[1]\n[2,\n",
         place="<stdin>, line 2", fix="fix the line"),
    Case("pad-bom-and-crlf-accepted", pad("seq.jsonl"),
         {"seq.jsonl": b"\xef\xbb\xbf[1, 2, 3]\r\n[4, 5]\r\n"}, exit_code=0,
         outputs={"out.npz": PADDED}),
    Case("pad-text-bom-and-crlf-accepted", pad("seq.txt"),
         {"seq.txt": b"\xef\xbb\xbf1 2 3\r\n4 5\r\n"}, exit_code=0,
         outputs={"out.npz": PADDED}),
]


# Parquet and Arrow tables, made with pyarrow when the row runs.

def table(**columns):
    import pyarrow as pa

    return pa.table(columns)


def parquet_of(cut: float = 1.0, **columns) -> Callable[[], bytes]:
    """A Parquet file of ``columns`` (the first ``cut`` of its bytes)."""
    def payload() -> bytes:
        from tests.formats.arrow_tables import parquet

        data = parquet(table(**columns))
        return data[:int(len(data) * cut)]
    return payload


def arrow_of(cut: float = 1.0, stream: bool = True, **columns) -> Callable[[], bytes]:
    def payload() -> bytes:
        from tests.formats.arrow_tables import arrow_file, arrow_stream

        data = (arrow_stream if stream else arrow_file)(table(**columns))
        return data[:int(len(data) * cut)]
    return payload


ROWS = [[1, 2, 3], [4, 5]]
TAGS = {"input_ids": ROWS, "labels": [[0, 1, 0], [1, 0]], "id": [7, 8]}
MULTI_NPZ = npz(source=IDS, target=IDS, mask=IDS != 0, lengths=np.array([2, 1]),
                meta=meta(fields=["source", "target"], values={"source": 0, "target": 0}))

TABLES = [
    Case("pad-parquet-truncated", pad("cut.parquet"), {"cut.parquet": parquet_of(0.5, ids=ROWS)},
         "{d}/cut.parquet is not a Parquet file that can be read, it may be truncated",
         "re-export it"),
    Case("pad-arrow-stream-truncated", pad("cut.arrow"), {"cut.arrow": arrow_of(0.6, ids=ROWS)},
         "{d}/cut.arrow is not an Arrow IPC file that can be read, it may be truncated",
         "re-export it"),
    Case("pad-arrow-file-truncated", pad("cut.feather"),
         {"cut.feather": arrow_of(0.9, stream=False, ids=ROWS)},
         "{d}/cut.feather is not an Arrow IPC file that can be read", "re-export it"),
    Case("pad-parquet-not-parquet", pad("text.parquet"), {"text.parquet": b"[1, 2]\n"},
         "{d}/text.parquet is not a Parquet file that can be read", "re-export it"),
    Case("pad-stdin-parquet-truncated", ("pad", "--from", "parquet", "-o", "{d}/out.npz"),
         stdin=b"PAR1" + bytes(200), place="<stdin> is not a Parquet file that can be read",
         fix="re-export it"),
    Case("pad-parquet-column-not-a-list", pad("t.parquet", "--field", "id"),
         {"t.parquet": parquet_of(**TAGS)},
         "{d}/t.parquet, column 'id' is int64, not a list of tokens",
         "give --field a list column (input_ids, labels)"),
    Case("pad-parquet-field-missing", pad("t.parquet", "--field", "tokens"),
         {"t.parquet": parquet_of(**TAGS)},
         "--field tokens: {d}/t.parquet has no column 'tokens' (columns: input_ids "
         "(list<element: int64>), labels (list<element: int64>), id (int64))",
         "give --field one of them"),
    Case("pad-parquet-several-list-columns", pad("t.parquet"), {"t.parquet": parquet_of(**TAGS)},
         "{d}/t.parquet has several list columns (input_ids, labels)",
         "name the one to pad with --field NAME"),
    Case("pad-parquet-null-sequence", pad("nulls.parquet"),
         {"nulls.parquet": parquet_of(ids=[[1, 2], None, [3]])},
         "{d}/nulls.parquet, column 'ids' (row 1): null instead of a sequence",
         "give an empty list [] or drop the row"),
    Case("pad-parquet-null-element", pad("nulls.parquet"),
         {"nulls.parquet": parquet_of(ids=[[1, 2], [3, None]])},
         "{d}/nulls.parquet, column 'ids' (row 1, step 1): null inside the sequence",
         "fill it with a real token or value, or drop it"),
    Case("pad-arrow-ragged-feature-vectors", pad("f.arrow", "--dtype", "float32"),
         {"f.arrow": arrow_of(x=[[[1.0, 2.0]], [[3.0]]])},
         "{d}/f.arrow, column 'x' (row 1, step 0): 1 feature among steps with 2 features",
         "give every step the same number of features"),
    Case("pad-parquet-booleans", pad("b.parquet"), {"b.parquet": parquet_of(x=[[True]])},
         "{d}/b.parquet, column 'x' holds list<element: bool>", "cast the column to integers"),
    Case("pad-value-for-a-field-not-padded", pad("rec.jsonl", "--field", "input_ids", "--value",
                                                 "labels=-100"),
         {"rec.jsonl": b'{"input_ids": [1, 2], "labels": [0, 0]}\n'},
         "--value labels=-100: 'labels' is not a padded field (fields: input_ids)",
         "add --field labels, or correct the name"),
    Case("pad-csv-of-several-fields", ("pad", "{d}/rec.jsonl", "-o", "{d}/out.csv", "--field",
                                       "input_ids", "--field", "labels"),
         {"rec.jsonl": b'{"input_ids": [1, 2], "labels": [0, 0]}\n'},
         "csv holds one array, but 2 fields are padded (input_ids, labels)",
         "write npz (-o padded.npz), which holds one array per field, or jsonl"),
    Case("pad-mask-as-without-npz", ("pad", "{d}/seq.jsonl", "-o", "{d}/out.jsonl", "--mask-as",
                                     "padding_mask"), {"seq.jsonl": SEQUENCES},
         "--mask-as padding_mask adds an array to an npz, but the output is jsonl",
         "write npz (-o padded.npz) or Parquet (-o padded.parquet), or drop --mask-as"),
    Case("inspect-svg-into-a-missing-folder", inspect("ids.jsonl", "--svg", "{d}/no/mask.svg"),
         {"ids.jsonl": b"[5, 3, 0]\n[7, 0, 0]\n"},
         "--svg {d}/no/mask.svg: folder {d}/no does not exist", "create it first"),
    Case("pad-save-vocab-into-a-missing-folder",
         pad("words.txt", "--save-vocab", "{d}/no/vocab.txt"), {"words.txt": b"a b\nc\n"},
         "--save-vocab {d}/no/vocab.txt: folder {d}/no does not exist", "create it first"),
    Case("inspect-field-unknown", inspect("multi.npz", "--field", "labels"),
         {"multi.npz": MULTI_NPZ}, "--field labels: {d}/multi.npz has no field 'labels' "
         "(fields: source, target)", "give one of them"),
    Case("inspect-field-of-an-npy", inspect("ids.npy", "--field", "labels"), {"ids.npy": npy(IDS)},
         "--field labels: {d}/ids.npy is npy, which holds one array",
         "--field picks a field of an npz"),
    Case("npz-meta-fields-not-names", inspect("meta.npz"),
         {"meta.npz": npz(inputs=IDS, meta=meta(fields="source"))},
         "{d}/meta.npz: 'fields' in 'meta' is not a list of names",
         "write the file with 'maskcli pad'"),
    # names that come from data: refused as npz arrays when unsafe, else kept as they are
    Case("pad-column-name-outside-the-root", pad("t.parquet", "--field", "input_ids", "--field",
                                                 "../../labels"),
         {"t.parquet": parquet_of(input_ids=ROWS, **{"../../labels": [[0, 1, 0], [1, 0]]})},
         "--field ../../labels: the name '../../labels' cannot be an npz array: it holds a path "
         "separator", "rename it"),
    Case("pad-key-with-a-line-break", pad("rec.jsonl", "--field", "ids", "--field", "a\nb"),
         {"rec.jsonl": b'{"ids": [1], "a\\nb": [2]}\n'},
         "--field a\\nb: the name 'a\\nb' cannot be an npz array: it holds a control character",
         "rename it"),
    Case("pad-mask-as-with-a-separator", pad("seq.jsonl", "--mask-as", "masks/padding"),
         {"seq.jsonl": SEQUENCES}, "--mask-as masks/padding: the name 'masks/padding' cannot be "
         "an npz array", "rename it"),
    Case("pad-column-names-with-spaces-and-accents-accepted",
         pad("t.parquet", "--field", "input ids", "--field", "étiquettes fines", "--value",
             "étiquettes fines=-100"),
         {"t.parquet": parquet_of(**{"input ids": ROWS, "étiquettes fines": [[0, 1, 0], [1, 1]]})},
         exit_code=0, outputs={"out.npz": {"input ids": PADDED,
                                           "étiquettes fines": [[0, 1, 0], [-100, 1, 1]]}}),
    Case("pad-several-fields-accepted", pad("rec.jsonl", "--field", "input_ids", "--field",
                                            "labels", "--value", "labels=-100"),
         {"rec.jsonl": b'{"input_ids": [1, 2, 3], "labels": [0, 1, 0]}\n'
                       b'{"input_ids": [4, 5], "labels": [1, 1]}\n'},
         exit_code=0, outputs={"out.npz": {"input_ids": PADDED,
                                           "labels": [[0, 1, 0], [-100, 1, 1]]}}),
]


def audit(*args: str) -> tuple[str, ...]:
    return ("audit-loss", *args, "--format", "json")


AUDIT = [
    Case("audit-targets-do-not-fit-the-output", audit("{d}/ids.npy", "--targets", "{d}/y.npy"),
         {"ids.npy": npy(IDS), "y.npy": npy(np.ones((2, 4, 1)))},
         "targets {d}/y.npy of shape (2, 4, 1) do not fit the model's output of shape (2, 3, 1)",
         "give targets of shape (2, 3, 1)"),
    Case("audit-targets-do-not-fit-a-saved-model", audit("{d}/ids.npy", "--model", "{model:ids}",
                                                         "--targets", "{d}/y.npy"),
         {"ids.npy": npy(IDS), "y.npy": npy(np.ones((2, 3, 7)))},
         "targets {d}/y.npy of shape (2, 3, 7) do not fit the model's output of shape (2, 3, 3)",
         "give targets of shape (2, 3, 3)"),
    Case("audit-targets-other-sequence-count", audit("{d}/ids.npy", "--targets", "{d}/y.npy"),
         {"ids.npy": npy(IDS), "y.npy": npy(np.ones((5, 3, 1)))},
         "targets {d}/y.npy of shape (5, 3, 1) do not fit the 2 input sequences",
         "give one target row per sequence"),
    Case("audit-targets-not-numbers", audit("{d}/ids.npy", "--targets", "{d}/y.npy"),
         {"ids.npy": npy(IDS), "y.npy": npy(np.array([["a", "b", "c"]] * 2))},
         "targets {d}/y.npy are <U1", "give numeric targets"),
    Case("audit-targets-pickled", audit("{d}/ids.npy", "--targets", "{d}/y.npy"),
         {"ids.npy": npy(IDS), "y.npy": npy(RAGGED_OBJECTS, allow_pickle=True)},
         "{d}/y.npy holds pickled Python objects", "save numeric or string arrays instead"),
    Case("audit-data-does-not-fit-the-model", audit("{d}/cube.npy", "--model", "{model:ids}"),
         {"cube.npy": npy(np.concatenate([np.ones((2, 2, 4)), np.zeros((2, 1, 4))], axis=1))},
         "--model {d}/ids.keras cannot run on {d}/cube.npy (shape (2, 3, 4))",
         "give inputs that fit the model"),
    Case("audit-ids-outside-the-embedding", audit("{d}/ids.npy", "--model", "{model:ids}"),
         {"ids.npy": npy(np.array([[5, 3, 50], [7, 0, 0]]))},
         "--model {d}/ids.keras cannot run on {d}/ids.npy", "token ids below its vocabulary size"),
    Case("audit-keras-file-not-a-zip", audit("{d}/ids.npy", "--model", "{d}/text.keras"),
         {"ids.npy": npy(IDS), "text.keras": NOT_A_ZIP},
         "--model {d}/text.keras: not a loadable Keras model", "model.save('model.keras')"),
    Case("audit-keras-zip-without-model", audit("{d}/ids.npy", "--model", "{d}/notes.keras"),
         {"ids.npy": npy(IDS), "notes.keras": zip_without_config},
         "--model {d}/notes.keras: not a loadable Keras model", "model.save('model.keras')"),
    Case("audit-keras-config-inflates-to-3-gb", audit("{d}/ids.npy", "--model", "{d}/bomb.keras"),
         {"ids.npy": npy(IDS), "bomb.keras": crafted.config_bomb},
         "--model {d}/bomb.keras: member config.json unpacks to 3.0 GB",
         "give a file saved with model.save('model.keras')"),
    Case("audit-keras-config-crc-wrong", audit("{d}/ids.npy", "--model", "{d}/crc.keras"),
         {"ids.npy": npy(IDS), "crc.keras": crafted.bad_crc},
         "--model {d}/crc.keras: member config.json is damaged", "model.save('model.keras')"),
    Case("audit-keras-weights-claim-16-tb", audit("{d}/ids.npy", "--model", "{d}/claim.keras"),
         {"ids.npy": npy(IDS), "claim.keras": crafted.weights_claim},
         "--model {d}/claim.keras: member model.weights.h5 unpacks to 16.0 TB",
         "give a smaller model"),
    Case("audit-keras-member-outside-the-root", audit("{d}/ids.npy", "--model", "{d}/slip.keras"),
         {"ids.npy": npy(IDS), "slip.keras": crafted.outside_root},
         "--model {d}/slip.keras: member ../evil.txt lies outside the archive's root",
         "model.save('model.keras')"),
    Case("audit-h5-dataset-claims-3-tb", audit("{d}/ids.npy", "--model", "{d}/huge.h5"),
         {"ids.npy": npy(IDS), "huge.h5": crafted.h5_huge_dataset},
         "--model {d}/huge.h5: dataset /w (1000000 x 1000000 float32) claims 3.6 TB",
         "give a smaller model"),
    Case("audit-lambda-model-refused", audit("{d}/ids.npy", "--model", "{model:lambda}"),
         {"ids.npy": npy(IDS)}, "--model {d}/lambda.keras: refused",
         "if you trust the file, pass --unsafe"),
    Case("audit-lambda-model-accepted-with-unsafe", audit("{d}/ids.npy", "--model",
                                                          "{model:lambda}", "--unsafe"),
         {"ids.npy": npy(IDS)}, exit_code=0,
         stderr="Warning: --unsafe: loading {d}/lambda.keras may run code"),
    Case("audit-model-naming-os-system", audit("{d}/ids.npy", "--model", "{model:os_system}"),
         {"ids.npy": npy(IDS)}, "--model {d}/os_system.keras", "(function 'system')"),
    Case("audit-no-padded-step", audit("{d}/full.npy"), {"full.npy": npy(IDS + 1)},
         "{d}/full.npy: no padded step to audit", "give padded data, or the right --mask-value"),
    Case("audit-mask-file-does-not-fit", audit("{d}/ids.npy", "--mask", "{d}/mask.npy"),
         {"ids.npy": npy(IDS), "mask.npy": npy(np.ones((2, 4), dtype=bool))},
         "--mask {d}/mask.npy: mask of shape (2, 4) does not fit the inputs of shape (2, 3)",
         "give a (2, 3) (sequences, steps) mask"),
    Case("audit-mask-value-not-a-number", audit("{d}/ids.npy", "--mask-value", "pad"),
         {"ids.npy": npy(IDS)}, "--mask-value 'pad' is not a number",
         "give a value such as 0, -1 or nan"),
    Case("audit-target-pad-not-json", audit("{d}/ids.npy", "--targets", "{d}/y.npy",
                                            "--target-pad", "[0, 1"),
         {"ids.npy": npy(IDS), "y.npy": npy(np.ones((2, 3, 2)))},
         "--target-pad [0, 1: not a JSON list", "write it as [0, 0, 1]"),
    Case("audit-target-pad-list-other-classes", audit("{d}/ids.npy", "--targets", "{d}/y.npy",
                                                      "--target-pad", "[0, 0, 1]"),
         {"ids.npy": npy(IDS), "y.npy": npy(np.ones((2, 3, 2)))},
         "targets {d}/y.npy: --target-pad gives 3 values but the targets have shape (2, 3, 2)",
         "a list pad needs one-hot targets with 3 classes"),
    Case("audit-unknown-loss", audit("{d}/ids.npy", "--loss", "hinge"), {"ids.npy": npy(IDS)},
         "'--loss'", "'mse', 'mae'"),
    Case("audit-unknown-arch", audit("{d}/ids.npy", "--arch", "transformer-xl"),
         {"ids.npy": npy(IDS)}, "'--arch'", "'embedding-lstm'"),
    Case("audit-masking-mode-on-ids", audit("{d}/ids.npy", "--mode", "masking"),
         {"ids.npy": npy(IDS)}, "--mode masking needs 3-D data", "use --mode embedding"),
    Case("audit-seed-negative", audit("{d}/ids.npy", "--seed", "-1"), {"ids.npy": npy(IDS)},
         "'--seed'", "0<=x<=4294967295"),
    Case("audit-unsafe-without-model", audit("{d}/ids.npy", "--unsafe"), {"ids.npy": npy(IDS)},
         "--unsafe applies to --model only", "drop it"),
    # several named inputs: a model of token_ids and a padding_mask (1 = real step)
    Case("audit-model-input-without-data", audit("{d}/named.npz", "--model", "{model:named}"),
         {"named.npz": npz(token_ids=IDS, mask=IDS != 0)},
         "the model's input 'padding_mask' has no data ({d}/named.npz holds mask, token_ids",
         "name an npz array 'padding_mask', or give --input padding_mask=FILE"),
    Case("audit-input-not-a-model-input", audit("{d}/named.npz", "--model", "{model:named}",
                                                "--input", "speaker={d}/ids.npy"),
         {"named.npz": npz(token_ids=IDS, padding_mask=(IDS != 0).astype("int32")),
          "ids.npy": npy(IDS)},
         "--input speaker=...: the model has no input named 'speaker'", "name one of those"),
    Case("audit-input-option-malformed", audit("{d}/ids.npy", "--input", "token_ids"),
         {"ids.npy": npy(IDS)}, "--input token_ids: write it as NAME=FILE",
         "e.g. --input segment_ids=segments.npy"),
    Case("audit-mask-input-of-another-length", audit("{d}/named.npz", "--model", "{model:named}"),
         {"named.npz": npz(token_ids=IDS, padding_mask=np.ones((2, 2), dtype="int32"))},
         "{d}/named.npz: mask input 'padding_mask' has 2 steps, and no input it could mask has "
         "('token_ids' 3 steps)", "give it the padded length of the inputs it masks"),
    Case("audit-input-of-another-fixed-length", audit("{d}/named.npz", "--model",
                                                      "{model:named_fixed}"),
         {"named.npz": npz(token_ids=np.zeros((2, 4), "int32"),
                           padding_mask=np.zeros((2, 4), "int32"))},
         "{d}/named.npz: input 'token_ids' of shape (2, 4) does not fit the model's input of "
         "shape (n, 3)", "give 'token_ids' that shape"),
    Case("audit-mask-input-not-0-1", audit("{d}/named.npz", "--model", "{model:named}"),
         {"named.npz": npz(token_ids=IDS, padding_mask=np.array([[1, 1, 0], [1, 2, 0]]))},
         "{d}/named.npz: mask input 'padding_mask' holds 2 at sequence 1, step 1",
         "a padding mask holds 1 (or True) at real steps and 0 at padding"),
    Case("trace-mask-input-not-0-1", trace("--model", "{model:named}", "{d}/named.npz"),
         {"named.npz": npz(token_ids=IDS, padding_mask=np.array([[1, 1, 0], [1, 2, 0]]))},
         "{d}/named.npz: mask input 'padding_mask' holds 2 at sequence 1, step 1",
         "name the real mask input with --mask-input NAME"),
    Case("audit-sample-weight-wrong-shape", audit("{d}/ids.npy", "--sample-weight", "{d}/w.npy"),
         {"ids.npy": npy(IDS), "w.npy": npy(np.ones((2, 4)))},
         "--sample-weight {d}/w.npy of shape (2, 4) do not fit the 2 sequences of 3 steps",
         "give weights of shape (2, 3) (one per step) or (2,)"),
    Case("audit-sample-weight-negative", audit("{d}/ids.npy", "--sample-weight", "{d}/w.npy"),
         {"ids.npy": npy(IDS), "w.npy": npy(np.array([[1.0, -1.0, 0.0], [1.0, 0.0, 0.0]]))},
         "--sample-weight {d}/w.npy holds -1.0 at sequence 0, step 1",
         "weights must be finite and 0 or more"),
    # an audit that would measure nothing: every loss 0, every check passing
    Case("audit-sample-weights-all-zero", audit("{d}/ids.npy", "--sample-weight", "{d}/w.npy"),
         {"ids.npy": npy(IDS), "w.npy": npy(np.zeros((2, 3)))},
         "nothing to audit: --sample-weight {d}/w.npy weigh every real step 0",
         "give weights above 0 at the real steps"),
    Case("audit-sample-weights-zero-at-real-steps", audit("{d}/ids.npy", "--sample-weight",
                                                          "{d}/w.npy"),
         {"ids.npy": npy(IDS), "w.npy": npy((IDS == 0).astype("float32"))},
         "nothing to audit: --sample-weight {d}/w.npy weigh every real step 0",
         "give weights above 0 at the real steps"),
    Case("audit-mask-without-a-real-step", audit("{d}/ids.npy", "--mask", "{d}/mask.npy"),
         {"ids.npy": npy(IDS), "mask.npy": npy(np.zeros((2, 3), dtype=bool))},
         "nothing to audit: the reference mask has no real step (all 6 steps are padding)",
         "the mask with True (1) at real steps"),
    Case("audit-targets-all-ignored", audit("{d}/ids.npy", "--targets", "{d}/y.npy",
                                            "--target-pad", "-100"),
         {"ids.npy": npy(IDS), "y.npy": npy(np.full((2, 3), -100))},
         "nothing to audit: the targets are padding at every step",
         "give targets with real labels at real steps, or the right --target-pad"),
    # options that name things are checked; a mask input holds 0/1 in every path
    Case("audit-mask-input-names-no-input", audit("{d}/named.npz", "--model", "{model:named}",
                                                  "--mask-input", "attention"),
         {"named.npz": npz(token_ids=IDS, padding_mask=(IDS != 0).astype("int32"))},
         "--mask-input attention: the model has no input named 'attention' (its inputs: ",
         "name one of those"),
    Case("audit-mask-input-of-a-built-in-model", audit("{d}/ids.npy", "--mask-input", "tokens"),
         {"ids.npy": npy(IDS)}, "--mask-input tokens: the model takes one unnamed array",
         "drop --mask-input"),
    Case("trace-mask-input-names-no-input", trace("--model", "{model:named}", "{d}/named.npz",
                                                  "--mask-input", "attention"),
         {"named.npz": npz(token_ids=IDS, padding_mask=(IDS != 0).astype("int32"))},
         "--mask-input attention: the model has no input named 'attention'", "name one of those"),
    Case("audit-one-input-mask-input-holds-ids", audit("{d}/ids.npy", "--model", "{model:ids}",
                                                       "--mask-input", "tokens"),
         {"ids.npy": npy(IDS)}, "{d}/ids.npy: mask input 'tokens' holds 5 at sequence 0, step 0",
         "a padding mask holds 1 (or True) at real steps and 0 at padding"),
    Case("trace-one-input-mask-input-holds-ids", trace("--model", "{model:ids}", "{d}/ids.npy",
                                                       "--mask-input", "tokens"),
         {"ids.npy": npy(IDS)}, "{d}/ids.npy: mask input 'tokens' holds 5 at sequence 0, step 0",
         "a padding mask holds 1 (or True) at real steps and 0 at padding"),
    # the place of every error: the --input, --mask or --targets file, not INPUT
    Case("audit-input-file-of-another-fixed-length",
         audit("{d}/named.npz", "--model", "{model:named_fixed}", "--input",
               "token_ids={d}/ids4.npy"),
         {"named.npz": npz(token_ids=IDS, padding_mask=(IDS != 0).astype("int32")),
          "ids4.npy": npy(np.ones((2, 4), "int32"))},
         "--input token_ids={d}/ids4.npy: input 'token_ids' of shape (2, 4) does not fit the "
         "model's input of shape (n, 3)", "give 'token_ids' that shape"),
    Case("audit-input-mask-file-of-another-length",
         audit("{d}/named.npz", "--model", "{model:named}", "--input", "padding_mask={d}/m.npy"),
         {"named.npz": npz(token_ids=IDS, padding_mask=(IDS != 0).astype("int32")),
          "m.npy": npy(np.ones((2, 2), "int32"))},
         "--input padding_mask={d}/m.npy: mask input 'padding_mask' has 2 steps",
         "give it the padded length of the inputs it masks"),
    Case("audit-input-mask-file-not-0-1",
         audit("{d}/named.npz", "--model", "{model:named}", "--input", "padding_mask={d}/m.npy"),
         {"named.npz": npz(token_ids=IDS, padding_mask=(IDS != 0).astype("int32")),
          "m.npy": npy(IDS)},
         "--input padding_mask={d}/m.npy: mask input 'padding_mask' holds 5 at sequence 0, "
         "step 0", "a padding mask holds 1 (or True) at real steps"),
    Case("trace-input-mask-file-not-0-1",
         trace("--model", "{model:named}", "{d}/named.npz", "--input", "padding_mask={d}/m.npy"),
         {"named.npz": npz(token_ids=IDS, padding_mask=(IDS != 0).astype("int32")),
          "m.npy": npy(IDS)},
         "--input padding_mask={d}/m.npy: mask input 'padding_mask' holds 5 at sequence 0, "
         "step 0", "a padding mask holds 1 (or True) at real steps"),
    Case("audit-mask-file-does-not-fit-a-named-model",
         audit("{d}/named.npz", "--model", "{model:named}", "--mask", "{d}/mask.npy"),
         {"named.npz": npz(token_ids=IDS, padding_mask=(IDS != 0).astype("int32")),
          "mask.npy": npy(np.ones((2, 4), dtype=bool))},
         "--mask {d}/mask.npy of shape (2, 4) does not fit the model's output of shape (2, 3, 3)",
         "give a (2, 3) mask"),
    Case("audit-targets-file-named-by-its-option", audit("{d}/ids.npy", "--targets", "{d}/y.npy"),
         {"ids.npy": npy(IDS), "y.npy": npy(np.ones((2, 4, 1)))},
         "--targets {d}/y.npy of shape (2, 4, 1) do not fit", "give targets of shape (2, 3, 1)"),
    Case("audit-output-unknown", audit("{d}/ids.npy", "--model", "{model:ids}", "--output", "x"),
         {"ids.npy": npy(IDS)}, "--output x: model", "drop --output"),
    Case("audit-batch-size-zero", audit("{d}/ids.npy", "--batch-size", "0"),
         {"ids.npy": npy(IDS)}, "'--batch-size'", "x>=1"),
    Case("audit-sample-larger-than-the-input", audit("{d}/ids.npy", "--sample", "5"),
         {"ids.npy": npy(IDS)}, "--sample 5: {d}/ids.npy holds only 2 sequences",
         "give --sample 2 or less, or drop --sample"),
    Case("audit-limit-and-sample", audit("{d}/ids.npy", "--limit", "1", "--sample", "1"),
         {"ids.npy": npy(IDS)}, "--limit and --sample both choose the sequences",
         "give one of them"),
    # A pipe cannot be memory-mapped nor read twice: --limit reads jsonl, csv or npy
    # from it up to the limit; an npz (its zip index is at its end) and --sample need a file.
    Case("audit-limit-npz-on-a-pipe", audit("-", "--limit", "1"), stdin=npz(inputs=IDS),
         place="--limit cannot read part of an npz from standard input",
         fix="give the npz file's path"),
    Case("audit-sample-on-a-pipe", audit("-", "--sample", "1"), stdin=b"[5, 3, 0]\n[7, 0, 0]\n",
         place="--sample reads <stdin> twice", fix="give a file path instead of standard input"),
    Case("audit-limit-jsonl-on-a-pipe-accepted", audit("-", "--limit", "2"), exit_code=0,
         stdin=b"[5, 3, 0]\n[7, 0, 0]\nnever read, so never an error\n"),
    Case("audit-sample-targets-other-sequence-count",
         audit("{d}/ids.npy", "--sample", "1", "--targets", "{d}/y.npy"),
         {"ids.npy": npy(IDS), "y.npy": npy(np.ones((5, 3, 1)))},
         "targets {d}/y.npy hold 5 rows but {d}/ids.npy holds 2 sequences",
         "give one row per sequence"),
    Case("audit-arch-larger-than-memory", audit("{d}/huge_ids.npy"),
         {"huge_ids.npy": npy(np.array([[1, 2 ** 50, 0]]))},
         "--arch embedding-lstm with --units 8: its weights would take",
         "map tokens to small ids"),
]

CASES = READERS + INSPECT_OPTIONS + TRACE + PAD + TABLES + AUDIT


# --- saved models, shared by the rows that need one ------------------------------

@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, Path]:
    """Small saved models: ``ids`` (Embedding(20) -> LSTM), ``lambda`` (a Lambda
    layer, refused by safe mode; its mask is consumed before the Lambda, so the
    trace passes), ``os_system`` (its config names ``os.system`` as an activation)."""
    from maskcli.keras.models import import_keras

    keras = import_keras()
    layers = keras.layers
    folder = tmp_path_factory.mktemp("models")

    def save(name, body):
        tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
        path = folder / f"{name}.keras"
        with warnings.catch_warnings():  # TensorFlow's own numpy deprecations, when saving
            warnings.simplefilter("ignore", DeprecationWarning)
            keras.Model(tokens, body(layers.Embedding(20, 4, mask_zero=True)(tokens))).save(path)
        return path

    def save_named(name, steps):
        """token_ids and a padding_mask handed to an LSTM as mask=."""
        tokens = keras.Input(shape=(steps,), dtype="int32", name="token_ids")
        mask = keras.Input(shape=(steps,), dtype="int32", name="padding_mask")
        hidden = layers.LSTM(3, return_sequences=True)(layers.Embedding(20, 4)(tokens),
                                                       mask=keras.ops.cast(mask, "bool"))
        path = folder / f"{name}.keras"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            keras.Model({"token_ids": tokens, "padding_mask": mask}, hidden).save(path)
        return path

    paths = {
        "named": save_named("named", None),
        "named_fixed": save_named("named_fixed", 3),
        "ids": save("ids", lambda x: layers.LSTM(3, return_sequences=True)(x)),
        "lambda": save("lambda", lambda x: layers.Dense(1)(layers.Lambda(lambda t: t * 2.0)(
            layers.GlobalAveragePooling1D()(x)))),
    }
    paths["os_system"] = folder / "os_system.keras"
    _with_activation(paths["ids"], paths["os_system"],
                     {"module": "os", "class_name": "function", "config": "system",
                      "registered_name": "function"})
    return paths


def _with_activation(source: Path, target: Path, activation: dict) -> None:
    """Copy a saved model, giving its LSTM another (serialized) activation."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for name in original.namelist():
            data = original.read(name)
            if name == "config.json":
                config = json.loads(data)
                for layer in config["config"]["layers"]:
                    if layer["class_name"] == "LSTM":
                        layer["config"]["activation"] = activation
                data = json.dumps(config).encode()
            copy.writestr(name, data)


# --- the shared check -------------------------------------------------------------

def snapshot(folder: Path) -> dict[str, str | None]:
    """Every entry in ``folder``: sha256 of a regular file, None for anything else."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            if path.is_file() and not path.is_symlink() else None
            for path in folder.iterdir()}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, tmp_path: Path, request):
    args = []
    for arg in case.args:
        if arg.startswith("{model:"):
            model = request.getfixturevalue("saved_models")[arg[7:-1]]
            arg = str(shutil.copy(model, tmp_path))
        args.append(arg.format(d=tmp_path))
    for name, payload in case.files.items():
        (tmp_path / name).write_bytes(payload() if callable(payload) else payload)
    if case.prepare:
        case.prepare(tmp_path)
    before = snapshot(tmp_path)

    result = invoke(args, input=case.stdin, exit_code=case.exit_code)

    after = snapshot(tmp_path)
    assert "Traceback" not in result.stderr
    assert {name: after.get(name) for name in before} == before, "an input file changed"
    assert sorted(set(after) - set(before)) == sorted(case.outputs), "unexpected files left"
    if case.exit_code == 2:
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert case.place.format(d=tmp_path) in line, f"the place is not named: {line}"
        assert case.fix.format(d=tmp_path) in line, f"the fix is not named: {line}"
        assert result.stdout == ""
    else:
        assert "Error:" not in result.stderr
        assert case.stderr.format(d=tmp_path) in result.stderr
        for name, expected in case.outputs.items():
            written = np.load(tmp_path / name)
            if isinstance(expected, dict):  # an npz of several fields: field -> array
                for field_name, array in expected.items():
                    np.testing.assert_array_equal(written[field_name], array)
                continue
            if name.endswith(".npz"):
                written = written["inputs"]
            np.testing.assert_array_equal(written, expected)


def test_the_catalogue_covers_the_issue():
    """At least 40 bad inputs, ids unique, every row naming a place and a fix."""
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids)
    bad = [case for case in CASES if case.exit_code == 2]
    assert len(bad) >= 40
    assert all(case.place and case.fix for case in bad)
