"""Packed rows, read back: the documents of each row, the attention mask the
model should use, and the mistakes packed data is known for.

Packed data is recognised by its arrays, never by KerasHub's plain
``segment_ids`` (token types, not packing):

- the seqio layout (``maskcli pack``, seqio, maxtext, big_vision): for a
  field ``NAME``, ``NAME_segment_ids`` (1..k in each row, 0 = padding) and
  ``NAME_positions`` (0.. within each document), or a segment array named
  with ``segment_input``;
- the flattening layout (``transformers.DataCollatorWithFlattening``):
  ``position_ids`` and ``labels``, with no segment ids; a document starts
  where its position is 0.

The attention mask is True where a query step may read a key step: both in
the same document (block-diagonal), and with ``causal`` the key not after
the query. Padding (segment 0) reads nothing.

With a batch size (and accumulation steps, replicas) the report also says how
batches (and updates of K micro-batches) weigh the real tokens, from each
row's real steps (``segment_ids > 0``) alone, as for padded data
(:mod:`maskcli.core.batching`, :mod:`maskcli.core.accumulation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from maskcli.core.accumulation import AccumulationWeighting, check_accumulation, inspected
from maskcli.core.batching import BatchWeighting, batch_weighting
from maskcli.core.diagnose import LOCATIONS, Diagnostic
from maskcli.core.errors import InputError, UsageError
from maskcli.core.packed_layout import IGNORE_INDEX, POSITION_SUFFIX, SEGMENT_SUFFIX

DIAGNOSTICS = ("positions-not-restarting", "segments-not-contiguous", "segments-out-of-order",
               "padding-between-documents", "target-crosses-boundary",
               "first-label-not-ignored")
LABEL_NAMES = ("labels", "targets")


@dataclass(frozen=True)
class PackedNames:
    """Which arrays hold a packed field: its tokens (None if absent), its
    segment ids (None in the flattening layout), positions and labels."""

    tokens: str | None
    segment_ids: str | None
    positions: str | None
    labels: str | None
    layout: str  # "seqio" or "flatten"


def packed_names(names, segment_input: str | None = None,
                 flatten: bool = True) -> PackedNames | None:
    """The packed arrays among ``names`` (an npz's arrays or a model's inputs),
    or None when the data is not packed. ``segment_input`` names the segment
    ids array when it does not end in ``_segment_ids``; ``flatten`` False does
    not read ``position_ids`` with ``labels`` as the flattening layout (padded
    Hugging Face batches hold them too)."""
    names = list(names)
    if segment_input is not None:
        if segment_input not in names:
            raise UsageError(f"--segment-input {segment_input}: there is no array or input named "
                             f"{segment_input!r} (there are: {', '.join(names)}): name one of those")
        segments = segment_input
    else:
        segments = next((name for name in names if name.endswith(SEGMENT_SUFFIX)
                         and len(name) > len(SEGMENT_SUFFIX)), None)
    labels = next((name for name in LABEL_NAMES if name in names), None)
    if segments is None:
        if flatten and "position_ids" in names and "labels" in names:
            tokens = next((name for name in names if name not in ("position_ids", "labels",
                                                                  "cu_seqlens")), None)
            return PackedNames(tokens, None, "position_ids", "labels", "flatten")
        return None
    base = segments[:-len(SEGMENT_SUFFIX)] if segments.endswith(SEGMENT_SUFFIX) else None
    tokens = base if base in names else None
    if tokens is None:  # the one other array of the data's shape, if any
        others = [n for n in names if n != segments and not n.endswith(POSITION_SUFFIX)
                  and n not in LABEL_NAMES and n not in ("cu_seqlens", "meta", "mask")]
        tokens = others[0] if len(others) == 1 else None
    positions = next((name for name in ((base or "") + POSITION_SUFFIX, "positions",
                                        "position_ids") if name in names), None)
    return PackedNames(tokens, segments, positions, labels, "seqio")


def segments_from_positions(positions: np.ndarray, labels=None) -> np.ndarray:
    """Segment ids of the flattening layout: a document starts at each 0; the
    steps at a row's end with position 0 and label -100 are padding.

    >>> segments_from_positions(np.array([[0, 1, 0, 0, 0]]),
    ...                         np.array([[-100, 5, -100, -100, -100]])).tolist()
    [[1, 1, 0, 0, 0]]
    """
    positions = np.asarray(positions)
    segments = np.cumsum(positions == 0, axis=1)
    if labels is not None and np.shape(labels) == positions.shape:
        padding = (positions == 0) & (np.asarray(labels) == IGNORE_INDEX)
        trailing = np.flip(np.logical_and.accumulate(np.flip(padding, 1), axis=1), 1)
        segments[trailing] = 0
    return segments


def restarted_positions(segment_ids: np.ndarray) -> np.ndarray:
    """Positions 0.. within each document (each run of one segment id), 0 at
    padding: what ``NAME_positions`` should hold.

    >>> restarted_positions(np.array([[1, 1, 2, 2, 2, 0]])).tolist()
    [[0, 1, 0, 1, 2, 0]]
    """
    segment_ids = np.asarray(segment_ids)
    n, steps = segment_ids.shape
    starts = np.ones_like(segment_ids, dtype=bool)
    starts[:, 1:] = segment_ids[:, 1:] != segment_ids[:, :-1]
    index = np.broadcast_to(np.arange(steps), (n, steps))
    start_of = np.maximum.accumulate(np.where(starts, index, 0), axis=1)
    positions = index - start_of
    return np.where(segment_ids > 0, positions, 0)


def attention_mask(segment_ids: np.ndarray, causal: bool = True) -> np.ndarray:
    """The (rows, steps, steps) mask the model's attention should use: True
    where query step q may read key step k (same document, and k <= q when
    ``causal``); padding reads and is read by nothing.

    >>> attention_mask(np.array([[1, 1, 2, 0]])).astype(int)[0].tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    """
    segment_ids = np.asarray(segment_ids)
    same = (segment_ids[:, :, None] == segment_ids[:, None, :]) & (segment_ids[:, :, None] > 0)
    if causal:
        steps = segment_ids.shape[1]
        same &= np.tri(steps, dtype=bool)[None]
    return same


def documents(segment_ids: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Every document as (row, segment id, start, end): each run of one
    non-zero segment id, in row order."""
    segment_ids = np.asarray(segment_ids)
    found = []
    for row, ids in enumerate(segment_ids):
        change = np.flatnonzero(np.diff(ids)) + 1
        bounds = np.concatenate(([0], change, [len(ids)]))
        for start, end in zip(bounds[:-1], bounds[1:]):
            if ids[start] > 0:
                found.append((row, int(ids[start]), int(start), int(end)))
    return found


