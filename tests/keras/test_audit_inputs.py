"""audit-loss with several named inputs: which array feeds which input, each
input's own padding, the reference mask of the output, and the errors."""

import json

import numpy as np
import pytest

from maskcli.core.errors import InputError, UsageError
from maskcli.keras.audit import audit_loss
from maskcli.keras.audit.inputs import Batch, named_batch
from maskcli.keras.feed import InputSpec, ModelInputs, model_inputs
from maskcli.keras.models import import_keras
from tests.conftest import invoke
from tests.keras.transformers import explicit_lstm

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

keras = import_keras()
layers = keras.layers
TOKENS = np.array([[3, 1, 4, 0, 0], [2, 7, 0, 0, 0], [5, 9, 2, 6, 0]], dtype="int32")
POSITIONS = np.where(TOKENS != 0, np.arange(1, 6), 0).astype("int32")


def dict_model(seed=0):
    """A dict input: token ids and position ids, both masked by mask_zero."""
    keras.utils.set_random_seed(seed)
    inputs = {"tokens": keras.Input((None,), dtype="int32", name="tokens"),
              "positions": keras.Input((None,), dtype="int32", name="positions")}
    x = layers.Add()([layers.Embedding(10, 4, mask_zero=True)(inputs["tokens"]),
                      layers.Embedding(8, 4, mask_zero=True)(inputs["positions"])])
    x = layers.GRU(3, return_sequences=True)(x)
    model = keras.Model(inputs, layers.Dense(1)(x), name="dict_model")
    model.compile(loss="mse", metrics=["mae"])
    return model


@pytest.fixture(scope="module")
def model():
    return dict_model()


def test_model_inputs_by_name_and_structure(model):
    spec = model_inputs(model)
    assert spec.kind == "dict" and set(spec.names) == {"tokens", "positions"}
    assert spec.structure({"tokens": 1, "positions": 2}) == {"tokens": 1, "positions": 2}
    ids = keras.Input((None, 2), name="ids")
    single = keras.Model(ids, layers.Dense(1)(ids))
    assert model_inputs(single).names == ["ids"] and model_inputs(single).kind == "single"


def test_dict_input_model_is_audited_with_each_input_its_own_padding(model):
    report = audit_loss({"tokens": TOKENS, "positions": POSITIONS}, model=model)
    assert report.verdict == "ignored", report.cause
    assert report.real_steps == 9 and report.steps == 15
    y = np.random.default_rng(0).standard_normal((3, 5, 1)).astype("float32")
    expected = model.evaluate({"tokens": TOKENS, "positions": POSITIONS}, y, verbose=0)
    assert report.keras_loss == pytest.approx(expected[0], rel=1e-6)
    assert "every per-step input of 2" in report.check("forward-invariance").detail
    trained = [audit_loss({"tokens": TOKENS, "positions": POSITIONS}, model=dict_model(),
                          train_steps=2, seed=3) for _ in range(2)]
    assert trained[0].to_dict() == trained[1].to_dict()
    assert trained[0].keras_loss != report.keras_loss and trained[0].verdict == "ignored"


def test_npz_named_after_the_inputs_and_arrays_that_are_not_inputs(model, tmp_path):
    path = tmp_path / "named.npz"
    lengths = (TOKENS != 0).sum(axis=1)
    meta = json.dumps({"padding": "post", "value": 0, "masks": {"tokens": "mask"}})
    np.savez(path, tokens=TOKENS, positions=POSITIONS, labels=TOKENS * 2, mask=TOKENS != 0,
             lengths=lengths, positions_lengths=lengths, meta=np.array(meta),
             attention_mask=(TOKENS != 0).astype("int32"))
    model.save(tmp_path / "dict.keras")
    result = invoke(["audit-loss", path, "--model", tmp_path / "dict.keras", "--format", "json"])
    report = json.loads(result.stdout)
    assert report["verdict"] == "ignored"
    assert report["keras_loss"] == audit_loss({"tokens": TOKENS, "positions": POSITIONS},
                                              model=model).keras_loss


