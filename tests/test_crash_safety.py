"""Output files are written atomically, a killed run leaves only complete files, and runs repeat exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pypdf
import pytest

from hostile.papers import generate, write_spec
from mlexam import fileio

# When each of the killed `mlexam generate` runs is killed: after this many of its four
# output files have been written, plus this many seconds. With 0 files the kill lands
# while Python starts or the questions are built; later ones land between or inside writes.
KILLS = ((0, 0.2), (0, 0.6), (1, 0.0), (1, 0.05), (2, 0.0), (2, 0.1), (3, 0.0), (3, 0.02), (1, 0.3), (2, 0.3))
POLL_SECONDS = 0.005
SEED = 7
SMALL_SPEC = {
    "course": "Course", "instructions": "Answer every question.", "duration_minutes": 20,
    "sections": [{"questions": [{"type": "bpe_encode"}, {"type": "backprop_softmax"}]}],
}


def temporary_files(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".tmp"))


def assert_complete(folder: Path) -> None:
    """Every file in the folder that is not a temporary file is whole: PDFs open, JSON and YAML parse."""
    for path in folder.iterdir():
        if path.name.endswith(".tmp"):
            continue
        if path.suffix == ".pdf":
            reader = pypdf.PdfReader(path, strict=True)
            assert len(reader.pages) >= 1, path.name
        elif path.suffix == ".json":
            assert json.loads(path.read_text(encoding="utf-8"))["format"] == "mlexam-key", path.name
        elif path.suffix == ".yaml":
            assert path.read_text(encoding="utf-8").endswith("\n"), path.name
            assert "format: mlexam-answers" in path.read_text(encoding="utf-8"), path.name


def generate_command(spec_path: Path, out_dir: Path) -> list[str]:
    return [sys.executable, "-m", "mlexam", "generate", "--spec", str(spec_path), "--seed", str(SEED),
            "--out", str(out_dir)]


def file_versions(folder: Path) -> dict[str, int]:
    """Return the inode of every finished file; an atomic replace gives the file a new one."""
    if not folder.exists():
        return {}
    return {entry.name: entry.stat().st_ino for entry in folder.iterdir() if not entry.name.endswith(".tmp")}


def run_and_kill(command: list[str], cwd: Path, out_dir: Path, writes: int, extra_seconds: float) -> bool:
    """Start a run, kill it after `writes` files were written plus `extra_seconds`; return whether it was killed."""
    before = file_versions(out_dir)
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None:
        now = file_versions(out_dir)
        written = sum(1 for name, inode in now.items() if before.get(name) != inode)
        if written >= writes:
            break
        time.sleep(POLL_SECONDS)
    time.sleep(extra_seconds)
    killed = process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    return killed


# Atomic writes

def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "key.json"
    target.write_text("old")

    fileio.write_text_atomic(target, "new content")

    assert target.read_text() == "new content"
    assert temporary_files(tmp_path) == []


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "key.json"
    target.write_text("old")

    def broken_fsync(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        fileio.write_text_atomic(target, "new content that never lands")

    assert target.read_text() == "old"
    assert temporary_files(tmp_path) == []


def test_atomic_write_interrupt_keeps_old_file(tmp_path, monkeypatch):
    """Ctrl-C in the middle of a write leaves the old file and no temporary file."""
    target = tmp_path / "paper.pdf"
    target.write_bytes(b"%PDF old")

    def interrupted_replace(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio.os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        fileio.write_bytes_atomic(target, b"%PDF new")

    assert target.read_bytes() == b"%PDF old"
    assert temporary_files(tmp_path) == []


def test_atomic_write_removes_dead_writers_files(tmp_path):
    """A temporary file left by a killed process goes at the next write; a live writer's file stays."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    stale = tmp_path / f".key.json.{dead_pid}.abc123.tmp"
    stale.write_text("half a key")
    live = tmp_path / f".key.json.{os.getppid()}.def456.tmp"
    live.write_text("being written")
    other_target = tmp_path / f".paper.pdf.{dead_pid}.xyz.tmp"
    other_target.write_text("another file's leftover")

    fileio.write_text_atomic(tmp_path / "key.json", "{}")

    assert not stale.exists()
    assert live.exists()
    assert other_target.exists()