@dataclass
class PackedReport:
    """What :func:`inspect_packed` found."""

    source: str
    names: PackedNames
    segment_ids: np.ndarray
    positions: np.ndarray | None
    tokens: np.ndarray | None
    causal: bool
    diagnostics: list[Diagnostic] = field(default_factory=list)
    batch_weighting: BatchWeighting | None = None  # with a batch size only
    accumulation: AccumulationWeighting | None = None  # with accumulation steps or replicas

    @property
    def lengths(self) -> np.ndarray:
        """The real steps of each row (its documents' steps)."""
        return (self.segment_ids > 0).sum(axis=1)

    @property
    def documents(self) -> list[tuple[int, int, int, int]]:
        return documents(self.segment_ids)

    @property
    def mask(self) -> np.ndarray:
        """The attention mask the model should use (rows, steps, steps)."""
        return attention_mask(self.segment_ids, self.causal)

    @property
    def summary(self) -> dict:
        rows, steps = self.segment_ids.shape
        real = int((self.segment_ids > 0).sum())
        per_row = np.bincount([doc[0] for doc in self.documents], minlength=rows)
        return {"rows": rows, "steps": steps, "documents": len(self.documents),
                "real_steps": real, "fill": real / (rows * steps) if rows * steps else 0.0,
                "documents_per_row": {"min": int(per_row.min()) if rows else None,
                                      "max": int(per_row.max()) if rows else None}}

    def to_dict(self) -> dict:
        names = self.names
        return {"source": self.source, "packed": True, "layout": names.layout,
                "arrays": {"tokens": names.tokens, "segment_ids": names.segment_ids,
                           "positions": names.positions, "labels": names.labels},
                "attention": "block-diagonal causal" if self.causal else "block-diagonal",
                "summary": self.summary,
                "diagnostics": [d.to_dict() for d in self.diagnostics],
                **({} if self.batch_weighting is None
                   else {"batch_weighting": self.batch_weighting.to_dict()}),
                **({} if self.accumulation is None
                   else {"accumulation": self.accumulation.to_dict()})}


