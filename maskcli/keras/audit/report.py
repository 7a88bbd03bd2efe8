"""What an audit found: one ``Check`` per check, and the ``AuditReport``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from maskcli.keras.audit.values import finite


@dataclass
class Check:
    """One check of the audit. ``status`` is pass, fail, skipped, or warn (a
    finding that fails the audit only with ``--strict``)."""

    id: str
    status: str
    value: float | dict | None = None
    reference: float | dict | None = None
    detail: str = ""


@dataclass(frozen=True)
class Fix:
    """A fix for a leak. ``kind`` is "data" (padding side, pad value, sample
    weights, targets), "compile" (reduction, ignore_class, weighted_metrics) or
    "model" (a layer or model change). ``verified`` is True when maskcli applied
    the fix itself and the failing checks then passed, False when it tried and
    the leak stayed (``tried`` says what it did), None when it cannot be tried."""

    text: str
    kind: str
    verified: bool | None = None
    tried: str = ""

    def to_dict(self) -> dict:
        return {"text": self.text, "kind": self.kind, "verified": self.verified,
                "tried": self.tried}


@dataclass
class AuditReport:
    """What ``audit_loss`` found. ``verdict`` is "ignored" or "leaks"."""

    verdict: str
    loss: str
    keras_loss: float | None
    masked_loss: float | None
    unmasked_loss: float | None
    checks: list[Check]
    versions: dict
    model: str
    rtol: float
    sequences: int
    steps: int
    real_steps: int
    per_sample: list[dict] | None = None
    cause: str | None = None
    notes: list[str] = field(default_factory=list)
    # The padding-removed reference, also for built-in losses (where it must
    # equal masked_loss): the same loss on the real steps alone.
    removed_loss: float | None = None
    # Batches: the size (None: one batch of everything), their number, and
    # whether the memory budget chose them rather than --batch-size.
    batch_size: int | None = None
    batches: int = 1
    batch_size_auto: bool = False
    # A part of the input (--limit, --sample): {"method", "sequences", "total",
    # "seed", "text"}; None when every sequence was read.
    selection: dict | None = None
    # Fixes for a leak, the recommended (verified) first; empty when ignored.
    fixes: list[Fix] = field(default_factory=list)
    # Where the data came from (a dataset padded in the command): each model
    # input's array or column, the targets ("synthetic" when made up), and
    # how the dataset was padded. Empty/None for an audit of arrays.
    inputs: dict = field(default_factory=dict)
    targets: str | None = None
    padding: str | None = None
    # Packed rows with per_sample: one row per document (row, segment, start,
    # length, its loss packed and alone); None otherwise.
    per_document: list[dict] | None = None

    @property
    def failed(self) -> list[str]:
        return [check.id for check in self.checks if check.status == "fail"]

    @property
    def warned(self) -> list[str]:
        return [check.id for check in self.checks if check.status == "warn"]

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "ignored" else 1

    def check(self, check_id: str) -> Check:
        return next(check for check in self.checks if check.id == check_id)

    def to_dict(self) -> dict:
        """The JSON report. NaN and infinities become null (JSON has neither)."""
        report = {
            "verdict": self.verdict,
            "loss": self.loss,
            "keras_loss": self.keras_loss,
            "masked_loss": self.masked_loss,
            "unmasked_loss": self.unmasked_loss,
            "checks": [{"id": c.id, "status": c.status, "value": c.value,
                        "reference": c.reference, "detail": c.detail} for c in self.checks],
            "per_sample": self.per_sample,
            "versions": self.versions,
            "cause": self.cause,
            "fixes": [fix.to_dict() for fix in self.fixes],
            "notes": self.notes,
            "model": self.model,
            "rtol": self.rtol,
            "sequences": self.sequences,
            "steps": self.steps,
            "real_steps": self.real_steps,
        }
        if self.batch_size is not None:  # keys that appear only when batched or sampled
            report["batching"] = {"batch_size": self.batch_size, "batches": self.batches,
                                  "auto": self.batch_size_auto}
        if self.selection is not None:
            report["selection"] = self.selection
        if self.per_document is not None:
            report["per_document"] = self.per_document
        for key in ("inputs", "targets", "padding"):  # what the data was, when stated
            if getattr(self, key):
                report[key] = getattr(self, key)
        return finite(report)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
