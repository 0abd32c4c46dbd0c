"""`mlexam batch mark`: matching, problem files, copying, the gradebook, re-marking and the class report."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pypdf import PdfReader

from mlexam.cli import main

SMALL_SPEC = """\
format: mlexam-spec
format_version: 1
title: "Batch marking test paper"
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
        classes: 2
        inputs: 2
"""
# The backpropagation sizes are fixed, so a copied answer file has the shapes of the
# copier's own variant and is marked against both keys.
STUDENTS = [f"m{number:03d}" for number in range(7)]


def answers_from_key(key: dict) -> dict:
    """Answer every part with the key's decimal (numbers) or expected value (BPE)."""
    answers = {}
    for question in key["questions"]:
        answers[question["id"]] = {
            part["name"]: part["decimal"] if part.get("decimal") is not None else part["expected"]
            for part in question["parts"]}
    return answers


def answer_text(student_id: str, paper: str, answers: dict) -> str:
    return yaml.safe_dump({"format": "mlexam-answers", "format_version": 1, "paper": paper,
                           "student_id": student_id, "answers": answers}, allow_unicode=True)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("marking")
    spec = folder / "spec.yaml"
    spec.write_text(SMALL_SPEC)
    roster = folder / "roster.csv"
    with open(roster, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section"])
        writer.writerow(["Points Possible", "", "", "", ""])
        for number, student_id in enumerate(STUDENTS):
            writer.writerow([f"Last{number}, First{number}", str(900 + number), student_id, f"login{number}", "A"])
    out = folder / "exam"
    result = CliRunner().invoke(main, ["batch", "generate", str(roster), "--spec", str(spec), "--out", str(out),
                                       "--workers", "2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    keys = {s["id"]: json.loads((out / s["files"]["key"]["path"]).read_text()) for s in manifest["students"]}
    return out, manifest, keys


@pytest.fixture
def submissions(batch, tmp_path):
    """A class folder with every kind of file a teacher receives."""
    out, manifest, keys = batch
    folder = tmp_path / "submissions"
    folder.mkdir()
    codes = {s["id"]: s["variant_code"] for s in manifest["students"]}

    # m000..m002 answer their own paper correctly; m003 leaves its id out, so its file name is used.
    for student_id in STUDENTS[:3]:
        text = answer_text(student_id, codes[student_id], answers_from_key(keys[student_id]))
        (folder / f"{student_id}-answers.yaml").write_text(text)
    nested = folder / "m003"
    nested.mkdir()
    (nested / "answers.yaml").write_text(answer_text("", codes["m003"], answers_from_key(keys["m003"])))

    # m004 hands in m000's answers on its own answer file.
    (folder / "m004.yaml").write_text(answer_text("m004", codes["m004"], answers_from_key(keys["m000"])))

    # m005 hands in two files; the newer one is marked.
    first = folder / "m005-first.yaml"
    first.write_text(answer_text("m005", codes["m005"], {}))
    second = folder / "m005-second.yaml"
    second.write_text(answer_text("m005", codes["m005"], answers_from_key(keys["m005"])))
    os.utime(first, (1_000_000, 1_000_000))

    # m006 hands in nothing. The rest cannot be marked.
    (folder / "stranger.yaml").write_text(answer_text("x999", "V-NOPE", {}))
    (folder / "empty.yaml").write_bytes(b"")
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (folder / "utf16.yaml").write_bytes(answer_text("m006", codes["m006"], {}).encode("utf-16-le"))
    (folder / "latin1.yaml").write_bytes(("# résumé\n" + answer_text("m006", codes["m006"], {})).encode("latin-1"))
    outside = tmp_path / "outside.yaml"
    outside.write_text(answer_text("m006", codes["m006"], answers_from_key(keys["m006"])))
    (folder / "link.yaml").symlink_to(outside)
    (folder / "linked-folder").symlink_to(tmp_path)
    return folder


def run_mark(out: Path, submissions: Path, results: Path, *options: str):
    return CliRunner().invoke(main, ["batch", "mark", str(out), str(submissions), "--out", str(results), *options])


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_every_file_accounted_for(batch, submissions, tmp_path):
    out, manifest, _ = batch
    results = tmp_path / "results"
    result = run_mark(out, submissions, results, "--no-feedback")
    assert result.exit_code == 0, result.output
    assert "7 students: 6 marked, 1 missing" in result.stderr

    gradebook = read_csv(results / "gradebook.csv")
    problems = read_csv(results / "problems.csv")
    assert [row["SIS User ID"] for row in gradebook] == STUDENTS
    in_gradebook = {row["Submission"] for row in gradebook if row["Submission"]}
    in_problems = {row["file"] for row in problems}
    every_entry = {p.relative_to(submissions).as_posix() for p in submissions.rglob("*")
                   if p.is_file() or p.is_symlink()}
    assert every_entry <= in_gradebook | in_problems
    assert "linked-folder" in in_problems

    reasons = {row["file"]: (row["problem"], row["detail"]) for row in problems}
    assert reasons["empty.yaml"] == ("unreadable", "empty file (0 bytes)")
    assert reasons["photo.png"][0] == "unreadable"
    assert "binary data" in reasons["photo.png"][1]
    assert "UTF-16 text without a byte-order mark" in reasons["utf16.yaml"][1]
    assert "not UTF-8: byte 0xE9" in reasons["latin1.yaml"][1]
    assert reasons["stranger.yaml"] == ("unknown id", "student_id 'x999' is not in the roster of this batch")
    assert reasons["m005-first.yaml"][0] == "duplicate"
    assert "marked the newest, m005-second.yaml" in reasons["m005-first.yaml"][1]
    assert reasons["link.yaml"] == ("symlink", "a symbolic link; not followed")


def test_gradebook_marks_and_layout(batch, submissions, tmp_path):
    out, manifest, _ = batch
    results = tmp_path / "results"
    assert run_mark(out, submissions, results, "--no-feedback").exit_code == 0
    rows = {row["SIS User ID"]: row for row in read_csv(results / "gradebook.csv")}
    header = next(csv.reader(io.StringIO((results / "gradebook.csv").read_text())))
    assert header == ["SIS User ID", "Student", "ID", "SIS Login ID", "Section", "q1", "q2", "Total", "Status",
                      "Submission"]
    total = str(manifest["total_marks"])
    for student_id in ("m000", "m001", "m002", "m003", "m005"):
        assert rows[student_id]["Total"] == total, student_id
        assert rows[student_id]["Status"] == "marked"
    assert rows["m003"]["Submission"] == "m003/answers.yaml"
    assert rows["m005"]["Submission"] == "m005-second.yaml"
    assert rows["m002"]["Student"] == "Last2, First2"
    assert rows["m002"]["ID"] == "902"
    assert rows["m006"]["Status"] == "missing"
    assert (rows["m006"]["q1"], rows["m006"]["Total"]) == ("", "")
    question_sum = int(rows["m000"]["q1"]) + int(rows["m000"]["q2"])
    assert question_sum == manifest["total_marks"]


def test_copied_answers_flagged(batch, submissions, tmp_path):
    out, manifest, _ = batch
    results = tmp_path / "results"
    assert run_mark(out, submissions, results, "--no-feedback").exit_code == 0
    flagged = [row for row in read_csv(results / "problems.csv") if row["problem"] == "possible copying"]
    assert [(row["file"], row["student_id"]) for row in flagged] == [("m004.yaml", "m004")]
    detail = flagged[0]["detail"]
    total = manifest["total_marks"]
    assert f"match m000's variant better than m004's own: {total}/{total} against m000's key" in detail
    assert "against the student's own key" in detail


def test_remark_shows_changes_and_keeps_previous(batch, submissions, tmp_path):
    out, manifest, keys = batch
    results = tmp_path / "results"
    assert run_mark(out, submissions, results, "--no-feedback").exit_code == 0
    first = (results / "gradebook.csv").read_bytes()

    # m001 loses the y part of the backpropagation question; m002's file is withdrawn.
    answers = answers_from_key(keys["m001"])
    answers["q2"]["y"] = "[2, -1]"  # no softmax output: both entries are outside [0, 1]
    code = next(s["variant_code"] for s in manifest["students"] if s["id"] == "m001")
    (submissions / "m001-answers.yaml").write_text(answer_text("m001", code, answers))
    (submissions / "m002-answers.yaml").unlink()

    dry = run_mark(out, submissions, results, "--no-feedback", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "2 students' marks differ" in dry.stdout
    total = manifest["total_marks"]
    assert f"m001: q2 12 -> 10 (-2), Total {total} -> {total - 2} (-2)" in dry.stdout
    assert f"m002: q1 6 -> -, q2 12 -> -, Total {total} -> -, Status marked -> missing" in dry.stdout
    assert "dry run, nothing written" in dry.stderr
    assert (results / "gradebook.csv").read_bytes() == first
    assert not (results / "gradebook.previous.csv").exists()

    real = run_mark(out, submissions, results, "--no-feedback")
    assert real.exit_code == 0
    assert dry.stdout == real.stdout
    assert (results / "gradebook.previous.csv").read_bytes() == first
    rows = {row["SIS User ID"]: row for row in read_csv(results / "gradebook.csv")}
    assert rows["m001"]["Total"] == str(total - 2)

    # A third run keeps the second gradebook too, under a time-stamped name.
    second = (results / "gradebook.csv").read_bytes()
    assert run_mark(out, submissions, results, "--no-feedback").exit_code == 0
    kept = sorted(results.glob("gradebook.previous*.csv"))
    assert len(kept) == 2
    assert {path.read_bytes() for path in kept} == {first, second}


def test_results_symlink_out_of_folder_rejected(batch, submissions, tmp_path):
    out, _, _ = batch
    results = tmp_path / "results"
    results.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (results / "feedback").symlink_to(elsewhere)
    result = run_mark(out, submissions, results)
    assert result.exit_code == 2
    assert "leads outside the results folder" in result.stderr
    assert list(elsewhere.iterdir()) == []


@pytest.mark.slow
def test_feedback_and_class_report(batch, submissions, tmp_path, strict_xhtml):
    out, manifest, _ = batch
    results = tmp_path / "results"
    result = run_mark(out, submissions, results)
    assert result.exit_code == 0, result.output
    feedback = sorted(p.name for p in (results / "feedback").iterdir())
    assert feedback == [f"{student_id}-feedback.pdf" for student_id in STUDENTS[:6]]
    for path in (results / "feedback").iterdir():
        assert len(PdfReader(path).pages) >= 1

    report = PdfReader(results / "class-report.pdf")
    text = "".join(page.extract_text() for page in report.pages)
    assert "Batch marking test paper: class report" in text
    assert "7 students" in text
    assert "possible copying" in text
    images = [image for page in report.pages for image in page.images]
    assert len(images) >= 2  # the histogram and the facility/discrimination plot
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-r", "40", "-png", str(results / "class-report.pdf"), str(tmp_path / "page")],
                       check=True)
        assert sorted(tmp_path.glob("page-*.png"))


def test_plots_have_labelled_axes(batch, submissions):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlexam.batch import report
    from mlexam.batch.mark import mark_class

    out, _, _ = batch
    result = mark_class(out, submissions, progress=False)
    labels = []
    original_close = plt.close

    def record_labels(figure):
        labels.append([(axes.get_xlabel(), axes.get_ylabel()) for axes in figure.axes])
        original_close(figure)

    plt.close = record_labels
    try:
        assert report.histogram_plot(result).startswith("data:image/png;base64,")
        assert report.parts_plot(report.part_statistics(result)).startswith("data:image/png;base64,")
    finally:
        plt.close = original_close
    histogram, parts = labels
    assert histogram[0][0].startswith("Total mark (out of")
    assert histogram[0][1] == "Number of students"
    assert parts[0][1].startswith("Facility")
    assert parts[1] == ("Part", "Discrimination\n(part vs rest, r)")


def test_missing_manifest_is_an_error(tmp_path):
    (tmp_path / "subs").mkdir()
    result = run_mark(tmp_path, tmp_path / "subs", tmp_path / "results")
    assert result.exit_code == 2
    assert "no manifest.json here" in result.stderr


def test_class_statistics_match_exact_sums(batch, tmp_path):
    import numpy as np

    from mlexam.batch import report
    from mlexam.batch.mark import mark_class

    out, manifest, keys = batch
    # Each student leaves out a different set of parts, so the marks vary from part to part.
    folder = tmp_path / "varied"
    folder.mkdir()
    for number, record in enumerate(manifest["students"]):
        answers = answers_from_key(keys[record["id"]])
        names = [(question, part) for question in answers for part in answers[question]]
        for index, (question, part) in enumerate(names):
            if (number * 3 + index) % 4 == 0 or (number + index) % 5 == 0:
                del answers[question][part]
        (folder / f"{record['id']}.yaml").write_text(answer_text(record["id"], record["variant_code"], answers))

    result = mark_class(out, folder, progress=False)
    marked = [student for student in result.students if student.report]
    assert len(marked) == len(STUDENTS)
    for student in marked:
        assert student.total == sum(part.marks for part in student.report.parts)

    summary = report.score_summary(result)
    totals = [float(sum(part.marks for part in student.report.parts)) for student in marked]
    assert len(set(totals)) > 2
    assert summary["n"] == len(STUDENTS)
    assert summary["mean"] == pytest.approx(np.mean(totals), abs=1e-12)
    assert summary["sd"] == pytest.approx(np.std(totals, ddof=1), abs=1e-12)
    assert (summary["min"], summary["max"]) == (min(totals), max(totals))

    stats = report.part_statistics(result)
    assert [part["id"] for part in stats] == [part.id for part in marked[0].report.parts]
    partial = 0
    for index, part in enumerate(stats):
        marks = np.array([float(student.report.parts[index].marks) for student in marked])
        rest = np.array(totals) - marks
        assert part["facility"] == pytest.approx(marks.mean() / part["maximum"], abs=1e-12)
        if np.ptp(marks) == 0 or np.ptp(rest) == 0:
            assert part["discrimination"] is None, part["id"]
            continue
        expected = np.corrcoef(marks, rest)[0, 1]
        assert part["discrimination"] == pytest.approx(expected, abs=1e-9), part["id"]
        if abs(expected) < 0.99:
            partial += 1
    assert partial >= 3


def test_marking_leaves_no_objects_frozen(batch, submissions, tmp_path):
    import gc

    from mlexam.batch.mark import long_lived_objects_frozen, mark_class
    from mlexam.batch.results import write_results

    out, _, _ = batch
    assert gc.get_freeze_count() == 0
    result = mark_class(out, submissions, progress=False)
    assert gc.get_freeze_count() == 0
    write_results(tmp_path / "results", result, feedback=False)
    assert gc.get_freeze_count() == 0

    # An inner block leaves frozen what an outer block froze, and the outer block releases it.
    with long_lived_objects_frozen():
        with long_lived_objects_frozen():
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_class_report_describes_mistakes(batch, tmp_path):
    out, manifest, keys = batch
    codes = {s["id"]: s["variant_code"] for s in manifest["students"]}
    folder = tmp_path / "submissions"
    folder.mkdir()
    answers = answers_from_key(keys["m000"])
    question = next(q for q in keys["m000"]["questions"] if any(p["name"] == "delta" for p in q["parts"]))
    delta = next(p for p in question["parts"] if p["name"] == "delta")
    # t - y instead of y - t: every entry of delta negated.
    answers[question["id"]]["delta"] = [str(-float(v)) for v in delta["decimal"]]
    (folder / "m000.yaml").write_text(answer_text("m000", codes["m000"], answers))

    results = tmp_path / "results"
    result = run_mark(out, folder, results, "--no-feedback")
    assert result.exit_code == 0, result.output

    text = "".join(page.extract_text() for page in PdfReader(results / "class-report.pdf").pages)
    assert "Computing t - y instead of y - t" in text
    assert "t_minus_y" in text


def test_batch_mark_drops_each_key(batch, submissions, tmp_path, monkeypatch):
    """Each key is read, used and let go, so memory does not grow with the number of keys."""
    import weakref

    import marker.answers
    import marker.core
    from mlexam.batch.mark import mark_class
    from mlexam.batch.results import write_results

    class Key(dict):
        """A dict that a weak reference can point to."""

    loaded, paths = [], []
    read_key = marker.answers.load_key

    def load_key(path):
        key = Key(read_key(path))
        loaded.append(weakref.ref(key))
        paths.append(Path(path).name)
        return key

    monkeypatch.setattr(marker.answers, "load_key", load_key)
    monkeypatch.setattr(marker.core, "KEY_CACHE_SIZE", 1)
    marker.core._key_caches.clear()
    out, _, _ = batch
    result = mark_class(out, submissions, progress=False)
    # Every key is read once in roster order. The copying check reads again the keys it
    # marks a submission against, such as m000's key for the file m004 copied from m000.
    assert paths[:len(STUDENTS)] == [f"{student_id}-key.json" for student_id in STUDENTS]
    assert "m000-key.json" in paths[len(STUDENTS):]
    alive = [ref for ref in loaded if ref() is not None]
    assert len(alive) <= 1  # the marker keeps the last key it marked, in its cache of derived data
    write_results(tmp_path / "results", result, feedback=False)
    assert result.students[0].status == "marked"
    marker.core._key_caches.clear()
    assert all(ref() is None for ref in loaded)


def test_class_statistics_name_varying_parts():
    """Students who drew other bank questions share a position, not a part id."""
    from fractions import Fraction

    from marker.report import MarkReport, PartResult, Verdict
    from mlexam.batch.mark import ClassResult, StudentResult
    from mlexam.batch.report import part_statistics

    drawn = {"s1": ("vanishing_power", "exploding_cause"), "s2": ("vanishing_power", "vanishing_true_false"),
             "s3": ("vanishing_power", "exploding_power")}
    students = []
    for number, (student_id, items) in enumerate(drawn.items()):
        parts = [PartResult("q1.merges", Verdict.CORRECT, Fraction(number), Fraction(4), "")]
        parts += [PartResult(f"q2.{item}", Verdict.CORRECT, Fraction(1), Fraction(1), "") for item in items]
        report = MarkReport(parts, student_id)
        students.append(StudentResult({"id": student_id}, "marked", None, report, report.total))
    result = ClassResult(manifest=None, students=students)

    stats = part_statistics(result)

    assert [row["id"] for row in stats] == ["q1.merges", "q2.vanishing_power", "q2 item 2 (varies)"]
    assert stats[0]["facility"] == pytest.approx(0.25)
    assert stats[2]["facility"] == 1.0


@pytest.mark.parametrize("damage", ["other student's key", "question without id", "deleted"])
def test_unusable_key_gets_problem_row(batch, submissions, tmp_path, damage):
    out, _, _ = batch
    copy = tmp_path / "exam"
    shutil.copytree(out, copy)
    key_path = copy / "keys" / "m002-key.json"
    if damage == "other student's key":
        shutil.copyfile(copy / "keys" / "m001-key.json", key_path)
    elif damage == "question without id":
        key = json.loads(key_path.read_text())
        del key["questions"][0]["id"]
        key_path.write_text(json.dumps(key))
    else:
        key_path.unlink()
    results = tmp_path / "results"

    result = run_mark(copy, submissions, results, "--no-feedback")

    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    if damage == "deleted":
        assert "sha256 mismatch" not in result.stderr
    rows = [row for row in read_csv(results / "problems.csv") if row["student_id"] == "m002"]
    assert [(row["file"], row["problem"]) for row in rows] == [("keys/m002-key.json", "key")]
    expected = {"other student's key": "this file is the key of paper",
                "question without id": "question 1 of the key has no id or type",
                "deleted": "the key cannot be read"}[damage]
    assert expected in rows[0]["detail"]
    statuses = {row["SIS User ID"]: row["Status"] for row in read_csv(results / "gradebook.csv")}
    assert statuses["m002"] == "not marked"
    assert statuses["m001"] == "marked"
    assert statuses["m000"] == "marked"