def inspect_packed(arrays: dict, source: str, segment_input: str | None = None,
                   causal: bool = True, flatten: bool = True, *, batch_size: int | None = None,
                   accumulation_steps: int | None = None,
                   replicas: int | None = None) -> PackedReport:
    """Read packed ``arrays`` (by name) and diagnose them; raises InputError
    when they are not packed or their shapes differ. ``flatten``: as
    :func:`packed_names`. ``batch_size``, ``accumulation_steps`` and
    ``replicas``: how batches and updates weigh the rows' real steps, as
    :func:`maskcli.core.diagnose.inspect_mask` says it of padded data."""
    check_accumulation(batch_size, accumulation_steps, replicas)
    names = packed_names(arrays, segment_input, flatten)
    if names is None:
        raise InputError(f"{source} holds no packed data (no NAME_segment_ids array, nor "
                         "position_ids with labels): give the output of 'maskcli pack', or "
                         "name the segment ids with --segment-input NAME")
    get = {key: None if key is None else np.asarray(arrays[key])
           for key in (names.tokens, names.segment_ids, names.positions, names.labels)}
    positions = get[names.positions]
    segment_ids = (get[names.segment_ids] if names.segment_ids is not None
                   else segments_from_positions(positions, get[names.labels]))
    if segment_ids.ndim != 2:
        raise InputError(f"{source}: the segment ids have shape {segment_ids.shape}: give one "
                         "segment id per step, (rows, steps)")
    for key in (names.tokens, names.positions, names.labels):
        if key is not None and get[key].shape[:2] != segment_ids.shape:
            raise InputError(f"{source}: array '{key}' has shape {get[key].shape} and the segment "
                             f"ids {segment_ids.shape}: give every packed array one value per step")
    segment_ids = segment_ids.astype(np.int64)
    report = PackedReport(source, names, segment_ids, positions, get[names.tokens], causal)
    report.diagnostics = diagnose(segment_ids, positions, get[names.tokens], get[names.labels],
                                  names)
    if batch_size is not None:
        report.batch_weighting = batch_weighting(report.lengths, batch_size)
    report.accumulation = inspected(report.lengths, batch_size, accumulation_steps, replicas)
    return report


def _diagnostic(kind: str, places: np.ndarray, unit: str, message: str, fix: str):
    places = np.asarray(places).reshape(-1, 2)
    if not len(places):
        return None
    locations = [(int(seq), int(step)) for seq, step in places[:LOCATIONS]]
    return Diagnostic(kind, int(len(places)), unit, locations, message, fix)


def diagnose(segment_ids, positions, tokens, labels, names: PackedNames) -> list[Diagnostic]:
    """Every packed-data diagnostic that fires, in :data:`DIAGNOSTICS` order."""
    found = []
    if positions is not None and names.layout == "seqio":
        wrong = (positions != restarted_positions(segment_ids)) & (segment_ids > 0)
        found.append(_diagnostic(
            "positions-not-restarting", np.argwhere(wrong), "steps",
            f"'{names.positions}' does not run 0, 1, ... within each document: a document "
            "later in a row gets the positions of a longer sequence, and a model whose position "
            "embedding reads them sees each document differently packed than alone",
            "restart the positions at each document (maskcli pack writes them so)"))
    if names.layout == "seqio":
        found.extend(_segment_order(segment_ids, names))
    if tokens is not None and labels is not None:
        found.extend(_label_checks(segment_ids, positions, tokens, labels, names))
    return [d for d in found if d is not None]


