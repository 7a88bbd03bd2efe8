"""A griffe extension for the API reference (mkdocs.yml): the ``>>>`` examples of
a docstring become fenced Python code, and Sphinx roles plain code, so that mkdocs renders them as code
instead of reading ``[[1, 2], [3, 0]]`` as a Markdown link."""

from __future__ import annotations

import re

import griffe

# Sphinx roles (:func:`pad_arrow`) read as plain code.
ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


def fence_doctests(text: str) -> str:
    """Wrap each run of ``>>>`` lines, with the output lines after them, in a
    ```` ```python ```` fence; a blank line ends the run."""
    lines, out, inside = text.splitlines(), [], False
    for line in lines:
        starts = line.lstrip().startswith(">>>")
        if starts and not inside:
            out.append("```python")
            inside = True
        elif inside and not line.strip():
            out.append("```")
            inside = False
        out.append(line)
    if inside:
        out.append("```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(ROLE.sub(r"`\1`", obj.docstring.value))
