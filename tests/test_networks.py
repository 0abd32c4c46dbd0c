"""The sigmoid, squared-error, two-layer and batch-mean solvers: hand-worked examples, and
agreement with central finite differences of losses written here, over 200 seeds per type."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy

from generator.errors import ProblemError
from generator.networks import (
    BatchProblem, LinearProblem, SigmoidProblem, TwoLayerProblem, sigmoid, solve_batch_mean,
    solve_linear_mse, solve_sigmoid_bce, solve_two_layer, tanh,
)

E = sympy.E
M = sympy.Matrix
SEEDS = range(200)
DIGITS = 40
STEP = mpmath.mpf("1e-12")
# Central differences at 40 digits with this step are accurate to about 1e-24.
AGREEMENT = mpmath.mpf("1e-15")


# Hand-worked values

def test_sigmoid_exact_forms():
    assert sigmoid(sympy.Integer(0)) == sympy.Rational(1, 2)
    assert sigmoid(sympy.Integer(1)) == E / (1 + E)
    assert sigmoid(sympy.Integer(-1)) == 1 / (1 + E)
    assert tanh(sympy.Integer(1)) == (E ** 2 - 1) / (E ** 2 + 1)
    assert tanh(sympy.Integer(0)) == 0


def test_sigmoid_bce_hand_example():
    """z = 1·1 + 0·2 + 0 = 1, y = e/(1 + e), L = -log y = log(1 + e^-1), delta = y - 1 = -1/(1 + e)."""
    solution = solve_sigmoid_bce(SigmoidProblem(M([[1, 0]]), M([1, 2]), M([0]), M([1])))
    assert solution["z"].value == M([1])
    assert solution["y"].value == M([E / (1 + E)])
    assert solution["L"].value == sympy.log(1 + sympy.exp(-1))
    assert solution["delta"].value == M([-1 / (1 + E)])
    assert solution["dL_dW"].value == M([[-1 / (1 + E), -2 / (1 + E)]])
    assert solution["dL_dx"].value == M([-1 / (1 + E), 0])
    difference = solution["W_new"].value - M([[1 + 1 / (10 * (1 + E)), 1 / (5 * (1 + E))]])
    assert difference.applyfunc(sympy.simplify) == sympy.zeros(1, 2)


def test_sigmoid_at_zero_with_target_zero():
    """z = 0 gives y = 1/2, L = log 2 and delta = 1/2 - 0."""
    solution = solve_sigmoid_bce(SigmoidProblem(M([[1, -1]]), M([1, 1]), M([0]), M([0])))
    assert solution["y"].value == M([sympy.Rational(1, 2)])
    assert solution["L"].value == sympy.log(2)
    assert solution["delta"].value == M([sympy.Rational(1, 2)])


def test_linear_mse_half_and_full():
    """y = 1 + 2 = 3, t = 1: with 1/2 ||y - t||^2, L = 2 and delta = 2; without the 1/2, L = 4 and delta = 4."""
    half = solve_linear_mse(LinearProblem(M([[1, 2]]), M([1, 1]), M([0]), M([1]), "half"))
    full = solve_linear_mse(LinearProblem(M([[1, 2]]), M([1, 1]), M([0]), M([1]), "full"))
    assert half["y"].value == M([3])
    assert (half["L"].value, half["delta"].value) == (2, M([2]))
    assert (full["L"].value, full["delta"].value) == (4, M([4]))
    assert full["dL_dW"].value == M([[4, 4]])
    assert full["W_new"].value == M([[sympy.Rational(3, 5), sympy.Rational(8, 5)]])
    assert full["dL_dx"].value == M([4, 8])


def test_two_layer_relu_hand_example():
    """z1 = [1 - 2, 2 + 2 - 1] = [-1, 3], h = [0, 3]; W2 = I gives z2 = [0, 3],
    y = [1/(1 + e^3), e^3/(1 + e^3)], delta2 = y - [0, 1] = [1/(1 + e^3), -1/(1 + e^3)],
    dL/dh = delta2, delta1 = dL/dh ⊙ [relu'(-1), relu'(3)] = [0, -1/(1 + e^3)],
    dL/dW1 = delta1 x^T = [[0, 0], [-1/(1 + e^3), -2/(1 + e^3)]]."""
    problem = TwoLayerProblem(M([[1, -1], [2, 1]]), M([0, -1]), M([[1, 0], [0, 1]]), M([0, 0]), M([1, 2]), 1, "relu")
    solution = solve_two_layer(problem)
    e3 = sympy.exp(3)
    assert solution["z1"].value == M([-1, 3])
    assert solution["h"].value == M([0, 3])
    assert solution["z2"].value == M([0, 3])
    assert solution["y"].value == M([1 / (1 + e3), e3 / (1 + e3)])
    assert solution["delta2"].value == M([1 / (1 + e3), -1 / (1 + e3)])
    assert solution["dL_dW2"].value == M([[0, 3 / (1 + e3)], [0, -3 / (1 + e3)]])
    assert solution["delta1"].value == M([0, -1 / (1 + e3)])
    assert solution["dL_dW1"].value == M([[0, 0], [-1 / (1 + e3), -2 / (1 + e3)]])
    assert solution["dL_dx"].value == M([-2 / (1 + e3), -1 / (1 + e3)])


def test_relu_derivative_at_zero_is_zero():
    """z1 = [0, 1]: the unit at 0 passes no gradient, so row 0 of dL/dW1 is zero."""
    problem = TwoLayerProblem(M([[1, -1], [1, 0]]), M([0, 0]), M([[1, 2], [-1, 1]]), M([0, 0]), M([1, 1]), 0, "relu")
    solution = solve_two_layer(problem)
    assert solution["z1"].value == M([0, 1])
    assert solution["delta1"].value[0] == 0
    assert list(solution["dL_dW1"].value.row(0)) == [0, 0]
    assert solution["delta1"].value[1] != 0


def test_two_layer_equal_logits_from_tanh():
    """z1 = [3, -3] gives h = [tanh 3, tanh(-3)], written (e^6 - 1)/(e^6 + 1) and
    (1 - e^6)/(1 + e^6). W2 = [[1, 1], [0, 0]] makes z2 = [h1 + h2, 0]: both logits are 0,
    though sympy cannot decide h1 + h2 < 0. So y = [1/2, 1/2] and delta2 = [-1/2, 1/2]."""
    problem = TwoLayerProblem(M([[1, 1], [-1, -1]]), M([0, 0]), M([[1, 1], [0, 0]]), M([0, 0]), M([1, 2]), 0, "tanh")
    solution = solve_two_layer(problem)
    z2 = solution["z2"].value
    assert z2[0] != 0  # the sum is not simplified to 0
    assert abs(sympy.N(z2[0], 40)) < 1e-35
    y = [sympy.N(v, 40) for v in solution["y"].value]
    assert abs(y[0] - sympy.Rational(1, 2)) < 1e-35
    assert abs(y[1] - sympy.Rational(1, 2)) < 1e-35
    delta2 = [sympy.N(v, 40) for v in solution["delta2"].value]
    assert abs(delta2[0] + sympy.Rational(1, 2)) < 1e-35
    assert abs(delta2[1] - sympy.Rational(1, 2)) < 1e-35


def test_batch_mean_hand_example():
    """W = [[1, 0], [2, -1]], x1 = [1, 2], x2 = [0, 1]: z1 = [1, 0], z2 = [0, -1];
    both columns of Y are [e/(1 + e), 1/(1 + e)]. With t1 = class 0 and t2 = class 1,
    L = (log(1 + e^-1) + log(1 + e)) / 2 and dL/db = [(e - 1), (1 - e)] / (2 (1 + e))."""
    problem = BatchProblem(M([[1, 0], [2, -1]]), M([0, 0]), M([[1, 0], [2, 1]]), (0, 1))
    solution = solve_batch_mean(problem)
    assert solution["z"].value == M([[1, 0], [0, -1]])
    assert solution["y"].value == M([[E / (1 + E), E / (1 + E)], [1 / (1 + E), 1 / (1 + E)]])
    assert sympy.N(solution["L"].value - (sympy.log(1 + 1 / E) + sympy.log(1 + E)) / 2, 30) == 0
    # One fraction over the shared denominator, as the key prints it.
    assert [str(v) for v in solution["dL_db"].value] == ["(-1 + E)/(2*(1 + E))", "(1 - E)/(2*(1 + E))"]
    assert solution["delta"].value == M([[-1 / (1 + E), E / (1 + E)], [1 / (1 + E), -E / (1 + E)]])


@pytest.mark.parametrize("build", [
    lambda: SigmoidProblem(M([[1, 0]]), M([1, 2]), M([0]), M([2])),
    lambda: LinearProblem(M([[1, 0]]), M([1, 2, 3]), M([0]), M([1])),
    lambda: LinearProblem(M([[1, 0]]), M([1, 2]), M([0]), M([1]), "quarter"),
    lambda: TwoLayerProblem(M([[1, 0]]), M([0]), M([[1, 1]]), M([0, 0]), M([1, 1]), 0),
    lambda: TwoLayerProblem(M([[1, 0]]), M([0]), M([[1], [1]]), M([0, 0]), M([1, 1]), 0, "gelu"),
    lambda: BatchProblem(M([[1, 0], [0, 1]]), M([0, 0]), M([[1], [2]]), (0, 1)),
])
def test_invalid_problems_rejected(build):
    with pytest.raises(ProblemError):
        build()


def test_from_dict_round_trip():
    problem = TwoLayerProblem(M([[1, sympy.Rational(-1, 2)]]), M([0]), M([[1], [2]]), M([0, 1]), M([1, 2]), 1, "tanh")
    assert TwoLayerProblem.from_dict(problem.to_dict()) == problem
    batch = BatchProblem(M([[1, 0], [0, 1]]), M([0, 0]), M([[1, 0], [2, 1]]), (1, 0), sympy.Rational(1, 2))
    assert BatchProblem.from_dict(batch.to_dict()) == batch


# Finite differences of losses written independently of the solvers

def _mp(matrix) -> list[list[mpmath.mpf]]:
    return [[mpmath.mpf(int(v.p)) / int(v.q) for v in matrix.row(i)] for i in range(matrix.rows)]


def _affine(W, x, b):
    return [mpmath.fsum(W[i][j] * x[j][0] for j in range(len(x))) + b[i][0] for i in range(len(W))]


def _log_softmax_loss(z, target):
    top = max(z)
    return top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in z)) - z[target]


def _central(loss, arrays: dict, name: str):
    """Return dL/d(array `name`) entry by entry, as nested lists."""
    result = []
    for i, row in enumerate(arrays[name]):
        result.append([])
        for j, saved in enumerate(row):
            row[j] = saved + STEP
            up = loss(arrays)
            row[j] = saved - STEP
            down = loss(arrays)
            row[j] = saved
            result[i].append((up - down) / (2 * STEP))
    return result


def _assert_close(exact, expected, what):
    rows = [list(exact.row(i)) for i in range(exact.rows)]
    assert len(rows) == len(expected), what
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            difference = abs(mpmath.mpf(str(sympy.N(value, DIGITS))) - expected[i][j])
            assert difference < AGREEMENT, f"{what}[{i}][{j}]: {value} vs {expected[i][j]}"


def _draw(rng, rows, cols, low=-2, high=2):
    return M(rows, cols, [int(v) for v in rng.integers(low, high + 1, size=rows * cols)])


@pytest.mark.parametrize("seed", SEEDS)
def test_sigmoid_bce_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    K, D = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    problem = SigmoidProblem(_draw(rng, K, D), _draw(rng, D, 1), _draw(rng, K, 1, -1, 1), _draw(rng, K, 1, 0, 1))
    solution = solve_sigmoid_bce(problem)
    t = [int(v) for v in problem.t]

    def loss(a):
        z = _affine(a["W"], a["x"], a["b"])
        return mpmath.fsum(mpmath.log(1 + mpmath.exp(-v)) if t_i else mpmath.log(1 + mpmath.exp(v)) for v, t_i in zip(z, t))

    with mpmath.workdps(DIGITS):
        arrays = {"W": _mp(problem.W), "x": _mp(problem.x), "b": _mp(problem.b)}
        _assert_close(M([solution["L"].value]), [[loss(arrays)]], "L")
        for name in ("W", "x", "b"):
            _assert_close(solution[f"dL_d{name}"].value, _central(loss, arrays, name), f"dL_d{name}")


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_mse_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    K, D = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    form = ("half", "full")[seed % 2]
    problem = LinearProblem(_draw(rng, K, D), _draw(rng, D, 1), _draw(rng, K, 1, -1, 1), _draw(rng, K, 1), form)
    solution = solve_linear_mse(problem)
    t = _mp(problem.t)
    scale = mpmath.mpf(1) / 2 if form == "half" else 1

    def loss(a):
        y = _affine(a["W"], a["x"], a["b"])
        return scale * mpmath.fsum((y_i - t_i[0]) ** 2 for y_i, t_i in zip(y, t))

    with mpmath.workdps(DIGITS):
        arrays = {"W": _mp(problem.W), "x": _mp(problem.x), "b": _mp(problem.b)}
        _assert_close(M([solution["L"].value]), [[loss(arrays)]], "L")
        # delta is dL/dy, and y = b + (fixed) here, so it is dL/db.
        _assert_close(solution["delta"].value, _central(loss, arrays, "b"), "delta")
        for name in ("W", "x", "b"):
            _assert_close(solution[f"dL_d{name}"].value, _central(loss, arrays, name), f"dL_d{name}")


def _hidden(name, v, z_at_point):
    if name == "relu":
        # Frozen at the sign of the unperturbed pre-activation: relu'(0) = 0.
        return v if z_at_point > 0 else mpmath.mpf(0)
    if name == "sigmoid":
        return 1 / (1 + mpmath.exp(-v))
    return (mpmath.exp(v) - mpmath.exp(-v)) / (mpmath.exp(v) + mpmath.exp(-v))


@pytest.mark.parametrize("seed", SEEDS)
def test_two_layer_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    activation = ("relu", "sigmoid", "tanh")[seed % 3]
    D, H, K = int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.integers(2, 4))
    problem = TwoLayerProblem(_draw(rng, H, D, -1, 1), _draw(rng, H, 1, -1, 1), _draw(rng, K, H, -1, 1),
                              _draw(rng, K, 1, -1, 1), _draw(rng, D, 1), int(rng.integers(K)), activation)
    solution = solve_two_layer(problem)
    with mpmath.workdps(DIGITS):
        arrays = {name: _mp(getattr(problem, name)) for name in ("W1", "b1", "W2", "b2", "x")}
        z_point = _affine(arrays["W1"], arrays["x"], arrays["b1"])

        def loss(a):
            z1 = _affine(a["W1"], a["x"], a["b1"])
            h = [[_hidden(activation, v, z_point[j])] for j, v in enumerate(z1)]
            return _log_softmax_loss(_affine(a["W2"], h, a["b2"]), problem.target)

        _assert_close(M([solution["L"].value]), [[loss(arrays)]], "L")
        for name in ("W1", "b1", "W2", "b2", "x"):
            _assert_close(solution[f"dL_d{name}"].value, _central(loss, arrays, name), f"dL_d{name}")


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_mean_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    K, D = int(rng.integers(2, 4)), int(rng.integers(1, 4))
    problem = BatchProblem(_draw(rng, K, D), _draw(rng, K, 1, -1, 1), _draw(rng, D, 2),
                           (int(rng.integers(K)), int(rng.integers(K))))
    solution = solve_batch_mean(problem)
    X = _mp(problem.X)

    def loss(a):
        total = 0
        for n, target in enumerate(problem.targets):
            x = [[row[n]] for row in X]
            total += _log_softmax_loss(_affine(a["W"], x, a["b"]), target)
        return total / 2

    with mpmath.workdps(DIGITS):
        arrays = {"W": _mp(problem.W), "b": _mp(problem.b)}
        _assert_close(M([solution["L"].value]), [[loss(arrays)]], "L")
        for name in ("W", "b"):
            _assert_close(solution[f"dL_d{name}"].value, _central(loss, arrays, name), f"dL_d{name}")
