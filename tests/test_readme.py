"""The README, run as it stands: the tour, then the recipes in order, in one
folder holding sample_data/, their Python in one namespace.

Conventions a recipe follows (a new one, inserted anywhere under "## Recipes",
runs without a change here):
- a ```sh line is a maskcli (or jq, or printf) command; `# exit N` sets its exit status
  (default 0); `|` and `> FILE` work as in a shell;
- a ```text block shows lines that the commands of the ```sh block before it
  print (standard output and error, whitespace aside);
- a ```python block runs in the namespace of the blocks before it; a
  `print(...)  # VALUE` line prints VALUE; `test_*` functions it defines pass.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.doc_blocks import BLOCK, JQ_IN_PYTHON, flat, run_blocks

pytestmark = [pytest.mark.keras, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def a_folder(tmp_path_factory, name: str) -> Path:
    folder = tmp_path_factory.mktemp(name)
    (folder / "sample_data").symlink_to(ROOT / "sample_data")
    return folder


@pytest.fixture(scope="module")
def recipes(tmp_path_factory):
    namespace: dict = {}
    folder = a_folder(tmp_path_factory, "recipes")
    return run_blocks(section("Recipes"), folder, namespace), namespace, folder


def test_what_it_is_then_exactly_the_two_set_up_commands():
    first_language, first_block = BLOCK.findall(README)[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert (first_language, commands) == ("sh", ["make demo", "make test"])
    assert README.index("make demo") < README.index("\n## ")
    assert len(README.splitlines()) <= 300


def test_the_tour_runs(tmp_path_factory):
    (block,) = [block for language, block in BLOCK.findall(section("A tour")) if language == "sh"]
    ran = run_blocks(f"```sh\n{block}```\n", a_folder(tmp_path_factory, "tour"), {})
    assert "padding ignored" in ran[0][2] and "padding leaks" in ran[0][2]
    assert "padding enters at layer 'attention' (MultiHeadAttention)" in flat(ran[0][2])


def test_each_text_block_is_printed_by_the_commands_before_it(recipes):
    ran, _, _ = recipes
    checked = 0
    for (language, _, printed), (next_language, shown, _) in zip(ran, ran[1:]):
        if language == "sh" and next_language == "text":
            for line in shown.strip().splitlines():
                assert flat(line) in flat(printed), line
            checked += 1
    assert checked >= 3


def test_each_print_shows_what_its_comment_says(recipes):
    ran, _, _ = recipes
    expected, printed = [], []
    for language, block, output in ran:
        if language == "python":
            expected += re.findall(r"^\s*print\(.*\)\s*# (.*)$", block, re.M)
            printed += output.splitlines()
    assert len(expected) >= 2
    assert printed == expected


def test_the_recipes_test_functions_pass(recipes):
    _, namespace, _ = recipes
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()


def test_the_jq_programs_have_a_python_twin_that_agrees(recipes):
    """Without jq the gate's programs run in Python: both must print the same."""
    ran, _, folder = recipes
    (gate,) = [block for _, block, _ in ran if "jq " in block]
    programs = re.findall(r"^jq -\w '(.*)' (\S+)$", gate, re.M)
    assert {program for program, _ in programs} == set(JQ_IN_PYTHON)
    if not shutil.which("jq"):
        pytest.skip("jq is not installed: the recipe ran with the Python twins")
    for program, file in programs:
        report = json.loads((folder / file).read_text())
        proc = subprocess.run(["jq", "-r", program, str(folder / file)], capture_output=True,
                              text=True, timeout=60)
        assert proc.stdout.strip() == JQ_IN_PYTHON[program](report), program


def test_every_link_of_the_readme_leads_somewhere():
    links = re.findall(r"\]\(([^)#]+)(#[^)]*)?\)", README)
    assert len(links) >= 15
    for path, anchor in links:
        target = ROOT / path
        assert target.is_file(), path
        if anchor:
            headings = re.findall(r"^#+ (.*)$", target.read_text(), re.M)
            slugs = {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", h.lower()).strip()) for h in headings}
            assert anchor[1:] in slugs, f"{path}{anchor}"
