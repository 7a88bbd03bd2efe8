"""Every leaking audit carries fixes, each tried before it is suggested: one
tiny model per leak class of issue #20, and what maskcli found when it
applied the fix itself (re-padded the batch, recompiled a clone, passed the
weights) and re-ran the failing checks."""

from __future__ import annotations

import numpy as np
import pytest

from maskcli.keras.audit import audit_loss
from maskcli.keras.audit.fixes import ordered
from maskcli.keras.audit.report import Fix
from maskcli.keras.models import import_keras

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning")]

keras = import_keras()
layers = keras.layers
LENGTHS = [8, 5, 3, 6, 2, 7]


def padded(side: str, pad: int = 0, low: int = 1, steps: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.full((len(LENGTHS), steps), pad, "int32")
    for i, n in enumerate(LENGTHS):
        ids = rng.integers(low, 20, n)
        ids[ids == pad] = pad + 2
        if side == "pre":
            x[i, steps - n:] = ids
        else:
            x[i, :n] = ids
    return x


PRE, POST = padded("pre"), padded("post")
ROBERTA = padded("post", pad=1, low=0)  # pad id 1, and id 0 a real token (<s>)
ROBERTA[:, 0] = 0


def tokens(name=None):
    return keras.Input((None,), dtype="int32", name=name)


def fix_of(report, kind: str, says: str) -> Fix:
    return next(fix for fix in report.fixes if fix.kind == kind and says in fix.text)


class MultipliedScores(layers.Layer):
    """Attention pooling that multiplies its scores by the mask: exp(0) = 1."""

    def build(self, shape):
        self.score = layers.Dense(1)
        self.score.build(shape)

    def call(self, x, mask=None):
        scores = self.score(x)[..., 0] * keras.ops.cast(mask, "float32")
        weights = keras.ops.softmax(scores, axis=-1)
        return keras.ops.sum(weights[..., None] * x, axis=1)

    def compute_mask(self, x, mask=None):
        return None


class AttentionPooling(layers.Layer):
    """A pooling layer whose call() takes no mask."""

    def build(self, shape):
        self.score = layers.Dense(1)
        self.score.build(shape)

    def call(self, x):
        weights = keras.ops.softmax(self.score(x)[..., 0], axis=-1)
        return keras.ops.sum(weights[..., None] * x, axis=1)


class InfiniteBias(MultipliedScores):
    """-inf on padded scores: a row of padding only is softmax of all -inf."""

    def call(self, x, mask=None):
        scores = keras.ops.where(mask, self.score(x)[..., 0], -np.inf)
        weights = keras.ops.softmax(scores, axis=-1)
        return keras.ops.sum(weights[..., None] * x, axis=1)


def _compiled(model, loss="mse"):
    model.compile(loss=loss)
    return model


def lstm_last_state():
    x = tokens()
    return _compiled(keras.Model(x, layers.Dense(1)(layers.LSTM(4, name="lstm")(
        layers.Embedding(20, 8)(x)))))


def pooled(pool):
    x = tokens()
    hidden = pool(layers.Embedding(20, 8, mask_zero=True)(x))
    return _compiled(keras.Model(x, layers.Dense(1)(hidden)))


def causal_tagger():
    x = tokens()
    hidden = layers.Conv1D(8, 3, padding="causal", name="causal")(layers.Embedding(20, 8)(x))
    model = keras.Model(x, layers.Dense(3, activation="softmax")(hidden))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(
        reduction="mean_with_sample_weight"))
    return model


def concatenated():
    ids, features = tokens("ids"), keras.Input((None, 2), name="features")
    merged = layers.Concatenate(name="merge")([layers.Embedding(20, 4, mask_zero=True)(ids),
                                               features])
    return _compiled(keras.Model([ids, features], layers.Dense(1)(merged)))


def embedding_tagger():
    x = tokens()
    return _compiled(keras.Model(x, layers.Dense(1)(layers.Embedding(20, 4, mask_zero=True)(x))))


