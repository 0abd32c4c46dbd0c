"""`mlexam batch generate`: rosters, secrets, safe names, one variant per student, resuming."""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from pypdf import PdfReader

from generator.errors import InputFileError
from mlexam.batch import secret as batch_secret
from mlexam.batch.manifest import sha256_file
from mlexam.batch.names import safe_name, safe_names
from mlexam.batch.roster import read_roster
from mlexam.cli import main

# One BPE training and one backpropagation question: the smallest paper with both topics.
# Ties are allowed so that every seed gives a valid variant quickly.
SMALL_SPEC = """\
format: mlexam-spec
format_version: 1
title: "Batch test paper"
course: "Test course"
duration_minutes: 30
instructions: "Answer every question."
decimal_places: 3
sections:
  - title: Both topics
    questions:
      - type: bpe_train
        words: 4
        merges: 4
        ties: allow
        marks: {merges: 4, segmentation: 2}
      - type: backprop_softmax
"""
CLASS_SIZE = 60
# The kill test stops the run once this many students have their key written.
KEYS_BEFORE_KILL = 3
KILL_TIMEOUT_SECONDS = 120


def write_spec(folder: Path) -> Path:
    path = folder / "small.yaml"
    path.write_text(SMALL_SPEC, encoding="utf-8")
    return path


def write_roster(path: Path, ids: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["student_id", "name", "email"])
        for student_id in ids:
            writer.writerow([student_id, f"Name of {student_id}", f"{student_id}@example.edu"])
    return path


def class_ids(count: int) -> list[str]:
    return [f"s{number:04d}" for number in range(count)]


def run_generate(*args: str) -> object:
    result = CliRunner().invoke(main, ["batch", "generate", *args])
    return result


def key_files(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((out / "keys").glob("*.json"))}


