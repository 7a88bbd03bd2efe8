"""Shared test helpers."""

from __future__ import annotations

import os

# Keep TensorFlow quiet and deterministic in every test that loads it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import pytest
from click.testing import CliRunner

from maskcli.cli import main


def invoke(args, input=None, exit_code=0, env=None):
    """Run the CLI in-process and assert its exit status, showing everything on failure.

    ``result.stdout`` is standard output alone (data); ``result.stderr`` the messages.
    """
    runner = CliRunner()
    result = runner.invoke(main, [str(a) for a in args], input=input, env=env,
                           catch_exceptions=True, prog_name="maskcli")
    if result.exit_code != exit_code:
        exc = result.exc_info
        tb = ""
        if exc and not isinstance(exc[1], SystemExit):
            import traceback
            tb = "".join(traceback.format_exception(*exc))
        raise AssertionError(
            f"maskcli {' '.join(map(str, args))}: exit {result.exit_code}, expected {exit_code}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n{tb}")
    if exit_code == 2:
        assert_clean_error(result.stderr)
    return result


def invoke_without_keras(args, cwd=None) -> str:
    """Run ``maskcli ARGS`` in a fresh Python (nothing imported before it), assert
    that it exits 0 and never imports TensorFlow or Keras; its standard output."""
    import json
    import subprocess
    import sys

    code = ("import json, sys\nfrom click.testing import CliRunner\nfrom maskcli.cli import main\n"
            f"r = CliRunner().invoke(main, {[str(a) for a in args]!r})\n"
            "loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
            "print(json.dumps({'code': r.exit_code, 'stdout': r.stdout, 'output': r.output,\n"
            "                  'loaded': loaded}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, result["output"]
    assert result["loaded"] == [], result["loaded"]
    return result["stdout"]


def read_terminal(main_fd: int) -> str:
    """Everything a child wrote to the pseudo-terminal ``main_fd`` until it
    closed it; closes ``main_fd``."""
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main_fd)
    return b"".join(chunks).decode(errors="replace")  # a bar may cut a character


def assert_clean_error(stderr: str) -> None:
    """An error is one ``Error:`` line: no traceback, no click ``Usage:`` or
    ``Try ... --help`` lines around it (the line points to ``--help`` itself)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, f"expected one Error: line, got:\n{stderr}"
    usage = [line for line in stderr.splitlines() if line.startswith(("Usage:", "Try '"))]
    assert not usage, f"expected the Error: line without click's usage lines, got:\n{stderr}"


@pytest.fixture
def cli():
    return invoke
