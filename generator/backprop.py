"""One forward and backward pass through a softmax layer, in exact arithmetic.

Conventions: column vectors, z = W x + b with W of shape K x D, y = softmax(z),
L = -log y_t for the one-hot target t (natural log, one example, no averaging).
Then delta = dL/dz = y - t, dL/dW = delta x^T (K x D), dL/db = delta,
dL/dx = W^T delta, and SGD sets W <- W - eta dL/dW, b <- b - eta dL/db.

The exact values are built directly in the form an examiner writes, so nothing
needs `simplify`. With m = min(z) and S = sum_j exp(z_j - m):

    y_i = exp(z_i - m) / S
    L = log(sum_j exp(z_j - z_t))
    delta_i = exp(z_i - m) / S for i != t, and -(S - exp(z_t - m)) / S for i = t
    (dL/dx)_j = sum_i (W_ij - W_tj) exp(z_i - m) / S

Shifting by m keeps every exponent finite and non-negative, so softmax([10^8, 10^8])
is exactly [1/2, 1/2] and the notes' example gives y_1 = e/(1 + e).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from generator.errors import ProblemError
from generator.numbers import read_number


@dataclass(frozen=True)
class SoftmaxProblem:
    """A one-layer softmax network with cross-entropy loss and one SGD step."""

    W: sympy.Matrix  # K x D
    x: sympy.Matrix  # D x 1
    b: sympy.Matrix  # K x 1
    target: int  # index of the true class, 0-based
    learning_rate: sympy.Rational = sympy.Rational(1, 10)

    def __post_init__(self) -> None:
        K, D = self.W.shape
        if K < 2 or D < 1:
            raise ProblemError("W", _shown(self.W), "a matrix with at least 2 rows (classes) and 1 column")
        if self.x.shape != (D, 1):
            raise ProblemError("x", _shown(self.x), f"a vector of {D} entries, one per column of W")
        if self.b.shape != (K, 1):
            raise ProblemError("b", _shown(self.b), f"a vector of {K} entries, one per row of W")
        if not 0 <= self.target < K:
            raise ProblemError("target", self.target, f"a class index from 0 to {K - 1}")
        if not self.learning_rate > 0:
            raise ProblemError("learning rate", self.learning_rate, "a positive number such as 0.1")

    @property
    def t(self) -> sympy.Matrix:
        """The one-hot target vector."""
        K = self.W.shape[0]
        return sympy.Matrix([1 if i == self.target else 0 for i in range(K)])

    def to_dict(self) -> dict:
        return {
            "W": _plain(self.W),
            "x": [str(v) for v in self.x],
            "b": [str(v) for v in self.b],
            "target": self.target,
            "learning_rate": str(self.learning_rate),
        }

    @classmethod
    def from_dict(cls, data: dict) -> SoftmaxProblem:
        """Build a problem from JSON or a spec's `fixed` block, with target given as
        a 0-based index `target` or a one-hot list `t`."""
        rows = data["W"]
        if not isinstance(rows, list) or not rows or not all(isinstance(row, list) for row in rows) \
                or any(len(row) != len(rows[0]) for row in rows):
            raise ProblemError("W", rows, "a list of rows of equal length, e.g. [[1, 0], [2, -1]]")
        W = sympy.Matrix([[read_number(v, "W") for v in row] for row in rows])
        if "t" in data:
            target = target_index(sympy.Matrix([read_number(v, "t") for v in data["t"]]))
        else:
            target = int(data["target"])
        return cls(
            W=W,
            x=sympy.Matrix([read_number(v, "x") for v in data["x"]]),
            b=sympy.Matrix([read_number(v, "b") for v in data["b"]]),
            target=target,
            learning_rate=read_number(data.get("learning_rate", "1/10"), "learning rate"),
        )


@dataclass
class Quantity:
    """One computed quantity of a worked solution: its formula, the numbers plugged in, the value."""

    name: str  # part id suffix and answer-file key: "z", "dL_dW"
    label: str  # how the paper writes it: "z", "∂L/∂W"
    formula: str  # the general formula in plain text: "W x + b"
    value: sympy.Basic  # a sympy scalar or Matrix
    substitution: list = field(default_factory=list)  # sympy objects and operator strings, in order

    @property
    def shape(self) -> tuple[int, int] | None:
        return self.value.shape if isinstance(self.value, sympy.MatrixBase) else None


QUANTITY_ORDER = ("z", "y", "L", "delta", "dL_dW", "dL_db", "dL_dx", "W_new", "b_new")


def solve_softmax(problem: SoftmaxProblem) -> dict[str, Quantity]:
    """Return every quantity of the forward pass, backward pass and SGD update, in order."""
    W, x, b, t, k = problem.W, problem.x, problem.b, problem.t, problem.target
    eta = problem.learning_rate
    K, D = W.shape

    # Forward pass: logits.
    z = W * x + b

    # Softmax, shifted by the smallest logit so every exponent is finite and non-negative.
    # Logits built from sigmoid or tanh units can be equal without being the same
    # expression, and sympy cannot order those, so they are compared as 30-digit numbers.
    m = min(z) if all(v.is_Rational for v in z) else min(z, key=lambda v: sympy.N(v, 30))
    exps = [sympy.exp(z_i - m) for z_i in z]
    S = sympy.Add(*exps)
    y = sympy.Matrix([e_i / S for e_i in exps])

    # Cross-entropy of the target class: -log y_t = log(sum_j exp(z_j - z_t)).
    L = sympy.log(sympy.Add(*[sympy.exp(z_j - z[k]) for z_j in z]))

    # delta = y - t, with the target entry written over the common denominator.
    numerators = [e_i if i != k else -sympy.Add(*[e for j, e in enumerate(exps) if j != k]) for i, e_i in enumerate(exps)]
    delta = sympy.Matrix([n_i / S for n_i in numerators])

    # Parameter and input gradients.
    dL_dW = delta * x.T
    dL_db = delta
    dL_dx = sympy.Matrix([
        sympy.Add(*[(W[i, j] - W[k, j]) * exps[i] for i in range(K)]) / S
        for j in range(D)
    ])

    # One SGD step.
    W_new = sympy.Matrix(K, D, lambda i, j: W[i, j] - eta * dL_dW[i, j])
    b_new = sympy.Matrix(K, 1, lambda i, _: b[i] - eta * dL_db[i])

    return {q.name: q for q in [
        Quantity("z", "z", "W x + b", z, [W, x, "+", b]),
        Quantity("y", "y", "softmax(z), y_i = exp(z_i) / Σ_j exp(z_j)", y, ["softmax", z]),
        Quantity("L", "L", "−log y_t", L, ["−log", y[k]]),
        Quantity("delta", "δ = ∂L/∂z", "y − t", delta, [y, "−", t]),
        Quantity("dL_dW", "∂L/∂W", "δ xᵀ", dL_dW, [delta, x.T]),
        Quantity("dL_db", "∂L/∂b", "δ", dL_db, [delta]),
        Quantity("dL_dx", "∂L/∂x", "Wᵀ δ", dL_dx, [W.T, delta]),
        Quantity("W_new", "W after the update", "W − η ∂L/∂W", W_new, [W, "−", eta, dL_dW]),
        Quantity("b_new", "b after the update", "b − η ∂L/∂b", b_new, [b, "−", eta, dL_db]),
    ]}


def target_index(t: sympy.Matrix) -> int:
    """Return the index of the 1 in a one-hot vector."""
    if sorted(t) != [0] * (len(t) - 1) + [1]:
        raise ProblemError("t", [str(v) for v in t], "a one-hot vector with a single 1, e.g. [1, 0]")
    return list(t).index(1)


def _shown(matrix: sympy.MatrixBase) -> str:
    """Write a vector as [1, 2] and a matrix as [[1, 0], [2, -1]] for an error message."""
    if matrix.cols == 1:
        return "[" + ", ".join(str(v) for v in matrix) + "]"
    return "[" + ", ".join("[" + ", ".join(str(v) for v in matrix.row(i)) + "]" for i in range(matrix.rows)) + "]"


def _plain(matrix: sympy.MatrixBase) -> list[list[str]]:
    return [[str(v) for v in matrix.row(i)] for i in range(matrix.rows)]


# Error carried forward. The marker passes the student's values as numpy float64
# arrays (a vector has shape (n,), a matrix (rows, cols)) and scalars as floats.

from fractions import Fraction  # noqa: E402

import numpy as np  # noqa: E402

# The earlier quantity each later one is worked from.
SOFTMAX_DEPENDS_ON = {"y": "z", "L": "y", "delta": "y", "dL_dW": "delta", "dL_db": "delta", "dL_dx": "delta",
                      "W_new": "dL_dW", "b_new": "dL_db"}
# How far the entries of a student's y may sum from 1, and a delta from 0, and still be
# carried: K entries each rounded to 3 places can be off by K * 0.0005 together.
ADMISSIBLE_SUM_TOLERANCE = 0.01


# The last problems read by _numeric_inputs, by id, each with the dict itself so that
# an id cannot be reused by another dict while its entry exists.
_numeric_cache: dict[int, tuple[dict, tuple]] = {}
NUMERIC_CACHE_SIZE = 16


def _numeric_inputs(problem: dict):
    """Return (W, x, b, t, eta) as floats, read once per problem dict."""
    entry = _numeric_cache.get(id(problem))
    if entry is not None and entry[0] is problem:
        return entry[1]
    inputs = _read_numeric_inputs(problem)
    if len(_numeric_cache) >= NUMERIC_CACHE_SIZE:
        _numeric_cache.pop(next(iter(_numeric_cache)))
    _numeric_cache[id(problem)] = (problem, inputs)
    return inputs


def _read_numeric_inputs(problem: dict):
    def floats(entries):
        return np.array([[float(Fraction(str(v))) for v in row] if isinstance(row, list) else float(Fraction(str(row)))
                         for row in entries])

    W, x, b = floats(problem["W"]), floats(problem["x"]), floats(problem["b"])
    t = np.zeros(len(b))
    t[int(problem["target"])] = 1.0
    return W, x, b, t, float(Fraction(str(problem.get("learning_rate", "1/10"))))


def carry_forward(problem: dict, part: str, values: dict) -> object | None:
    """Work one part from the student's own earlier value: delta from their y, dL/dW from their delta.

    Returns None when the part depends on nothing or its earlier value is not in values.
    """
    source = SOFTMAX_DEPENDS_ON.get(part)
    if source is None or source not in values:
        return None
    W, x, b, t, eta = _numeric_inputs(problem)
    v = np.asarray(values[source], dtype=float)
    k = int(problem["target"])
    if part == "y":
        exps = np.exp(v - v.max())
        return exps / exps.sum()
    if part == "L":
        return float(-np.log(v[k])) if v[k] > 0 else None
    if part == "delta":
        return v - t
    if part == "dL_dW":
        return np.outer(v, x)
    if part == "dL_db":
        return v
    if part == "dL_dx":
        return W.T @ v
    if part == "W_new":
        return W - eta * v
    return b - eta * v


def admissible(problem: dict, part: str, value: object) -> bool:
    """Whether a student's value may be carried into later parts.

    y must be a probability vector: every entry strictly between 0 and 1 and the sum 1
    within ADMISSIBLE_SUM_TOLERANCE. delta must be y - t for some such y, up to the sign
    (t - y is a common slip whose consequences still earn marks): entries strictly between
    -1 and 1, summing to 0, not all 0. Without these conditions y = t would make every
    later part trivially 0. Other parts need only the right shape, which the marker checks.
    """
    value = np.asarray(value, dtype=float)
    if part == "y":
        return bool(np.all((value > 0) & (value < 1)) and abs(value.sum() - 1) <= ADMISSIBLE_SUM_TOLERANCE)
    if part == "delta":
        return bool(np.all(np.abs(value) < 1) and abs(value.sum()) <= ADMISSIBLE_SUM_TOLERANCE
                    and np.any(np.abs(value) > ADMISSIBLE_SUM_TOLERANCE))
    return bool(np.all(np.isfinite(value)))
