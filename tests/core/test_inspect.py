"""inspect-mask: the summary, the seven diagnostics, the CLI's outputs and errors."""

from __future__ import annotations

import io
import json
import math
import os
import pty
import re
import subprocess
import sys

import numpy as np
import pytest

from maskcli import MaskReport, inspect_mask
from maskcli.core.diagnose import DIAGNOSTICS, LOCATIONS
from maskcli.core.errors import InputError
from maskcli.formats.arrays import Padded
from tests.conftest import invoke, read_terminal

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POST = np.array([[1, 2, 3, 0], [4, 5, 0, 0], [6, 0, 0, 0]])
PRE = np.array([[0, 1, 2, 3], [0, 0, 4, 5], [0, 0, 0, 6]])


def npz_bytes(inputs, mask=None, value=0, padding="post", lengths=None) -> bytes:
    """An npz as ``maskcli pad`` writes it (its contract in maskcli/formats/arrays.py)."""
    inputs = np.asarray(inputs)
    real = (inputs != value) if inputs.ndim == 2 else (inputs != value).any(axis=-1)
    mask = real if mask is None else np.asarray(mask, dtype=bool)
    lengths = mask.sum(axis=1) if lengths is None else lengths
    meta = json.dumps({"padding": padding, "truncating": "pre", "value": value,
                       "maxlen": inputs.shape[1], "dtype": str(inputs.dtype)})
    buffer = io.BytesIO()
    np.savez(buffer, inputs=inputs, mask=mask, lengths=np.asarray(lengths, dtype=np.int64),
             meta=np.array(meta))
    return buffer.getvalue()


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()


def fired(data, **options) -> list[str]:
    return [d.id for d in inspect_mask(data, **options).diagnostics]


def features(real_steps: list[list[int]], width: int = 2) -> np.ndarray:
    """3-D float data: 1.0 in every feature of a real step, 0.0 elsewhere."""
    return np.repeat(np.asarray(real_steps, dtype=np.float32)[..., None], width, axis=-1)


# --- summary and padding side -------------------------------------------------

def test_summary_of_post_padded_ids():
    report = inspect_mask(POST)
    s = report.summary
    assert (s.sequences, s.timesteps, s.features) == (3, 4, None)
    assert (s.real_steps, s.padded_steps, s.padded_fraction) == (6, 6, 0.5)
    assert (s.min_length, s.median_length, s.max_length) == (1, 2.0, 3)
    assert s.padding_side == "post"
    assert report.lengths.tolist() == [3, 2, 1]
    assert report.lengths.dtype == np.int64
    assert report.mask.tolist() == (POST != 0).tolist()
    assert (report.mask_source, report.mode, report.mask_value) == ("mode", "embedding", 0)


@pytest.mark.parametrize("rows, side", [
    (POST, "post"),
    (PRE, "pre"),
    ([[1, 2], [3, 4]], "none"),  # nothing padded
    ([[1, 2, 0], [3, 4, 5], [0, 0, 0]], "post"),  # full and empty rows do not vote
    ([[0, 0], [0, 0]], "none"),
    ([[1, 0], [0, 1]], "mixed"),
    ([[0, 1, 0]], "mixed"),  # padded at both ends
    ([[1, 0, 2, 0]], "post"),  # a hole between real steps is not a side
])
def test_padding_side(rows, side):
    assert inspect_mask(np.array(rows)).summary.padding_side == side


def test_summary_of_3d_features_counts_steps_not_values():
    data = features([[1, 1, 0], [1, 0, 0]], width=3)
    report = inspect_mask(data)
    assert report.mode == "masking"
    assert report.summary.features == 3
    assert (report.summary.real_steps, report.summary.padded_steps) == (3, 3)
    assert report.lengths.tolist() == [2, 1]


def test_median_length_is_a_float():
    assert inspect_mask(np.array([[1, 0], [1, 1]])).summary.median_length == 1.5


# --- the diagnostics: each one fires on its mistake and not on clean data ------

def test_clean_post_padded_data_fires_nothing():
    assert fired(POST) == []
    assert fired(Padded(POST, "x.npz", POST != 0, (POST != 0).sum(axis=1), {"value": 0})) == []
    assert fired(features([[1, 1, 0], [1, 0, 0]])) == []


