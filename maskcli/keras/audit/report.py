"""What an audit found: one ``Check`` per check, and the ``AuditReport``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from maskcli.keras.audit.values import finite


@dataclass
class Check:
    """One check of the audit. ``status`` is pass, fail or skipped."""

    id: str
    status: str
    value: float | dict | None = None
    reference: float | dict | None = None
    detail: str = ""


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

    @property
    def failed(self) -> list[str]:
        return [check.id for check in self.checks if check.status == "fail"]

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "ignored" else 1

    def check(self, check_id: str) -> Check:
        return next(check for check in self.checks if check.id == check_id)

    def to_dict(self) -> dict:
        """The JSON report. NaN and infinities become null (JSON has neither)."""
        return finite({
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
            "notes": self.notes,
            "model": self.model,
            "rtol": self.rtol,
            "sequences": self.sequences,
            "steps": self.steps,
            "real_steps": self.real_steps,
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