def assert_batch_intact(out: Path, ids: list[str]) -> None:
    """Every student has exactly the four files the manifest lists, each complete and with its sha256."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert [s["id"] for s in manifest["students"]] == ids
    listed = {out / entry["path"] for s in manifest["students"] for entry in s["files"].values()}
    on_disk = {p for p in (out / "students").rglob("*") if p.is_file()} | \
        {p for p in (out / "keys").iterdir() if p.is_file()}
    assert on_disk == listed
    for student in manifest["students"]:
        for entry in student["files"].values():
            path = out / entry["path"]
            assert sha256_file(path) == entry["sha256"], path
            if path.suffix == ".pdf":
                assert len(PdfReader(path).pages) >= 1
            elif path.suffix == ".json":
                assert json.loads(path.read_text())["student"]["id"] == student["id"]
    assert not [p for p in out.rglob("*.tmp")]


# ---- roster ----------------------------------------------------------------------------

def test_roster_moodle_export_with_bom_and_semicolons(tmp_path):
    path = tmp_path / "moodle.csv"
    text = ("First name;Surname;ID number;Institution;Department;Email address\n"
            "\n"
            "Ana;Pérez;1001;Uni;CS;ana@example.edu\n"
            "Bo;Li;1002;Uni;CS;bo@example.edu\n"
            "Bo;Li again;1002;Uni;CS;bo2@example.edu\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    roster = read_roster(path)
    assert roster.kind == "moodle"
    assert roster.id_column == "ID number"
    assert [(s.id, s.name, s.email) for s in roster.students] == [
        ("1001", "Ana Pérez", "ana@example.edu"), ("1002", "Bo Li", "bo@example.edu")]
    assert len(roster.problems) == 1
    assert "duplicate student id '1002'" in roster.problems[0]
    assert "line 5" in roster.problems[0]
    assert roster.identity_columns == ["First name", "Surname", "ID number", "Email address"]


def test_roster_canvas_export_skips_points_possible(tmp_path):
    path = tmp_path / "canvas.csv"
    path.write_text('Student,ID,SIS User ID,SIS Login ID,Section,Quiz 1 (123)\n'
                    '"    Points Possible",,,,,10\n'
                    '"Pérez, Ana",501,A1001,ana,Sec 1,7\n'
                    '"Li, Bo",502,A1002,bo,Sec 1,9\n', encoding="utf-8")
    roster = read_roster(path)
    assert roster.kind == "canvas"
    assert roster.id_column == "SIS User ID"
    assert [(s.id, s.name) for s in roster.students] == [("A1001", "Pérez, Ana"), ("A1002", "Li, Bo")]
    assert roster.identity_columns == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert roster.problems == []


def test_roster_canvas_without_sis_ids_uses_canvas_id(tmp_path):
    path = tmp_path / "canvas.csv"
    path.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n"
                    "Points Possible,,,,\n"
                    "\"Li, Bo\",502,,bo,Sec 1\n", encoding="utf-8")
    assert read_roster(path).id_column == "ID"


def test_roster_named_columns_and_errors(tmp_path):
    path = tmp_path / "class.csv"
    path.write_text("Matrikel\tVoller Name\n123\tAna\n\n456\tBo\n", encoding="utf-8")
    roster = read_roster(path, id_column="matrikel", name_column="Voller Name")
    assert [(s.id, s.name) for s in roster.students] == [("123", "Ana"), ("456", "Bo")]
    with pytest.raises(InputFileError, match="--id-column 'number': no such column"):
        read_roster(path, id_column="number")
    with pytest.raises(InputFileError, match="no student id column"):
        read_roster(path)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("student_id,name\n1,José\n".encode("latin-1"))
    with pytest.raises(InputFileError, match="not UTF-8"):
        read_roster(latin)


# ---- names and secret ------------------------------------------------------------------

@pytest.mark.parametrize("student_id", ["../../etc/passwd", "a/b", "..", ".hidden", "tab\tid", "CON", "",
                                        "Ana María", "x" * 300, "nul\x00byte"])
def test_safe_name_stays_in_folder(student_id):
    name = safe_name(student_id)
    assert name not in ("", ".", "..")
    assert not name.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    assert len(name) <= 60


def test_safe_names_distinct_when_case_folds_clash():
    names = safe_names(["AB1", "ab1", "a b", "a_b"])
    assert len({name.casefold() for name in names.values()}) == 4
    assert safe_name("s1234") == "s1234"


def test_secret_created_private_and_reused(tmp_path):
    path = tmp_path / "exam.secret"
    secret, created = batch_secret.load_or_create_secret(path)
    assert created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(secret) == batch_secret.SECRET_BYTES
    again, created_again = batch_secret.load_or_create_secret(path)
    assert (again, created_again) == (secret, False)
    fingerprint = batch_secret.fingerprint(secret)
    assert fingerprint not in secret.hex()
    assert batch_secret.student_seed(secret, "exam", "s1") != batch_secret.student_seed(secret, "exam", "s2")
    assert batch_secret.student_seed(secret, "exam", "s1") != batch_secret.student_seed(secret, "exam2", "s1")
    assert batch_secret.student_seed(secret, "ab", "c") != batch_secret.student_seed(secret, "a", "bc")
    code = batch_secret.variant_code(secret, "exam", "s1")
    assert code.startswith("V-")
    assert str(batch_secret.student_seed(secret, "exam", "s1")) not in code


def test_short_secret_rejected(tmp_path):
    path = tmp_path / "weak.secret"
    path.write_text("abcd\n")
    with pytest.raises(InputFileError, match="at least 16"):
        batch_secret.read_secret(path)


# ---- a class of 60 ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def class_batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    spec = write_spec(folder)
    roster = write_roster(folder / "roster.csv", class_ids(CLASS_SIZE))
    out = folder / "exam"
    result = run_generate(str(roster), "--spec", str(spec), "--out", str(out), "--workers", "2")
    return folder, spec, out, result


@pytest.mark.slow
def test_class_gets_distinct_variants(class_batch):
    folder, _, out, result = class_batch
    assert result.exit_code == 0, result.output
    assert f"Created a new secret in {folder / 'small.secret'}" in result.stderr
    assert f"{CLASS_SIZE} generated, 0 already finished, 0 failed" in result.stderr

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "mlexam-batch-manifest"
    assert manifest["format_version"] == 1
    assert len({s["variant_code"] for s in manifest["students"]}) == CLASS_SIZE
    problems = {json.dumps([q["problem"] for q in json.loads(data)["questions"]])
                for data in key_files(out).values()}
    assert len(problems) == CLASS_SIZE
    assert_batch_intact(out, class_ids(CLASS_SIZE))

    # The secret never appears in any output, and the manifest holds only its fingerprint.
    secret_hex = (folder / "small.secret").read_text().strip()
    assert manifest["secret_fingerprint"] == batch_secret.fingerprint(bytes.fromhex(secret_hex))
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".yaml"):
            assert secret_hex not in path.read_text()


@pytest.mark.slow
def test_booklet_has_every_key_on_new_page(class_batch):
    _, _, out, _ = class_batch
    booklet = PdfReader(out / "answer-key-booklet.pdf")
    outline = [item.title for item in booklet.outline]
    assert outline == ["Contents"] + [f"s{n:04d} Name of s{n:04d}" for n in range(CLASS_SIZE)]
    starts = [booklet.get_destination_page_number(item) for item in booklet.outline]
    assert starts == sorted(starts)
    assert len(set(starts)) == CLASS_SIZE + 1
    assert "Student ID: s0007" in booklet.pages[starts[8]].extract_text()


@pytest.mark.slow
def test_paper_shows_student_not_seed(class_batch):
    _, _, out, _ = class_batch
    manifest = json.loads((out / "manifest.json").read_text())
    student = manifest["students"][5]
    text = PdfReader(out / student["files"]["paper"]["path"]).pages[0].extract_text()
    seed = json.loads((out / student["files"]["key"]["path"]).read_text())["seed"]
    assert "Name of s0005" in text
    assert "s0005" in text
    assert student["variant_code"] in text
    assert str(seed) not in text
    answers = (out / student["files"]["answers"]["path"]).read_text()
    assert 'student_id: "s0005"' in answers
    assert f"paper: {student['variant_code']}" in answers


@pytest.mark.slow
def test_rerun_skips_finished_files(class_batch):
    folder, spec, out, _ = class_batch
    before = key_files(out)
    result = run_generate(str(folder / "roster.csv"), "--spec", str(spec), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"0 generated, {CLASS_SIZE} already finished" in result.stderr
    assert key_files(out) == before


@pytest.mark.slow
def test_same_secret_regenerates_same_keys(class_batch, tmp_path):
    folder, spec, out, _ = class_batch
    subset = class_ids(CLASS_SIZE)[10:16]
    roster = write_roster(tmp_path / "subset.csv", subset)
    again = tmp_path / "again"
    result = run_generate(str(roster), "--spec", str(spec), "--out", str(again),
                          "--secret", str(folder / "small.secret"), "--workers", "2")
    assert result.exit_code == 0, result.output
    original = key_files(out)
    regenerated = key_files(again)
    assert sorted(regenerated) == [f"{i}-key.json" for i in subset]
    for name, data in regenerated.items():
        assert data == original[name], name


@pytest.mark.slow
def test_other_secret_gives_other_variants(class_batch, tmp_path):
    _, spec, out, _ = class_batch
    subset = class_ids(CLASS_SIZE)[:6]
    roster = write_roster(tmp_path / "subset.csv", subset)
    other = tmp_path / "other"
    result = run_generate(str(roster), "--spec", str(spec), "--out", str(other),
                          "--secret", str(tmp_path / "other.secret"), "--workers", "2")
    assert result.exit_code == 0, result.output
    original, fresh = key_files(out), key_files(other)
    for name, data in fresh.items():
        old, new = json.loads(original[name]), json.loads(data)
        assert new["seed"] != old["seed"]
        assert new["paper_code"] != old["paper_code"]
        assert new["questions"][1]["problem"] != old["questions"][1]["problem"]


@pytest.mark.slow
def test_different_exam_in_folder_rejected(class_batch, tmp_path):
    folder, spec, out, _ = class_batch
    before = key_files(out)
    result = run_generate(str(folder / "roster.csv"), "--spec", str(spec), "--out", str(out),
                          "--secret", str(tmp_path / "another.secret"))
    assert result.exit_code == 2
    assert "contains a different exam" in result.stderr
    assert "the secret differs" in result.stderr
    changed = tmp_path / "changed.yaml"
    changed.write_text(SMALL_SPEC.replace("Batch test paper", "Another paper"))
    result = run_generate(str(folder / "roster.csv"), "--spec", str(changed), "--out", str(out),
                          "--secret", str(folder / "small.secret"), "--exam-id", "sitting-2")
    assert result.exit_code == 2
    assert "exam id" in result.stderr
    assert "spec sha256" in result.stderr
    assert key_files(out) == before


# ---- interrupted runs and unsafe ids --------------------------------------------------

@pytest.mark.slow
def test_killed_run_resumes_without_damage(tmp_path):
    ids = class_ids(16)
    spec = write_spec(tmp_path)
    roster = write_roster(tmp_path / "roster.csv", ids)
    out = tmp_path / "exam"
    command = [sys.executable, "-m", "mlexam", "batch", "generate", str(roster), "--spec", str(spec),
               "--out", str(out), "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + KILL_TIMEOUT_SECONDS
    while len(list((out / "keys").glob("*.json"))) < KEYS_BEFORE_KILL and process.poll() is None:
        assert time.monotonic() < deadline, "no keys were written"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list((out / "keys").glob("*.json")))
    assert KEYS_BEFORE_KILL <= finished < len(ids)

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=KILL_TIMEOUT_SECONDS)
    assert resumed.returncode == 0, resumed.stderr
    assert "already finished" in resumed.stderr
    generated = int(resumed.stderr.split(" generated,")[0].split()[-1])
    assert generated < len(ids)
    assert_batch_intact(out, ids)
    assert len(PdfReader(out / "answer-key-booklet.pdf").outline) == len(ids) + 1


@pytest.mark.slow
def test_unsafe_ids_stay_inside_folder(tmp_path):
    ids = ["../escape", "a/b", "x\ty"]
    spec = write_spec(tmp_path)
    roster = write_roster(tmp_path / "roster.csv", ids)
    out = tmp_path / "exam"
    result = run_generate(str(roster), "--spec", str(spec), "--out", str(out), "--workers", "1")
    assert result.exit_code == 0, result.output
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(out.resolve()) or p.parent == tmp_path for p in written)
    assert not (tmp_path / "escape").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["id"] for s in manifest["students"]] == ids
    assert_batch_intact(out, ids)


def test_nonempty_folder_without_manifest_rejected(tmp_path):
    spec = write_spec(tmp_path)
    roster = write_roster(tmp_path / "roster.csv", ["s1"])
    out = tmp_path / "exam"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_generate(str(roster), "--spec", str(spec), "--out", str(out))
    assert result.exit_code == 2
    assert "has no manifest.json" in result.stderr
    assert (out / "notes.txt").read_text() == "mine"


def test_nonempty_folder_gets_no_new_secret(tmp_path):
    spec = write_spec(tmp_path)
    roster = write_roster(tmp_path / "roster.csv", ["s1"])
    out = tmp_path / "exam1"
    out.mkdir()
    (out / "notes.txt").write_text("a teacher's notes", encoding="utf-8")

    result = CliRunner().invoke(main, ["batch", "generate", str(roster), "--spec", str(spec), "--out", str(out)])

    assert result.exit_code == 2
    assert "has no manifest.json" in result.output
    assert list(tmp_path.glob("*.secret")) == []
    assert (out / "notes.txt").read_text(encoding="utf-8") == "a teacher's notes"


def test_other_exam_folder_gets_no_new_secret(class_batch, tmp_path):
    folder, _, out, _ = class_batch
    other_spec = tmp_path / "other.yaml"
    other_spec.write_text(SMALL_SPEC.replace("Batch test paper", "Another paper"), encoding="utf-8")
    secrets_before = sorted(p.name for p in out.parent.glob("*.secret"))

    result = run_generate(str(folder / "roster.csv"), "--spec", str(other_spec), "--out", str(out))

    assert result.exit_code == 2
    assert "contains a different exam" in result.stderr
    assert sorted(p.name for p in out.parent.glob("*.secret")) == secrets_before


# ---- concept questions drawn from a topic ------------------------------------------------

TOPIC_SPEC = """\
format: mlexam-spec
format_version: 1
title: "Attention quiz"
sections:
  - title: Concepts
    questions:
      - type: concept
        topic: attention