def test_clean_pre_padded_data_fires_only_pre_padding_rnn():
    assert fired(PRE) == ["pre-padding-rnn"]
    assert fired(features([[0, 1, 1], [0, 0, 1]])) == ["pre-padding-rnn"]


def test_pad_value_inside_fires_between_real_steps_only():
    report = inspect_mask(np.array([[5, 0, 3, 0], [0, 7, 0, 0], [1, 0, 0, 2]]))
    diagnostic = report.diagnostic("pad-value-inside")
    # (0, 1) and (2, 1), (2, 2): masked with real steps on both sides; the
    # trailing 0 of row 0 and both ends of row 1 are padding.
    assert diagnostic.count == 3
    assert diagnostic.locations == [(0, 1), (2, 1), (2, 2)]
    assert diagnostic.unit == "steps"
    assert "Embedding(mask_zero=True)" in diagnostic.message
    assert "pad value 0" in diagnostic.message


def test_pad_value_inside_for_whole_feature_steps():
    data = features([[1, 0, 1, 0]])
    assert inspect_mask(data).diagnostic("pad-value-inside").locations == [(0, 1)]


def test_pad_value_inside_uses_the_mask_value():
    rows = np.array([[5, 0, 3, 1], [-1, -1, 0, 2]])
    assert fired(rows) == ["pad-value-inside"]
    assert fired(rows, mask_value=-1) == ["pre-padding-rnn"]


def test_pad_value_inside_not_fired_by_a_leading_or_trailing_pad():
    assert "pad-value-inside" not in fired(np.array([[0, 0, 5, 3], [5, 3, 0, 0], [0, 5, 3, 0]]))


def test_partial_timestep():
    data = features([[1, 1, 0]], width=3)
    data[0, 1, 0] = 0.0  # one feature of a real step equals the mask value
    data[0, 2, 2] = 4.0  # one feature of a padded step is not the mask value
    diagnostic = inspect_mask(data).diagnostic("partial-timestep")
    assert (diagnostic.count, diagnostic.locations) == (2, [(0, 1), (0, 2)])
    assert "ALL" in diagnostic.message


def test_partial_timestep_silent_on_whole_steps_and_elementwise_masks():
    data = features([[1, 1, 0]], width=3)
    assert "partial-timestep" not in fired(data)
    data[0, 1, 0] = 0.0
    assert "partial-timestep" not in fired(data, mode="elementwise")


def test_non_finite():
    data = features([[1, 1, 0], [1, 0, 0]])
    data[0, 1, 0] = np.nan
    data[1, 2, :] = -np.inf
    diagnostic = inspect_mask(data).diagnostic("non-finite")
    assert (diagnostic.count, diagnostic.locations) == (2, [(0, 1), (1, 2)])
    assert "(1 of them with NaN)" in diagnostic.message
    assert "masks nothing" not in diagnostic.message


def test_non_finite_says_a_nan_mask_value_masks_nothing():
    data = np.array([[1.0, np.nan, np.nan]])
    report = inspect_mask(data, mask_value="nan")
    assert report.mask.tolist() == [[True, True, True]]  # NaN != NaN
    assert "NaN, which masks nothing" in report.diagnostic("non-finite").message


def test_non_finite_silent_on_finite_and_integer_data():
    assert "non-finite" not in fired(np.array([[1.5, 0.0]]))
    assert "non-finite" not in fired(POST)


def test_all_padding_row():
    report = inspect_mask(np.array([[1, 2], [0, 0], [3, 0], [0, 0]]))
    diagnostic = report.diagnostic("all-padding-row")
    assert (diagnostic.count, diagnostic.unit) == (2, "sequences")
    assert diagnostic.locations == [(1, None), (3, None)]
    assert report.lengths.tolist() == [2, 0, 1, 0]
    assert "all-padding-row" not in fired(POST)


def test_pre_padding_rnn_counts_rows_with_leading_padding():
    rows = np.array([[0, 1, 2], [1, 2, 0], [0, 3, 0], [4, 5, 6]])
    diagnostic = inspect_mask(rows).diagnostic("pre-padding-rnn")
    assert (diagnostic.count, diagnostic.locations) == (2, [(0, 0), (2, 0)])
    assert "post" in diagnostic.fix
    assert "pre-padding-rnn" not in fired(POST)


