"""Student ids, file names and symbolic links never make mlexam read or write outside its folders.

The test folder contains the inputs, a `secrets` folder for the course secret, the
output folders, and canary folders beside them. Every file outside the output
folders is fingerprinted before each run and compared after it, and the ids that
name absolute paths are checked not to exist afterwards.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from hostile.papers import write_spec
from mlexam.batch.names import safe_name

TOKEN = uuid.uuid4().hex[:12]
ABSOLUTE_TARGET = Path("/tmp") / f"mlexam-escape-{TOKEN}"
HOSTILE_IDS = [
    "s1001",
    "../../x",
    "../canary/owned",
    f"{ABSOLUTE_TARGET}/abs",
    "a/b",
    "..",
    "bell\x07and\x1b[31mescape",
    "back\\..\\slash",
    "CON",
    "x" * 300,
]
SPEC = {"course": "Course", "instructions": "Answer.", "duration_minutes": 10,
        "sections": [{"questions": [{"type": "bpe_encode", "new_words": 2}]}]}
OUTSIDE_MARK = f"OUTSIDE-{TOKEN}"
# Names that a spreadsheet would run as formulas if a CSV cell started with them.
FORMULA_NAMES = {0: '=HYPERLINK("http://127.0.0.1:9/x","click")', 8: "@SUM(1+1)"}
FORMULA_ID = "=cmd|' /C calc'!A0"
FORMULA_STARTS = ("=", "+", "@")


def fingerprint(root: Path, skip: set[Path]) -> dict[str, tuple[int, int]]:
    """Return (size, mtime in ns) of every file and link under root, leaving out the folders in skip."""
    found = {}
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        base = Path(directory)
        subdirectories[:] = [name for name in subdirectories if base / name not in skip]
        for name in files + [name for name in subdirectories if (base / name).is_symlink()]:
            info = (base / name).lstat()
            found[str((base / name).relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return found


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlexam", *map(str, args)], cwd=cwd, capture_output=True, text=True)


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() or path.is_symlink()]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """Generate a batch for a roster of hostile ids; yield the folders and the run."""
    root = tmp_path_factory.mktemp("paths")
    inputs = root / "inputs"
    inputs.mkdir()
    (root / "canary").mkdir()
    (root / "canary" / "keep.txt").write_text("canary")
    (root / "x").mkdir()
    roster = inputs / "roster.csv"
    with roster.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["student id", "name"])
        for number, student_id in enumerate(HOSTILE_IDS):
            writer.writerow([student_id, FORMULA_NAMES.get(number, f"Student {number}")])
    spec_path = write_spec(inputs, SPEC, name="exam")
    out_dir = root / "out"
    secrets = root / "secrets"

    before = fingerprint(root, {out_dir, secrets})
    finished = run_cli("batch", "generate", roster, "--spec", spec_path, "--out", out_dir,
                       "--secret", secrets / "exam.secret", "--workers", "1", cwd=root / "x")
    after = fingerprint(root, {out_dir, secrets})
    return root, out_dir, finished, before, after


def test_batch_generate_stays_in_folders(sandbox):
    root, out_dir, finished, before, after = sandbox

    assert finished.returncode == 0, finished.stderr
    assert after == before
    assert sorted(path.name for path in (root / "canary").iterdir()) == ["keep.txt"]
    assert list((root / "x").iterdir()) == []
    assert not ABSOLUTE_TARGET.exists()
    assert not (root.parent / "x").exists()


def test_batch_generate_names_are_safe(sandbox):
    _, out_dir, _, _, _ = sandbox
    resolved_out = out_dir.resolve()

    for path in files_under(out_dir):
        assert path.resolve().is_relative_to(resolved_out), path
        assert not path.is_symlink(), path
        relative = path.relative_to(out_dir)
        for component in relative.parts:
            assert component not in ("", ".", "..")
            assert all(character.isprintable() and character not in "\\" for character in component), component
            assert len(component) <= 255


def test_batch_generate_one_folder_per_student(sandbox):
    _, out_dir, _, _, _ = sandbox
    folders = [path for path in (out_dir / "students").iterdir() if path.is_dir()]
    keys = list((out_dir / "keys").glob("*-key.json"))

    assert len(folders) == len(HOSTILE_IDS)
    assert len(keys) == len(HOSTILE_IDS)
    student_ids = {json.loads(key.read_text(encoding="utf-8")).get("student", {}).get("id") for key in keys} - {None}
    answer_ids = {yaml.safe_load(path.read_text(encoding="utf-8"))["student_id"]
                  for path in (out_dir / "students").rglob("*-answers.yaml")}
    assert answer_ids == set(HOSTILE_IDS)
    assert student_ids <= set(HOSTILE_IDS)


def test_safe_name_never_leaves_folder(tmp_path):
    for student_id in HOSTILE_IDS + ["", ".", "...", "/", "\x00", "a\x00b", "nul.txt", "con.yaml", " ../x ", "é/ü"]:
        name = safe_name(student_id)

        assert name not in ("", ".", "..")
        assert "/" not in name
        assert "\\" not in name
        assert "\x00" not in name
        assert not name.startswith(".")
        assert (tmp_path / name).resolve().parent == tmp_path.resolve()


# Marking: hostile student ids inside answer files, and links that point out of SUBMISSIONS.

def filled_answer_file(key: dict, student_id: str) -> str:
    answers = {question["id"]: {part["name"]: part["expected"] for part in question["parts"]}
               for question in key["questions"]}
    return yaml.safe_dump({"format": "mlexam-answers", "format_version": 1, "paper": key["paper_code"],
                           "student_id": student_id, "answers": answers}, allow_unicode=True)


@pytest.fixture(scope="module")
def marked(sandbox):
    root, out_dir, finished, _, _ = sandbox
    assert finished.returncode == 0, finished.stderr
    submissions = root / "submissions"
    submissions.mkdir()
    outside = root / "outside"
    outside.mkdir()

    # Every student hands in a correct file under an ordinary name.
    for number, answers_path in enumerate(sorted((out_dir / "students").rglob("*-answers.yaml"))):
        student_id = yaml.safe_load(answers_path.read_text(encoding="utf-8"))["student_id"]
        key_path = out_dir / "keys" / (answers_path.name.removesuffix("-answers.yaml") + "-key.json")
        key = json.loads(key_path.read_text(encoding="utf-8"))
        (submissions / f"submission-{number}.yaml").write_text(filled_answer_file(key, student_id), encoding="utf-8")

    # Files outside SUBMISSIONS, reached only through links.
    some_key = json.loads(next((out_dir / "keys").glob("*-key.json")).read_text(encoding="utf-8"))
    (outside / "stolen.yaml").write_text(filled_answer_file(some_key, OUTSIDE_MARK), encoding="utf-8")
    (outside / "folder").mkdir()
    (outside / "folder" / "more.yaml").write_text(filled_answer_file(some_key, OUTSIDE_MARK), encoding="utf-8")
    (submissions / "link-to-file.yaml").symlink_to(outside / "stolen.yaml")
    (submissions / "link-to-folder").symlink_to(outside / "folder", target_is_directory=True)
    (submissions / "link-to-passwd.yaml").symlink_to("/etc/passwd")
    (submissions / "dangling.yaml").symlink_to(outside / "missing.yaml")

    # Answer files whose student ids name paths.
    for number, student_id in enumerate(["../../../outside/evil", str(ABSOLUTE_TARGET / "mark"), "../results-escape",
                                              FORMULA_ID]):
        (submissions / f"hostile-id-{number}.yaml").write_text(filled_answer_file(some_key, student_id),
                                                               encoding="utf-8")
    (submissions / "control\x1b[2Jname.yaml").write_text(filled_answer_file(some_key, "s1001"), encoding="utf-8")

    results = root / "results"
    before = fingerprint(root, {results})
    finished = run_cli("batch", "mark", out_dir, submissions, "--out", results, cwd=root / "x")
    after = fingerprint(root, {results})
    return root, results, finished, before, after


def test_batch_mark_stays_in_folders(marked):
    root, results, finished, before, after = marked

    assert finished.returncode in (0, 1), finished.stderr
    assert "Traceback" not in finished.stderr
    assert after == before
    assert not ABSOLUTE_TARGET.exists()
    assert not (root / "outside" / "evil").exists()
    assert not (root / "results-escape").exists()
    assert list((root / "x").iterdir()) == []


def test_batch_mark_outputs_inside_results(marked):
    _, results, _, _, _ = marked
    resolved = results.resolve()

    assert files_under(results)
    for path in files_under(results):
        assert path.resolve().is_relative_to(resolved), path
        assert not path.is_symlink(), path
        assert all(part not in ("", ".", "..") for part in path.relative_to(results).parts)


def test_batch_mark_never_follows_links(marked):
    _, results, finished, _, _ = marked
    texts = [path.read_bytes().decode("utf-8", "replace") for path in files_under(results)
             if path.suffix in (".csv", ".json", ".txt", ".md", ".html", ".yaml")]
    everything = "\n".join(texts) + finished.stdout + finished.stderr

    assert OUTSIDE_MARK not in everything
    assert "root:x:0:0" not in everything
    for name in ("link-to-file.yaml", "link-to-folder", "link-to-passwd.yaml", "dangling.yaml"):
        assert name in everything, name


def test_batch_mark_reports_every_file(marked):
    """Each hostile-id file and each link is named in the output, so no submission goes unexplained."""
    _, results, finished, _, _ = marked
    texts = "\n".join(path.read_bytes().decode("utf-8", "replace") for path in files_under(results)
                      if path.suffix in (".csv", ".json", ".txt", ".md"))
    everything = texts + finished.stdout + finished.stderr

    for number in range(4):
        assert f"hostile-id-{number}.yaml" in everything


def test_batch_mark_csv_cells_not_formulas(marked):
    """Roster names and student ids that start like a formula are written so a spreadsheet shows them as text."""
    _, results, _, _, _ = marked
    tables = sorted(results.rglob("*.csv"))

    assert tables
    for table in tables:
        with table.open(newline="", encoding="utf-8-sig") as stream:
            for row in csv.reader(stream):
                for cell in row:
                    assert not cell.startswith(FORMULA_STARTS), (table.name, cell)