def test_a_model_input_without_data_names_it_and_the_arrays_found(model, tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, tokens=TOKENS, mask=TOKENS != 0)
    model.save(tmp_path / "dict.keras")
    result = invoke(["audit-loss", path, "--model", tmp_path / "dict.keras"], exit_code=2)
    assert (f"the model's input 'positions' has no data ({path} holds mask, tokens; the model "
            "takes tokens, positions): name an npz array 'positions', or give --input "
            "positions=FILE") in result.stderr
    np.save(tmp_path / "positions.npy", POSITIONS)
    invoke(["audit-loss", path, "--model", tmp_path / "dict.keras",
            "--input", f"positions={tmp_path / 'positions.npy'}", "--format", "json"])
    result = invoke(["audit-loss", path, "--model", tmp_path / "dict.keras",
                     "--input", f"speaker={tmp_path / 'positions.npy'}"], exit_code=2)
    assert "--input speaker=...: the model has no input named 'speaker'" in result.stderr


def test_one_array_for_a_model_with_several_inputs(model):
    with pytest.raises(InputError, match=r"holds one array, and the model takes 2 named inputs "
                                         r"\(tokens, positions\)"):
        audit_loss(TOKENS, model=model)


def test_list_of_inputs_in_the_model_order(model):
    spec = model_inputs(model)
    arrays = {"tokens": TOKENS, "positions": POSITIONS}
    report = audit_loss([arrays[name] for name in spec.names], model=model)
    assert report.keras_loss == audit_loss(arrays, model=model).keras_loss
    with pytest.raises(InputError, match="3 arrays for the model's 2 inputs"):
        audit_loss([TOKENS, POSITIONS, TOKENS], model=model)


def test_inputs_with_other_sequence_counts(model):
    with pytest.raises(InputError, match="input 'positions' holds 2 sequences and 'tokens' 3"):
        audit_loss({"tokens": TOKENS, "positions": POSITIONS[:2]}, model=model)


def test_an_input_of_another_fixed_length():
    fixed = explicit_lstm(steps=5)
    with pytest.raises(InputError, match=r"input 'token_ids' of shape \(3, 4\) does not fit the "
                                         r"model's input of shape \(n, 5\)"):
        audit_loss({"token_ids": TOKENS[:, :4], "padding_mask": TOKENS != 0}, model=fixed)


def test_explicit_mask_through_an_input_reaches_the_loss_as_the_lstm_mask():
    model = explicit_lstm()
    mask = (TOKENS != 0).astype("int32")
    report = audit_loss({"token_ids": TOKENS, "padding_mask": mask}, model=model)
    assert report.verdict == "ignored", report.cause
    # the mask input defines the padding: a real token 0 (step 1 of row 0) stays real
    holes = TOKENS.copy()
    holes[0, 1] = 0
    report = audit_loss({"token_ids": holes, "padding_mask": mask}, model=model)
    assert report.real_steps == 9 and report.verdict == "ignored"


def test_mask_input_option_names_a_mask_input_of_another_name():
    model = explicit_lstm(mask_name="keep")
    keep = (TOKENS != 0).astype("int32")
    keep[0, 1] = 1 - keep[0, 1]  # 0 at a step whose token is real: only a mask input knows
    with pytest.raises(InputError, match=r"the output's 5 steps match inputs 'token_ids' and "
                                         r"'keep', whose padding differs: .*--mask FILE"):
        audit_loss({"token_ids": TOKENS, "keep": keep}, model=model)
    named = audit_loss({"token_ids": TOKENS, "keep": keep}, model=model, mask_input="keep")
    assert named.real_steps == 8 and named.verdict == "ignored", named.cause


def test_a_mask_input_that_is_not_0_or_1():
    model = explicit_lstm()
    with pytest.raises(InputError, match=r"mask input 'padding_mask' holds 2 at sequence 0, step 0:"
                                         r" a padding mask holds 1 \(or True\)"):
        audit_loss({"token_ids": TOKENS, "padding_mask": (TOKENS != 0) * 2}, model=model)


def test_a_mask_input_of_another_length():
    model = explicit_lstm()
    with pytest.raises(InputError, match=r"mask input 'padding_mask' has 4 steps, and no input it "
                                         r"could mask has \('token_ids' 5 steps\)"):
        audit_loss({"token_ids": TOKENS, "padding_mask": (TOKENS[:, :4] != 0)}, model=model)


