"""Answer files filled in from a key, for tests that need a correct submission to start from."""

from __future__ import annotations

from pathlib import Path

import yaml


def expected_answers(key: dict) -> dict:
    """Return the answers block that a student who copied every expected value would write."""
    return {question["id"]: {part["name"]: part["expected"] for part in question["parts"]}
            for question in key["questions"]}


def answer_file_data(key: dict, answers: dict | None = None, student_id: str = "s0001") -> dict:
    return {
        "format": "mlexam-answers",
        "format_version": 1,
        "paper": key["paper_code"],
        "student_id": student_id,
        "answers": expected_answers(key) if answers is None else answers,
    }


def write_answer_file(path: Path, key: dict, answers: dict | None = None, student_id: str = "s0001") -> Path:
    path.write_text(yaml.safe_dump(answer_file_data(key, answers, student_id), allow_unicode=True,
                                   sort_keys=False, width=10_000), encoding="utf-8")
    return path