"""


def test_unequal_topic_draws_rejected(tmp_path):
    """The attention questions are worth 2, 3 and 1 marks, so students' totals would differ."""
    spec = tmp_path / "quiz.yaml"
    spec.write_text(TOPIC_SPEC, encoding="utf-8")
    roster = write_roster(tmp_path / "roster.csv", ["s1", "s2"])
    out = tmp_path / "quiz"

    result = run_generate(str(roster), "--spec", str(spec), "--out", str(out))

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "quiz.yaml" in message
    assert "line 8: sections.0.questions.0.topic: the attention questions in the bank are not worth the same" in message
    assert ("1 mark: attention_scaling; 2 marks: attention_weights_bytes; 3 marks: attention_with_qkv_bytes"
            in message)
    assert "choose one question by id, or set marks" in message
    assert not out.exists()
    assert list(tmp_path.glob("*.secret")) == []


def test_topic_draws_with_equal_marks_accepted(tmp_path):
    spec = tmp_path / "quiz.yaml"
    spec.write_text(TOPIC_SPEC + "        marks: {attention_weights_bytes: 3, attention_scaling: 3}\n",
                    encoding="utf-8")
    roster = write_roster(tmp_path / "roster.csv", ["s1", "s2", "s3", "s4"])
    out = tmp_path / "quiz"

    result = run_generate(str(roster), "--spec", str(spec), "--out", str(out), "--workers", "1")

    assert result.exit_code == 0, result.output
    totals = {json.loads(path.read_text())["total_marks"] for path in (out / "keys").glob("*.json")}
    assert totals == {3}