def test_mixed_padding_sides_lists_the_rows_off_the_common_side():
    rows = np.array([[1, 2, 0], [3, 0, 0], [0, 0, 4], [0, 5, 0]])
    diagnostic = inspect_mask(rows).diagnostic("mixed-padding-sides")
    # post is the common side; row 2 is pre-padded (at step 0) and row 3 at both ends.
    assert (diagnostic.count, diagnostic.locations) == (2, [(2, 0), (3, 0)])
    assert "1 at the front, 2 at the back, 1 at both ends" in diagnostic.message
    flipped = inspect_mask(np.array([[0, 1], [0, 2], [3, 0]])).diagnostic("mixed-padding-sides")
    assert flipped.locations == [(2, 1)]  # the post-padded row, at its first padded step


def test_mixed_padding_sides_silent_on_one_side():
    assert "mixed-padding-sides" not in fired(POST)
    assert "mixed-padding-sides" not in fired(PRE)
    assert "mixed-padding-sides" not in fired(np.array([[1, 2], [3, 0], [0, 0]]))


def test_mask_mismatch_real_token_equal_to_the_pad_value():
    inputs = np.array([[5, 0, 3, 0], [0, 2, 0, 0]])  # real 0s at (0, 1) and (1, 0)
    lengths_mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=bool)
    report = inspect_mask(inputs, mask=lengths_mask)
    assert report.mask_source == "npz"
    assert report.mask.tolist() == lengths_mask.tolist()  # the recorded mask is in effect
    diagnostic = report.diagnostic("mask-mismatch")
    assert (diagnostic.count, diagnostic.locations) == (2, [(0, 1), (1, 0)])
    assert "Embedding(mask_zero=True)" in diagnostic.message


def test_mask_mismatch_silent_when_the_mask_matches_or_is_absent():
    assert fired(POST, mask=POST != 0) == []
    assert "mask-mismatch" not in fired(np.array([[5, 0, 3, 0]]))


def test_mask_mismatch_compares_steps_when_shapes_differ():
    data = features([[1, 1, 0]], width=2)
    assert fired(data, mask=np.array([[True, True, False]])) == []
    assert fired(data, mask=np.array([[True, False, False]])) == ["mask-mismatch"]
    elementwise = np.ones((1, 3, 2), dtype=bool)
    elementwise[0, 2] = False
    assert fired(data, mask=elementwise) == []


def test_every_diagnostic_at_once_in_report_order():
    inputs = np.array([[[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]],  # partial step, hole
                       [[0.0, 0.0], [np.nan, 1.0], [2.0, 2.0]],  # pre-padded, NaN
                       [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]],  # post-padded
                       [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])  # empty
    mask = np.array([[1, 1, 1], [0, 1, 1], [1, 1, 0], [0, 0, 0]], dtype=bool)
    assert fired(inputs, mask=mask) == list(DIAGNOSTICS)


def test_locations_are_capped():
    rows = np.zeros((LOCATIONS + 3, 3), dtype=int)
    rows[:, 2] = 1
    diagnostic = inspect_mask(rows).diagnostic("pre-padding-rnn")
    assert diagnostic.count == LOCATIONS + 3
    assert len(diagnostic.locations) == LOCATIONS


# --- modes, values and sources --------------------------------------------------

def test_mode_overrides_the_npz_mask():
    inputs = np.array([[5, 0, 3, 0]])
    report = inspect_mask(inputs, mask=np.array([[1, 1, 1, 0]]), mode="embedding")
    assert report.mask_source == "mode"
    assert report.mask.tolist() == [[True, False, True, False]]
    assert "mask-mismatch" in [d.id for d in report.diagnostics]


def test_pad_value_from_meta_and_mask_value_override():
    inputs = np.array([[3, 0, 2, -1], [0, 4, -1, -1]])  # 0 is a real token, -1 the pad
    padded = Padded(inputs, "x.npz", None, None, {"value": -1})
    report = inspect_mask(padded)
    assert report.mask_value == -1
    assert report.lengths.tolist() == [3, 2]
    assert fired(padded) == []
    assert inspect_mask(padded, mask_value="0").lengths.tolist() == [3, 3]
    assert "pad-value-inside" in fired(padded, mask_value="0")


