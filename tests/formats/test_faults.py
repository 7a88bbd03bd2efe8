"""Faults while running: Ctrl-C mid-write, a full disk, a full standard output,
inputs and outputs larger than memory.

Outputs are written to a temporary file in the destination folder and renamed
only on success (``files.atomic_output``): whatever stops a command, no half
file and no temporary file remain.
"""

from __future__ import annotations

import io
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from maskcli.formats.files import atomic_output
from tests.conftest import invoke

ROOT = Path(__file__).resolve().parents[2]


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def maskcli(*args) -> list[str]:
    return [sys.executable, "-m", "maskcli", *map(str, args)]


STOPS = [(signal.SIGINT, 130, "Interrupted."), (signal.SIGTERM, 143, "Terminated."),
         (signal.SIGHUP, 129, "Hangup.")]


@pytest.mark.parametrize(("signum", "status", "message"), STOPS,
                         ids=[signum.name for signum, _, _ in STOPS])
def test_a_stop_while_pad_writes_an_npz_leaves_nothing_behind(tmp_path, signum, status, message):
    """Ctrl-C (SIGINT), SIGTERM (batch schedulers, CI runners, docker stop) and
    SIGHUP (a closed terminal) once the temporary file exists: no output, no
    temporary file, exit 128 + the signal's number as a shell reports it, one
    line on stderr and no traceback.

    The input comes through a pipe that the test holds open, so pad is still
    mid-run when the signal comes, however fast it pads and however loaded
    the machine is."""
    line = ("[" + ", ".join(map(str, range(1, 201))) + "]\n").encode()
    output = tmp_path / "out.npz"
    proc = subprocess.Popen(maskcli("pad", "-", "--maxlen", 256, "-o", output), cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdin.write(line * 20_000)  # 16 MB: more than one block, so padding has begun
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.npz.*.part")):
        assert proc.poll() is None, f"pad ended before writing began: {proc.communicate()}"
        assert time.monotonic() < deadline, "no temporary file appeared"
        time.sleep(0.01)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)  # closes standard input too

    assert proc.returncode == status, stderr.decode()
    assert stderr.decode() == message + "\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("signum", "status", "message"), STOPS[1:],
                         ids=[signum.name for signum, _, _ in STOPS[1:]])
def test_a_stop_just_after_the_temporary_file_is_created_still_removes_it(
        tmp_path, monkeypatch, signum, status, message):
    """SIGTERM or SIGHUP at the one moment a stop could leave a file behind,
    made certain: right after the temporary file exists, before atomic_output
    knows its name. The command still ends with 128 + the signal's number."""
    create = tempfile.mkstemp

    def stopped(*args, **kwargs):
        created = create(*args, **kwargs)
        signal.raise_signal(signum)
        return created

    (tmp_path / "seq.jsonl").write_bytes(b"[1, 2]\n[3]\n")
    before = signal.getsignal(signum)
    monkeypatch.setattr(tempfile, "mkstemp", stopped)
    result = invoke(["pad", tmp_path / "seq.jsonl", "-o", tmp_path / "out.npz"], exit_code=status)
    assert result.stderr == message + "\n"
    assert [path.name for path in tmp_path.iterdir()] == ["seq.jsonl"]
    assert signal.getsignal(signum) == before  # the command's handler lasted as long as it


