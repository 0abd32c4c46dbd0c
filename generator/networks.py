"""Forward and backward passes of the other small networks an exam asks about, in exact arithmetic.

Conventions shared with `generator.backprop`: column vectors, z = W x + b with W of
shape K x D, natural log, one SGD step theta <- theta - eta dL/dtheta. Four networks:

- `SigmoidProblem`: y_i = sigmoid(z_i), independent outputs with 0/1 targets and
  L = -sum_i [t_i log y_i + (1 - t_i) log(1 - y_i)], so delta = y - t.
- `LinearProblem`: y = z with L = 1/2 ||y - t||^2 (delta = y - t) or, with
  `loss_form="full"`, L = ||y - t||^2 (delta = 2 (y - t)).
- `TwoLayerProblem`: h = f(W1 x + b1) with f = relu, sigmoid or tanh, then a softmax
  layer y = softmax(W2 h + b2) with cross-entropy; relu'(0) = 0.
- `BatchProblem`: one softmax layer and a batch of two examples, the columns of
  X = [x1 x2]; L = (L1 + L2) / 2 and every gradient is the mean of the two.

Exact values are built in the form an examiner writes, never through `simplify`:
sigmoid(1) = e/(1 + e), sigmoid(-1) = 1/(1 + e), sigmoid(0) = 1/2,
tanh(1) = (e^2 - 1)/(e^2 + 1), and -log sigmoid(z) = log(1 + e^-z).
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy

from generator.backprop import Quantity, SoftmaxProblem, _plain, solve_softmax, target_index
from generator.errors import ProblemError
from generator.exact import to_mpmath
from generator.numbers import read_number

ACTIVATIONS = ("relu", "sigmoid", "tanh")
LOSS_FORMS = ("half", "full")  # L = 1/2 ||y - t||^2 or L = ||y - t||^2
DEFAULT_LEARNING_RATE = sympy.Rational(1, 10)
# Digits used to decide the sign of an exact value such as 2e/(1 + e) - 3/2.
SIGN_DIGITS = 30


# Exact building blocks

def is_nonnegative(value: sympy.Basic) -> bool:
    if value.is_Rational:
        return bool(value >= 0)
    return bool(sympy.N(value, SIGN_DIGITS) >= 0)


def sigmoid(z: sympy.Basic) -> sympy.Basic:
    """Return 1/(1 + e^-z) as e^z/(1 + e^z) for z >= 0 and 1/(1 + e^-z) for z < 0."""
    if is_nonnegative(z):
        return sympy.exp(z) / (1 + sympy.exp(z))
    return 1 / (1 + sympy.exp(-z))


def tanh(z: sympy.Basic) -> sympy.Basic:
    """Return tanh z as (e^2z - 1)/(e^2z + 1), with the sign taken out for z < 0."""
    if is_nonnegative(z):
        return (sympy.exp(2 * z) - 1) / (sympy.exp(2 * z) + 1)
    return -(sympy.exp(-2 * z) - 1) / (sympy.exp(-2 * z) + 1)


def activation(name: str, z: sympy.Basic) -> sympy.Basic:
    if name == "relu":
        return z if is_nonnegative(z) else sympy.Integer(0)
    return sigmoid(z) if name == "sigmoid" else tanh(z)


def activation_derivative(name: str, z: sympy.Basic) -> sympy.Basic:
    """Return f'(z): relu' is 1 for z > 0 and 0 otherwise (relu'(0) = 0, as PyTorch has it);
    sigmoid' = sigmoid(z) sigmoid(-z); tanh' = 1 - tanh^2 = 4 e^2|z| / (e^2|z| + 1)^2."""
    if name == "relu":
        return sympy.Integer(1) if is_nonnegative(z) and z != 0 else sympy.Integer(0)
    if name == "sigmoid":
        return sigmoid(z) * sigmoid(-z)
    magnitude = z if is_nonnegative(z) else -z
    return 4 * sympy.exp(2 * magnitude) / (sympy.exp(2 * magnitude) + 1) ** 2


def softmax(z: sympy.Matrix) -> sympy.Matrix:
    """Return softmax(z), shifted by the smallest logit so every exponent is non-negative."""
    m = min(z, key=lambda v: sympy.N(v, SIGN_DIGITS))
    exps = [sympy.exp(z_i - m) for z_i in z]
    total = sympy.Add(*exps)
    return sympy.Matrix([e / total for e in exps])


def binary_cross_entropy(z: sympy.Matrix, t: sympy.Matrix) -> sympy.Basic:
    """Return -sum[t log y + (1 - t) log(1 - y)] for y = sigmoid(z), written as sum log(1 + e^s)
    with s = -z where t = 1 and s = z where t = 0."""
    return sympy.Add(*[sympy.log(1 + sympy.exp(-z_i if t_i == 1 else z_i)) for z_i, t_i in zip(z, t)])


def sigmoid_delta(z: sympy.Basic, t: int) -> sympy.Basic:
    """Return y - t for y = sigmoid(z): y itself for t = 0 and -sigmoid(-z) = -(1 - y) for t = 1."""
    return sigmoid(z) if t == 0 else -sigmoid(-z)


# Reading and writing problems

def _matrix(data: object, what: str) -> sympy.Matrix:
    if not isinstance(data, list) or not data or not all(isinstance(row, list) and row for row in data):
        raise ProblemError(what, data, "a list of rows, e.g. [[1, 0], [2, -1]]")
    if any(len(row) != len(data[0]) for row in data):
        raise ProblemError(what, data, "rows of equal length, e.g. [[1, 0], [2, -1]]")
    return sympy.Matrix([[read_number(v, what) for v in row] for row in data])


def _vector(data: object, what: str) -> sympy.Matrix:
    if not isinstance(data, list) or not data or any(isinstance(v, list) for v in data):
        raise ProblemError(what, data, "a list of numbers, e.g. [1, -2]")
    return sympy.Matrix([read_number(v, what) for v in data])


def _target(data: dict, name: str, classes: int) -> int:
    """Read the class index stored under `name`, given as a one-hot list or a 0-based index."""
    value = data[name]
    if isinstance(value, list):
        index = target_index(_vector(value, name))
    else:
        index = int(value)
    if not 0 <= index < classes:
        raise ProblemError(name, value, f"a class index from 0 to {classes - 1} or a one-hot list of {classes}")
    return index


def _one_hot(index: int, classes: int) -> sympy.Matrix:
    return sympy.Matrix([1 if i == index else 0 for i in range(classes)])


def _strings(vector: sympy.Matrix) -> list[str]:
    return [str(v) for v in vector]


def _check_layer(W: sympy.Matrix, x: sympy.Matrix, b: sympy.Matrix, names=("W", "x", "b")) -> None:
    K, D = W.shape
    if x.shape != (D, 1):
        raise ProblemError(names[1], _strings(x), f"a vector of {D} entries, one per column of {names[0]}")
    if b.shape != (K, 1):
        raise ProblemError(names[2], _strings(b), f"a vector of {K} entries, one per row of {names[0]}")


def _learning_rate(data: dict) -> sympy.Rational:
    rate = read_number(str(data.get("learning_rate", "1/10")), "learning rate")
    if not rate > 0:
        raise ProblemError("learning rate", str(rate), "a positive number such as 0.1")
    return rate


@dataclass(frozen=True)
class SigmoidProblem:
    """A layer of independent sigmoid outputs with binary cross-entropy and one SGD step."""

    W: sympy.Matrix  # K x D
    x: sympy.Matrix  # D x 1
    b: sympy.Matrix  # K x 1
    t: sympy.Matrix  # K x 1, each entry 0 or 1
    learning_rate: sympy.Rational = DEFAULT_LEARNING_RATE

    def __post_init__(self) -> None:
        _check_layer(self.W, self.x, self.b)
        if self.t.shape != self.b.shape or any(v not in (0, 1) for v in self.t):
            raise ProblemError("t", _strings(self.t), f"a vector of {self.W.rows} targets, each 0 or 1")

    def to_dict(self) -> dict:
        return {"W": _plain(self.W), "x": _strings(self.x), "b": _strings(self.b), "t": _strings(self.t),
                "learning_rate": str(self.learning_rate)}

    @classmethod
    def from_dict(cls, data: dict) -> SigmoidProblem:
        return cls(_matrix(data["W"], "W"), _vector(data["x"], "x"), _vector(data["b"], "b"),
                   _vector(data["t"], "t"), _learning_rate(data))


@dataclass(frozen=True)
class LinearProblem:
    """A linear output layer y = W x + b with squared error and one SGD step."""

    W: sympy.Matrix
    x: sympy.Matrix
    b: sympy.Matrix
    t: sympy.Matrix  # K x 1 real targets
    loss_form: str = "half"  # "half": L = 1/2 ||y - t||^2; "full": L = ||y - t||^2
    learning_rate: sympy.Rational = DEFAULT_LEARNING_RATE

    def __post_init__(self) -> None:
        _check_layer(self.W, self.x, self.b)
        if self.t.shape != self.b.shape:
            raise ProblemError("t", _strings(self.t), f"a vector of {self.W.rows} targets")
        if self.loss_form not in LOSS_FORMS:
            raise ProblemError("loss_form", self.loss_form, "half (L = 1/2 ||y - t||^2) or full (L = ||y - t||^2)")

    def to_dict(self) -> dict:
        return {"W": _plain(self.W), "x": _strings(self.x), "b": _strings(self.b), "t": _strings(self.t),
                "loss_form": self.loss_form, "learning_rate": str(self.learning_rate)}

    @classmethod
    def from_dict(cls, data: dict) -> LinearProblem:
        return cls(_matrix(data["W"], "W"), _vector(data["x"], "x"), _vector(data["b"], "b"),
                   _vector(data["t"], "t"), str(data.get("loss_form", "half")), _learning_rate(data))


@dataclass(frozen=True)
class TwoLayerProblem:
    """h = f(W1 x + b1), y = softmax(W2 h + b2), cross-entropy, and one SGD step."""

    W1: sympy.Matrix  # H x D
    b1: sympy.Matrix  # H x 1
    W2: sympy.Matrix  # K x H
    b2: sympy.Matrix  # K x 1
    x: sympy.Matrix  # D x 1
    target: int
    activation: str = "relu"
    learning_rate: sympy.Rational = DEFAULT_LEARNING_RATE

    def __post_init__(self) -> None:
        _check_layer(self.W1, self.x, self.b1, ("W1", "x", "b1"))
        if self.W2.cols != self.W1.rows:
            raise ProblemError("W2", _plain(self.W2), f"a matrix with {self.W1.rows} columns, one per hidden unit")
        if self.W2.rows < 2:
            raise ProblemError("W2", _plain(self.W2), "a matrix with at least 2 rows (classes)")
        if self.b2.shape != (self.W2.rows, 1):
            raise ProblemError("b2", _strings(self.b2), f"a vector of {self.W2.rows} entries, one per row of W2")
        if not 0 <= self.target < self.W2.rows:
            raise ProblemError("target", self.target, f"a class index from 0 to {self.W2.rows - 1}")
        if self.activation not in ACTIVATIONS:
            raise ProblemError("activation", self.activation, "relu, sigmoid or tanh")

    @property
    def t(self) -> sympy.Matrix:
        return _one_hot(self.target, self.W2.rows)

    def to_dict(self) -> dict:
        return {"W1": _plain(self.W1), "b1": _strings(self.b1), "W2": _plain(self.W2), "b2": _strings(self.b2),
                "x": _strings(self.x), "t": _strings(self.t), "activation": self.activation,
                "learning_rate": str(self.learning_rate)}

    @classmethod
    def from_dict(cls, data: dict) -> TwoLayerProblem:
        W2 = _matrix(data["W2"], "W2")
        return cls(_matrix(data["W1"], "W1"), _vector(data["b1"], "b1"), W2, _vector(data["b2"], "b2"),
                   _vector(data["x"], "x"), _target(data, "t", W2.rows), str(data.get("activation", "relu")),
                   _learning_rate(data))


@dataclass(frozen=True)
class BatchProblem:
    """One softmax layer and two examples (x1, t1), (x2, t2) with the mean cross-entropy."""

    W: sympy.Matrix  # K x D
    b: sympy.Matrix  # K x 1
    X: sympy.Matrix  # D x 2, one column per example
    targets: tuple[int, int]
    learning_rate: sympy.Rational = DEFAULT_LEARNING_RATE

    def __post_init__(self) -> None:
        K, D = self.W.shape
        if K < 2:
            raise ProblemError("W", _plain(self.W), "a matrix with at least 2 rows (classes)")
        if self.X.shape != (D, 2):
            raise ProblemError("x1, x2", _plain(self.X), f"two vectors of {D} entries, one per column of W")
        if self.b.shape != (K, 1):
            raise ProblemError("b", _strings(self.b), f"a vector of {K} entries, one per row of W")
        if len(self.targets) != 2 or not all(0 <= k < K for k in self.targets):
            raise ProblemError("t1, t2", self.targets, f"two class indices from 0 to {K - 1}")

    @property
    def T(self) -> sympy.Matrix:
        """The one-hot targets as columns, K x 2."""
        K = self.W.rows
        return sympy.Matrix.hstack(*[_one_hot(k, K) for k in self.targets])

    def to_dict(self) -> dict:
        T = self.T
        return {"W": _plain(self.W), "b": _strings(self.b),
                "x1": _strings(self.X.col(0)), "t1": _strings(T.col(0)),
                "x2": _strings(self.X.col(1)), "t2": _strings(T.col(1)),
                "learning_rate": str(self.learning_rate)}

    @classmethod
    def from_dict(cls, data: dict) -> BatchProblem:
        W = _matrix(data["W"], "W")
        X = sympy.Matrix.hstack(_vector(data["x1"], "x1"), _vector(data["x2"], "x2"))
        return cls(W, _vector(data["b"], "b"), X, (_target(data, "t1", W.rows), _target(data, "t2", W.rows)),
                   _learning_rate(data))


# Solvers

def _update(name: str, label: str, parameter: sympy.Matrix, gradient: Quantity, eta, symbol: str) -> Quantity:
    new = sympy.Matrix(*parameter.shape, lambda i, j: parameter[i, j] - eta * gradient.value[i, j])
    return Quantity(name, f"{symbol} after the update", f"{symbol} − η {gradient.label}", new,
                    [parameter, "−", eta, gradient.value])


def _layer_gradients(W, x, b, delta: Quantity, eta) -> list[Quantity]:
    """Return dL/dW = delta x^T, dL/db = delta, dL/dx = W^T delta and the SGD step of W and b."""
    dL_dW = Quantity("dL_dW", "∂L/∂W", "δ xᵀ", delta.value * x.T, [delta.value, x.T])
    dL_db = Quantity("dL_db", "∂L/∂b", "δ", delta.value, [delta.value])
    dL_dx = Quantity("dL_dx", "∂L/∂x", "Wᵀ δ", W.T * delta.value, [W.T, delta.value])
    return [dL_dW, dL_db, dL_dx,
            _update("W_new", "W", W, dL_dW, eta, "W"), _update("b_new", "b", b, dL_db, eta, "b")]


def solve_sigmoid_bce(problem: SigmoidProblem) -> dict[str, Quantity]:
    """Return every quantity of the forward pass, backward pass and SGD update, in order.

    Example: W = [[1, 0]], x = [1, 2], b = [0], t = [1] gives z = 1, y = e/(1 + e),
    L = log(1 + e^-1), delta = -1/(1 + e), dL/dW = [[-1/(1 + e), -2/(1 + e)]].
    """
    W, x, b, t, eta = problem.W, problem.x, problem.b, problem.t, problem.learning_rate

    # Forward pass.
    z = W * x + b
    y = z.applyfunc(sigmoid)
    L = binary_cross_entropy(z, t)

    # delta = y - t, written as -(1 - y) = -sigmoid(-z) where t = 1.
    delta = sympy.Matrix([sigmoid_delta(z_i, t_i) for z_i, t_i in zip(z, t)])
    delta_q = Quantity("delta", "δ = ∂L/∂z", "y − t", delta, [y, "−", t])

    quantities = [
        Quantity("z", "z", "W x + b", z, [W, x, "+", b]),
        Quantity("y", "y", "σ(z) = 1 / (1 + e^(−z)), entrywise", y, ["σ", z]),
        Quantity("L", "L", "−∑ᵢ [tᵢ log yᵢ + (1 − tᵢ) log(1 − yᵢ)]", L,
                 ["∑", sympy.Matrix([sympy.log(1 + sympy.exp(-z_i if t_i == 1 else z_i)) for z_i, t_i in zip(z, t)])]),
        delta_q,
        *_layer_gradients(W, x, b, delta_q, eta),
    ]
    return {q.name: q for q in quantities}


def solve_linear_mse(problem: LinearProblem) -> dict[str, Quantity]:
    """Return every quantity of the forward pass, backward pass and SGD update, in order.

    Example: W = [[1, 2]], x = [1, 1], b = [0], t = [1] with L = 1/2 ||y - t||^2 gives
    y = 3, L = 2, delta = 2; with L = ||y - t||^2 it gives L = 4, delta = 4.
    """
    W, x, b, t, eta = problem.W, problem.x, problem.b, problem.t, problem.learning_rate
    half = problem.loss_form == "half"

    # Forward pass: the output is the logit itself.
    y = W * x + b
    residual = y - t
    squares = sympy.Add(*[r ** 2 for r in residual])
    L = squares / 2 if half else squares

    # delta = dL/dy = (y - t) for the 1/2 form and 2 (y - t) without it.
    delta = residual if half else 2 * residual
    delta_q = Quantity("delta", "δ = ∂L/∂y", "y − t" if half else "2 (y − t)", delta,
                       [y, "−", t] if half else [2, "(", y, "−", t, ")"])

    quantities = [
        Quantity("y", "y", "W x + b", y, [W, x, "+", b]),
        Quantity("L", "L", "½ ‖y − t‖²" if half else "‖y − t‖²", L,
                 (["½ ‖", residual, "‖²"] if half else ["‖", residual, "‖²"])),
        delta_q,
        *_layer_gradients(W, x, b, delta_q, eta),
    ]
    return {q.name: q for q in quantities}


def solve_two_layer(problem: TwoLayerProblem) -> dict[str, Quantity]:
    """Return every quantity of the forward pass, backward pass and SGD update, in order.

    Example with relu: W1 = [[1, -1], [2, 1]], b1 = [0, -1], x = [1, 2] give
    z1 = [-1, 3] and h = [0, 3]. With W2 = [[1, 0], [0, 1]], b2 = [0, 0], t = [0, 1]:
    z2 = [0, 3], y = [1/(1 + e^3), e^3/(1 + e^3)], delta2 = [1/(1 + e^3), -1/(1 + e^3)],
    dL/dh = W2^T delta2 = delta2, and delta1 = dL/dh * relu'(z1) = [0, -1/(1 + e^3)]
    because relu'(-1) = 0. So dL/dW1 = [[0, 0], [-1/(1 + e^3), -2/(1 + e^3)]].
    """
    W1, b1, W2, b2, x = problem.W1, problem.b1, problem.W2, problem.b2, problem.x
    f, eta = problem.activation, problem.learning_rate
    H = W1.rows

    # Hidden layer.
    z1 = W1 * x + b1
    h = z1.applyfunc(lambda v: activation(f, v))

    # Output layer: the softmax solver with h as its input; its dL/dx is dL/dh.
    top = solve_softmax(SoftmaxProblem(W2, h, b2, problem.target, eta))

    # Back through the activation: delta1 = dL/dh ⊙ f'(z1).
    dL_dh = top["dL_dx"].value
    derivative = z1.applyfunc(lambda v: activation_derivative(f, v))
    delta1 = sympy.Matrix([dL_dh[j] * derivative[j] for j in range(H)])
    delta1_q = Quantity("delta1", "δ₁ = ∂L/∂z₁", f"∂L/∂h ⊙ {f}′(z₁)", delta1, [dL_dh, "⊙", derivative])
    dL_dW1 = Quantity("dL_dW1", "∂L/∂W₁", "δ₁ xᵀ", delta1 * x.T, [delta1, x.T])
    dL_db1 = Quantity("dL_db1", "∂L/∂b₁", "δ₁", delta1, [delta1])

    def renamed(name: str, new_name: str, label: str, formula: str) -> Quantity:
        q = top[name]
        return Quantity(new_name, label, formula, q.value, q.substitution)

    dL_dW2 = renamed("dL_dW", "dL_dW2", "∂L/∂W₂", "δ₂ hᵀ")
    dL_db2 = renamed("dL_db", "dL_db2", "∂L/∂b₂", "δ₂")
    quantities = [
        Quantity("z1", "z₁", "W₁ x + b₁", z1, [W1, x, "+", b1]),
        Quantity("h", "h", f"{f}(z₁), entrywise", h, [f, z1]),
        renamed("z", "z2", "z₂", "W₂ h + b₂"),
        renamed("y", "y", "y", "softmax(z₂), yᵢ = exp(z₂ᵢ) / Σⱼ exp(z₂ⱼ)"),
        renamed("L", "L", "L", "−log y_t"),
        renamed("delta", "delta2", "δ₂ = ∂L/∂z₂", "y − t"),
        dL_dW2,
        dL_db2,
        renamed("dL_dx", "dL_dh", "∂L/∂h", "W₂ᵀ δ₂"),
        delta1_q,
        dL_dW1,
        dL_db1,
        Quantity("dL_dx", "∂L/∂x", "W₁ᵀ δ₁", W1.T * delta1, [W1.T, delta1]),
        _update("W1_new", "W₁", W1, dL_dW1, eta, "W₁"),
        _update("b1_new", "b₁", b1, dL_db1, eta, "b₁"),
        _update("W2_new", "W₂", W2, dL_dW2, eta, "W₂"),
        _update("b2_new", "b₂", b2, dL_db2, eta, "b₂"),
    ]
    return {q.name: q for q in quantities}


def solve_batch_mean(problem: BatchProblem) -> dict[str, Quantity]:
    """Return every quantity of the forward pass, backward pass and SGD update, in order.

    Columns are examples: Z = W X + b 1ᵀ, Y and Δ = Y - T are K x 2, and with the mean
    loss L = (L1 + L2)/2 the gradients are dL/dW = ½ Δ Xᵀ and dL/db = ½ (δ1 + δ2).
    """
    W, b, X, T, eta = problem.W, problem.b, problem.X, problem.T, problem.learning_rate
    K, D = W.shape
    half = sympy.Rational(1, 2)

    # Each example: logits, softmax shifted by the smallest logit, and the loss
    # -log y_t = log(sum_j exp(z_j - z_t)).
    Z = W * X + b * sympy.Matrix([[1, 1]])
    numerators, denominators, losses = [], [], []
    for n, k in enumerate(problem.targets):
        z = Z.col(n)
        m = min(z)
        exps = [sympy.exp(z_i - m) for z_i in z]
        denominators.append(sympy.Add(*exps))
        # delta = y - t over the common denominator: the target entry is -(sum of the others).
        numerators.append([e if i != k else -sympy.Add(*[o for j, o in enumerate(exps) if j != k])
                           for i, e in enumerate(exps)])
        losses.append(sympy.log(sympy.Add(*[sympy.exp(z_j - z[k]) for z_j in z])))
    Y = sympy.Matrix(K, 2, lambda i, n: sympy.exp(Z[i, n] - min(Z.col(n))) / denominators[n])
    Delta = sympy.Matrix(K, 2, lambda i, n: numerators[n][i] / denominators[n])

    # The mean over the batch. When both examples share the denominator, each entry
    # is written as one fraction over 2 S, as an examiner would.
    def mean(i: int, weights: tuple) -> sympy.Basic:
        if denominators[0] == denominators[1]:
            top = sympy.Add(*[numerators[n][i] * weights[n] for n in range(2)])
            return sympy.Mul(half, top, sympy.Pow(denominators[0], -1))
        return half * sympy.Add(*[Delta[i, n] * weights[n] for n in range(2)])

    L = half * (losses[0] + losses[1])
    dL_dW = Quantity("dL_dW", "∂L/∂W", "½ (δ₁ x₁ᵀ + δ₂ x₂ᵀ) = ½ Δ Xᵀ",
                     sympy.Matrix(K, D, lambda i, j: mean(i, (X[j, 0], X[j, 1]))), [half, Delta, X.T])
    dL_db = Quantity("dL_db", "∂L/∂b", "½ (δ₁ + δ₂)", sympy.Matrix(K, 1, lambda i, _: mean(i, (1, 1))),
                     [half, "(", Delta.col(0), "+", Delta.col(1), ")"])

    ones = sympy.Matrix([[1, 1]])
    quantities = [
        Quantity("z", "Z", "W X + b 1ᵀ (one column per example)", Z, [W, X, "+", b * ones]),
        Quantity("y", "Y", "softmax of each column of Z", Y, ["softmax", Z]),
        Quantity("L", "L", "½ (L₁ + L₂), Lₙ = −log y_(tₙ),n", L, [half, "(", losses[0], "+", losses[1], ")"]),
        Quantity("delta", "Δ = [δ₁ δ₂]", "Y − T (columns ∂Lₙ/∂zₙ, before averaging)", Delta, [Y, "−", T]),
        dL_dW,
        dL_db,
        _update("W_new", "W", W, dL_dW, eta, "W"),
        _update("b_new", "b", b, dL_db, eta, "b"),
    ]
    return {q.name: q for q in quantities}


PROBLEM_CLASSES = {
    "backprop_sigmoid_bce": SigmoidProblem,
    "backprop_linear_mse": LinearProblem,
    "backprop_two_layer": TwoLayerProblem,
    "backprop_batch_mean": BatchProblem,
}
SOLVERS = {
    "backprop_sigmoid_bce": solve_sigmoid_bce,
    "backprop_linear_mse": solve_linear_mse,
    "backprop_two_layer": solve_two_layer,
    "backprop_batch_mean": solve_batch_mean,
}
PART_ORDER = {
    "backprop_sigmoid_bce": ("z", "y", "L", "delta", "dL_dW", "dL_db", "dL_dx", "W_new", "b_new"),
    "backprop_linear_mse": ("y", "L", "delta", "dL_dW", "dL_db", "dL_dx", "W_new", "b_new"),
    "backprop_two_layer": ("z1", "h", "z2", "y", "L", "delta2", "dL_dW2", "dL_db2", "dL_dh", "delta1",
                           "dL_dW1", "dL_db1", "dL_dx", "W1_new", "b1_new", "W2_new", "b2_new"),
    "backprop_batch_mean": ("z", "y", "L", "delta", "dL_dW", "dL_db", "W_new", "b_new"),
}


# Independent check: every value again in mpmath, with gradients from central finite
# differences of the loss instead of the chain rule.

CHECK_DIGITS = 50
# With 50 digits, a step of 1e-15 leaves a truncation error near 1e-30 times the third
# derivative and a cancellation error near 1e-35, far below this tolerance.
FD_STEP = mpmath.mpf("1e-15")
FD_TOLERANCE = mpmath.mpf("1e-20")


def _mp(matrix: sympy.MatrixBase, cache: dict | None = None) -> mpmath.matrix:
    with mpmath.workdps(CHECK_DIGITS + 5):
        rows = [[to_mpmath(v, cache) for v in row] for row in matrix.tolist()]
    return mpmath.matrix(rows)


def _mp_scalar(value: sympy.Basic, cache: dict | None = None) -> mpmath.mpf:
    """Evaluate an exact value with mpmath at 5 digits beyond CHECK_DIGITS.

    Every node is rounded at that precision. The bounds on drawn variants keep every
    exponent at most 6 (2 z for a tanh unit with |z| <= 3), so the terms of these sums
    stay below about 10**4 and the rounding error far below FD_TOLERANCE.
    """
    with mpmath.workdps(CHECK_DIGITS + 5):
        value = to_mpmath(value, cache)
    return +value


def _cross_entropy(z: mpmath.matrix, target: int) -> mpmath.mpf:
    """-log softmax(z)_target = log(sum_i exp(z_i)) - z_target."""
    return mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z)) - z[target]


def _finite_difference(loss, args: dict, name: str) -> mpmath.matrix:
    point = args[name]
    gradient = mpmath.matrix(point.rows, point.cols)
    for i in range(point.rows):
        for j in range(point.cols):
            saved = point[i, j]
            point[i, j] = saved + FD_STEP
            up = loss(**args)
            point[i, j] = saved - FD_STEP
            down = loss(**args)
            point[i, j] = saved
            gradient[i, j] = (up - down) / (2 * FD_STEP)
    return gradient


def _mismatch(name: str, expected, exact: sympy.Basic, cache: dict | None = None) -> str | None:
    """Compare an mpmath value with an exact one; return a message when they differ."""
    if isinstance(exact, sympy.MatrixBase):
        got = _mp(exact, cache)
        if (got.rows, got.cols) != (expected.rows, expected.cols):
            return f"{name}: shape {got.rows}x{got.cols}, expected {expected.rows}x{expected.cols}"
        difference = max(abs(got[i, j] - expected[i, j]) for i in range(got.rows) for j in range(got.cols))
    else:
        difference = abs(_mp_scalar(exact, cache) - expected)
    return f"{name}: differs by {mpmath.nstr(difference, 3)}" if difference > FD_TOLERANCE else None


def _numeric_activation(name: str, z: mpmath.matrix, mask: list[bool]) -> mpmath.matrix:
    """Apply f entrywise. relu uses the sign pattern of the unperturbed point, so that at
    z = 0 its finite difference is 0, the relu'(0) = 0 convention."""
    if name == "relu":
        return mpmath.matrix([z[j] if mask[j] else 0 for j in range(z.rows)])
    if name == "sigmoid":
        return mpmath.matrix([1 / (1 + mpmath.exp(-z[j])) for j in range(z.rows)])
    return mpmath.matrix([mpmath.tanh(z[j]) for j in range(z.rows)])


def check_variant(qtype: str, problem, quantities: dict[str, Quantity]) -> str | None:
    """Recompute the forward values in mpmath and every gradient by central finite
    differences of the loss; return a message naming the first mismatch, or None."""
    with mpmath.workdps(CHECK_DIGITS):
        checks = _CHECKS[qtype](problem)
        updates = [(name, parameter) for name, parameter in (("W_new", "W"), ("b_new", "b"), ("W1_new", "W1"),
                                                              ("b1_new", "b1"), ("W2_new", "W2"), ("b2_new", "b2"))
                   if name in quantities]
        eta = _mp_scalar(problem.learning_rate)
        # The exact values share subexpressions (delta inside dL/dW inside W_new), so
        # each is evaluated once.
        cache: dict = {}
        for name, expected in checks:
            message = _mismatch(name, expected, quantities[name].value, cache)
            if message:
                return message
        found = dict(checks)
        for name, parameter in updates:
            gradient = found[f"dL_d{parameter}"]
            start = _mp(getattr(problem, parameter))
            message = _mismatch(name, start - eta * gradient, quantities[name].value, cache)
            if message:
                return message
    return None


def _check_single_layer(problem, output_loss) -> tuple[list, mpmath.matrix]:
    """Return the finite-difference gradients of a one-layer network whose loss is
    output_loss(z), and its logits z."""
    W, x, b = _mp(problem.W), _mp(problem.x), _mp(problem.b)

    def loss(W, x, b):
        return output_loss(W * x + b)

    args = {"W": W, "x": x, "b": b}
    z = W * x + b
    return [("delta", _finite_difference(lambda z: output_loss(z), {"z": z.copy()}, "z")),
            ("dL_dW", _finite_difference(loss, args, "W")),
            ("dL_db", _finite_difference(loss, args, "b")),
            ("dL_dx", _finite_difference(loss, args, "x"))], z


def _sigmoid_checks(problem: SigmoidProblem) -> list:
    t = [int(v) for v in problem.t]

    def bce(z):
        y = [1 / (1 + mpmath.exp(-v)) for v in z]
        return -mpmath.fsum(t_i * mpmath.log(y_i) + (1 - t_i) * mpmath.log(1 - y_i) for t_i, y_i in zip(t, y))

    gradients, z = _check_single_layer(problem, bce)
    y = mpmath.matrix([1 / (1 + mpmath.exp(-v)) for v in z])
    return [("z", z), ("y", y), ("L", bce(z)), *gradients]


def _linear_checks(problem: LinearProblem) -> list:
    t = _mp(problem.t)
    scale = mpmath.mpf(1) / 2 if problem.loss_form == "half" else mpmath.mpf(1)

    def squared_error(z):
        return scale * mpmath.fsum((z[i] - t[i]) ** 2 for i in range(z.rows))

    gradients, z = _check_single_layer(problem, squared_error)
    return [("y", z), ("L", squared_error(z)), *gradients]


def _two_layer_checks(problem: TwoLayerProblem) -> list:
    W1, b1, W2, b2, x = (_mp(m) for m in (problem.W1, problem.b1, problem.W2, problem.b2, problem.x))
    k, f = problem.target, problem.activation
    z1 = W1 * x + b1
    mask = [z1[j] > 0 for j in range(z1.rows)]

    def from_z2(z2):
        return _cross_entropy(z2, k)

    def from_h(h, W2=W2, b2=b2):
        return from_z2(W2 * h + b2)

    def from_z1(z1, W2=W2, b2=b2):
        return from_h(_numeric_activation(f, z1, mask), W2, b2)

    def loss(W1, b1, W2, b2, x):
        return from_z1(W1 * x + b1, W2, b2)

    h = _numeric_activation(f, z1, mask)
    z2 = W2 * h + b2
    total = mpmath.fsum(mpmath.exp(v) for v in z2)
    args = {"W1": W1, "b1": b1, "W2": W2, "b2": b2, "x": x}
    return [("z1", z1), ("h", h), ("z2", z2), ("y", mpmath.matrix([mpmath.exp(v) / total for v in z2])),
            ("L", from_z2(z2)),
            ("delta2", _finite_difference(from_z2, {"z2": z2.copy()}, "z2")),
            ("dL_dh", _finite_difference(from_h, {"h": h.copy()}, "h")),
            ("delta1", _finite_difference(from_z1, {"z1": z1.copy()}, "z1")),
            *[(f"dL_d{name}", _finite_difference(loss, args, name)) for name in ("W1", "b1", "W2", "b2", "x")]]


def _batch_checks(problem: BatchProblem) -> list:
    W, b, X = _mp(problem.W), _mp(problem.b), _mp(problem.X)
    targets = problem.targets

    def column(matrix, n):
        return mpmath.matrix([matrix[i, n] for i in range(matrix.rows)])

    def loss(W, b):
        return (_cross_entropy(W * column(X, 0) + b, targets[0]) + _cross_entropy(W * column(X, 1) + b, targets[1])) / 2

    Z = W * X + b * mpmath.matrix([[1, 1]])
    Y = mpmath.matrix(Z.rows, 2)
    Delta = mpmath.matrix(Z.rows, 2)
    for n in range(2):
        z = column(Z, n)
        total = mpmath.fsum(mpmath.exp(v) for v in z)
        gradient = _finite_difference(lambda z: _cross_entropy(z, targets[n]), {"z": z}, "z")
        for i in range(Z.rows):
            Y[i, n] = mpmath.exp(z[i]) / total
            Delta[i, n] = gradient[i]
    args = {"W": W, "b": b}
    return [("z", Z), ("y", Y), ("L", loss(W, b)), ("delta", Delta),
            ("dL_dW", _finite_difference(loss, args, "W")), ("dL_db", _finite_difference(loss, args, "b"))]


_CHECKS = {
    "backprop_sigmoid_bce": _sigmoid_checks,
    "backprop_linear_mse": _linear_checks,
    "backprop_two_layer": _two_layer_checks,
    "backprop_batch_mean": _batch_checks,
}
