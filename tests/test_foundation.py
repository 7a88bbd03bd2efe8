"""Package-level contracts: version, entry points, fast start."""

import os
import re
import subprocess
import sys
from pathlib import Path

import maskcli
from tests.conftest import invoke, invoke_without_keras


def test_version_matches_package():
    result = invoke(["--version"])
    assert result.stdout.strip() == f"maskcli, version {maskcli.__version__}"


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run([sys.executable, "-m", "maskcli", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: maskcli" in proc.stdout


def test_the_program_flushes_everything_and_keeps_each_exit_status(tmp_path):
    """``maskcli`` leaves without Python's teardown (os._exit): all of a large
    standard output still arrives, and 0, 1 and 2 stay what they are."""
    source = tmp_path / "many.jsonl"
    source.write_text("[1, 2, 3]\n" * 20000)
    proc = subprocess.run([sys.executable, "-m", "maskcli", "pad", str(source)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[1, 2, 3]\n" * 20000
    proc = subprocess.run([sys.executable, "-m", "maskcli", "pad", str(tmp_path / "none.jsonl")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("Error: ")
    padded = tmp_path / "pre.jsonl"
    padded.write_text("[0, 2, 3]\n[0, 0, 4]\n")  # padded at the front: a diagnostic fires
    proc = subprocess.run([sys.executable, "-m", "maskcli", "inspect-mask", str(padded),
                           "--strict"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "pre-padding-rnn" in proc.stderr


def test_help_does_not_import_tensorflow():
    assert "Usage:" in invoke_without_keras(["--help"])


def test_the_command_line_starts_openblas_with_one_thread_unless_told():
    """numpy's OpenBLAS starts its threads as it loads: the CLI sets the count
    before numpy loads (its start measured 0.07 s faster), keeping a user's own."""
    code = ("import os, sys\nimport maskcli.cli\nassert 'numpy' not in sys.modules\n"
            "import numpy\nprint(os.environ['OPENBLAS_NUM_THREADS'])")
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    for given, expected in ((None, "1"), ("3", "3")):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, env=env if given is None
                              else {**env, "OPENBLAS_NUM_THREADS": given})
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == expected


def test_core_imports_neither_click_nor_rich():
    code = ("import sys\nimport maskcli, maskcli.core.masks, maskcli.formats.arrays\n"
            "import maskcli.formats.files, maskcli.keras.models\n"
            "print(sorted(m for m in ('click', 'rich', 'tensorflow', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_every_command_has_help_and_a_page():
    from maskcli.cli import main

    root = Path(__file__).resolve().parents[1]
    # a command's guide is a page under docs/ titled (or with a section) "maskcli NAME"
    pages = "".join(path.read_text() for path in root.glob("docs/*.md"))
    assert sorted(main.commands) == ["audit-loss", "inspect-mask", "pack", "pad", "trace-mask"]
    for name, command in main.commands.items():
        assert command.help and command.help.strip(), name
        assert re.search(rf"^#+ maskcli {name}\b", pages, re.M), name
        assert f" {name} [OPTIONS]" in invoke([name, "--help"]).stdout.splitlines()[0]


def test_layers_are_folders_and_no_module_is_long():
    package = Path(maskcli.__file__).resolve().parent
    layers = {path.name for path in package.iterdir() if (path / "__init__.py").exists()}
    assert layers == {"cli", "core", "formats", "keras", "render"}
    lengths = {str(path.relative_to(package)): len(path.read_text().splitlines())
               for path in package.rglob("*.py")}
    assert not {name: n for name, n in lengths.items() if n > 430}, "split the module"


def test_the_public_names_resolve_lazily_to_their_layers():
    code = ("import sys, maskcli\n"
            "names = ['pad_sequences', 'inspect_mask', 'MaskReport', 'audit_loss', 'trace_mask']\n"
            "print(' '.join(getattr(maskcli, n).__module__ for n in names))\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules, loaded = proc.stdout.strip().splitlines()
    assert modules.split() == ["maskcli.formats.padding", "maskcli.api", "maskcli.core.diagnose",
                               "maskcli.keras.audit.api", "maskcli.keras.trace.walk"]
    assert loaded == "[]"  # the Keras layer loads TensorFlow only when a model runs
