"""The conceptual bank: validation with line and field, question drawing, exact numeric
answers, and marking of choice, numeric and short-answer parts."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import numpy as np
import pytest
from click.testing import CliRunner

from generator.concept_questions import TOPICS, build_concept, load_bank
from generator.errors import InputFileError
from marker.core import mark_submission
from marker.rubric import MAX_ANSWER_CHARS, mark_rubric, phrase_pattern
from mlexam.cli import main


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_bank_validates_and_covers_topics():
    bank = load_bank()
    assert len(bank) >= 12
    assert {item["topic"] for item in bank.values()} == set(TOPICS)
    assert {item["kind"] for item in bank.values()} == {"choice", "true_false", "numeric", "short"}


BROKEN_BANK = """\
format: mlexam-conceptual
format_version: 1
questions:
  - id: q_one
    topic: bpe
    kind: choice
    marks: 1
    text: Pick one.
    options:
      - {text: "Yes", correct: false}
      - {text: "No", correct: false}
  - id: q_one
    topic: poetry
    kind: true_false
    marks: 1
    text: A statement.
    answer: maybe
  - id: q_three
    topic: attention
    kind: numeric
    marks: 0
    text: "N is {N} and M is {M}."
    formula: attention_weights
    params: {N: [128]}
  - id: q_four
    topic: remedies
    kind: short
    text: Explain.
    rubric:
      - {point: Clipping, marks: 1, phrases: []}
    hint: extra
"""

# (line, field, a word of the message), one per mistake in BROKEN_BANK.
BROKEN_BANK_MISTAKES = [
    (9, "questions.0.options", "no option is marked correct"),
    (12, "questions.1.id", "duplicate id"),
    (13, "questions.1.topic", "must be one of"),
    (17, "questions.1.answer", "true or false"),
    (21, "questions.2.marks", "1 or more"),
    (22, "questions.2.text", "{M}"),
    (24, "questions.2.params", "missing L, H, bytes"),
    (30, "questions.3.rubric.0.phrases", "non-empty list"),
    (31, "questions.3.hint", "unknown field"),
]


def test_broken_bank_line_and_field(tmp_path):
    path = tmp_path / "bank.yaml"
    path.write_text(BROKEN_BANK, encoding="utf-8")
    load_bank.cache_clear()
    try:
        with pytest.raises(InputFileError) as raised:
            load_bank(path)
    finally:
        load_bank.cache_clear()
    problems = raised.value.problems
    assert len(problems) == len(BROKEN_BANK_MISTAKES), problems
    for line, field, hint in BROKEN_BANK_MISTAKES:
        matching = [p for p in problems if p.startswith(f"line {line}: {field}: ")]
        assert len(matching) == 1, (line, field, problems)
        assert hint in matching[0]


def test_bank_wrong_format(tmp_path):
    path = tmp_path / "bank.yaml"
    path.write_text("format: mlexam-spec\nformat_version: 2\nquestions: []\n", encoding="utf-8")
    with pytest.raises(InputFileError) as raised:
        load_bank(path)
    assert raised.value.problems == [
        "line 1: format: must be 'mlexam-conceptual', found 'mlexam-spec'",
        "line 2: format_version: unsupported version 2; supported: 1",
        "line 3: questions: missing or empty; list at least one question",
    ]


# Drawing and building

def test_topic_count_draws_distinct():
    for seed in range(20):
        question = build_concept("q1", {"topic": "gradients", "count": 3}, rng(seed), 3)
        names = [part.name for part in question.parts]
        assert len(set(names)) == 3
        assert all(load_bank()[name]["topic"] == "gradients" for name in names)


def test_choice_options_shuffled_and_keyed():
    correct_letters = set()
    bank_item = load_bank()["why_bpe_unknown"]
    right_text = next(o["text"] for o in bank_item["options"] if o["correct"])
    for seed in range(20):
        question = build_concept("q1", {"id": "why_bpe_unknown"}, rng(seed), 3)
        part = question.parts[0]
        options = question.problem["items"][0]["options"]
        assert [o["letter"] for o in options] == ["A", "B", "C", "D"]
        assert next(o["text"] for o in options if o["letter"] == part.expected) == right_text
        correct_letters.add(part.expected)
    assert len(correct_letters) >= 3


def test_true_false_accepts_word():
    question = build_concept("q1", {"id": "clipping_true_false"}, rng(0), 3)
    part = question.parts[0]
    assert part.expected == "B"
    assert part.accepted == ["false"]


def test_attention_memory_exact():
    """N x N weights per head per layer: N=512, H=8, L=6, 2 bytes is 512*512*8*6*2 = 25165824 bytes."""
    for seed in range(40):
        question = build_concept("q1", {"id": "attention_weights_bytes"}, rng(seed), 3)
        params = {name: int(value) for name, value in question.solution[0]["params"].items()}
        part = question.parts[0]
        assert part.kind == "integer"
        assert part.expected == params["N"] ** 2 * params["H"] * params["L"] * params["bytes"]
        text = question.problem["items"][0]["text"]
        assert f"N = {params['N']} tokens" in text
        assert f"{params['bytes']}-byte float" in text
        if params == {"N": 512, "H": 8, "L": 6, "bytes": 2}:
            assert part.expected == 25165824


def test_attention_with_qkv_exact():
    for seed in range(20):
        question = build_concept("q1", {"id": "attention_with_qkv_bytes"}, rng(seed), 3)
        p = {name: int(value) for name, value in question.solution[0]["params"].items()}
        assert question.parts[0].expected == p["L"] * (p["N"] ** 2 + 3 * p["N"] * p["d"]) * p["bytes"]


def test_vanishing_power_decimal_and_tolerance():
    for seed in range(20):
        question = build_concept("q1", {"id": "vanishing_power"}, rng(seed), 3)
        part = question.parts[0]
        n = int(question.solution[0]["params"]["n"])
        assert part.kind == "scalar"
        assert Fraction(part.expected) == Fraction(1, 2 ** n)
        assert part.decimal == str((Decimal(1) / Decimal(2 ** n)).quantize(Decimal("0.000001"), ROUND_HALF_EVEN))
        assert part.tolerance == "0.0000005"
        assert "to 6 decimal places" in question.problem["items"][0]["text"]


def test_short_answer_rubric_part():
    question = build_concept("q1", {"id": "remedies_short"}, rng(0), 3)
    part = question.parts[0]
    assert part.kind == "rubric"
    assert part.marks == 3
    assert [point["point"] for point in part.expected] == [
        "Gradient clipping", "Truncated backpropagation through time", "Gating units (LSTM or GRU)"]


# Rubric marking

REMEDIES = load_bank()["remedies_short"]["rubric"]


def test_rubric_all_points():
    verdict, marks, feedback = mark_rubric({"expected": REMEDIES}, "Use gradient CLIPPING, truncated BPTT and an LSTM.")
    assert (verdict, marks) == ("correct", Fraction(3))
    assert feedback.startswith("Key points found: Gradient clipping (\"clipping\", 1); ")
    assert "Not found" not in feedback


def test_rubric_partial_names_missing():
    verdict, marks, feedback = mark_rubric({"expected": REMEDIES}, "Clip the gradient norm.")
    assert (verdict, marks) == ("wrong", Fraction(1))
    assert "Not found: Truncated backpropagation through time; Gating units (LSTM or GRU)." in feedback


def test_rubric_word_boundaries():
    verdict, marks, _ = mark_rubric({"expected": REMEDIES}, "An eclipse of gregarious glstms")
    assert (verdict, marks) == ("wrong", Fraction(0))
    assert phrase_pattern("O(T)").search("memory is O(T) here")
    assert phrase_pattern("hidden state").search("every Hidden\n  State is kept")
    assert not phrase_pattern("gate").search("aggregate")


def test_rubric_input_capped():
    answer = "x " * MAX_ANSWER_CHARS + "clipping"
    verdict, marks, feedback = mark_rubric({"expected": REMEDIES}, answer)
    assert marks == 0
    assert f"Only the first {MAX_ANSWER_CHARS} characters were read." in feedback


def test_rubric_missing_and_invalid():
    assert mark_rubric({"expected": REMEDIES}, "") == ("missing", Fraction(0), "No answer given.")
    assert mark_rubric({"expected": REMEDIES}, {"a": 1})[0] == "invalid"


# A whole concept paper, generated and marked

def test_concept_paper_marked_end_to_end(tmp_path):
    spec = tmp_path / "concepts.yaml"
    spec.write_text("""\