def test_mode_is_refused_with_several_inputs(model, tmp_path):
    np.savez(tmp_path / "x.npz", tokens=TOKENS, positions=POSITIONS)
    model.save(tmp_path / "dict.keras")
    result = invoke(["audit-loss", tmp_path / "x.npz", "--model", tmp_path / "dict.keras",
                     "--mode", "embedding"], exit_code=2)
    assert "drop --mode" in result.stderr


def test_arch_needs_one_array():
    with pytest.raises(UsageError, match="several inputs need model: the built-in arch"):
        audit_loss({"a": TOKENS, "b": TOKENS}, arch="embedding-lstm")


# -- each input's padding, and the variants forward-invariance runs --------------

def spec_of(*names):
    return ModelInputs([InputSpec(name, (None, None), "int32") for name in names], "dict")


def test_paddings_from_a_mask_input_recorded_masks_and_pad_values():
    ids = np.array([[4, 0, 6, 0], [5, 5, 0, 0]])
    decoder = np.array([[7, 7, -1], [7, -1, -1]])
    batch = named_batch(
        spec_of("token_ids", "segment_ids", "padding_mask", "decoder_ids", "speaker"),
        {"token_ids": ids, "segment_ids": np.zeros_like(ids),
         "padding_mask": np.array([[1, 1, 1, 0], [1, 1, 0, 0]]), "decoder_ids": decoder,
         "speaker": np.array([3, 1])},
        source="x.npz", pad_values={"decoder_ids": -1})
    real = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
    assert batch.mask_inputs == ["padding_mask"]
    for name in ("token_ids", "segment_ids", "padding_mask"):
        np.testing.assert_array_equal(batch.paddings[name], real)  # the token 0 at (0, 1) is real
    np.testing.assert_array_equal(batch.paddings["decoder_ids"], decoder != -1)
    assert batch.paddings["speaker"] is None
    recorded = named_batch(spec_of("decoder_ids"), {"decoder_ids": decoder}, source="x.npz",
                           recorded_masks={"decoder_ids": np.array([[1, 1, 1], [1, 1, 0]])})
    assert recorded.paddings["decoder_ids"].sum() == 5  # the recorded mask wins over the value


def test_trimmed_and_extended_variants_keep_every_input_aligned():
    ids = np.array([[4, 9, 6, 0], [0, 0, 5, 5]])
    batch = named_batch(spec_of("token_ids", "segment_ids", "padding_mask", "speaker"),
                        {"token_ids": ids, "segment_ids": np.array([[0, 1, 1, 2], [2, 2, 0, 1]]),
                         "padding_mask": (ids != 0).astype("int32"),
                         "speaker": np.array([3, 1])}, source="x")
    groups = list(batch.trimmed_groups(np.array([0, 1])))
    assert [group.tolist() for group, _ in groups] == [[0], [1]]
    first = groups[0][1]
    assert first["token_ids"].tolist() == [[4, 9, 6]]
    assert first["segment_ids"].tolist() == [[0, 1, 1]] and first["speaker"].tolist() == [3]
    arrays, offsets = batch.extended(2)
    # row 0 is post-padded, row 1 pre-padded: each gets 2 more steps on its own side
    assert arrays["token_ids"].tolist() == [[4, 9, 6, 0, 0, 0], [0, 0, 0, 0, 5, 5]]
    assert arrays["padding_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 1, 1]]
    # segment ids take the value they hold at a padded step
    assert arrays["segment_ids"].tolist() == [[0, 1, 1, 2, 2, 2], [2, 2, 2, 2, 0, 1]]
    assert offsets["token_ids"].tolist() == [0, 2]
    assert arrays["speaker"].tolist() == [3, 1]


def test_single_batch_is_the_reference_mask_itself():
    mask = TOKENS != 0
    batch = Batch.single(TOKENS, mask)
    assert batch.model_inputs() is TOKENS
    assert batch.driver(5, mask) == "inputs" and batch.pad_step("inputs") == 0


def test_messages_name_python_arguments_and_the_commands_keep_their_options():
    from maskcli.core.errors import command_line_names

    with command_line_names(), pytest.raises(UsageError, match="several inputs need --model: "
                                                               "the built-in --arch models"):
        audit_loss({"a": TOKENS, "b": TOKENS}, arch="embedding-lstm")
    with pytest.raises(UsageError, match="train_steps must be 0 or more"):
        audit_loss(TOKENS, train_steps=-1)
