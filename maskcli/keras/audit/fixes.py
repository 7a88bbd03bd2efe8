"""Fixes for a leaking audit, each tried before it is suggested.

A *finder* is a function ``(trial, report) -> list[Fix]`` registered with
:func:`finder`; it reads the run (``trial.run``: the model, the batch, the
mask) and the report (the failed checks, the cause), proposes the fixes for
the leak class it knows, and tries each data and compile fix with the
:class:`~maskcli.keras.audit.trial.Trial` (re-padded batch, recompiled clone,
weights passed). ``FINDER_MODULES`` names the modules that hold finders, so
that adding one is adding a module there.

:func:`add_fixes` is the one call the run makes: it keeps the fixes other
code already appended to the report, and orders them all: verified first,
then those that cannot be tried, then those tried that still leak.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from maskcli.keras.audit.report import AuditReport, Fix
from maskcli.keras.audit.trial import Outcome, Trial

if TYPE_CHECKING:
    from maskcli.keras.audit.state import AuditRun

FINDER_MODULES = ("maskcli.keras.audit.finders_data", "maskcli.keras.audit.finders_model")
Finder = Callable[[Trial, AuditReport], list]
_FINDERS: list[Finder] = []


def finder(function: Finder) -> Finder:
    """Register ``function`` as a finder of fixes."""
    if function not in _FINDERS:
        _FINDERS.append(function)
    return function


def finders() -> list[Finder]:
    for module in FINDER_MODULES:
        importlib.import_module(module)
    return list(_FINDERS)


def add_fixes(run: AuditRun, report: AuditReport) -> None:
    """Set ``report.fixes``: none for an ``ignored`` report; else those already
    there and those the finders find, tried, in order."""
    if report.verdict != "leaks":
        report.fixes = []
        return
    trial = Trial(run, report.failed)
    found = list(report.fixes)
    for find in finders():
        found.extend(find(trial, report))
    report.fixes = ordered(found)


def tried(text: str, kind: str, outcome: Outcome) -> Fix:
    """The fix ``text`` with what its trial found."""
    return Fix(text, kind, outcome.passed, outcome.tried)


def ordered(fixes: list[Fix]) -> list[Fix]:
    """Verified fixes first, then those not tried, then those that still leak;
    each text once (the first, which is the most verified)."""
    rank = {True: 0, None: 1, False: 2}
    result, seen = [], set()
    for fix in sorted(fixes, key=lambda fix: rank[fix.verified]):
        if fix.text not in seen:
            seen.add(fix.text)
            result.append(fix)
    return result