def test_atomic_write_follows_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        fileio.write_text_atomic(tmp_path / "key.json", "{}")
    finally:
        os.umask(previous)

    assert (tmp_path / "key.json").stat().st_mode & 0o777 == 0o640


# Killed runs

@pytest.fixture(scope="module")
def small_spec(tmp_path_factory) -> Path:
    return write_spec(tmp_path_factory.mktemp("spec"), SMALL_SPEC, name="small")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, small_spec):
    """A run that nothing interrupts, for comparison."""
    return generate(small_spec, SEED, tmp_path_factory.mktemp("reference"))


def test_killed_generate_leaves_complete_files(tmp_path, small_spec, reference_run):
    out_dir = tmp_path / "out"
    command = generate_command(small_spec, out_dir)
    killed = 0

    for writes, extra_seconds in KILLS:
        killed += run_and_kill(command, tmp_path, out_dir, writes, extra_seconds)
        if out_dir.exists():
            assert_complete(out_dir)

    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)

    assert killed >= len(KILLS) // 2
    assert finished.returncode == 0, finished.stderr
    assert "Kept" not in finished.stderr
    assert_complete(out_dir)
    assert temporary_files(out_dir) == []
    assert sorted(path.name for path in out_dir.iterdir()) == sorted(path.name for path in reference_run.values())


def test_same_inputs_give_identical_key(tmp_path, small_spec, reference_run):
    """A run in another process, after killed runs or not, writes the same key and answer file bytes."""
    out_dir = tmp_path / "out"
    finished = subprocess.run(generate_command(small_spec, out_dir), cwd=tmp_path, capture_output=True, text=True)

    assert finished.returncode == 0, finished.stderr
    assert (out_dir / reference_run["key"].name).read_bytes() == reference_run["key"].read_bytes()
    assert (out_dir / reference_run["answers"].name).read_bytes() == reference_run["answers"].read_bytes()


def test_rerun_keeps_filled_answer_file(tmp_path, small_spec):
    """A second run into the same folder never overwrites an answer file the student filled in."""
    first = generate(small_spec, SEED, tmp_path)
    blank = first["answers"].read_text(encoding="utf-8")
    filled = blank.replace('z: ""', 'z: "[1, 0]"', 1)
    assert filled != blank
    first["answers"].write_text(filled, encoding="utf-8")

    second = generate(small_spec, SEED, tmp_path)

    assert first["answers"].read_text(encoding="utf-8") == filled
    assert second["answers"] != first["answers"]
    assert second["answers"].exists()


def test_batch_mark_gives_identical_gradebook(tmp_path, small_spec):
    """Marking the same submissions twice writes byte-identical gradebook and problems files."""
    roster = tmp_path / "roster.csv"
    roster.write_text("student id,name\ns1,Ana\ns2,Bo\n", encoding="utf-8")
    batch_dir = tmp_path / "batch"
    generated = subprocess.run([sys.executable, "-m", "mlexam", "batch", "generate", str(roster), "--spec",
                                str(small_spec), "--out", str(batch_dir), "--secret", str(tmp_path / "exam.secret"),
                                "--workers", "1"], capture_output=True, text=True)
    assert generated.returncode == 0, generated.stderr
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    for answers in (batch_dir / "students").rglob("*-answers.yaml"):
        filled = answers.read_text(encoding="utf-8").replace('""', '"1"')
        (submissions / answers.name).write_text(filled, encoding="utf-8")

    outputs = []
    for run in ("first", "second"):
        results = tmp_path / run
        finished = subprocess.run([sys.executable, "-m", "mlexam", "batch", "mark", str(batch_dir), str(submissions),
                                   "--out", str(results), "--no-feedback"], capture_output=True, text=True)
        assert finished.returncode in (0, 1), finished.stderr
        outputs.append({path.name: path.read_bytes() for path in results.glob("*.csv")})

    assert "gradebook.csv" in outputs[0]
    assert outputs[0] == outputs[1]
