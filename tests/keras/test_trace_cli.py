"""``maskcli trace-mask``: built-in and saved models, JSON, table, exit status, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

from maskcli.keras.models import import_keras, import_user_code
from tests.conftest import invoke

pytestmark = pytest.mark.filterwarnings("ignore:.*will therefore destroy the mask")

keras = import_keras()
CUSTOM_LAYERS = '''
import keras


@keras.saving.register_keras_serializable(package="maskcli_test")
class ForgetfulScale(keras.layers.Layer):
    """Keeps the time axis but never sets supports_masking."""

    def call(self, x):
        return x * 2.0


@keras.saving.register_keras_serializable(package="maskcli_test")
class TinyTagger(keras.Model):
    """A subclassed tagger whose attention gets no mask."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embed = keras.layers.Embedding(20, 4)
        self.att = keras.layers.MultiHeadAttention(2, 2)
        self.tags = keras.layers.Dense(3)

    def call(self, ids):
        x = self.embed(ids)
        return self.tags(self.att(x, x))
'''
ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "trace-mask.md"


def forget_custom_layers():
    """Make Keras forget the test's custom layer, as a fresh process would."""
    for name in ("ForgetfulScale", "TinyTagger"):
        keras.saving.get_custom_objects().pop(f"maskcli_test>{name}", None)
    sys.modules.pop("maskcli_user_custom_layers", None)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Saved models: one with a registered custom layer, one with a Lambda
    (refused by safe mode), one whose Embedding creates no mask."""
    folder = tmp_path_factory.mktemp("models")
    layers_py = folder / "custom_layers.py"
    layers_py.write_text(CUSTOM_LAYERS)
    import_user_code([str(layers_py)])
    scale = sys.modules["maskcli_user_custom_layers"].ForgetfulScale
    tagger = sys.modules["maskcli_user_custom_layers"].TinyTagger(name="tiny_tagger")
    L = keras.layers

    def save(name, body):
        x = keras.Input(shape=(None,), dtype="int32", name="tokens")
        path = folder / f"{name}.keras"
        with warnings.catch_warnings():  # TensorFlow's own numpy 2 deprecation, when saving
            warnings.simplefilter("ignore", DeprecationWarning)
            keras.Model(x, L.Dense(1, name="out")(body(x)), name=name).save(path)
        return path

    paths = {
        "custom": save("custom", lambda x: scale(name="scale")(
            L.Embedding(20, 4, mask_zero=True, name="embedding")(x))),
        "lambda": save("lambda", lambda x: L.Lambda(lambda t: t * 2.0, name="double")(
            L.Embedding(20, 4, mask_zero=True, name="embedding")(x))),
        "plain": save("plain", lambda x: L.Embedding(20, 4, name="embedding")(x)),
        "layers_py": layers_py,
        "subclassed": folder / "subclassed.keras",
    }
    tagger(np.array([[1, 2, 0]]))  # builds it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tagger.save(paths["subclassed"])
    forget_custom_layers()
    yield paths
    forget_custom_layers()


def trace_json(args, exit_code=0, input=None):
    result = invoke(["trace-mask", *args], input=input, exit_code=exit_code)
    return json.loads(result.stdout), result.stderr


def statuses(report):
    return [(row["path"], row["status"]) for row in report["layers"]]


def save_npz(path, inputs, pad_value=0, **extra):
    meta = json.dumps({"padding": "post", "truncating": "post", "value": pad_value,
                       "maxlen": inputs.shape[1], "dtype": str(inputs.dtype)})
    np.savez(path, inputs=inputs, meta=np.array(meta), **extra)
    return path


def test_builtin_embedding_conv_leaks():
    report, stderr = trace_json(["--arch", "embedding-conv"], exit_code=1)
    assert statuses(report) == [("embedding", "creates"), ("conv1d", "drops"), ("output", "none")]
    assert report["leak"] == "layer 'conv1d' (Conv1D) drops the mask"
    assert report["ok"] is False
    assert "mask leak: layer 'conv1d' (Conv1D) drops the mask" in stderr


def test_builtin_embedding_lstm_keeps_the_mask():
    report, stderr = trace_json(["--arch", "embedding-lstm", "--units", "3", "--seed", "5"])
    assert statuses(report) == [("embedding", "creates"), ("lstm", "propagates"),
                                ("output", "propagates")]
    assert report["leak"] is None and report["ok"] is True
    assert "mask ok" in stderr


def test_json_schema():
    report, _ = trace_json(["--arch", "embedding-conv"], exit_code=1)
    assert list(report) == ["model", "inputs", "synthetic", "padded", "mask_inputs",
                            "explicit_mask", "layers", "leak", "enters", "padding_check", "ok",
                            "versions"]
    assert report["mask_inputs"] == [] and report["explicit_mask"] is None
    assert report["enters"] == "conv1d"
    assert report["padding_check"] == {"measured": True, "extra_steps": 4, "sides": ["post"],
                                       "rtol": 1e-5, "note": None}
    assert report["model"] == "embedding-conv"
    assert report["inputs"] == [{"name": "tokens", "shape": [3, 6], "dtype": "int32"}]
    assert report["synthetic"] is True and report["padded"] is True
    assert set(report["versions"]) == {"keras", "tensorflow"}
    conv = report["layers"][1]
    assert conv == {"name": "conv1d", "path": "conv1d", "class": "Conv1D", "kind": "layer",
                    "depth": 0, "mask_in": True, "mask_out": False, "status": "drops",
                    "fix": conv["fix"], "time_axis": True, "is_output": False,
                    "padding_effect": conv["padding_effect"], "padding": "enters",
                    "padding_fix": conv["padding_fix"]}
    assert "mask=" in conv["fix"]
    assert conv["padding_effect"] > 1e-3 and "a convolution over time" in conv["padding_fix"]
    assert [row["padding"] for row in report["layers"]] == ["ignored", "enters", "inherited"]
    assert report["layers"][0]["padding_effect"] == 0.0


def test_transformer_unmasked_names_the_attention():
    report, stderr = trace_json(["--arch", "transformer-unmasked"], exit_code=1)
    assert [(row["path"], row["padding"]) for row in report["layers"]] == [
        ("embedding", "ignored"), ("norm", "ignored"), ("attention", "enters"),
        ("residual", "inherited"), ("feed_forward", "inherited"), ("output", "inherited")]
    assert report["enters"] == "attention" and report["ok"] is False
    assert "pass attention_mask" in report["layers"][2]["padding_fix"]
    assert ("padding enters at layer 'attention' (MultiHeadAttention): attention with no mask "
            "reaching it") in stderr
    assert "mask leak: the model's output from layer 'output' (Dense) carries no mask" in stderr


def test_transformer_ignores_padding_on_either_side(tmp_path):
    report, stderr = trace_json(["--arch", "transformer", "--seed", "3"])
    assert statuses(report) == [("embedding", "creates"), ("norm", "propagates"),
                                ("attention", "propagates"), ("residual", "propagates"),
                                ("feed_forward", "propagates"), ("output", "propagates")]
    assert {row["padding"] for row in report["layers"]} == {"ignored"}
    assert report["enters"] is None and report["ok"] is True
    assert "padding ok: 4 more padding steps change no layer's output at real steps" in stderr
    pre = tmp_path / "pre.jsonl"
    pre.write_text("[0, 0, 5, 3]\n[0, 7, 1, 2]\n[4, 4, 4, 4]\n")
    report, _ = trace_json(["--arch", "transformer", pre])
    assert report["padding_check"]["sides"] == ["pre"] and report["enters"] is None


def test_padding_column_and_its_note_in_the_table():
    result = invoke(["trace-mask", "--arch", "transformer-unmasked", "--format", "table"],
                    exit_code=1)
    text = " ".join(result.stdout.split())
    assert "padding effect" in text
    row = next(line for line in result.stdout.splitlines() if "attention" in line)
    assert "enters [1]" in row and "none" in row
    assert "[1] attention (row 3): padding enters here: attention with no mask" in text
    cells = {line.split("│")[2].strip(): line.split("│")[-2].strip()
             for line in result.stdout.splitlines() if line.startswith("│ ") and line[2] != " "}
    assert cells["embedding"] == "0" and cells["residual"].endswith(" inherited")
    assert "padding enters at layer 'attention'" in result.stderr
    assert "padding enters at layer" not in result.stdout


def test_a_subclassed_model_needs_input_and_is_traced_by_its_sub_layers(saved, tmp_path):
    args = ["--model", saved["subclassed"], "--import", saved["layers_py"]]
    forget_custom_layers()
    result = invoke(["trace-mask", *args], exit_code=2)
    assert "a subclassed model has no input shape" in result.stderr and "give INPUT" in result.stderr
    ids = tmp_path / "ids.jsonl"
    ids.write_text("[1, 2, 3, 0]\n[4, 5, 0, 0]\n[6, 7, 8, 9]\n")
    forget_custom_layers()
    report, stderr = trace_json([*args, ids], exit_code=1)
    assert [(row["path"], row["padding"]) for row in report["layers"]] == [
        ("embed", "ignored"), ("att", "enters"), ("tags", "inherited")]
    assert report["inputs"] == [{"name": "inputs", "shape": [3, 4], "dtype": "int64"}]
    assert "sub-layers are compared in the order they were called" in report["padding_check"]["note"]
    assert "padding enters at layer 'att' (MultiHeadAttention)" in stderr


def test_table_on_request():
    result = invoke(["trace-mask", "--arch", "embedding-conv", "--format", "table"], exit_code=1)
    lines = result.stdout.splitlines()
    assert any("conv1d" in line and "Conv1D" in line and "drops [1]" in line for line in lines)
    assert any("embedding" in line and "creates" in line for line in lines)
    assert "synthetic padded batch: tokens (3, 6) int32" in result.stdout
    assert "[1] conv1d (row 2): use a mask-aware layer" in " ".join(result.stdout.split())
    assert "mask leak" in result.stderr and "mask leak" not in result.stdout


def test_masking_lstm_on_an_npz_sample(tmp_path):
    features = np.random.default_rng(0).standard_normal((70, 5, 2)).astype("float32")
    features[::2, 3:] = -1.0
    path = save_npz(tmp_path / "x.npz", features, pad_value=-1.0)
    report, _ = trace_json(["--arch", "masking-lstm", path])
    assert report["synthetic"] is False and report["padded"] is True
    assert report["inputs"] == [{"name": "features", "shape": [64, 5, 2], "dtype": "float32"}]
    assert statuses(report) == [("masking", "creates"), ("lstm", "propagates"),
                                ("output", "propagates")]


def test_standard_input_with_a_dash():
    ids = "[3, 1, 0, 0]\n[2, 2, 2, 0]\n"
    report, _ = trace_json(["--arch", "embedding-dense", "-"], input=ids)
    assert report["inputs"] == [{"name": "tokens", "shape": [2, 4], "dtype": "int64"}]
    assert statuses(report)[0] == ("embedding", "creates")


def test_saved_model_with_a_custom_layer_needs_import(saved):
    forget_custom_layers()
    result = invoke(["trace-mask", "--model", saved["custom"]], exit_code=2)
    assert "--import" in result.stderr
    report, stderr = trace_json(["--model", saved["custom"], "--import", saved["layers_py"]],
                                exit_code=1)
    assert statuses(report) == [("embedding", "creates"), ("scale", "drops"), ("out", "none")]
    assert report["layers"][1]["class"] == "ForgetfulScale"
    assert "supports_masking = True" in report["layers"][1]["fix"]
    assert "layer 'scale' (ForgetfulScale) drops the mask" in stderr


def test_lambda_model_needs_unsafe(saved):
    result = invoke(["trace-mask", "--model", saved["lambda"]], exit_code=2)
    assert "--unsafe" in result.stderr
    report, stderr = trace_json(["--model", saved["lambda"], "--unsafe"], exit_code=1)
    assert "Warning: --unsafe" in stderr
    assert statuses(report) == [("embedding", "creates"), ("double", "drops"), ("out", "none")]


def test_output_without_a_mask_fails_only_on_padded_input(saved, tmp_path):
    report, stderr = trace_json(["--model", saved["plain"]], exit_code=1)
    assert statuses(report) == [("embedding", "none"), ("out", "none")]
    assert "carries no mask: no layer creates one" in stderr
    padded = tmp_path / "padded.jsonl"
    padded.write_text("[1, 2, 0]\n[4, 0, 0]\n")
    trace_json(["--model", saved["plain"], padded], exit_code=1)
    unpadded = tmp_path / "full.jsonl"
    unpadded.write_text("[1, 2, 3]\n[4, 5, 6]\n")
    report, stderr = trace_json(["--model", saved["plain"], unpadded])
    assert report["padded"] is False and report["leak"] is None
    assert "has no padded step" in stderr


def test_npz_mask_and_pad_value_decide_padding(saved, tmp_path):
    ids = np.array([[1, 2, 7], [4, 7, 7]])
    trace_json(["--model", saved["plain"], save_npz(tmp_path / "a.npz", ids, pad_value=7)],
               exit_code=1)
    trace_json(["--model", saved["plain"], "--pad-value", "9", tmp_path / "a.npz"])
    full = save_npz(tmp_path / "b.npz", ids, pad_value=7, mask=np.ones((2, 3), bool))
    trace_json(["--model", saved["plain"], full])


@pytest.mark.parametrize("args, message", [
    ([], "no model: give --model FILE.keras or --arch NAME"),
    (["--arch", "embedding-lstm", "--model", "m.keras"], "--model and --arch exclude each other"),
    (["--arch", "nope"], "Invalid value for '--arch': 'nope' is not one of 'embedding-lstm'"),
    (["--arch", "embedding-lstm", "--unsafe"], "--unsafe applies to --model only"),
    (["--model", "missing.keras"], "--model missing.keras: no such file"),
    (["--arch", "embedding-lstm", "--pad-value", "x"], "'x' is not a number"),
    (["--arch", "embedding-lstm", "missing.npy"], "missing.npy: no such file"),
    (["--arch", "embedding-lstm", "--format", "csv"], "Invalid value for '--format'"),
])
def test_usage_errors(args, message):
    result = invoke(["trace-mask", *args], exit_code=2)
    assert message in result.stderr


def test_data_that_does_not_fit_the_model(saved, tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4), "float32"))
    result = invoke(["trace-mask", "--model", saved["plain"], tmp_path / "cube.npy"], exit_code=2)
    assert "does not fit the model's input 'tokens' of shape (n, n)" in result.stderr
    np.save(tmp_path / "big.npy", np.array([[1, 25, 0]]))
    result = invoke(["trace-mask", "--model", saved["plain"], tmp_path / "big.npy"], exit_code=2)
    assert "(sequence 0, step 1): id 25 is outside Embedding 'embedding' (input_dim 20)" in result.stderr
    result = invoke(["trace-mask", "--arch", "embedding-lstm", tmp_path / "cube.npy"], exit_code=2)
    assert "use --arch masking-lstm" in result.stderr


def test_a_file_that_is_not_a_model(tmp_path):
    (tmp_path / "bad.keras").write_text("not a zip")
    result = invoke(["trace-mask", "--model", tmp_path / "bad.keras"], exit_code=2)
    assert "not a loadable Keras model" in result.stderr


def test_help_and_page():
    result = invoke(["trace-mask", "--help"])
    assert "Follow the mask through a model, layer by layer." in result.stdout
    assert "maskcli trace-mask --arch embedding-conv" in result.stdout
    assert "trace-mask" in invoke(["--help"]).stdout
    section = PAGE.read_text()
    assert section.startswith("# maskcli trace-mask")
    for status in ("creates", "propagates", "consumes", "drops", "none"):
        assert f"`{status}`" in section
    for padding in ("enters", "inherited", "contains", "padding_effect", "padding_check"):
        assert f"`{padding}`" in section
    assert "maskcli trace-mask --arch transformer-unmasked" in result.stdout
    assert "padding enters real steps" in " ".join(result.stdout.split())


def test_help_loads_neither_tensorflow_nor_rich():
    code = textwrap.dedent("""
        import sys
        from click.testing import CliRunner
        from maskcli.cli import main
        result = CliRunner().invoke(main, ['trace-mask', '--help'])
        assert result.exit_code == 0, result.output
        print(sorted(m for m in ('tensorflow', 'keras', 'rich') if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # save()
def test_an_output_that_cannot_be_compared_is_not_called_padding_ok(tmp_path):
    """A 'valid' convolution tagger: its output has 2 steps fewer than the input,
    so its padding effect is not compared, and the verdict must not claim it."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Conv1D(4, 3, padding="valid")(keras.layers.Embedding(20, 4)(tokens))
    keras.Model(tokens, keras.layers.Dense(1, name="tags")(hidden)).save(tmp_path / "valid.keras")
    result = invoke(["trace-mask", "--model", tmp_path / "valid.keras", "--format", "json"])
    rows = {row["path"]: row for row in json.loads(result.stdout)["layers"]}
    assert rows["tags"]["padding_effect"] is None and rows["tags"]["padding"] is None
    assert "padding ok" not in result.stderr
    assert "padding not compared at the output (layer 'tags': its shape follows the padded " \
           "length, see audit-loss forward-invariance)" in result.stderr
