"""Network question builders: difficulty bounds over 200 seeds, spec validation, carry
forward and admissibility, tolerances, and a rendered paper and key."""

from __future__ import annotations

import json
import logging
import subprocess
from decimal import Decimal

import numpy as np
import pytest
import sympy
from click.testing import CliRunner

from generator import network_questions as nq
from generator.errors import InputFileError, ProblemError
from generator.registry import QUESTION_TYPES
from generator.spec import load_spec
from marker.mathread import read_scalar

SEEDS = range(200)
M = sympy.Matrix
E = sympy.E


# Difficulty bounds over many seeds

def _values(problem) -> dict[str, sympy.Matrix]:
    names = ("W1", "b1", "W2", "b2", "x") if hasattr(problem, "W1") else ("W", "b", "X") if hasattr(problem, "X") else ("W", "x", "b")
    return {name: getattr(problem, name) for name in names}


def _assert_within(qtype: str, difficulty: str, problem, quantities) -> None:
    ranges = nq.DIFFICULTY[difficulty]
    magnitude = ranges["magnitude"]
    values = _values(problem)
    for name, matrix in values.items():
        limit = nq.BIAS_MAGNITUDE if name.startswith("b") else magnitude
        assert all(abs(v) <= limit for v in matrix), (name, matrix)
        assert all((2 * v).is_integer if ranges["fractions"] else v.is_integer for v in matrix), (name, matrix)
        assert matrix.rows <= nq.MAX_SIZE
        assert matrix.cols <= nq.MAX_SIZE
    if ranges["fractions"]:
        assert any(not v.is_integer for matrix in values.values() for v in matrix)
    W = problem.W1 if qtype == "backprop_two_layer" else problem.W
    low, high = ranges["inputs"]
    assert low <= W.cols <= high
    outputs = (problem.W2 if qtype == "backprop_two_layer" else W).rows
    low, high = ranges["outputs" if qtype in ("backprop_sigmoid_bce", "backprop_linear_mse") else "classes"]
    assert low <= outputs <= high
    if qtype == "backprop_two_layer":
        low, high = ranges["hidden"]
        assert low <= problem.W1.rows <= high
        assert all(abs(v) <= nq.HIDDEN_BOUND for v in quantities["z1"].value)
        if problem.activation == "relu":
            assert all(v != 0 for v in quantities["z1"].value)
        z2 = [float(v) for v in quantities["z2"].value]
        assert max(z2) - min(z2) <= nq.LOGIT_SPREAD
    elif qtype == "backprop_batch_mean":
        Z = quantities["z"].value
        for n in range(2):
            assert max(Z.col(n)) - min(Z.col(n)) <= nq.LOGIT_SPREAD
    elif qtype == "backprop_sigmoid_bce":
        assert all(abs(v) <= nq.SIGMOID_LOGIT_BOUND for v in quantities["z"].value)
    else:
        assert all(abs(v) <= nq.RESIDUAL_BOUND for v in quantities["y"].value - problem.t)
    for name in nq.GRADIENT_PARTS[qtype]:
        assert any(v != 0 for v in quantities[name].value), f"all-zero {name}"


