"""A built wheel, installed without the source tree, generates a paper on its own.

The wheel is built with the current environment's hatchling (`--no-isolation`), so the
test needs no network. It is installed, not editable, into a fresh venv made with
`--system-site-packages`. A `.pth` line adds the current environment's site-packages, so
pip finds every dependency already installed and installs nothing but the wheel. That
path is added as a plain directory, so its `.pth` files are not processed. One of them is
the editable install's pointer to the source tree, and skipping it means that `mlexam`
itself can only come from the wheel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
# Each step normally takes seconds. The limit only stops a step that hangs.
STEP_TIMEOUT_SECONDS = 600


def run(command: list, cwd: Path) -> subprocess.CompletedProcess:
    completed = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True,
                               timeout=STEP_TIMEOUT_SECONDS, check=False)
    assert completed.returncode == 0, f"{command} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out_dir = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out_dir, REPOSITORY],
        cwd=out_dir)
    wheels = list(out_dir.glob("mlexam-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


@pytest.mark.slow
def test_wheel_contains_resources(wheel):
    names = zipfile.ZipFile(wheel).namelist()

    assert "mlexam/templates/paper.html.j2" in names
    assert "mlexam/templates/key.html.j2" in names
    assert "mlexam/templates/assets/paper.css" in names
    assert "mlexam/question_banks/specs/practice.yaml" in names
    assert "mlexam/question_banks/word_parts.yaml" in names
    assert "generator/bpe.py" in names
    assert not [name for name in names if name.startswith("tests/")]


@pytest.mark.slow
def test_installed_wheel_generates_paper(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    venv_site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         cwd=tmp_path).stdout.strip())
    (venv_site / "current_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    run([python, "-m", "pip", "install", "--no-index", "--disable-pip-version-check", wheel], cwd=tmp_path)

    # mlexam and its resources come from the venv, not from the source tree.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = json.loads(run([python, "-c", (
        "import json, mlexam, generator; from mlexam.resources import resource_dir; "
        "print(json.dumps([mlexam.__file__, generator.__file__, str(resource_dir('templates')), "
        "str(resource_dir('question_banks'))]))")], cwd=elsewhere).stdout)
    for path in located:
        assert Path(path).resolve().is_relative_to(venv_site.resolve()), path

    run([venv / "bin" / "mlexam", "generate", "--seed", "3", "--out", "papers"], cwd=elsewhere)

    written = sorted(path.name for path in (elsewhere / "papers").iterdir())
    assert written == ["practice-3-answers.yaml", "practice-3-key.json", "practice-3-key.pdf",
                       "practice-3-paper.pdf"]
    for path in (elsewhere / "papers").iterdir():
        assert path.stat().st_size > 0, path.name
    key = json.loads((elsewhere / "papers" / "practice-3-key.json").read_text(encoding="utf-8"))
    assert key["seed"] == 3
