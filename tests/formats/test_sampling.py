"""Reading part of an input (--limit, --sample): the same rows from every
format, deterministic, and read without loading the rest (by memory, and by
what gets parsed)."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

from maskcli.core.errors import InputError, UsageError
from maskcli.formats.sampling import Selection, load_array_part, load_padded_part

RNG = np.random.default_rng(0)
INPUTS = np.where(np.arange(7) < RNG.integers(1, 8, 60)[:, None], RNG.integers(1, 50, (60, 7)), 0)
TARGETS = RNG.standard_normal((60, 7, 2)).astype(np.float32)
META = np.array(json.dumps({"padding": "post", "truncating": "post", "value": 0, "maxlen": 7,
                            "dtype": "int64"}))


def write_all(folder) -> dict[str, str]:
    """The same data as npy, stored npz, compressed npz, Fortran npy, jsonl and csv."""
    paths = {name: str(folder / name) for name in
             ("x.npy", "x.npz", "xc.npz", "xf.npy", "x.jsonl", "x.csv")}
    np.save(paths["x.npy"], INPUTS)
    arrays = {"inputs": INPUTS, "mask": INPUTS != 0, "lengths": (INPUTS != 0).sum(axis=1),
              "meta": META, "targets": TARGETS}
    np.savez(paths["x.npz"], **arrays)
    np.savez_compressed(paths["xc.npz"], **arrays)
    np.save(paths["xf.npy"], np.asfortranarray(INPUTS))
    with open(paths["x.jsonl"], "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in INPUTS.tolist())
    with open(paths["x.csv"], "w") as handle:
        handle.writelines(",".join(map(str, row)) + "\n" for row in INPUTS.tolist())
    return paths


@pytest.mark.parametrize("selection", [Selection(limit=5), Selection(sample=9, seed=4),
                                       Selection(limit=100)], ids=["limit", "sample", "limit-all"])
def test_every_format_gives_the_same_rows(tmp_path, selection):
    expected = selection.rows(60, "x")
    for name, path in write_all(tmp_path).items():
        part = load_padded_part(path, selection)
        np.testing.assert_array_equal(part.rows, expected, err_msg=name)
        np.testing.assert_array_equal(part.padded.inputs, INPUTS[expected], err_msg=name)
        assert part.total == 60, name
        if name.endswith(".npz"):
            np.testing.assert_array_equal(part.padded.mask, INPUTS[expected] != 0)
            np.testing.assert_array_equal(part.padded.lengths, (INPUTS[expected] != 0).sum(1))
            np.testing.assert_array_equal(part.padded.extra["targets"], TARGETS[expected])
            assert part.padded.meta["value"] == 0
        # targets in another file are cut to the same rows, whatever their format
        np.testing.assert_array_equal(
            load_array_part(str(tmp_path / "xc.npz"), part, "targets", "targets"),
            TARGETS[expected])


def test_the_sample_is_seeded_sorted_and_without_repeats():
    rows = Selection(sample=20, seed=7).rows(60, "x")
    assert rows.tolist() == sorted(set(rows.tolist())) and len(rows) == 20
    np.testing.assert_array_equal(rows, Selection(sample=20, seed=7).rows(60, "x"))
    assert rows.tolist() != Selection(sample=20, seed=8).rows(60, "x").tolist()
    assert Selection(sample=20).describe(20, 60) == "a random sample of 20 of 60 sequences (--seed 0)"
    assert Selection(limit=5).describe(5, None) == ("the first 5 sequences (the rest of the input "
                                                    "was not read)")


def test_only_the_chosen_lines_are_parsed(tmp_path):
    # Lines 5 on are not even text: a limit of 3 never parses them (the
    # whole-file reader would stop at line 5); a limit of 4 reaches them.
    path = tmp_path / "tail.jsonl"
    path.write_bytes(b"[1, 0]\n\n[2, 3]\n[4, 0]\n" + b"not json\xff\n" * 50)
    part = load_padded_part(str(path), Selection(limit=3))
    assert part.padded.inputs.tolist() == [[1, 0], [2, 3], [4, 0]]
    assert part.total == 53  # the rest is counted, not parsed
    with pytest.raises(InputError, match=r"tail.jsonl, line 5: not UTF-8 text"):
        load_padded_part(str(path), Selection(limit=4))


def big_inputs() -> np.ndarray:
    return np.arange(200_000 * 64, dtype=np.int32).reshape(200_000, 64) % 1000 + 1  # 51 MB


@pytest.mark.parametrize("kind", ["npy", "stored npz", "compressed npz", "jsonl"])
@pytest.mark.parametrize("selection", [Selection(limit=10), Selection(sample=10, seed=1)],
                         ids=["limit", "sample"])
def test_reading_a_part_stays_small_in_memory(tmp_path_factory, kind, selection):
    folder = tmp_path_factory.getbasetemp() / "big"
    folder.mkdir(exist_ok=True)
    inputs = None
    path = folder / {"npy": "x.npy", "stored npz": "x.npz", "compressed npz": "xc.npz",
                     "jsonl": "x.jsonl"}[kind]
    if not path.exists():
        inputs = big_inputs()
        if kind == "npy":
            np.save(path, inputs)
        elif kind == "stored npz":
            np.savez(path, inputs=inputs, mask=inputs != 0)
        elif kind == "compressed npz":
            np.savez_compressed(path, inputs=inputs, mask=inputs != 0)
        else:
            with open(path, "w") as handle:
                handle.writelines(json.dumps(row) + "\n" for row in inputs[:20_000].tolist())
    tracemalloc.start()
    try:
        part = load_padded_part(str(path), selection)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected = big_inputs()[part.rows]
    np.testing.assert_array_equal(part.padded.inputs, expected)
    assert part.total == (20_000 if kind == "jsonl" else 200_000)
    # The whole input is 51 MB (jsonl: 5 MB of text); a part of 10 rows stays
    # within a few streamed chunks of 1 MiB, or far below.
    limit = 4 << 20 if kind == "compressed npz" else 1 << 20
    assert peak < limit, f"{kind}: peak {peak / 2**20:.1f} MiB"


def test_limit_on_standard_input_reads_up_to_the_limit(monkeypatch):
    import sys

    data = b"[1, 0]\n[2, 3]\n[4, 0]\n" + b"not read\n" * 100_000
    stream = io.BytesIO(data)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream))
    part = load_padded_part("-", Selection(limit=2))
    assert part.padded.inputs.tolist() == [[1, 0], [2, 3]] and part.total is None
    assert stream.tell() <= 8192 < len(data)  # past what sniffing peeks at, nothing was read

    buffer = io.BytesIO()
    np.save(buffer, INPUTS)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(buffer.getvalue())))
    part = load_padded_part("-", Selection(limit=3))
    np.testing.assert_array_equal(part.padded.inputs, INPUTS[:3])
    assert part.total == 60  # an npy's header says how many


@pytest.mark.parametrize("data, selection, error, message", [
    ("npz", Selection(limit=2), UsageError, "cannot read part of an npz from standard input"),
    ("jsonl", Selection(sample=2), UsageError, "--sample reads <stdin> twice"),
], ids=["npz-pipe", "sample-pipe"])
def test_standard_input_that_cannot_be_read_in_part(monkeypatch, data, selection, error, message):
    import sys

    buffer = io.BytesIO()
    if data == "npz":
        np.savez(buffer, inputs=INPUTS)
    else:
        buffer.write(b"[1, 0]\n[2, 3]\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(buffer.getvalue())))
    with pytest.raises(error, match=message):
        load_padded_part("-", selection)


def test_errors_name_the_file_and_the_fix(tmp_path):
    paths = write_all(tmp_path)
    with pytest.raises(InputError, match=r"--sample 61: .*x.npy holds only 60 sequences: give "
                                         r"--sample 60 or less"):
        load_padded_part(paths["x.npy"], Selection(sample=61))
    with pytest.raises(UsageError, match="--limit and --sample both choose the sequences"):
        Selection(limit=1, sample=1)
    with pytest.raises(UsageError, match="--limit must be at least 1, got 0"):
        Selection(limit=0)
    part = load_padded_part(paths["x.npy"], Selection(limit=5))
    np.save(tmp_path / "short.npy", TARGETS[:50])
    with pytest.raises(InputError, match=r"targets short.npy hold 50 rows but .*x.npy holds 60 "
                                         "sequences: give one row per sequence"):
        load_array_part(str(tmp_path / "short.npy"), part, "targets", "targets short.npy")
    np.savez(tmp_path / "odd.npz", inputs=INPUTS, mask=(INPUTS != 0)[:10])
    with pytest.raises(InputError, match=r"'mask' holds 10 rows but 'inputs' holds 60"):
        load_padded_part(str(tmp_path / "odd.npz"), Selection(limit=5))
    np.savez(tmp_path / "other.npz", tokens=INPUTS)
    with pytest.raises(InputError, match=r"has no 'inputs' array \(it has: tokens\)"):
        load_padded_part(str(tmp_path / "other.npz"), Selection(limit=5))


def test_damaged_files_are_input_errors(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, INPUTS)
    (tmp_path / "cut.npy").write_bytes(buffer.getvalue()[:300])
    with pytest.raises(InputError, match="it is truncated"):
        load_padded_part(str(tmp_path / "cut.npy"), Selection(limit=5))
    objects = io.BytesIO()
    np.save(objects, np.array([[1, 2], [3]], dtype=object), allow_pickle=True)
    (tmp_path / "objects.npy").write_bytes(objects.getvalue())
    with pytest.raises(InputError, match="holds pickled Python objects"):
        load_padded_part(str(tmp_path / "objects.npy"), Selection(limit=1))
    packed = io.BytesIO()
    np.savez_compressed(packed, inputs=INPUTS)
    with zipfile.ZipFile(io.BytesIO(packed.getvalue())) as archive:
        compressed = archive.getinfo("inputs.npy").compress_size
    (tmp_path / "cut.npz").write_bytes(packed.getvalue()[:compressed // 2 + 60])
    with pytest.raises(InputError, match="cut.npz is not a valid npz file"):
        load_padded_part(str(tmp_path / "cut.npz"), Selection(limit=5))
    (tmp_path / "bad.jsonl").write_bytes(b"[1, 2]\n[\xe9, 0]\n")
    with pytest.raises(InputError, match=r"bad.jsonl, line 2: not UTF-8 text"):
        load_padded_part(str(tmp_path / "bad.jsonl"), Selection(limit=2))
    (tmp_path / "ragged.jsonl").write_text("[1, 2]\n[3]\n")
    with pytest.raises(InputError, match=r"ragged.jsonl, line 2: row shape \(1,\) differs"):
        load_padded_part(str(tmp_path / "ragged.jsonl"), Selection(sample=2))


# -- random and damaged bytes: a result or a clean error, never a traceback ------------

def _saved(save, **arrays) -> bytes:
    buffer = io.BytesIO()
    save(buffer, **arrays) if arrays else save(buffer, INPUTS[:4])
    return buffer.getvalue()


def _damaged(original: bytes):
    from hypothesis import strategies as st

    return st.tuples(st.integers(0, len(original)), st.binary(max_size=24),
                     st.integers(0, len(original))).map(
        lambda t: (original[:t[0]] + t[1] + original[t[0] + len(t[1]):])[:t[2]])


def test_damaged_inputs_read_in_part_give_clean_errors(tmp_path_factory):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from maskcli.core.errors import MaskcliError

    folder = tmp_path_factory.mktemp("damaged")
    payloads = st.one_of(
        st.binary(max_size=200), _damaged(_saved(np.save)),
        _damaged(_saved(np.savez, inputs=INPUTS[:4], mask=INPUTS[:4] != 0, meta=META)),
        _damaged(_saved(np.savez_compressed, inputs=INPUTS[:4], targets=TARGETS[:4])),
        _damaged(b"[1, 2, 0]\n[3, 0, 0]\n\n[4, 5, 6]\n"))

    @given(data=payloads, name=st.sampled_from(["x", "x.npy", "x.npz", "x.jsonl", "x.csv"]),
           selection=st.sampled_from([Selection(limit=2), Selection(sample=2, seed=1)]))
    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    def check(data, name, selection):
        path = folder / name
        path.write_bytes(data)
        try:
            part = load_padded_part(str(path), selection)
        except MaskcliError:
            return
        assert part.padded.inputs.dtype.kind in "biufUS"
        assert len(part.padded.inputs) == len(part.rows) <= 2

    check()
