"""`mlexam mark`: the table, --json, --feedback, bad files; and every registered question type."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from generator.paper import blank_answers_yaml, build_paper
from generator.registry import QUESTION_TYPES
from generator.spec import bundled_spec_path, load_spec
from marker import mark_submission
from marker.report import Verdict
from mlexam.cli import main

SPEC_NAMES = ("practice", "exam-60", "bpe-drill")


@pytest.fixture
def practice(tmp_path):
    """The practice paper for seed 1: its key file and the blank answer file as data."""
    paper = build_paper(load_spec(bundled_spec_path()), 1)
    key_path = tmp_path / "key.json"
    key_path.write_text(paper.key_json(), encoding="utf-8")
    blank = yaml.safe_load(blank_answers_yaml(paper))
    return key_path, json.loads(paper.key_json()), blank


def write_answers(path: Path, answers: dict) -> Path:
    path.write_text(yaml.safe_dump(answers, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def run(*args: str):
    return CliRunner().invoke(main, ["mark", *args])


def test_table_lists_parts_and_total(practice, tmp_path):
    key_path, key, blank = practice
    blank["answers"]["q1"]["merges"] = ["l o", "lo w", "low </w>", "low i"]
    answers = write_answers(tmp_path / "answers.yaml", blank)
    result = run(str(key_path), str(answers))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("q1.merges") and "correct" in line and "4/4" in line for line in lines)
    assert any(line.startswith("q5.b_new") and "missing" in line and "0/1" in line for line in lines)
    assert lines[-1] == f"Total: 4/{key['total_marks']}"


def test_json_marks_are_numbers(tmp_path):
    spec = {"format": "mlexam-spec", "format_version": 1, "title": "Split marks",
            "sections": [{"title": "BPE", "questions": [
                {"type": "bpe_train", "fixed": {"corpus": "low lowish", "merges": 4}, "marks": {"merges": 5}}]}]}
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    paper = build_paper(load_spec(spec_path), 1)
    key_path = tmp_path / "key.json"
    key_path.write_text(paper.key_json(), encoding="utf-8")
    answers = yaml.safe_load(blank_answers_yaml(paper))
    answers["answers"]["q1"]["merges"] = ["l o", "lo w", "x y", "x z"]
    result = run(str(key_path), str(write_answers(tmp_path / "a.yaml", answers)), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    merges = data["parts"][0]
    assert merges["id"] == "q1.merges"
    assert merges["verdict"] == "wrong"
    assert merges["marks"] == 2.5
    assert merges["maximum"] == 5
    assert data["total"] == 2.5
    assert data["maximum"] == 7
    assert set(merges) >= {"id", "verdict", "marks", "maximum", "expected", "feedback"}


def test_feedback_sheet_uses_own_values(practice, tmp_path):
    key_path, _, blank = practice
    y = [1 / (1 + math.e), math.e / (1 + math.e)]  # softmax of -z
    blank["answers"]["q4"].update({"z": "[1, 0]", "y": [f"{v:.3f}" for v in y],
                                   "delta": [f"{y[0] - 1:.3f}", f"{y[1]:.3f}"]})
    answers = write_answers(tmp_path / "answers.yaml", blank)
    pdf = tmp_path / "feedback.pdf"
    result = run(str(key_path), str(answers), "--feedback", str(pdf))
    assert result.exit_code == 0, result.output
    assert pdf.read_bytes().startswith(b"%PDF")
    output = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = " ".join(output.split())
    assert "With your y = [0.269, 0.731]" in text
    assert "correct carried" in text
    assert not list(tmp_path.glob(".feedback.pdf.*"))


def test_feedback_unwritable_exit_1(practice, tmp_path):
    key_path, _, blank = practice
    answers = write_answers(tmp_path / "answers.yaml", blank)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    result = run(str(key_path), str(answers), "--feedback", str(blocker / "sheet.pdf"))
    assert result.exit_code == 1
    assert "cannot write the feedback sheet" in result.output
    assert "Traceback" not in result.output


def test_missing_key_file_exit_2(tmp_path):
    answers = write_answers(tmp_path / "a.yaml", {"format": "mlexam-answers", "format_version": 1, "answers": {}})
    result = run(str(tmp_path / "nope.json"), str(answers))
    assert result.exit_code == 2
    assert "nope.json" in result.output
    assert "Traceback" not in result.output


def test_wrong_answer_format_exit_2(practice, tmp_path):
    key_path, _, _ = practice
    answers = write_answers(tmp_path / "a.yaml", {"format": "something-else", "answers": {}})
    result = run(str(key_path), str(answers))
    assert result.exit_code == 2
    assert "a.yaml" in result.output
    assert "Traceback" not in result.output


def test_answers_for_other_paper_exit_2(practice, tmp_path):
    key_path, _, blank = practice
    blank["paper"] = "P-00000000"
    result = run(str(key_path), str(write_answers(tmp_path / "a.yaml", blank)))
    assert result.exit_code == 2
    assert "P-00000000" in result.output


def test_broken_key_exit_2(practice, tmp_path):
    key_path, key, blank = practice
    del key["questions"][0]["problem"]
    key_path.write_text(json.dumps(key), encoding="utf-8")
    blank["answers"]["q1"]["merges"] = ["l o", "lo w", "low </w>", "low i"]
    result = run(str(key_path), str(write_answers(tmp_path / "a.yaml", blank)))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "key" in result.output


# Every registered question type: a correct, an incorrect and an invalid submission.

def example_question(qtype: str, tmp_path: Path) -> tuple[dict, dict]:
    """Return a key and its first question of the type: from a bundled spec, or a spec of that one question."""
    for name in SPEC_NAMES:
        path = bundled_spec_path(name)
        if not path.exists():
            continue
        key = build_paper(load_spec(path), 2).key_dict()
        for question in key["questions"]:
            if question["type"] == qtype:
                return key, question
    spec = {"format": "mlexam-spec", "format_version": 1, "title": f"One {qtype} question",
            "sections": [{"title": qtype, "questions": [{"type": qtype}]}]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    key = build_paper(load_spec(path), 2).key_dict()
    return key, key["questions"][0]


def right_answer(part: dict) -> object:
    if part["kind"] == "rubric":
        return ". ".join(point["phrases"][0] for point in part["expected"])
    return part["expected"]


def wrong_answer(part: dict) -> object:
    kind, expected = part["kind"], part["expected"]
    if kind == "merge_list":
        return ["q z"] * len(expected)
    if kind in ("segmentation", "encoding"):
        return {word: "q z" for word in expected}
    if kind == "integer":
        return str(int(expected) + 1)
    if kind == "choice":
        return "E" if "A" in str(expected) else "A"
    if kind == "rubric":
        return "I do not know."
    return _shifted(part.get("decimal") or expected)


def _shifted(value):
    if isinstance(value, list):
        return [_shifted(v) for v in value]
    return f"({value}) + 1"


def invalid_answer(part: dict) -> object:
    return {"merge_list": [["a", "b", "c"]], "segmentation": "tokens", "encoding": "tokens", "integer": "twelve",
            "choice": "Z", "rubric": {"text": 1}, "scalar": "0,5", "vector": "[1; 2", "matrix": "[[1, 2], [3"}[
        part["kind"]]


@pytest.mark.parametrize("qtype", sorted(QUESTION_TYPES))
def test_every_type_correct_wrong_invalid(qtype, tmp_path):
    key, question = example_question(qtype, tmp_path)
    qid = question["id"]
    right = {part["name"]: right_answer(part) for part in question["parts"]}
    report = mark_submission(key, {qid: right})
    for part in question["parts"]:
        result = report.part(part["id"])
        assert result.marks == result.maximum, (part["id"], result.verdict, result.feedback)

    for part in question["parts"]:
        wrong = mark_submission(key, {qid: {**right, part["name"]: wrong_answer(part)}}).part(part["id"])
        assert wrong.verdict == Verdict.WRONG, (part["id"], wrong.feedback)
        assert wrong.marks < wrong.maximum, part["id"]

        invalid = mark_submission(key, {qid: {**right, part["name"]: invalid_answer(part)}}).part(part["id"])
        assert invalid.verdict == Verdict.INVALID, (part["id"], invalid.feedback)
        assert invalid.marks == 0, part["id"]
        assert invalid.feedback, part["id"]
