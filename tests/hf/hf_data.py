"""A small Hugging Face-style NER dataset and a tiny KerasHub BERT tagger,
built as a user of ``datasets`` and KerasHub builds them (nothing downloaded).

The dataset has the columns a tokenizer and a label aligner give:
``input_ids`` (starting with [CLS] = 2 and ending with [SEP] = 3),
``token_type_ids``, ``attention_mask`` and ``labels``, where -100 marks the
first and last token and the continuation pieces of a word (about one real
token in five), as ``DataCollatorForTokenClassification`` expects. Rows are
NOT padded: their lengths differ.

``python -m tests.hf.hf_data FOLDER`` writes it all to FOLDER: ``ner/`` (a
``save_to_disk`` directory of 2 shards), ``ner.parquet``, ``ner.arrow`` (an
Arrow IPC stream), and the taggers ``tagger.keras`` (compiled with
``ignore_class=-100``) and ``leaky_tagger.keras`` (compiled without).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

VOCAB = 30  # token ids below this; 0 is [PAD]
TAGS = 5  # label classes 0..4
MAXLEN = 16  # the tagger's max_sequence_length
ROWS = 12
IGNORE = -100


def records(rows: int = ROWS, seed: int = 0) -> dict[str, list]:
    """The dataset's columns, one list per row, unpadded."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list] = {"input_ids": [], "token_type_ids": [], "attention_mask": [],
                                "labels": []}
    for _ in range(rows):
        words = int(rng.integers(2, MAXLEN - 3))
        ids = [2] + [int(i) for i in rng.integers(4, VOCAB, words)] + [3]
        labels = [IGNORE] + [int(t) for t in rng.integers(0, TAGS, words)] + [IGNORE]
        for step in range(2, len(ids) - 1):  # continuation pieces: not scored
            if rng.random() < 0.2:
                labels[step] = IGNORE
        columns["input_ids"].append(ids)
        columns["token_type_ids"].append([0] * len(ids))
        columns["attention_mask"].append([1] * len(ids))
        columns["labels"].append(labels)
    return columns


def write_dataset(folder: Path) -> dict[str, Path]:
    """The three forms of the dataset in ``folder``: their paths by form."""
    import datasets
    import pyarrow as pa

    folder = Path(folder)
    dataset = datasets.Dataset.from_dict(records())
    dataset.save_to_disk(str(folder / "ner"), num_shards=2)
    dataset.to_parquet(str(folder / "ner.parquet"))
    table = dataset.data.table
    with pa.OSFile(str(folder / "ner.arrow"), "wb") as sink, \
            pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {"disk": folder / "ner", "parquet": folder / "ner.parquet",
            "arrow": folder / "ner.arrow"}


def tagger(ignore_class: bool = True, seed: int = 0):
    """A KerasHub BertBackbone (vocabulary 30, 1 layer, hidden 8, 2 heads) with
    a Dense tagging head, compiled with sparse categorical cross-entropy
    (``ignore_class=-100`` or none) and accuracy weighted by sample weights."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=VOCAB, num_layers=1, num_heads=2,
                                             hidden_dim=8, intermediate_dim=16,
                                             max_sequence_length=MAXLEN)
    logits = keras.layers.Dense(TAGS, name="tags")(backbone.output["sequence_output"])
    model = keras.Model(backbone.input, logits, name="ner_tagger")
    loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, **({"ignore_class": IGNORE} if ignore_class else {}))
    model.compile(loss=loss, weighted_metrics=["sparse_categorical_accuracy"])
    return model


def write_taggers(folder: Path) -> dict[str, Path]:
    folder = Path(folder)
    paths = {"tagger": folder / "tagger.keras", "leaky": folder / "leaky_tagger.keras"}
    tagger(True).save(paths["tagger"])
    tagger(False).save(paths["leaky"])
    return paths


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    target.mkdir(parents=True, exist_ok=True)
    write_dataset(target)
    write_taggers(target)