@pytest.mark.parametrize("meta_value", [float("nan"), "nan"])
def test_nan_pad_value_from_meta(meta_value):
    inputs = np.array([[[1.0], [np.nan]]])
    report = inspect_mask(Padded(inputs, "x.npz", None, None, {"value": meta_value}))
    assert math.isnan(report.mask_value)
    assert report.mask.tolist() == [[True, True]]
    assert report.to_dict()["mask_value"] == "nan"


def test_elementwise_mask_keeps_its_features():
    data = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    report = inspect_mask(data, mode="elementwise")
    assert report.mask.shape == (1, 2, 2)
    assert report.mask.tolist() == [[[True, False], [False, False]]]
    assert report.lengths.tolist() == [1]


def test_string_tokens():
    report = inspect_mask(np.array([["a", "b", "<pad>"]]), mask_value="<pad>")
    assert report.lengths.tolist() == [2]
    assert report.to_dict()["mask_value"] == "<pad>"


def test_library_reads_paths(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(npz_bytes(POST))
    report = inspect_mask(path)
    assert isinstance(report, MaskReport)
    assert (report.source, report.mask_source) == (str(path), "npz")
    assert report.to_dict() == inspect_mask(str(path)).to_dict()


# --- the CLI: formats, outputs, sources --------------------------------------------

def test_json_schema(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(npz_bytes(np.array([[1, 2, 0], [0, 0, 0]])))
    report = json.loads(invoke(["inspect-mask", path]).stdout)  # json: not a terminal
    assert set(report) == {"source", "shape", "dtype", "mask_source", "mode", "mask_value",
                           "summary", "diagnostics", "lengths"}
    assert report["shape"] == [2, 3]
    assert (report["mask_source"], report["mode"], report["mask_value"]) == ("npz", "embedding", 0)
    assert report["summary"] == {
        "sequences": 2, "timesteps": 3, "features": None, "real_steps": 2, "padded_steps": 4,
        "padded_fraction": 4 / 6, "lengths": {"min": 0, "median": 1.0, "max": 2},
        "padding_side": "post"}
    assert report["lengths"] == [2, 0]
    (diagnostic,) = report["diagnostics"]
    assert set(diagnostic) == {"id", "count", "unit", "locations", "message", "fix"}
    assert (diagnostic["id"], diagnostic["count"], diagnostic["unit"]) == (
        "all-padding-row", 1, "sequences")
    assert diagnostic["locations"] == [{"sequence": 1, "step": None}]


def test_json_stdout_stays_pure_and_warnings_go_to_stderr():
    result = invoke(["inspect-mask", "--format", "json"], input=npy_bytes(PRE))
    assert json.loads(result.stdout)["summary"]["padding_side"] == "pre"
    assert result.stderr.startswith("warning: pre-padding-rnn: padding at the front")


def test_table_shows_summary_grid_polarity_and_diagnostics():
    result = invoke(["inspect-mask", "--format", "table"], input=npy_bytes(PRE))
    out = result.stdout
    assert "padding side  pre" in out
    assert "□■■■" in out and "□□□■" in out
    assert "■ real step: mask True   □ padded step: mask False" in out
    assert "✗ pre-padding-rnn  3 sequences, first at (0, 0), (1, 0), (2, 0)" in out
    assert result.stderr == ""


def test_table_on_clean_data():
    out = invoke(["inspect-mask", "--format", "table"], input=npy_bytes(POST)).stdout
    assert "✓ no problems found" in out


@pytest.mark.parametrize("polarity, as_int, expected", [
    ("keep", False, POST != 0),
    ("ignore", False, POST == 0),
    ("keep", True, (POST != 0).astype(np.int64)),
    ("ignore", True, (POST == 0).astype(np.int64)),
])
def test_npy_to_stdout_and_to_file(tmp_path, polarity, as_int, expected):
    out = tmp_path / "mask.npy"
    args = ["inspect-mask", "--format", "npy", "-o", out, "--polarity", polarity]
    result = invoke(args + (["--as-int"] if as_int else []), input=npy_bytes(POST))
    for written in (np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False),
                    np.load(out, allow_pickle=False)):
        assert written.dtype == expected.dtype
        assert written.tolist() == expected.tolist()


def test_output_file_with_json_on_stdout(tmp_path):
    out = tmp_path / "mask.npy"
    result = invoke(["inspect-mask", "-o", out], input=npy_bytes(POST))
    assert json.loads(result.stdout)["lengths"] == [3, 2, 1]
    assert np.load(out).tolist() == (POST != 0).tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["mask.npy"]  # no temporary file left


def test_legend_states_the_written_polarity():
    out = invoke(["inspect-mask", "--format", "table", "--polarity", "ignore", "--as-int"],
                 input=npy_bytes(POST)).stdout
    assert "■ real step: mask 0   □ padded step: mask 1" in out


@pytest.mark.parametrize("use_stdin", [True, False], ids=["stdin", "path"])
@pytest.mark.parametrize("suffix, payload", [
    (".npz", npz_bytes(POST)),
    (".npy", npy_bytes(POST)),
    (".jsonl", b"[1, 2, 3, 0]\n[4, 5, 0, 0]\n[6, 0, 0, 0]\n"),
    (".csv", b"1,2,3,0\n4,5,0,0\n6,0,0,0\n"),
])
def test_inputs(tmp_path, use_stdin, suffix, payload):
    if use_stdin:
        result = invoke(["inspect-mask"], input=payload)
    else:
        path = tmp_path / f"padded{suffix}"
        path.write_bytes(payload)
        result = invoke(["inspect-mask", path])
    report = json.loads(result.stdout)
    assert report["lengths"] == [3, 2, 1]
    assert report["mask_source"] == ("npz" if suffix == ".npz" else "mode")
    assert report["diagnostics"] == []


def test_3d_jsonl_uses_masking_with_the_given_value():
    payload = b"[[1, 2], [-1, 5], [-1, -1]]\n[[3, 3], [-1, -1], [-1, -1]]\n"
    report = json.loads(invoke(["inspect-mask", "--mask-value", "-1"], input=payload).stdout)
    assert (report["mode"], report["mask_value"]) == ("masking", -1)
    assert report["lengths"] == [2, 1]
    assert [d["id"] for d in report["diagnostics"]] == ["partial-timestep"]


def test_strict_exits_1_when_a_diagnostic_fires():
    assert json.loads(invoke(["inspect-mask", "--strict"], input=npy_bytes(PRE),
                             exit_code=1).stdout)["summary"]["sequences"] == 3
    invoke(["inspect-mask", "--strict"], input=npy_bytes(POST), exit_code=0)
    invoke(["inspect-mask"], input=npy_bytes(PRE), exit_code=0)


def test_rows_limits_the_grid():
    rows = np.array([[1, 0]] * 30)
    out = invoke(["inspect-mask", "--format", "table", "--rows", "3"], input=npy_bytes(rows)).stdout
    assert out.count("■□") == 3
    assert "… 27 more sequences (--rows 30 shows them all)" in out
    default = invoke(["inspect-mask", "--format", "table"], input=npy_bytes(rows)).stdout
    assert default.count("■□") == 20
    none = invoke(["inspect-mask", "--format", "table", "--rows", "0"],
                  input=npy_bytes(rows)).stdout
    assert "■□" not in none and "padding side  post" in none


def test_svg(tmp_path):
    svg = tmp_path / "mask.svg"
    result = invoke(["inspect-mask", "--svg", svg, "--format", "json"], input=npy_bytes(PRE))
    json.loads(result.stdout)  # the display went to the SVG only
    text = svg_text(svg)
    assert text.startswith("<svg") and "pre-padding-rnn" in text
    assert "■" in text and "□" in text


def test_svg_of_the_table(tmp_path):
    svg = tmp_path / "mask.svg"
    result = invoke(["inspect-mask", "--svg", svg, "--format", "table"], input=npy_bytes(POST))
    assert "no problems found" in result.stdout and "no problems found" in svg_text(svg)


def svg_text(path) -> str:
    return path.read_text().replace("&#160;", " ")  # rich writes spaces as &#160;


# --- errors: exit 2, one Error: line ---------------------------------------------

@pytest.mark.parametrize("args, payload, expected", [
    (["missing.npz"], None, "no such file"),
    (["--mask-value", "abc"], npy_bytes(POST), "--mask-value 'abc' is not a number"),
    ([], npz_bytes(POST, mask=POST != 0, value="<pad>"),
     "the pad value '<pad>' in 'meta' is not a number: give the pad value with --mask-value"),
    (["--mode", "masking"], npy_bytes(POST), "needs 3-D data"),
    (["--mode", "embedding"], npy_bytes(np.zeros((2, 3, 2))), "needs 2-D token ids"),
    (["--mode", "lstm"], npy_bytes(POST), "Invalid value for '--mode'"),
    (["--rows", "-1"], npy_bytes(POST), "Invalid value for '--rows'"),
    ([], npy_bytes(np.arange(4)), "expected 2-D token ids"),
    ([], npy_bytes(np.zeros((0, 4))), "holds no sequences"),
    ([], b"", "is empty"),
    ([], b"[1, 2]\n[3]\n", "the data is not padded"),
    ([], npz_bytes(POST, mask=np.ones((3, 5))),
     "does not fit the inputs of shape (3, 4): give a (3, 4) (sequences, steps) mask"),
])
def test_errors(args, payload, expected):
    result = invoke(["inspect-mask", *args], input=payload, exit_code=2)
    assert expected in result.stderr
    assert result.stdout == ""


def test_output_over_the_input_is_refused(tmp_path):
    path = tmp_path / "mask.npy"
    path.write_bytes(npy_bytes(POST))
    for option in ("-o", "--svg"):
        result = invoke(["inspect-mask", path, option, path], exit_code=2)
        assert "is the input file itself" in result.stderr
    assert np.load(path).tolist() == POST.tolist()


def test_output_and_svg_to_the_same_file(tmp_path):
    out = tmp_path / "x"
    result = invoke(["inspect-mask", "-o", out, "--svg", out], input=npy_bytes(POST), exit_code=2)
    assert "both name" in result.stderr
    assert not out.exists()


def test_output_into_a_missing_folder(tmp_path):
    result = invoke(["inspect-mask", "-o", tmp_path / "no" / "mask.npy"], input=npy_bytes(POST),
                    exit_code=2)
    assert "does not exist" in result.stderr


# --- in a real process: terminal defaults and fast start ---------------------------

def run_in_terminal(*args) -> tuple[int, str]:
    """Run ``python -m maskcli`` with standard output on a pseudo-terminal."""
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "maskcli", *map(str, args)], cwd=ROOT,
                            stdout=child_fd, stderr=child_fd, stdin=subprocess.DEVNULL, env=env)
    os.close(child_fd)
    shown = read_terminal(main_fd)
    return proc.wait(timeout=60), shown


