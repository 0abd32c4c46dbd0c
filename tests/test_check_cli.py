"""`mlexam check`: which answers cannot be read, with exit codes, and never a verdict."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from generator.paper import build_paper, write_paper
from generator.spec import bundled_spec_path, load_spec
from marker.answers import load_answers, load_key
from marker.check import check_answers
from marker.mathread import read_scalar, read_value
from marker.numeric import compare, compare_array
from mlexam.cli import main

DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "answer-files.md"
VERDICT_WORDS = re.compile(r"\b(right|wrong|correct|incorrect|mark|marks|score|tolerance)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def practice(tmp_path_factory):
    paper = build_paper(load_spec(bundled_spec_path()), 1)
    return write_paper(paper, tmp_path_factory.mktemp("practice"))


def filled_answers(key: dict, use_decimals: bool = True) -> dict:
    """Answer every part of the key: decimals (or the exact text) for numbers, the key's tokens for BPE."""
    answers = {}
    for question in key["questions"]:
        parts = {}
        for part in question["parts"]:
            if part["kind"] in ("scalar", "vector", "matrix"):
                parts[part["name"]] = part["decimal"] if use_decimals else part["expected"]
            else:
                parts[part["name"]] = part["expected"]
        answers[question["id"]] = parts
    return {"format": "mlexam-answers", "format_version": 1, "paper": key["paper_code"],
            "student_id": "s1", "answers": answers}


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run_check(*args: str):
    return CliRunner().invoke(main, ["check", *map(str, args)])


def test_filled_file_all_readable(tmp_path, practice):
    key = load_key(practice["key"])
    path = write_yaml(tmp_path / "answers.yaml", filled_answers(key))
    result = run_check(path, "--key", practice["key"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{path}: all 23 answers can be read\n"


def test_exact_expressions_readable(tmp_path, practice):
    key = load_key(practice["key"])
    path = write_yaml(tmp_path / "answers.yaml", filled_answers(key, use_decimals=False))
    assert check_answers(path, key) == []


def test_wrong_answers_look_like_right_ones(tmp_path, practice):
    key = load_key(practice["key"])
    right = filled_answers(key)
    wrong = filled_answers(key)
    wrong["answers"]["q4"]["y"] = ["1/(1+e)", "e/(1+e)"]
    wrong["answers"]["q4"]["L"] = "12.5"
    wrong["answers"]["q4"]["dL_dW"] = "0.269 -0.269; 0.538 -0.538"
    wrong["answers"]["q1"]["merges"] = ["o w", "w </w>", "l ow", "i s"]
    right_result = run_check(write_yaml(tmp_path / "a.yaml", right), "--key", practice["key"])
    wrong_result = run_check(write_yaml(tmp_path / "b.yaml", wrong), "--key", practice["key"])
    assert wrong_result.exit_code == right_result.exit_code == 0
    assert wrong_result.output.replace("b.yaml", "a.yaml") == right_result.output
    assert not VERDICT_WORDS.search(wrong_result.output)


def test_unreadable_answers_listed(tmp_path, practice):
    key = load_key(practice["key"])
    data = filled_answers(key)
    data["answers"]["q4"]["L"] = "0,313"
    data["answers"]["q4"]["y"] = "[print(1), 0.269]"
    data["answers"]["q5"]["z"] = "[1, 2]"
    data["answers"]["q5"]["b_new"] = ""
    data["answers"]["q7"] = {"x": "1"}
    result = run_check(write_yaml(tmp_path / "answers.yaml", data), "--key", practice["key"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].endswith("answers.yaml: 5 problems in 23 answers:")
    assert lines[1:] == [
        "  answers.q7: no question 'q7' on this paper (questions: q1, q2, q3, q4, q5)",
        "  q4.y: the name 'print' is not allowed (allowed: digits, a decimal point, + - * / ^ ** ( ), "
        "the constant e, and the functions exp, ln, log, sqrt): found 'print(1)'; expected "
        "a list such as [0.731, 0.269] or \"0.731 0.269\"",
        "  q4.L: a comma is not a decimal point: found '0,313'; expected a decimal point, e.g. 0.313",
        "  q5.z: 2 entries were read; the question asks for a vector of 3",
        "  q5.b_new: no answer given",
    ]
    assert not VERDICT_WORDS.search(result.output)


def test_blank_file_without_key(practice):
    result = run_check(practice["answers"])
    assert result.exit_code == 1
    assert "23 problems in 23 answers" in result.output
    assert "  q4.y: no answer given" in result.output.splitlines()


@pytest.mark.parametrize("data, message", [
    (b"format: mlexam-answers\nformat_version: 1\npaper: P-\xff\n", "invalid UTF-8 at byte offset 50"),
    (b"format: mlexam-answers\nformat_version: 7\n", "format_version is '7'"),
    (b"\x00\x01\x02", "NUL byte at byte offset 0"),
])
def test_unreadable_file_exit_2(tmp_path, practice, data, message):
    path = tmp_path / "answers.yaml"
    path.write_bytes(data)
    result = run_check(path, "--key", practice["key"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_key_exit_2(tmp_path, practice):
    result = run_check(practice["answers"], "--key", tmp_path / "none.json")
    assert result.exit_code == 2
    assert "none.json: file not found" in result.output


def test_real_command_exit_codes(tmp_path, practice):
    key = load_key(practice["key"])
    good = write_yaml(tmp_path / "good.yaml", filled_answers(key))
    completed = subprocess.run([sys.executable, "-m", "mlexam", "check", str(good), "--key", str(practice["key"])],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"{good}: all 23 answers can be read"


def test_docs_example_readable(tmp_path, practice):
    """The filled example in docs/answer-files.md is for the practice paper with seed 1."""
    page = DOCS_PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", page, flags=re.DOTALL)
    example = next(block for block in blocks if "student_id" in block)
    path = tmp_path / "example.yaml"
    path.write_text(example, encoding="utf-8")
    key = load_key(practice["key"])
    assert check_answers(path, key) == []

    # The example is filled in correctly, too.
    answers = load_answers(path, key).answers
    for question in key["questions"]:
        for part in question["parts"]:
            given = answers[question["id"]][part["name"]]
            if part["kind"] == "scalar":
                verdict = compare(*read_scalar(given), part["expected"], part["tolerance"])
            elif part["kind"] in ("vector", "matrix"):
                verdict = compare_array(read_value(given, part["kind"]), part["expected"], part["tolerance"])[0]
            else:
                verdict = "exact" if given == part["expected"] else "wrong"
            assert verdict in ("exact", "within_tolerance"), part["id"]


def test_partly_blank_answer_without_key(tmp_path, practice):
    data = filled_answers(json.loads(Path(practice["key"]).read_text(encoding="utf-8")))
    data["answers"]["q3"]["encodings"]["lowers"] = ""
    data["answers"]["q1"]["merges"][1] = " "
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    result = run_check(path)

    assert result.exit_code == 1
    assert "  q3.encodings: no answer given for 'lowers'" in result.output.splitlines()
    assert "  q1.merges: entry 2 is blank" in result.output.splitlines()