def test_roster_unclosed_quote_rejected(tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text('student_id,name\ns1,Ann\n"unterminated,A\ns2,B\n', encoding="utf-8")

    with pytest.raises(InputFileError) as raised:
        read_roster(path)

    message = str(raised.value)
    assert "quote.csv" in message
    assert "line 3: a quote (\") opened in this row is never closed" in message
    assert "close the quote or remove it" in message


def test_roster_quoted_line_break_kept(tmp_path):
    path = tmp_path / "multiline.csv"
    path.write_text('student_id,name\ns1,"Ann\nLee"\ns2,Bo\n', encoding="utf-8")

    roster = read_roster(path)

    assert [student.id for student in roster.students] == ["s1", "s2"]
    assert roster.students[0].name == "Ann\nLee"
    assert roster.students[1].line == 4


def test_failed_student_named(tmp_path):
    spec = write_spec(tmp_path)
    roster = write_roster(tmp_path / "roster.csv", ["s1", "s2"])
    out = tmp_path / "exam"
    assert run_generate(str(roster), "--spec", str(spec), "--out", str(out)).exit_code == 0
    key = out / "keys" / "s2-key.json"
    key.unlink()
    key.mkdir()  # a folder where the key file goes cannot be replaced by the new key

    result = run_generate(str(roster), "--spec", str(spec), "--out", str(out), "--workers", "1")

    assert result.exit_code == 1
    assert "student s2: building the paper failed: IsADirectoryError" in result.stderr
    assert "Not generated: s2. The errors above give the reason for each" in result.stderr
