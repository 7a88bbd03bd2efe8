"""File formats: raw sequences in (jsonl, json, text), padded arrays out
(npy, npz, jsonl, csv, tsv) and back in, vocabularies, safe file handling.

Built on the core; never imports keras/tensorflow, click or rich.
"""