@pytest.mark.parametrize("qtype", nq.NETWORK_TYPES)
def test_random_variants_meet_difficulty_bounds(qtype):
    for seed in SEEDS:
        difficulty = ("easy", "medium", "hard")[seed % 3]
        spec = {"difficulty": difficulty}
        if qtype == "backprop_two_layer":
            spec["activation"] = "relu" if seed % 5 else ("sigmoid", "tanh")[seed // 5 % 2]
        problem, quantities = nq.draw_problem(qtype, spec, np.random.default_rng(seed))
        _assert_within(qtype, difficulty, problem, quantities)


@pytest.mark.parametrize("qtype", nq.NETWORK_TYPES)
def test_rectangular_shape_is_never_square(qtype):
    for seed in range(40):
        problem, _ = nq.draw_problem(qtype, {"shape": "rectangular", "difficulty": "medium"}, np.random.default_rng(seed))
        if qtype == "backprop_two_layer":
            assert problem.W1.rows != problem.W1.cols
            assert problem.W2.rows != problem.W2.cols
        else:
            assert problem.W.rows != problem.W.cols


def test_explicit_fields_override_difficulty():
    spec = {"difficulty": "easy", "classes": 3, "inputs": 3, "hidden": 4, "magnitude": 2, "fractions": True}
    problem, _ = nq.draw_problem("backprop_two_layer", spec, np.random.default_rng(5))
    assert problem.W1.shape == (4, 3)
    assert problem.W2.shape == (3, 4)
    assert all((2 * v).is_integer for v in problem.W1)
    assert any(not v.is_integer for m in (problem.W1, problem.b1, problem.W2, problem.b2, problem.x) for v in m)


def test_rectangular_with_square_sizes_raises():
    with pytest.raises(ProblemError, match="rectangular"):
        nq.draw_problem("backprop_sigmoid_bce", {"shape": "rectangular", "outputs": 2, "inputs": 2},
                        np.random.default_rng(0))


def test_relu_zero_only_when_allowed():
    zero_seen = 0
    for seed in range(60):
        spec = {"difficulty": "easy", "allow_relu_zero": True}
        _, quantities = nq.draw_problem("backprop_two_layer", spec, np.random.default_rng(seed))
        zero_seen += any(v == 0 for v in quantities["z1"].value)
    assert zero_seen > 0


def test_rejected_draws_logged_at_debug(caplog):
    with caplog.at_level(logging.DEBUG, logger="generator.network_questions"):
        nq.draw_problem("backprop_two_layer", {"difficulty": "hard"}, np.random.default_rng(3))
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("draws rejected before this variant" in m for m in messages)


def test_variant_check_catches_a_wrong_gradient():
    problem = nq.networks.SigmoidProblem(M([[1, 0]]), M([1, 2]), M([0]), M([1]))
    quantities = nq.networks.solve_sigmoid_bce(problem)
    assert nq.networks.check_variant("backprop_sigmoid_bce", problem, quantities) is None
    wrong = quantities["dL_dW"]
    quantities["dL_dW"] = nq.networks.Quantity(wrong.name, wrong.label, wrong.formula, wrong.value.T.T * 2)
    assert "dL_dW" in nq.networks.check_variant("backprop_sigmoid_bce", problem, quantities)


# Questions, parts and tolerances

def test_parts_and_marks_follow_the_spec():
    build = QUESTION_TYPES["backprop_two_layer"].build
    question = build("q1", {"parts": ["delta1", "dL_dW1"], "marks": {"dL_dW1": 4}}, np.random.default_rng(1), 3)
    assert [p.name for p in question.parts] == ["delta1", "dL_dW1"]
    assert [p.marks for p in question.parts] == [2, 4]
    assert question.parts[1].kind == "matrix"
    assert json.loads(json.dumps(question.to_dict()))["problem"] == question.problem


def test_fixed_problem_key_values():
    spec = {"fixed": {"W": [[1, 0]], "x": [1, 2], "b": [0], "t": [1]}, "learning_rate": "0.1"}
    question = QUESTION_TYPES["backprop_sigmoid_bce"].build("q2", spec, np.random.default_rng(0), 3)
    parts = {p.name: p for p in question.parts}
    assert question.source == "fixed"
    assert parts["y"].expected == ["E/(1 + E)"]
    assert parts["y"].decimal == ["0.731"]
    assert parts["L"].decimal == "0.313"
    assert parts["delta"].decimal == ["-0.269"]
    assert parts["dL_dW"].decimal == [["-0.269", "-0.538"]]
    # dL/dW_12 = delta x_2 with x_2 = 2: half a unit plus twice the rounding of delta.
    assert parts["dL_dW"].tolerance == [["0.001", "0.0015"]]


KEY_SPECS = [
    ("backprop_sigmoid_bce", {}),
    ("backprop_sigmoid_bce", {"difficulty": "hard"}),
    ("backprop_linear_mse", {"fractions": True}),
    ("backprop_two_layer", {}),
    ("backprop_two_layer", {"activation": "sigmoid", "difficulty": "easy"}),
    ("backprop_batch_mean", {}),
    ("backprop_batch_mean", {"fractions": True}),
]


def _key_entries(value):
    if isinstance(value, list):
        for item in value:
            yield from _key_entries(item)
    else:
        yield value


@pytest.mark.parametrize("qtype, spec", KEY_SPECS)
def test_key_strings_read_back_exactly(qtype, spec):
    """Every exact string on the key reads back with the marker's own parser to its exact value."""
    for seed in range(25):
        question = QUESTION_TYPES[qtype].build("q1", spec, np.random.default_rng(seed), 3)
        for part in question.parts:
            exact = question.solution[part.name].value
            exact_entries = list(exact) if isinstance(exact, sympy.MatrixBase) else [exact]
            texts = list(_key_entries(part.expected))
            assert len(texts) == len(exact_entries)
            for text, value in zip(texts, exact_entries):
                assert "-(-" not in text, (seed, part.name, text)
                read, _ = read_scalar(text.replace("**", "^"))  # as the marker reads key strings
                assert abs(sympy.N(read - value, 40)) < 1e-30, (seed, part.name, text)


def test_draw_skips_zero_hidden_units():
    """Seed 4 draws two variants whose relu units are all 0 before this one. Solving every
    candidate and rejecting all-zero gradients picks this same variant."""
    problem, _ = nq.draw_problem("backprop_two_layer", {}, np.random.default_rng(4))
    assert problem.to_dict() == {
        "W1": [["0", "-2", "0"], ["-1", "1", "-2"], ["0", "-1", "0"]], "b1": ["1", "1", "-1"],
        "W2": [["-2", "-1", "-2"], ["-1", "-2", "0"], ["2", "-1", "-2"]], "b2": ["0", "-1", "-1"],
        "x": ["-2", "1", "1"], "t": ["0", "0", "1"], "activation": "relu", "learning_rate": "1/10",
    }


def test_rounded_y_gives_l_within_tolerance():
    """A student who rounds y = e/(1 + e) to 0.731 and reports L = -log 0.731 = 0.3133... to 3 places."""
    spec = {"fixed": {"W": [[1, 0]], "x": [1, 2], "b": [0], "t": [1]}}
    question = QUESTION_TYPES["backprop_sigmoid_bce"].build("q2", spec, np.random.default_rng(0), 2)
    part = {p.name: p for p in question.parts}["L"]
    student = Decimal(str(round(-np.log(0.73), 2)))  # y rounded to 2 places first
    assert abs(student - Decimal(str(sympy.N(sympy.log(1 + sympy.exp(-1)), 20)))) <= Decimal(part.tolerance)


def test_linear_loss_form_on_the_key():
    spec = {"fixed": {"W": [[1, 2]], "x": [1, 1], "b": [0], "t": [1]}, "loss_form": "full"}
    question = QUESTION_TYPES["backprop_linear_mse"].build("q3", spec, np.random.default_rng(0), 3)
    parts = {p.name: p for p in question.parts}
    assert question.conventions["loss"] == "L = ||y - t||^2"
    assert parts["L"].expected == "4"
    assert parts["delta"].expected == ["4"]


# Error carried forward and admissible values

TWO_LAYER = {"W1": [["1", "-1"], ["2", "1"]], "b1": ["0", "-1"], "W2": [["1", "0"], ["0", "1"]], "b2": ["0", "0"],
             "x": ["1", "2"], "t": ["0", "1"], "activation": "relu", "learning_rate": "1/10"}
SIGMOID = {"W": [["1", "0"]], "x": ["1", "2"], "b": ["0"], "t": ["1"], "learning_rate": "1/10"}


def test_carry_forward_sigmoid_delta_from_student_y():
    carry = QUESTION_TYPES["backprop_sigmoid_bce"].carry_forward
    assert carry(SIGMOID, "delta", {"y": [0.7]}) == [sympy.Float(0.7) - 1]
    assert carry(SIGMOID, "delta", {}) is None
    assert carry(SIGMOID, "z", {"y": [0.7]}) is None
    assert carry(SIGMOID, "dL_dW", {"delta": np.array([-0.3])}) == M([[-0.3, -0.6]])


def test_carry_forward_two_layer_relu():
    carry = QUESTION_TYPES["backprop_two_layer"].carry_forward
    # A student's h = [1, 3] (relu forgotten) goes into z2 = W2 h + b2 = h.
    assert carry(TWO_LAYER, "z2", {"h": [1, 3]}) == [1, 3]
    # Their z1 = [-1, 2] gives h = relu(z1) = [0, 2].
    assert carry(TWO_LAYER, "h", {"z1": [-1, 2]}) == [0, 2]
    # delta1 = dL/dh ⊙ relu'(z1) with the exact z1 = [-1, 3] when the student gave only dL/dh.
    assert carry(TWO_LAYER, "delta1", {"dL_dh": [0.5, -0.5]}) == [0, sympy.Float(-0.5)]
    # dL/dW2 = delta2 h^T takes the student's delta2 and the exact h = [0, 3].
    assert carry(TWO_LAYER, "dL_dW2", {"delta2": [0.25, -0.25]}) == M([[0, 0.75], [0, -0.75]])
    # A y that is not a probability vector is not carried.
    assert carry(TWO_LAYER, "delta2", {"y": [0, 1]}) is None
    y = carry(TWO_LAYER, "y", {"z2": [0, 3]})
    assert y == [1 / (1 + sympy.exp(3)), sympy.exp(3) / (1 + sympy.exp(3))]


def test_carry_forward_batch_mean():
    problem = {"W": [["1", "0"], ["2", "-1"]], "b": ["0", "0"], "x1": ["1", "2"], "t1": ["1", "0"],
               "x2": ["0", "1"], "t2": ["0", "1"], "learning_rate": "1/10"}
    carry = QUESTION_TYPES["backprop_batch_mean"].carry_forward
    delta = [[0.5, -0.5], [-0.5, 0.5]]
    # 1/2 (delta1 x1^T + delta2 x2^T): row 0 = 1/2 (0.5 [1, 2] - 0.5 [0, 1]) = [0.25, 0.25].
    assert carry(problem, "dL_dW", {"delta": delta}) == M([[0.25, 0.25], [-0.25, -0.25]])
    assert carry(problem, "dL_db", {"delta": delta}) == [0, 0]


@pytest.mark.parametrize("qtype, problem, name, value, expected", [
    ("backprop_sigmoid_bce", SIGMOID, "y", [0.73], True),
    ("backprop_sigmoid_bce", SIGMOID, "y", [1], False),
    ("backprop_sigmoid_bce", SIGMOID, "y", [0.5, 0.5], False),
    ("backprop_sigmoid_bce", SIGMOID, "dL_dW", [[0.1, 0.2]], True),
    ("backprop_sigmoid_bce", SIGMOID, "dL_dW", [[0.1], [0.2]], False),
    ("backprop_sigmoid_bce", SIGMOID, "L", -0.5, False),
    ("backprop_two_layer", TWO_LAYER, "y", [0.05, 0.95], True),
    ("backprop_two_layer", TWO_LAYER, "y", [0.5, 0.7], False),
    ("backprop_two_layer", TWO_LAYER, "y", [0, 1], False),
    ("backprop_two_layer", TWO_LAYER, "h", [0, 3], True),
    ("backprop_two_layer", TWO_LAYER, "h", [-1, 3], False),
    ("backprop_two_layer", {**TWO_LAYER, "activation": "tanh"}, "h", [-0.76, 0.99], True),
    ("backprop_two_layer", {**TWO_LAYER, "activation": "sigmoid"}, "h", [-0.76, 0.99], False),
    ("backprop_two_layer", TWO_LAYER, "dL_dW1", np.array([[0.0, 0.0], [-0.05, -0.1]]), True),
    ("backprop_two_layer", TWO_LAYER, "dL_dW1", [[0.0, 0.0, 1.0]], False),
])
def test_admissible_values(qtype, problem, name, value, expected):
    assert QUESTION_TYPES[qtype].admissible(problem, name, value) is expected


# Spec validation

def _write_spec(tmp_path, question_yaml: str):
    path = tmp_path / "spec.yaml"
    path.write_text("format: mlexam-spec\nformat_version: 1\ntitle: Networks\nsections:\n  - title: S\n"
                    "    questions:\n" + question_yaml, encoding="utf-8")
    return path


def test_spec_accepts_network_fields(tmp_path):
    spec = load_spec(_write_spec(tmp_path, (
        "      - {type: backprop_two_layer, difficulty: hard, activation: tanh, hidden: 3, classes: 2,\n"
        "         inputs: 3, magnitude: 2, fractions: true, shape: rectangular, allow_relu_zero: false,\n"
        "         parts: [delta1, dL_dW1], marks: {dL_dW1: 3}, learning_rate: '1/2'}\n"
        "      - {type: backprop_linear_mse, loss_form: full, outputs: 1}\n")))
    assert [q["type"] for q in spec.data["sections"][0]["questions"]] == ["backprop_two_layer", "backprop_linear_mse"]


def test_spec_rejects_bad_network_fields(tmp_path):
    path = _write_spec(tmp_path, (
        "      - type: backprop_two_layer\n"
        "        activation: gelu\n"
        "        hidden: 7\n"
        "        fractions: maybe\n"
        "        shape: wide\n"
        "        magnitude: 9\n"
        "      - type: backprop_linear_mse\n"
        "        loss_form: quarter\n"
        "        learning_rate: -1\n"
        "        hidden: 2\n"))
    with pytest.raises(InputFileError) as raised:
        load_spec(path)
    text = "\n".join(raised.value.problems)
    assert "line 8: sections.0.questions.0.activation: must be one of relu, sigmoid, tanh, found 'gelu'" in text
    assert "line 9: sections.0.questions.0.hidden: must be a whole number from 1 to 4, found 7" in text
    assert "line 10: sections.0.questions.0.fractions: must be true or false" in text
    assert "line 11: sections.0.questions.0.shape: must be one of any, rectangular" in text
    assert "line 12: sections.0.questions.0.magnitude: must be at most 3" in text
    assert "line 14: sections.0.questions.1.loss_form: must be one of half, full" in text
    assert "line 15: sections.0.questions.1.learning_rate: must be a positive number" in text
    assert "line 16: sections.0.questions.1.hidden: unknown field" in text


# The rendered paper and key

def test_generate_renders_every_network_type(tmp_path):
    from mlexam.cli import main

    spec = tmp_path / "networks.yaml"
    spec.write_text(
        "format: mlexam-spec\nformat_version: 1\ntitle: Networks\ncourse: C\nduration_minutes: 30\n"
        "instructions: Answer all.\ndecimal_places: 3\nsections:\n  - title: Backpropagation\n    questions:\n"
        "      - {type: backprop_sigmoid_bce, difficulty: easy}\n"
        "      - {type: backprop_linear_mse, loss_form: half}\n"
        "      - {type: backprop_two_layer, activation: relu, parts: [z1, h, delta1, dL_dW1, W1_new]}\n"
        "      - {type: backprop_batch_mean, parts: [y, L, dL_dW]}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["generate", "--spec", str(spec), "--seed", "4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    key = json.loads((tmp_path / "networks-4-key.json").read_text(encoding="utf-8"))
    assert [q["type"] for q in key["questions"]] == list(nq.NETWORK_TYPES)
    assert [p["name"] for p in key["questions"][3]["parts"]] == ["y", "L", "dL_dW"]
    paper_text = subprocess.run(["pdftotext", str(tmp_path / "networks-4-paper.pdf"), "-"],
                                capture_output=True, text=True, check=True).stdout
    key_text = subprocess.run(["pdftotext", str(tmp_path / "networks-4-key.pdf"), "-"],
                              capture_output=True, text=True, check=True).stdout
    assert "relu′(0) = 0" in paper_text
    assert "The loss has the factor ½" in paper_text
    assert "before averaging" in paper_text
    assert "≈" not in paper_text
    assert key_text.count("≈") >= sum(len(q["parts"]) for q in key["questions"])
