"""End to end: the commands chained as a user chains them in a shell."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "keras_guide.jsonl"
# Run each command in its own interpreter and report whether TensorFlow was loaded, as the
# program leaves: it ends with os._exit once its output is flushed, so the report goes there.
WRAP = ("import os, sys, runpy; sys.argv = ['maskcli', *sys.argv[1:]]\n"
        "leave = os._exit\n"
        "def report(status):\n"
        "    sys.stderr.write('\\nloaded=%s\\n' % ('tensorflow' in sys.modules))\n"
        "    sys.stderr.flush()\n"
        "    leave(status)\n"
        "os._exit = report\n"
        "runpy.run_module('maskcli', run_name='__main__')")


def maskcli(*args):
    return [sys.executable, "-c", WRAP, *map(str, args)]


def test_pad_post_piped_into_inspect_mask(tmp_path):
    pad = subprocess.Popen(maskcli("pad", SAMPLE, "--padding", "post"), cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    inspect = subprocess.run(maskcli("inspect-mask"), cwd=ROOT, stdin=pad.stdout,
                             capture_output=True, text=True, timeout=120)
    pad.stdout.close()
    pad_err = pad.stderr.read().decode()
    assert pad.wait(timeout=60) == 0, pad_err
    assert inspect.returncode == 0, inspect.stderr
    assert "loaded=False" in pad_err and "loaded=False" in inspect.stderr
    report = json.loads(inspect.stdout)
    assert report["lengths"] == [3, 5, 6]
    assert report["summary"]["padding_side"] == "post"
    assert report["diagnostics"] == []


def test_pad_npz_then_inspect_uses_its_mask_and_pad_value(tmp_path):
    # Pad with -1, so a real token 0 must stay real: only the npz meta tells inspect-mask.
    data = tmp_path / "ids.jsonl"
    data.write_text("[5, 0, 7]\n[0]\n[4, 4, 4, 4]\n")
    out = tmp_path / "padded.npz"
    subprocess.run(maskcli("pad", data, "--value", "-1", "-o", out), cwd=ROOT, check=True,
                   capture_output=True)
    inspect = subprocess.run(maskcli("inspect-mask", out, "--format", "json"), cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert inspect.returncode == 0, inspect.stderr
    report = json.loads(inspect.stdout)
    assert report["lengths"] == [3, 1, 4]
    assert report["summary"]["padding_side"] == "pre"
    assert [d["id"] for d in report["diagnostics"]] == ["pre-padding-rnn"]
    with np.load(out, allow_pickle=False) as npz:
        assert npz["mask"].sum(axis=1).tolist() == [3, 1, 4]