def test_terminal_gets_the_table_and_refuses_binary(tmp_path):
    path = tmp_path / "padded.npy"
    path.write_bytes(npy_bytes(PRE))
    code, out = run_in_terminal("inspect-mask", path)
    assert code == 0, out
    assert "■ real step: mask True" in out and "\x1b[3" not in out  # NO_COLOR: glyphs only
    code, out = run_in_terminal("inspect-mask", path, "--format", "npy")
    assert code == 2, out
    assert "Error: --format npy writes binary data" in out


def test_inspect_mask_imports_neither_tensorflow_nor_keras(tmp_path):
    path = tmp_path / "padded.npz"
    path.write_bytes(npz_bytes(POST))
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom maskcli.cli import main\n"
        "def run(fmt):\n"
        f"    r = CliRunner().invoke(main, ['inspect-mask', {str(path)!r}, '--format', fmt])\n"
        "    assert r.exit_code == 0, r.output\n"
        "    return sorted(m for m in ('tensorflow', 'keras', 'rich') if m in sys.modules)\n"
        "print(run('json'), run('table'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    # rich only once the table is drawn; TensorFlow and Keras never.
    assert proc.stdout.strip() == "[] ['rich']"


def test_with_polarity_refuses_an_unknown_polarity():
    from maskcli.core.errors import UsageError
    from maskcli.core.masks import with_polarity

    with pytest.raises(UsageError, match="unknown polarity 'pytorch': use one of keep, ignore"):
        with_polarity(np.array([True]), "pytorch")