def gru_tagger():
    x = tokens()
    hidden = layers.GRU(4, return_sequences=True)(layers.Embedding(20, 4)(x))
    return _compiled(keras.Model(x, layers.Dense(3, activation="softmax")(hidden)),
                     "sparse_categorical_crossentropy")


def masked_lstm():
    x = keras.Input((None, 3))
    hidden = layers.LSTM(4, return_sequences=True)(layers.Masking(-1.0)(x))
    return _compiled(keras.Model(x, layers.Dense(1)(hidden)))


@pytest.fixture(scope="module")
def reports():
    """Each class's model audited once (the audits are what the tests read)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    found = {
        "lstm-last-pre": audit_loss(PRE, mask=PRE != 0, model=lstm_last_state()),
        "multiplied-scores": audit_loss(POST, mask=POST != 0, model=pooled(MultipliedScores())),
        "pooling-without-mask": audit_loss(POST, mask=POST != 0,
                                           model=pooled(AttentionPooling())),
        "causal-pre": audit_loss(PRE, mask=PRE != 0, model=causal_tagger(), sample_weight="mask"),
        "gru-post": audit_loss(POST, mask=POST != 0, model=gru_tagger()),
    }
    features = rng.standard_normal(POST.shape + (2,)).astype("float32")
    features[POST == 0] = 0
    found["concatenate"] = audit_loss({"ids": POST, "features": features}, model=concatenated())
    found["pad-id-1"] = audit_loss(ROBERTA, mask=ROBERTA != 1, model=embedding_tagger(),
                                   pad_value=1)
    steps = rng.standard_normal(POST.shape + (3,)).astype("float32")
    steps[POST == 0] = [-1, -1, 0]
    found["partly-padded"] = audit_loss(steps, mask=POST != 0, model=masked_lstm())
    return found


def test_a_last_state_lstm_on_pre_padding_needs_a_mask_and_padding_post_is_tried_and_fails(
        reports):
    report = reports["lstm-last-pre"]
    assert report.failed == ["forward-invariance"]
    first = report.fixes[0]
    assert first.kind == "model" and first.verified is None
    assert "Embedding(mask_zero=True) (or Masking)" in first.text and "'lstm'" in first.text
    assert "or pad post" not in report.cause and "padding post does not help" in report.cause
    post = fix_of(report, "data", "pad post")
    assert post.verified is False  # applied, it still leaks
    assert "re-padded post" in post.tried and "forward-invariance still fails" in post.tried
    assert report.fixes[-1] is post  # tried and failed: last


def test_scores_multiplied_by_the_mask_get_an_additive_bias(reports):
    report = reports["multiplied-scores"]
    assert report.failed == ["forward-invariance"]
    fix = report.fixes[0]
    assert fix.kind == "model" and "'multiplied_scores'" in fix.text
    assert "scores + (1 - mask) * -1e9" in fix.text and "exp(0) = 1" in fix.text
    assert "pass attention_mask" not in fix.text and "value_mask" not in fix.text


def test_a_pooling_layer_whose_call_takes_no_mask_is_told_to_take_one(reports):
    report = reports["pooling-without-mask"]
    fix = report.fixes[0]
    assert "'attention_pooling'" in fix.text
    assert "its call() takes no mask" in fix.text and "add mask=None to call()" in fix.text
    assert "value_mask" not in fix.text


def test_a_causal_convolution_on_pre_padding_is_fixed_by_padding_post_verified(reports):
    report = reports["causal-pre"]
    assert report.failed == ["forward-invariance"]
    post = report.fixes[0]
    assert (post.kind, post.verified) == ("data", True)
    assert post.text.startswith("pad post") and "forward-invariance then passes" in post.tried
    model = fix_of(report, "model", "'causal'")
    assert "already causal" in model.text and "padding='causal' on post" not in model.text


def test_sample_weights_are_a_fix_only_with_mean_with_sample_weight(reports):
    report = reports["gru-post"]
    both = report.fixes[0]
    assert (both.kind, both.verified) == ("data", True)
    assert "mean_with_sample_weight" in both.text and "recompiled on a clone" in both.tried
    alone = fix_of(report, "data", "reduction as it is")
    assert alone.verified is False and "loss-parity still fails" in alone.tried


def test_a_concatenate_with_an_unmasked_input_is_named_with_that_input(reports):
    report = reports["concatenate"]
    assert "layer 'merge' (Concatenate) turns every step real" in report.cause
    assert "'features', which carries no mask" in report.cause
    assert "check mask_zero / mask_value" not in report.cause
    assert fix_of(report, "model", "at layer 'merge' (Concatenate)").verified is None
    assert report.fixes[0].verified is True  # the weights with mean_with_sample_weight


def test_a_pad_id_of_1_with_mask_zero_says_the_real_id_0_tokens_are_masked(reports):
    report = reports["pad-id-1"]
    assert "the padding is id 1" in report.cause
    zeros = int((ROBERTA == 0).sum())
    assert zeros >= len(LENGTHS)
    assert f"the {zeros} real steps holding id 0 are masked" in report.cause
    fix = fix_of(report, "model", "ids != 1")
    assert fix.verified is None
    # weights cannot help while the Keras mask hides real steps: tried, and said so
    assert all(f.verified is False for f in report.fixes if f.kind == "data")


def test_partly_padded_steps_are_fixed_in_the_data_never_by_mask_value(reports):
    report = reports["partly-padded"]
    assert "no mask_value can match them" in report.cause
    assert "set mask_value" not in report.cause
    first = report.fixes[0]
    assert (first.kind, first.verified) == ("data", True)
    assert first.text.startswith("pad every feature of the padded steps with -1")
    assert not any("set Masking(mask_value" in fix.text for fix in report.fixes)


def test_fixes_are_json_and_an_ignored_report_has_none(reports):
    data = reports["gru-post"].to_dict()["fixes"]
    assert data[0] == {"text": reports["gru-post"].fixes[0].text, "kind": "data",
                       "verified": True, "tried": reports["gru-post"].fixes[0].tried}
    ignored = audit_loss(POST)  # the built-in embedding-lstm masks its loss
    assert ignored.verdict == "ignored" and ignored.fixes == []


def test_ordered_puts_verified_first_and_drops_repeats():
    fixes = [Fix("a", "data", False), Fix("b", "model"), Fix("c", "compile", True),
             Fix("b", "model")]
    assert [fix.text for fix in ordered(fixes)] == ["c", "b", "a"]


def test_a_sequence_of_padding_only_must_stay_finite():
    keras.utils.set_random_seed(0)
    data = POST.copy()
    data[2] = 0  # one empty sequence: softmax over -inf everywhere is NaN
    report = audit_loss(data, mask=data != 0, model=pooled(InfiniteBias(name="pool")))
    assert report.failed == ["forward-invariance"]
    assert "1 sequences of padding only: its output holds NaN or inf, first at layer 'pool' " \
        "(InfiniteBias)" in report.check("forward-invariance").detail
    assert "a sequence of padding only breaks the model" in report.cause
    assert fix_of(report, "model", "keep a sequence of padding only finite").verified is None
    # without an empty sequence in the data, it is a note, not a leak
    clean = audit_loss(POST, mask=POST != 0, model=pooled(InfiniteBias(name="pool")))
    assert clean.verdict == "ignored"
    assert any(note.startswith("a sequence of padding only would break") for note in clean.notes)


def test_data_padded_to_a_fixed_maximum_length_is_judged_alone():
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)

    def positions():
        x = tokens()
        hidden = keras_hub.layers.TokenAndPositionEmbedding(20, 8, 4, mask_zero=True)(x)
        return _compiled(keras.Model(x, layers.Dense(1)(hidden)))

    post = audit_loss(POST, mask=POST != 0, model=positions())
    check = post.check("forward-invariance")
    assert check.status == "pass", check.detail
    assert "judged so: 4 extra padding steps do not fit the model" in check.detail
    pre = audit_loss(PRE, mask=PRE != 0, model=positions())
    assert pre.check("forward-invariance").status == "fail"  # positions move with the padding


def test_many_distinct_lengths_run_with_padding_reduced_in_groups():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    lengths = np.arange(1, 21)  # 20 distinct lengths: more than the 16 groups
    data = np.where(np.arange(20)[None] < lengths[:, None], rng.integers(1, 20, (20, 20)), 0)
    check = audit_loss(data, model=embedding_tagger()).check("forward-invariance")
    assert check.status == "pass", check.detail
    assert "with padding reduced (16 groups of similar lengths" in check.detail
    x = tokens()  # no mask: the mean runs over the padding too
    averaged = layers.GlobalAveragePooling1D()(layers.Embedding(20, 4)(x))
    check = audit_loss(data, mask=data != 0, model=_compiled(
        keras.Model(x, layers.Dense(1)(averaged)))).check("forward-invariance")
    assert check.status == "fail" and "with padding reduced" in check.detail


def test_trace_mask_fails_at_a_merge_whose_mask_no_longer_marks_padding():
    from maskcli.keras import trace

    features = np.zeros(POST.shape + (2,), "float32")
    inputs = {"ids": POST, "features": features}
    rows = trace.trace_mask(concatenated(), inputs)
    merge = next(row for row in rows if row.name == "merge")
    assert (merge.status, merge.mask_in, merge.mask_out) == ("drops", True, True)
    assert "'features', which carries no mask" in merge.fix
    assert trace.first_leak(rows) == ("layer 'merge' (Concatenate) turns every step real: its "
                                      "mask no longer marks the padding")
    report = trace.report(rows, model="m", inputs=[POST, features],
                          input_names=["ids", "features"], synthetic=False, padded=True,
                          versions={})
    assert report["ok"] is False and "merge" in report["leak"]
    # a merge of two masked inputs keeps marking the padding
    ids = tokens("ids")
    embed = layers.Embedding(20, 4, mask_zero=True)
    both = keras.Model(ids, layers.Concatenate(name="merge")([embed(ids), embed(ids)]))
    assert next(r for r in trace.trace_mask(both, POST) if r.name == "merge").status == \
        "propagates"


def test_a_model_recompiled_with_defaults_on_load_is_told_from_its_files_compile_config(
        tmp_path):
    from maskcli.keras import models

    keras.utils.set_random_seed(0)
    x = tokens()
    model = keras.Model(x, layers.Dense(1)(layers.Embedding(20, 4)(x)))
    model.compile(loss=keras.losses.MeanSquaredError(reduction="mean_with_sample_weight"))
    model.save(tmp_path / "tagger.keras")
    loaded = models.load_model(str(tmp_path / "tagger.keras"))
    loaded.compile(loss="mse")  # what a KerasHub task model does when it loads
    report = audit_loss(POST, mask=POST != 0, model=loaded, sample_weight="mask")
    assert report.failed == ["loss-parity"]
    assert "though the file's compile_config says reduction=\"mean_with_sample_weight\"" in \
        report.cause
    fix = report.fixes[0]
    assert (fix.kind, fix.verified) == ("compile", True)
    assert "the loaded model's loss is reduced with sum_over_batch_size" in fix.text
    assert "loss-parity then passes" in fix.tried


def test_trace_mask_fails_at_a_merge_of_a_subclassed_model_whose_mask_no_longer_marks_padding():
    from maskcli.keras import trace

    class Merged(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.masked = layers.Embedding(20, 4, mask_zero=True)
            self.plain = layers.Embedding(20, 4, name="plain")
            self.merge = layers.Concatenate(name="merge")
            self.head = layers.Dense(1)

        def call(self, ids):
            return self.head(self.merge([self.masked(ids), self.plain(ids)]))

    model = Merged()
    model(POST)
    rows = trace.trace_padding(model, POST, POST != 0).rows
    merge = next(row for row in rows if row.name == "merge")
    assert (merge.status, merge.mask_in, merge.mask_out) == ("drops", True, True)
    assert "'plain', which carries no mask" in merge.fix
    assert trace.first_leak(rows) == ("layer 'merge' (Concatenate) turns every step real: its "
                                      "mask no longer marks the padding")
