"""docs/guarantees.md, run as it stands: its Python block writes the files,
and each ``$ maskcli ...  # exit N`` line of its console blocks exits with N
and prints exactly the lines under it (standard output, then standard error)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import invoke

DOC = Path(__file__).resolve().parents[1] / "docs" / "guarantees.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


def examples() -> list[tuple[str, int, str]]:
    """(command, exit status, expected output) for every console line."""
    found = []
    for block in blocks("console"):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            first, _, output = chunk.partition("\n")
            command, _, comment = first.partition("#")
            status = int(re.fullmatch(r"\s*exit (\d+)\s*", comment)[1])
            found.append((command.strip(), status, output.strip()))
    return found


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("guarantees")
    before = os.getcwd()
    os.chdir(folder)
    try:
        (setup,) = blocks("python")
        exec(setup, {})
    finally:
        os.chdir(before)
    return folder


def test_the_page_has_examples():
    assert len(examples()) >= 3


@pytest.mark.parametrize(("command", "status", "expected"), examples(),
                         ids=[command for command, _, _ in examples()])
def test_example(folder, monkeypatch, command, status, expected):
    monkeypatch.chdir(folder)
    args = shlex.split(command)
    assert args[0] == "maskcli"
    result = invoke(args[1:], exit_code=status)
    assert (result.stdout + result.stderr).strip() == expected
