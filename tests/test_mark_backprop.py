"""Marking of backpropagation parts: exact forms, tolerance, error carried forward and named mistakes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from generator.paper import build_paper
from generator.spec import bundled_spec_path, load_spec
from marker import mark_submission
from marker.errors import AnswerFormatError
from marker.mathread import read_key_scalar, read_scalar
from marker.report import Verdict

# The worked example: x = [1, 2], W = [[1, 0], [2, -1]], b = 0, t = [1, 0], eta = 0.1.
# z = W x = [1, 0], so y = [e/(1+e), 1/(1+e)], about [0.731, 0.269].
NOTES_EXAMPLE = {"W": [[1, 0], [2, -1]], "x": [1, 2], "b": [0, 0], "t": [1, 0], "learning_rate": "0.1"}
# A 2 x 3 layer, so that dL/dW (2 x 3) and its transpose (3 x 2) differ in shape.
WIDE_EXAMPLE = {"W": [[1, 0, 1], [0, 1, -1]], "x": [1, 2, 1], "b": [0, 0], "t": [0, 1], "learning_rate": "0.1"}
PLACES = 3


def build_key(tmp_path: Path, fixed: dict) -> dict:
    spec = {"format": "mlexam-spec", "format_version": 1, "title": "Backprop marking test",
            "sections": [{"title": "Backprop", "questions": [{"type": "backprop_softmax", "fixed": fixed}]}]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return build_paper(load_spec(path), 1).key_dict()


def decimals(values) -> list:
    array = np.asarray(values, dtype=float)
    if array.ndim == 0:
        return f"{float(array):.{PLACES}f}"
    return [decimals(row) for row in array]


def softmax(z):
    exps = np.exp(np.asarray(z, dtype=float) - max(z))
    return exps / exps.sum()


@pytest.fixture
def notes_key(tmp_path):
    return build_key(tmp_path, NOTES_EXAMPLE)


@pytest.mark.parametrize("y1", ["e/(1+e)", "1/(1+e^(-1))", "exp(1)/(exp(1)+1)", "0.731"])
def test_y1_forms_accepted(notes_key, y1):
    y = mark_submission(notes_key, {"q1": {"y": [y1, "1/(1+e)"]}}).part("q1.y")
    assert y.verdict in (Verdict.CORRECT, Verdict.WITHIN_TOLERANCE)
    assert y.marks == 2


def test_y1_wrong_value(notes_key):
    y = mark_submission(notes_key, {"q1": {"y": ["1/(1+e)", "1/(1+e)"]}}).part("q1.y")
    assert y.verdict == Verdict.WRONG
    assert y.marks == 0


def test_decimal_comma_is_invalid(notes_key):
    y = mark_submission(notes_key, {"q1": {"y": ["0,731", "0.269"]}}).part("q1.y")
    assert y.verdict == Verdict.INVALID
    assert y.marks == 0
    assert "q1.y" in y.feedback
    assert "decimal point" in y.feedback


def test_key_decimal_is_correct(notes_key):
    y = mark_submission(notes_key, {"q1": {"y": "[0.731, 0.269]"}}).part("q1.y")
    assert y.verdict == Verdict.CORRECT


def test_boundary_of_tolerance(notes_key):
    # dL/dW[0][1] is -2/(1+e) = -0.5379..., with tolerance 0.0015 on the key.
    exact = -2 / (1 + math.e)
    tolerance = float(notes_key["questions"][0]["parts"][4]["tolerance"][0][1])
    inside = f"{exact + tolerance * 0.99:.6f}"
    outside = f"{exact + tolerance * 1.01:.6f}"
    inside_answer = {"dL_dW": [["-0.269", inside], ["0.269", "0.538"]]}
    outside_answer = {"dL_dW": [["-0.269", outside], ["0.269", "0.538"]]}
    assert mark_submission(notes_key, {"q1": inside_answer}).part("q1.dL_dW").verdict == Verdict.WITHIN_TOLERANCE
    assert mark_submission(notes_key, {"q1": outside_answer}).part("q1.dL_dW").verdict == Verdict.WRONG


def test_softmax_of_minus_z_carried_forward(notes_key):
    x = np.array([1.0, 2.0])
    t = np.array([1.0, 0.0])
    y = softmax([-1.0, 0.0])
    y_rounded = np.array([float(v) for v in decimals(y)])
    delta = y_rounded - t
    answers = {"z": "[1, 0]", "y": decimals(y), "delta": decimals(delta), "dL_dW": decimals(np.outer(delta, x)),
               "L": decimals(-math.log(y_rounded[0]))}
    report = mark_submission(notes_key, {"q1": answers})
    y_result = report.part("q1.y")
    assert y_result.verdict == Verdict.WRONG
    assert y_result.marks == 0
    assert y_result.mistake == "softmax_negated"
    for part_id, marks in (("q1.delta", 1), ("q1.dL_dW", 2), ("q1.L", 1)):
        assert report.part(part_id).verdict == Verdict.CORRECT_CARRIED, part_id
        assert report.part(part_id).marks == marks, part_id


def test_y_equal_to_t_carries_nothing(notes_key):
    answers = {"z": "[1, 0]", "y": "[1, 0]", "L": "0", "delta": "[0, 0]", "dL_dW": "0 0; 0 0", "dL_db": "[0, 0]",
               "dL_dx": "[0, 0]", "W_new": "1 0; 2 -1", "b_new": "[0, 0]"}
    report = mark_submission(notes_key, {"q1": answers})
    assert report.part("q1.z").marks == 1
    assert report.total == 1
    assert all(part.verdict != Verdict.CORRECT_CARRIED for part in report.parts)


def test_t_minus_y_named_and_carried(notes_key):
    x = np.array([1.0, 2.0])
    delta = np.array([1 / (1 + math.e), -1 / (1 + math.e)])  # t - y
    answers = {"delta": decimals(delta), "dL_dW": decimals(np.outer(delta, x))}
    report = mark_submission(notes_key, {"q1": answers})
    assert report.part("q1.delta").mistake == "t_minus_y"
    assert report.part("q1.dL_dW").verdict == Verdict.CORRECT_CARRIED


def test_update_with_plus_named(notes_key):
    W = np.array([[1.0, 0.0], [2.0, -1.0]])
    dW = np.outer(np.array([-1, 1]) / (1 + math.e), [1.0, 2.0])
    W_new = mark_submission(notes_key, {"q1": {"W_new": decimals(W + 0.1 * dW)}}).part("q1.W_new")
    assert W_new.verdict == Verdict.WRONG
    assert W_new.mistake == "update_plus"


def test_transposed_gradient_not_carried(tmp_path):
    key = build_key(tmp_path, WIDE_EXAMPLE)
    dL_dW_part = next(p for p in key["questions"][0]["parts"] if p["name"] == "dL_dW")
    transposed = [list(column) for column in zip(*dL_dW_part["decimal"])]
    W = np.array(WIDE_EXAMPLE["W"], dtype=float)
    update_from_transposed = W - 0.1 * np.array(transposed, dtype=float).T
    answers = {"dL_dW": transposed, "W_new": decimals(update_from_transposed + 0.05)}
    report = mark_submission(key, {"q1": answers})
    result = report.part("q1.dL_dW")
    assert result.verdict == Verdict.WRONG
    assert result.marks == 0
    assert result.mistake == "transposed"
    assert "transpos" in result.feedback
    assert report.part("q1.W_new").verdict == Verdict.WRONG


def test_wrong_shape_message(tmp_path):
    key = build_key(tmp_path, WIDE_EXAMPLE)
    result = mark_submission(key, {"q1": {"dL_dW": "1 2; 3 4"}}).part("q1.dL_dW")
    assert result.verdict == Verdict.WRONG
    assert "expected 2 x 3" in result.feedback


def test_backprop_correct_wrong_invalid():
    key = build_paper(load_spec(bundled_spec_path()), 5).key_dict()
    question = next(q for q in key["questions"] if q["type"] == "backprop_softmax" and q["source"] == "random")
    qid = question["id"]
    right = {part["name"]: part["decimal"] for part in question["parts"]}
    report = mark_submission(key, {qid: right})
    assert [report.part(p["id"]).marks for p in question["parts"]] == [p["marks"] for p in question["parts"]]

    z_part = question["parts"][0]
    wrong_z = [str(int(v) + 1) for v in z_part["expected"]]
    assert mark_submission(key, {qid: {**right, "z": wrong_z}}).part(z_part["id"]).verdict == Verdict.WRONG

    invalid = mark_submission(key, {qid: {**right, "z": "[1; 2 3"}}).part(z_part["id"])
    assert invalid.verdict == Verdict.INVALID
    assert invalid.marks == 0


@pytest.mark.parametrize("field", ["expected", "decimal"])
def test_key_marks_itself(field):
    spec = load_spec(bundled_spec_path())
    for seed in range(1, 51):
        key = build_paper(spec, seed).key_dict()
        answers = {q["id"]: {p["name"]: p[field] if p.get(field) is not None else p["expected"] for p in q["parts"]}
                   for q in key["questions"]}
        report = mark_submission(key, answers)
        assert report.total == report.maximum, (seed, [p.id for p in report.parts if p.marks != p.maximum])


def test_long_tanh_keys_mark_themselves(tmp_path):
    """Hard tanh two-layer keys hold exact strings over the answer caps; the marker still reads them."""
    spec_path = tmp_path / "tanh.yaml"
    spec_path.write_text("format: mlexam-spec\nformat_version: 1\ntitle: Tanh\nsections:\n  - title: A\n    questions:\n"
                         "      - {type: backprop_two_layer, activation: tanh, difficulty: hard}\n", encoding="utf-8")
    spec = load_spec(spec_path)
    longest = ""
    for seed in range(6):
        key = build_paper(spec, seed).key_dict()
        for question in key["questions"]:
            for part in question["parts"]:
                entries = part["expected"] if isinstance(part["expected"], list) else [part["expected"]]
                for entry in (e for row in entries for e in (row if isinstance(row, list) else [row])):
                    longest = max(longest, entry, key=len)
        answers = {q["id"]: {p["name"]: p["decimal"] for p in q["parts"]} for q in key["questions"]}
        report = mark_submission(key, answers)
        assert report.total == report.maximum, (seed, [(p.id, p.feedback) for p in report.parts if p.marks != p.maximum])

    # The same string as a student's answer is over the caps, so the key reader's wider caps are needed.
    with pytest.raises(AnswerFormatError, match="more than 600 symbols"):
        read_scalar(longest)
    assert read_key_scalar(longest).is_real
