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
            raise ProblemError("W", _plain(self.W), "a matrix with at least 2 rows (classes) and 1 column")
        if self.x.shape != (D, 1):
            raise ProblemError("x", _plain(self.x), f"a vector of {D} entries, one per column of W")
        if self.b.shape != (K, 1):
            raise ProblemError("b", _plain(self.b), f"a vector of {K} entries, one per row of W")
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
        W = sympy.Matrix([[read_number(v, "W") for v in row] for row in data["W"]])
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
    m = min(z)
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


def _plain(matrix: sympy.MatrixBase) -> list[list[str]]:
    return [[str(v) for v in matrix.row(i)] for i in range(matrix.rows)]
