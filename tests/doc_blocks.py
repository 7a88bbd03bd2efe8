"""Run the code blocks of a Markdown page as they stand (the README, docs/):
maskcli in-process, jq (or its Python twin), printf, Python in one namespace."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.conftest import invoke

BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
# What the README CI gate's jq programs compute, for a machine without jq.
JQ_IN_PYTHON = {
    '.verdict == "ignored"': lambda report: json.dumps(report["verdict"] == "ignored"),
    '.checks[] | select(.status == "fail") | .id':
        lambda report: "\n".join(c["id"] for c in report["checks"] if c["status"] == "fail"),
    ".cause": lambda report: report["cause"],
}


def flat(text: str) -> str:
    return " ".join(text.split())


def run_line(line: str, folder: Path) -> str:
    """One shell line, maskcli in-process; returns what it printed."""
    parts = re.split(r"\s{2,}#", line, maxsplit=1)
    command, comment = parts[0], parts[1] if len(parts) > 1 else ""
    expected = int(m[1]) if (m := re.search(r"exit (\d)", comment)) else 0
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|>")
    lexer.whitespace_split = True
    tokens, stages, printed, piped = list(lexer), [[]], "", None
    for token in tokens:
        if token == "|":
            stages.append([])
        else:
            stages[-1].append(token)
    for index, args in enumerate(stages):
        target = None
        if ">" in args:
            args, target = args[:args.index(">")], args[args.index(">") + 1]
        last = index == len(stages) - 1
        program = args[0].removeprefix(".venv/bin/")
        if program == "printf":
            out = subprocess.run(args, capture_output=True, check=True, timeout=60).stdout
        elif program == "maskcli":
            if last and target is None and "--format" not in args and len(args) > 1 \
                    and args[1] in ("inspect-mask", "audit-loss", "trace-mask"):
                args = [*args, "--format", "table"]  # what a terminal shows
            result = invoke(args[1:], input=piped, exit_code=expected if last else 0,
                            env={"COLUMNS": "200"})
            out, printed = result.stdout_bytes, printed + result.stderr
        else:
            assert program == "jq" and last and target is None, line
            program_text, file = args[-2], folder / args[-1]
            if shutil.which("jq"):
                proc = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=60)
                assert proc.returncode == expected, (line, proc.stderr)
                out = proc.stdout.encode()
            else:
                out = (JQ_IN_PYTHON[program_text](json.loads(file.read_text())) + "\n").encode()
                status = 1 if "-e" in args and out.strip() in (b"false", b"null") else 0
                assert status == expected, line  # jq -e: exit 1 on false or null
        if target:
            (folder / target).write_bytes(out)
            out = b""
        piped = out
    return printed + piped.decode()


def run_blocks(text: str, folder: Path, namespace: dict) -> list[tuple[str, str, str]]:
    """Run the blocks of ``text`` in order: (language, block, what it printed)."""
    ran = []
    before = os.getcwd()
    os.chdir(folder)
    try:
        for language, block in BLOCK.findall(text):
            if language == "sh":
                joined = re.sub(r"\\\n\s*", " ", block)  # a line continued with a backslash
                lines = [line for line in joined.splitlines() if line and not line.startswith("#")]
                ran.append((language, block, "".join(run_line(line, folder) for line in lines)))
            elif language == "python":
                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    exec(block, namespace)
                ran.append((language, block, printed.getvalue()))
            else:
                ran.append((language, block, ""))
    finally:
        os.chdir(before)
    return ran


def check_commented_values(block: str, comment: str = "  # ") -> None:
    """Run a Python block line by line: a line ``CODE<comment>VALUE`` must
    evaluate to VALUE; any other line runs as it is, in one namespace."""
    namespace: dict = {}
    for line in block.splitlines():
        code, _, shown = line.partition(comment)
        if shown.strip():
            assert eval(code, namespace) == eval(shown, {}), line
        elif code.strip():
            exec(code, namespace)
