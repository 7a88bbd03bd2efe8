"""Test helpers for the users' own test suites (pytest, unittest).

``assert_padding_ignored`` is the unit-test form of ``maskcli audit-loss``:
one line in a test keeps a model whose loss counts padding from passing CI.
"""

from __future__ import annotations


def assert_padding_ignored(model, data, **options):
    """Assert that ``model``'s loss ignores the padding of ``data``.

    ``data`` and ``options`` are :func:`maskcli.audit_loss`'s (a path, arrays,
    ``(x, y, sample_weight)``, a ``tf.data.Dataset`` ...). Raises
    ``AssertionError`` whose message is the likely cause and its fix, and
    returns the report when padding is ignored.

    >>> def test_tagger_ignores_padding():
    ...     assert_padding_ignored(build_tagger(), (token_ids, tags, weights))
    """
    from maskcli.keras.audit.api import audit_loss

    report = audit_loss(data, model=model, **options)
    if report.verdict != "ignored":
        raise AssertionError(f"padding leaks into the loss of {report.model} (failed: "
                             f"{', '.join(report.failed)}): {report.cause}")
    return report