PAGE = os.path.join(ROOT, "docs", "inspect-mask.md")


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def test_the_page_documents_the_command_its_options_and_every_diagnostic():
    section = _read(PAGE)
    for option in ("--mode", "--mask-value", "--format", "-o FILE", "--polarity", "--as-int",
                   "--rows", "--strict", "--svg", "--field NAME"):
        assert option in section, option
    for diagnostic in DIAGNOSTICS:
        assert f"| `{diagnostic}` |" in section, diagnostic


def test_the_page_example_display_is_what_the_command_prints():
    example = _read(PAGE).split("## Example", 1)[1]
    data = example.split("printf '", 1)[1].split("'", 1)[0].replace("\\n", "\n")
    shown = example.split("```text\n", 1)[1].split("```", 1)[0]
    result = invoke(["inspect-mask", "--format", "table"], input=data, env={"COLUMNS": "92"})
    printed = "\n".join(line.rstrip() for line in result.stdout.splitlines()) + "\n"
    assert printed == shown.replace("padded.jsonl  ", "<stdin>  ", 1)


def _shell_lines(section: str) -> list[str]:
    """The command lines of the ```sh blocks of a page or section, comments cut."""
    blocks = [block.split("```", 1)[0] for block in section.split("```sh\n")[1:]]
    lines = [line.removeprefix(".venv/bin/") for block in blocks for line in block.splitlines()]
    return [line.split("  #")[0].strip() for line in lines
            if line.startswith(("maskcli", "printf", "cat", "python -c "))]