format: mlexam-spec
format_version: 1
title: Concepts
course: Test course
duration_minutes: 20
instructions: Answer every question.
sections:
  - title: Concepts
    questions:
      - {type: concept, id: attention_weights_bytes}
      - {type: concept, id: vanishing_power}
      - {type: concept, id: clipping_true_false}
      - {type: concept, id: remedies_choice}
      - {type: concept, id: bptt_memory}
""", encoding="utf-8")
    result = CliRunner().invoke(main, ["generate", "--spec", str(spec), "--seed", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    key = json.loads((tmp_path / "concepts-2-key.json").read_text(encoding="utf-8"))
    parts = [question["parts"][0] for question in key["questions"]]
    answers = {
        "q1": {"attention_weights_bytes": str(parts[0]["expected"])},
        "q2": {"vanishing_power": parts[1]["decimal"]},
        "q3": {"clipping_true_false": "false"},
        "q4": {"remedies_choice": "A"},
        "q5": {"bptt_memory": "Each time step's hidden state is stored, so memory grows linearly."},
    }
    report = mark_submission(key, answers)
    verdicts = [(p.id, str(p.verdict), p.marks) for p in report.parts]
    assert verdicts[0] == ("q1.attention_weights_bytes", "correct", 2)
    assert verdicts[1][1] in ("correct", "within_tolerance")
    assert verdicts[2] == ("q3.clipping_true_false", "correct", 1)
    assert verdicts[3][1:] == ("wrong", 0)
    assert verdicts[4] == ("q5.bptt_memory", "correct", 2)
