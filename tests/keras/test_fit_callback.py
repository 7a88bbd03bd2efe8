"""PaddingAudit inside model.fit(tf.data): audits fit's own first batches,
stops, raises or warns on a leak, and never changes the training itself."""

from __future__ import annotations

import numpy as np
import pytest

import maskcli
from maskcli.keras.callback import PaddingLeakWarning
from tests.keras import transformers
from tests.keras.fit_models import keras, labels, lstm_classifier, token_ids, weights

pytestmark = pytest.mark.keras
tf = pytest.importorskip("tensorflow")


def lstm_dataset(shuffle: bool = True):
    data = tf.data.Dataset.from_tensor_slices((token_ids(), labels()))
    return (data.shuffle(16, seed=7) if shuffle else data).batch(4)


def tagger_dataset():
    """KerasHub's form: (x, y, sample_weight), the weights the padding mask."""
    x = transformers.bert_batch(lengths=(5, 3, 6, 2), seed=2)
    tags = np.random.default_rng(3).standard_normal(x["token_ids"].shape + (1,))
    weight = x["padding_mask"].astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, tags.astype("float32"), weight)).batch(2)


def tagger(leaks: bool):
    # The default reduction divides the weighted loss by ALL steps, padding included.
    return transformers.bert_tagger("sum_over_batch_size" if leaks else "mean_with_sample_weight",
                                    run_eagerly=True)


@pytest.fixture(scope="module")
def trained_without_audit():
    model = lstm_classifier(mask_zero=True)
    model.fit(lstm_dataset(), epochs=2, verbose=0)
    return weights(model)


def test_a_model_that_ignores_padding_trains_to_the_very_same_weights(trained_without_audit):
    model = lstm_classifier(mask_zero=True)
    audit = maskcli.PaddingAudit(on_leak="raise", batches=2)
    model.fit(lstm_dataset(), epochs=2, verbose=0, callbacks=[audit])
    assert audit.report.verdict == "ignored"
    assert audit.report.batches == 2 and audit.report.batch_size == 4
    after = weights(model)
    assert all(np.array_equal(a, b) for a, b in zip(after, trained_without_audit))
    # and training did move them: the comparison can fail
    assert not all(np.array_equal(a, b) for a, b in zip(after, weights(lstm_classifier(True))))


def test_the_audit_reads_fits_first_batches_in_fits_shuffled_order():
    model = lstm_classifier(mask_zero=True, run_eagerly=True)
    first = next(iter(lstm_dataset()))  # the order a first iteration draws
    audit = maskcli.PaddingAudit()
    model.fit(lstm_dataset(), epochs=1, verbose=0, callbacks=[audit])
    assert audit.report.sequences == 4
    assert audit.report.real_steps == int((first[0].numpy() != 0).sum())


def test_a_leaking_lstm_stops_before_any_weight_moves(capsys):
    model = lstm_classifier(mask_zero=False, run_eagerly=True)
    before = weights(model)
    audit = maskcli.PaddingAudit()  # on_leak="stop"
    history = model.fit(lstm_dataset(), epochs=3, verbose=0, callbacks=[audit])
    assert audit.report.verdict == "leaks" and audit.report.failed == ["forward-invariance"]
    assert model.stop_training and len(history.epoch) == 1
    assert all(np.array_equal(a, b) for a, b in zip(weights(model), before))
    assert int(model.optimizer.iterations) == 0
    err = capsys.readouterr().err
    assert "PaddingAudit: padding leaks" in err and "mask_zero=True" in err
    model.fit(lstm_dataset(), epochs=1, verbose=0)  # the next fit trains as usual
    assert int(model.optimizer.iterations) == 4


def test_a_leaking_lstm_raises_with_the_cause_and_the_fix():
    model = lstm_classifier(mask_zero=False, run_eagerly=True)
    with pytest.raises(maskcli.PaddingLeakError, match="Embedding.mask_zero=True.") as caught:
        model.fit(lstm_dataset(), epochs=1, verbose=0,
                  callbacks=[maskcli.PaddingAudit(on_leak="raise")])
    assert caught.value.report.verdict == "leaks"
    assert isinstance(caught.value, maskcli.MaskcliError)


def test_a_leaking_lstm_warns_and_trains_on():
    model = lstm_classifier(mask_zero=False, run_eagerly=True)
    audit = maskcli.keras.PaddingAudit(on_leak="warn")
    with pytest.warns(PaddingLeakWarning, match="forward-invariance"):
        model.fit(lstm_dataset(), epochs=1, verbose=0, callbacks=[audit])
    assert int(model.optimizer.iterations) == 4 and audit.report.verdict == "leaks"


def test_kerashub_tagger_weighted_by_its_padding_mask_is_ignored_in_every_mode():
    model = tagger(leaks=False)
    audits = [maskcli.PaddingAudit(on_leak=mode) for mode in ("stop", "raise", "warn")]
    model.fit(tagger_dataset(), epochs=1, verbose=0, callbacks=audits)
    assert [audit.report.verdict for audit in audits] == ["ignored"] * 3, audits[0].report.cause
    assert audits[0].report.to_dict() == audits[2].report.to_dict()  # the same batches
    assert int(model.optimizer.iterations) == 2  # every batch trained


def test_kerashub_tagger_whose_loss_divides_by_all_steps_stops_raises_or_warns(capsys):
    model = tagger(leaks=True)
    with pytest.raises(maskcli.PaddingLeakError, match="mean_with_sample_weight"):
        model.fit(tagger_dataset(), epochs=1, verbose=0,
                  callbacks=[maskcli.PaddingAudit(on_leak="raise")])
    warn, stop = maskcli.PaddingAudit(on_leak="warn"), maskcli.PaddingAudit()
    with pytest.warns(PaddingLeakWarning, match="loss-parity"):
        model.fit(tagger_dataset(), epochs=1, verbose=0, callbacks=[warn, stop])
    assert stop.report.verdict == "leaks" and "loss-parity" in stop.report.failed
    assert int(model.optimizer.iterations) == 0  # stopped before the first step
    assert "mean_with_sample_weight" in capsys.readouterr().err
    with pytest.warns(PaddingLeakWarning):
        model.fit(tagger_dataset(), epochs=1, verbose=0, callbacks=[warn])
    assert int(model.optimizer.iterations) == 2  # warned, and trained on


def test_arrays_given_to_fit_are_audited_batch_by_batch():
    model = lstm_classifier(mask_zero=True, run_eagerly=True)
    audit = maskcli.PaddingAudit(batches=3)
    model.fit(token_ids(), labels(), batch_size=5, epochs=1, verbose=0, callbacks=[audit],
              shuffle=False)
    assert (audit.report.sequences, audit.report.batch_size) == (15, 5)


def test_a_pydataset_given_to_fit():
    model = lstm_classifier(mask_zero=False, run_eagerly=True)
    audit = maskcli.PaddingAudit(on_leak="warn")
    with pytest.warns(PaddingLeakWarning):
        model.fit(Batches(), epochs=1, verbose=0, callbacks=[audit])
    assert audit.report.sequences == 4


class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        part = slice(4 * index, 4 * index + 4)
        return token_ids()[part], labels()[part]


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(maskcli.UsageError, match="on_leak='halt'"):
        maskcli.PaddingAudit(on_leak="halt")
    with pytest.raises(maskcli.UsageError, match="batches=0"):
        maskcli.PaddingAudit(batches=0)
    audit = maskcli.PaddingAudit()
    audit.set_model(lstm_classifier(mask_zero=True))
    with pytest.raises(maskcli.UsageError, match="inside model.fit"):
        audit.on_train_begin()
