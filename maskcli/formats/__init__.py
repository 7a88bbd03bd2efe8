"""File formats: raw sequences in (jsonl, json, text, Parquet and Arrow tables),
padded arrays out (npy, npz, jsonl, csv, tsv) and back in, vocabularies, safe
file handling.

Built on the core; never imports keras/tensorflow, click or rich. pyarrow is
imported by ``arrow`` and ``arrow_memory`` alone, and only for Arrow data.
"""
