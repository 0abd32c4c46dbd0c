"""Backpropagation question builders: one softmax layer with cross-entropy and an SGD step."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import sympy

from generator.backprop import QUANTITY_ORDER, SoftmaxProblem, solve_softmax
from generator.errors import ProblemError
from generator.exact import decimal_value, exact_text
from generator.question import MAX_DRAWS, Part, Question


# Backpropagation

BACKPROP_MARKS = {"z": 1, "y": 2, "L": 1, "delta": 1, "dL_dW": 2, "dL_db": 1, "dL_dx": 2, "W_new": 1, "b_new": 1}

# The examples are deliberately not answers of any question mlexam draws.
FORMS = {
    "scalar": 'a number or an exact expression, e.g. 1.234 or log(5/2) or e^2/(3+e)',
    "vector": 'a list, e.g. [1.234, -0.5] or [e^2/(3+e), 7/8]',
    "matrix": 'a list of rows, e.g. [[1.25, 0], [-3, 7/8]], or rows separated by ";", e.g. "1.25 0; -3 7/8"',
}


def draw_softmax_problem(rng: np.random.Generator, spec: dict) -> SoftmaxProblem:
    K = int(rng.integers(2, 4)) if "classes" not in spec else int(spec["classes"])
    D = int(rng.integers(2, 4)) if "inputs" not in spec else int(spec["inputs"])
    magnitude = int(spec.get("magnitude", 2))
    for _ in range(MAX_DRAWS):
        W = sympy.Matrix(rng.integers(-magnitude, magnitude + 1, size=(K, D)).tolist())
        x = sympy.Matrix(rng.integers(-magnitude, magnitude + 1, size=D).tolist())
        b = sympy.Matrix(rng.integers(-1, 2, size=K).tolist())
        z = W * x + b
        # Hand-computable: small logits, no zero input, and no class that W ignores.
        if (max(z) - min(z) <= 3 and all(v != 0 for v in x)
                and all(any(W[i, j] != 0 for j in range(D)) for i in range(K))):
            target = int(rng.integers(K))
            return SoftmaxProblem(W, x, b, target, sympy.Rational(str(spec.get("learning_rate", "0.1"))))
    raise ProblemError("backprop settings", spec, f"sizes and magnitudes that give small logits within {MAX_DRAWS} draws")


def rounding_tolerances(quantities, problem: SoftmaxProblem, places: int) -> dict[str, object]:
    """Tolerance per entry: half a unit in the last place plus the error that the
    student's own rounded inputs to that quantity can carry into it."""
    half = Decimal(5).scaleb(-places - 1)
    W, x = problem.W, problem.x
    K, D = W.shape
    eta = Decimal(str(sympy.N(problem.learning_rate, 30)))
    y_t = Decimal(str(sympy.N(quantities["y"].value[problem.target], 30)))
    dW = [[half * (1 + abs(int(x[j]))) for j in range(D)] for _ in range(K)]
    tol = {
        "z": [half] * K,
        "y": [half] * K,
        "L": half + half / y_t,
        "delta": [half] * K,
        "dL_dW": dW,
        "dL_db": [half] * K,
        "dL_dx": [half * (1 + sum(abs(int(W[i, j])) for i in range(K))) for j in range(D)],
        "W_new": [[half + eta * dW[i][j] for j in range(D)] for i in range(K)],
        "b_new": [half + eta * half for _ in range(K)],
    }
    return {name: _decimal_strings(value) for name, value in tol.items()}


def _decimal_strings(value):
    if isinstance(value, list):
        return [_decimal_strings(v) for v in value]
    return format(value.normalize(), "f") if value == value.to_integral() else format(value.quantize(Decimal("1e-12")).normalize(), "f")


def build_backprop_softmax(qid: str, spec: dict, rng: np.random.Generator, places: int) -> Question:
    fixed = spec.get("fixed")
    if fixed:
        problem = SoftmaxProblem.from_dict({**fixed, "learning_rate": str(fixed.get("learning_rate", "0.1"))})
        source = "fixed"
    else:
        problem = draw_softmax_problem(rng, spec)
        source = "random"
    quantities = solve_softmax(problem)
    tolerances = rounding_tolerances(quantities, problem, places)
    marks = {**BACKPROP_MARKS, **spec.get("marks", {})}
    asked = [name for name in spec.get("parts", QUANTITY_ORDER) if name in quantities]
    parts = []
    for name in asked:
        quantity = quantities[name]
        kind = "scalar" if quantity.shape is None else ("vector" if quantity.shape[1] == 1 else "matrix")
        parts.append(Part(f"{qid}.{name}", name, quantity.label, kind, int(marks[name]), FORMS[kind],
                          exact_text(quantity.value), decimal_value(quantity.value, places), tolerances[name]))
    conventions = {"vectors": "column", "layer": "z = W x + b, W is K x D", "loss": "cross-entropy, natural log",
                   "decimal_places": places, "learning_rate": str(problem.learning_rate)}
    solution = {name: {"formula": q.formula, "exact": exact_text(q.value), "decimal": decimal_value(q.value, places)}
                for name, q in quantities.items()}
    return Question(qid, "backprop_softmax", spec.get("title", "Backpropagation through a softmax layer"), source,
                    conventions, problem.to_dict(), parts, quantities, solution,
                    context={"problem": problem, "asked": asked})