def test_ctrl_c_just_after_the_temporary_file_is_created_still_removes_it(tmp_path, monkeypatch):
    """The one moment the test above can hit by chance, made certain: Ctrl-C
    right after the temporary file exists, before atomic_output knows its name."""
    create = tempfile.mkstemp

    def interrupted(*args, **kwargs):
        created = create(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return created

    monkeypatch.setattr(tempfile, "mkstemp", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(tmp_path / "out.npz") as handle:
            handle.write(b"never")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_leaves_no_partial_output(tmp_path):
    """A write that fails midway (here: past the file size limit, as on a full
    disk) removes the temporary file and reports one clean error."""
    ids = tmp_path / "ids.npy"
    ids.write_bytes(npy(np.ones((200, 100), dtype=np.int64)))

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    result = subprocess.run(maskcli("inspect-mask", ids, "--format", "json", "-o",
                                    tmp_path / "mask.npy"),
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            preexec_fn=limit_file_size)
    assert result.returncode == 2, result.stderr
    # numpy reports the short write as "N requested and M written", without an errno
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: -o {tmp_path / 'mask.npy'}: writing failed (")
    assert line.endswith("): free some space, or write elsewhere")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ids.npy"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_standard_output_is_one_clean_error(tmp_path):
    ids = tmp_path / "ids.npy"
    ids.write_bytes(npy(np.array([[5, 3, 0], [7, 0, 0]])))
    with open("/dev/full", "w") as full:
        result = subprocess.run(maskcli("inspect-mask", ids, "--format", "json"), cwd=ROOT,
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "Error: writing standard output failed (No space left on device): "
        "free some space, or write elsewhere"]


def test_a_npz_larger_than_memory_is_refused_before_unpacking(tmp_path, monkeypatch):
    """A small compressed npz can unpack to more than memory holds (a zip bomb):
    its declared size is checked first."""
    from maskcli.core import limits

    buffer = io.BytesIO()
    np.savez_compressed(buffer, inputs=np.zeros((1000, 1000), dtype=np.int64))  # 8 MB of zeros
    (tmp_path / "bomb.npz").write_bytes(buffer.getvalue())
    monkeypatch.setattr(limits, "memory_limit", lambda: 1 << 20)  # a machine with 1 MB
    result = invoke(["inspect-mask", tmp_path / "bomb.npz", "--format", "json"], exit_code=2)
    assert f"{tmp_path / 'bomb.npz'}: its arrays would take 7.6 MB, more than the 1.0 MB " \
           "of memory here: give a smaller file" in result.stderr


def test_pad_refuses_an_npz_larger_than_memory_before_allocating_it(tmp_path, monkeypatch):
    """npy and npz keep every padded row until the end: their total is checked
    chunk by chunk, before each allocation."""
    from maskcli.core import limits

    (tmp_path / "seq.jsonl").write_bytes(b"[1, 2, 3]\n" * 1000)
    monkeypatch.setattr(limits, "memory_limit", lambda: 1 << 20)
    args = ["pad", tmp_path / "seq.jsonl", "--maxlen", 100, "--dtype", "int64"]
    # 1000 rows x 100 steps x (8 bytes + 1 of mask) = 879 KB: fits in 1 MB
    invoke([*args, "-o", tmp_path / "fits.npz"])
    result = invoke([*args, "--maxlen", 200, "-o", tmp_path / "out.npz"], exit_code=2)
    assert "padding 1000 sequences to 200 steps would take 1.7 MB, more than the 1.0 MB of " \
           "memory here: give a smaller --maxlen" in result.stderr
    assert not (tmp_path / "out.npz").exists()


def test_memory_limit_reads_the_machine():
    from maskcli.core.limits import format_bytes, memory_limit, too_big

    limit = memory_limit()
    assert limit is None or limit > 1 << 26  # this machine has more than 64 MB
    assert too_big(1) is None
    assert too_big(1 << 60).startswith("1.0 EB, more than the ")
    assert [format_bytes(n) for n in (0, 1023, 1536, 3 << 30)] == \
        ["0 bytes", "1023 bytes", "1.5 KB", "3.0 GB"]


def test_memory_limit_takes_the_smaller_of_the_machine_and_its_cgroup(tmp_path, monkeypatch):
    from maskcli.core import limits

    cgroup = tmp_path / "memory.max"
    cgroup.write_text("1048576\n")
    monkeypatch.setattr(limits, "_CGROUP_LIMITS", (str(cgroup), str(tmp_path / "missing")))
    assert limits.memory_limit() == 1 << 20
    cgroup.write_text("max\n")  # no limit
    assert limits.memory_limit() == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_the_bad_input_examples_print_what_is_shown(tmp_path):
    """Each ``$`` line of docs/guarantees.md's section on bad inputs, run in a
    shell, prints the lines shown under it (the machine's memory size aside)."""
    page = (ROOT / "docs" / "guarantees.md").read_text()
    section = page.split("## Every bad input, one clean line", 1)[1].split("\n## ", 1)[0]
    block = section.split("```text\n", 1)[1].split("```", 1)[0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, command in (("maskcli", f'"{sys.executable}" -m maskcli'),
                          ("python", f'"{sys.executable}"')):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (bin_dir / name).chmod(0o755)
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    machine = re.compile(r"the [\d.]+ \w+ of memory here")
    examples = re.findall(r"^\$ (.+)\n((?:(?!\$ ).*\n)*)", block, re.MULTILINE)
    assert len(examples) == 4
    for command, shown in examples:
        result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=120)
        printed = machine.sub("the memory here", result.stdout + result.stderr)
        assert printed == machine.sub("the memory here", shown), command
        assert result.returncode == (2 if shown else 0), command