def _segment_order(segment_ids: np.ndarray, names: PackedNames) -> list:
    scattered, disordered, gaps = [], [], []
    for row, ids in enumerate(segment_ids):
        change = np.concatenate(([0], np.flatnonzero(np.diff(ids)) + 1))
        runs = ids[change]
        real = runs > 0
        seen = runs[real]
        if len(np.unique(seen)) < len(seen):
            repeated = [int(change[i]) for i in np.flatnonzero(real)
                        if runs[i] in runs[:i][runs[:i] > 0]]
            scattered.append((row, repeated[0]))
        elif len(seen) and not np.array_equal(seen, np.arange(1, len(seen) + 1)):
            bad = np.flatnonzero(seen != np.arange(1, len(seen) + 1))[0]
            disordered.append((row, int(change[np.flatnonzero(real)[bad]])))
        zero_runs = np.flatnonzero(~real)
        inner = [int(change[i]) for i in zero_runs if i < len(runs) - 1 and real[i + 1:].any()]
        if inner:
            gaps.append((row, inner[0]))
    seg = names.segment_ids
    return [
        _diagnostic("segments-not-contiguous", scattered, "sequences",
                    f"a segment id of '{seg}' comes back after another document: its steps "
                    "are read as one document split in two, and attention joins them",
                    "give each document of a row one run of its own segment id"),
        _diagnostic("segments-out-of-order", disordered, "sequences",
                    f"the segment ids of '{seg}' do not run 1, 2, ... k along the row: "
                    "packers and attention kernels that number documents in order (cu_seqlens, "
                    "seqio) misread such rows",
                    "number each row's documents 1..k in order, 0 at padding"),
        _diagnostic("padding-between-documents", gaps, "sequences",
                    f"padding (segment 0 in '{seg}') comes before a later document of the row: "
                    "packed rows hold their padding after the last document, and a causal "
                    "model or cu_seqlens offsets assume so",
                    "move the padding to the end of the row (maskcli pack does)"),
    ]


def _label_checks(segment_ids, positions, tokens, labels, names: PackedNames) -> list:
    """A next-token label crossing into the next document; in the flattening
    layout (labels the model shifts itself), a document's first label kept."""
    tokens, labels = np.asarray(tokens), np.asarray(labels)
    if tokens.ndim != 2 or labels.ndim != 2:
        return []
    starts = np.zeros_like(segment_ids, dtype=bool)
    starts[:, 1:] = (segment_ids[:, 1:] != segment_ids[:, :-1]) & (segment_ids[:, 1:] > 0)
    if names.layout == "flatten" or _shift(segment_ids, tokens, labels) == 0:
        kept = starts & (labels != IGNORE_INDEX)
        return [_diagnostic(
            "first-label-not-ignored", np.argwhere(kept), "steps",
            f"'{names.labels}' keeps the first label of a document that follows another: the "
            "model shifts labels by one, so the previous document's last token is trained to "
            "predict this document's first",
            f"set the label at each document's first step to {IGNORE_INDEX} "
            "(maskcli pack --layout flatten does)")]
    crossing = crossing_targets(segment_ids, tokens, labels)
    if crossing is None:
        return []
    return [_diagnostic(
        "target-crosses-boundary", np.argwhere(crossing), "steps",
        f"'{names.labels}' holds next-token labels, and the last step of a document is "
        "labelled with the first token of the next: the model is trained to predict across the "
        "document boundary",
        f"set the label at each document's last step to {IGNORE_INDEX} (or drop that step "
        "from the loss)")]


def crossing_targets(segment_ids, tokens, labels) -> np.ndarray | None:
    """True at each document's last step whose next-token label is the first
    token of the next document in the row (not ignored with -100); None when
    ``labels`` are not next-token labels of ``tokens``.

    >>> crossing_targets(np.array([[1, 1, 2, 2]]), np.array([[5, 6, 7, 8]]),
    ...                  np.array([[6, 7, 8, 0]])).tolist()
    [[False, True, False, False]]
    """
    segment_ids, tokens, labels = (np.asarray(a) for a in (segment_ids, tokens, labels))
    if labels.shape != segment_ids.shape or tokens.shape != segment_ids.shape:
        return None
    if _shift(segment_ids, tokens, labels) != 1:
        return None
    starts = np.zeros_like(segment_ids, dtype=bool)
    starts[:, 1:] = (segment_ids[:, 1:] != segment_ids[:, :-1]) & (segment_ids[:, 1:] > 0)
    crossing = np.zeros_like(starts)
    crossing[:, :-1] = starts[:, 1:] & (labels[:, :-1] == tokens[:, 1:])
    return crossing & (labels != IGNORE_INDEX) & (segment_ids > 0)


def _shift(segment_ids, tokens, labels) -> int | None:
    """0 when labels copy the tokens (the model shifts them), 1 when they are
    the next token already, None when neither holds at most steps."""
    inside = (segment_ids[:, :-1] > 0) & (segment_ids[:, :-1] == segment_ids[:, 1:])
    if not inside.any():
        return None
    same = (labels[:, :-1] == tokens[:, :-1])[inside].mean()
    following = (labels[:, :-1] == tokens[:, 1:])[inside].mean()
    if max(same, following) < 0.5:
        return None
    return 0 if same >= following else 1