def test_the_page_examples_run(tmp_path):
    """Every line of docs/inspect-mask.md's examples runs, from a folder where
    the README tour's first line and docs/pad.md's lines have made the files they name."""
    readme = _read(os.path.join(ROOT, "README.md"))
    tour = [line for line in _shell_lines(readme.split("## A tour", 1)[1].split("\n## ", 1)[0])
            if line.startswith("maskcli pad")][:1]
    pad = [line for line in _shell_lines(_read(os.path.join(ROOT, "docs", "pad.md")))
           if "maskcli pad" in line or line.startswith("python -c ")]
    lines = _shell_lines(_read(PAGE))
    assert len(lines) >= 10 and tour
    bin_dir, work = tmp_path / "bin", tmp_path / "work"
    bin_dir.mkdir()
    work.mkdir()
    for name, command in (("maskcli", f'"{sys.executable}" -m maskcli'),
                          ("python", f'"{sys.executable}"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (bin_dir / name).chmod(0o755)
    os.symlink(os.path.join(ROOT, "sample_data"), work / "sample_data")
    setup = "".join(f"{line} > /dev/null 2>&1\n" for line in tour + pad)
    script = setup + "".join(f"{line}{'' if '>' in line else ' > /dev/null'}\n"
                             "echo \"rc=$?\" >&2\n" for line in lines)
    env = {**os.environ, "PYTHONPATH": ROOT, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=300)
    codes = [line for line in proc.stderr.splitlines() if line.startswith("rc=")]
    assert codes == ["rc=0"] * len(lines), f"{lines}\n{proc.stderr}"


def test_a_closed_pipe_ends_the_display_quietly(tmp_path):
    path = tmp_path / "padded.npy"
    path.write_bytes(npy_bytes(np.ones((3000, 60), dtype=int)))  # more than a pipe buffers
    with subprocess.Popen(
            [sys.executable, "-m", "maskcli", "inspect-mask", path, "--format", "table",
             "--rows", "3000"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        proc.stdout.read(100)
        proc.stdout.close()  # as `| head` does
        assert proc.wait(timeout=60) == 0
        assert proc.stderr.read() == b""


@pytest.mark.parametrize("mask, message", [
    (np.ones((1, 3), dtype=bool), "mask of shape (1, 3) does not fit the inputs of shape (1, 4)"),
    (np.array([[1, 2, 0, 0]]), "mask holds values other than 0/1 or True/False"),
])
def test_a_library_mask_must_fit_and_be_boolean(mask, message):
    with pytest.raises(InputError, match=re.escape(message)):
        inspect_mask(np.array([[5, 3, 0, 0]]), mask=mask)
