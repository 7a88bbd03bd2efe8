"""The documentation site builds with `mkdocs build --strict` (a broken link,
anchor or API reference fails it, and so does a page left out of the nav), and
its references are generated: every option of every command is in the CLI
reference, every public name of maskcli in the Python reference."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import maskcli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                           "-f", str(ROOT / "mkdocs.yml"), "-d", str(folder)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return folder


def text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html).replace("&quot;", '"').replace("&amp;", "&")


def test_every_page_is_built(site):
    pages = {path.relative_to(ROOT / "docs").with_suffix("") for path in (ROOT / "docs").rglob("*.md")}
    assert len(pages) >= 15
    for page in pages:
        built = site / ("index.html" if page.name == "index" else page / "index.html")
        assert built.is_file(), page


def test_every_option_of_every_command_is_in_the_cli_reference(site):
    from maskcli.cli import main

    reference = text((site / "reference" / "cli" / "index.html").read_text())
    assert len(main.commands) >= 5
    for name, command in main.commands.items():
        part = reference.split(f"maskcli {name} [OPTIONS]", 1)
        assert len(part) == 2, name
        usage = part[1].split(" [OPTIONS]", 1)[0]  # up to the next command's usage line
        for param in command.params:
            for option in param.opts:
                if option.startswith("-"):
                    assert option in usage, f"{name} {option}"
        assert command.help.split("\n", 1)[0].strip() in reference, name


def test_every_public_name_is_in_the_python_reference(site):
    reference = (site / "reference" / "python" / "index.html").read_text()
    names = [name for name in maskcli.__all__ if name != "__version__"]
    for name in [*names, "assert_padding_ignored", "pack_sequences"]:
        assert re.search(rf'id="maskcli\.[\w.]*\.{name}"', reference), name
    # docstrings are rendered, their >>> examples as code
    assert "Pad sequences to the same length" in reference
    assert re.search(r'<code class="language-python">&gt;&gt;&gt; ', reference)
