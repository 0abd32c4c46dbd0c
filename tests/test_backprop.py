"""The softmax-layer solver against the course example, exact identities and mpmath finite differences."""

from __future__ import annotations

import random
import re
from decimal import Decimal

import mpmath
import pytest
import sympy

from generator.backprop import SoftmaxProblem, solve_softmax
from generator.exact import decimal_text, decimal_value, expression_text, to_decimal, to_mpmath

E = sympy.E
SEEDS = range(200)

# Finite differences run at 50 significant digits with step 1e-20: the central-difference
# truncation error is about h**2 = 1e-40 and the cancellation error about 1e-50 / 1e-20 =
# 1e-30, so 1e-25 separates a right gradient from a wrong one by many orders of magnitude.
DIGITS = 50
STEP = mpmath.mpf(10) ** -20
GRADIENT_TOLERANCE = mpmath.mpf(10) ** -25


def is_zero(expr) -> bool:
    """Decide whether an exact expression is 0, trying cheap checks before the slow simplify."""
    if expr == 0 or sympy.cancel(expr) == 0:
        return True
    return sympy.simplify(expr) == 0


def assert_exactly_equal(actual, expected) -> None:
    actual, expected = sympy.Matrix(actual), sympy.Matrix(expected)
    assert actual.shape == expected.shape
    for index, (a, b) in enumerate(zip(actual, expected)):
        assert is_zero(a - b), f"entry {index}: {a} != {b}"


# The course example

@pytest.fixture(scope="module")
def course_example():
    problem = SoftmaxProblem(
        W=sympy.Matrix([[1, 0], [2, -1]]),
        x=sympy.Matrix([1, 2]),
        b=sympy.Matrix([0, 0]),
        target=0,
        learning_rate=sympy.Rational(1, 10),
    )
    return {name: q.value for name, q in solve_softmax(problem).items()}


def test_course_example_exact(course_example):
    """W = [[1, 0], [2, -1]], x = [1, 2], b = 0, t = [1, 0].

    z = [1*1 + 0*2, 2*1 - 1*2] = [1, 0]; y = [e, 1] / (e + 1);
    L = -log(e / (1 + e)) = log(1 + e^-1); delta = y - t = [-1/(1+e), 1/(1+e)];
    dL/dW = delta x^T = [[-1, -2], [1, 2]] / (1+e);
    dL/dx = W^T delta = [1*(-1) + 2*1, 0*(-1) + (-1)*1] / (1+e) = [1, -1] / (1+e).
    """
    assert_exactly_equal(course_example["z"], [1, 0])
    assert_exactly_equal(course_example["y"], [E / (1 + E), 1 / (1 + E)])
    assert is_zero(course_example["L"] - sympy.log(1 + sympy.exp(-1)))
    assert_exactly_equal(course_example["delta"], [-1 / (1 + E), 1 / (1 + E)])
    assert_exactly_equal(course_example["dL_dW"], [[-1 / (1 + E), -2 / (1 + E)], [1 / (1 + E), 2 / (1 + E)]])
    assert_exactly_equal(course_example["dL_db"], [-1 / (1 + E), 1 / (1 + E)])
    assert_exactly_equal(course_example["dL_dx"], [1 / (1 + E), -1 / (1 + E)])
    eta = sympy.Rational(1, 10)
    assert_exactly_equal(course_example["W_new"], sympy.Matrix([[1, 0], [2, -1]]) - eta * course_example["dL_dW"])


def test_course_example_decimals(course_example):
    assert decimal_value(course_example["y"], 3) == ["0.731", "0.269"]
    assert decimal_value(course_example["L"], 4) == "0.3133"
    assert decimal_value(course_example["delta"], 3) == ["-0.269", "0.269"]
    assert decimal_value(course_example["dL_dW"], 3) == [["-0.269", "-0.538"], ["0.269", "0.538"]]
    assert decimal_value(course_example["dL_db"], 3) == ["-0.269", "0.269"]
    assert decimal_value(course_example["dL_dx"], 3) == ["0.269", "-0.269"]


def test_huge_equal_logits_give_half():
    problem = SoftmaxProblem(W=sympy.Matrix([[10**8], [10**8]]), x=sympy.Matrix([1]),
                             b=sympy.Matrix([0, 0]), target=0)
    quantities = solve_softmax(problem)

    assert list(quantities["y"].value) == [sympy.Rational(1, 2), sympy.Rational(1, 2)]
    assert quantities["L"].value == sympy.log(2)
    for name, quantity in quantities.items():
        values = list(quantity.value) if quantity.shape else [quantity.value]
        for value in values:
            assert value.is_finite, f"{name} = {value}"
            assert not value.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo), f"{name} = {value}"


def test_huge_distinct_logits_stay_finite():
    problem = SoftmaxProblem(W=sympy.Matrix([[10**8], [10**8 - 3]]), x=sympy.Matrix([1]),
                             b=sympy.Matrix([0, 0]), target=1)
    quantities = solve_softmax(problem)

    y = quantities["y"].value
    assert is_zero(y[0] - sympy.exp(3) / (1 + sympy.exp(3)))
    assert is_zero(quantities["L"].value - sympy.log(1 + sympy.exp(3)))
    assert decimal_value(y, 3) == ["0.953", "0.047"]


# Agreement with finite differences over random problems

def random_rational(rng: random.Random, size: int = 3) -> sympy.Rational:
    """Draw a small integer most of the time, and otherwise a fraction with denominator 2, 3 or 4."""
    if rng.random() < 0.7:
        return sympy.Integer(rng.randint(-size, size))
    return sympy.Rational(rng.randint(-2 * size, 2 * size), rng.choice([2, 3, 4]))


def random_problem(seed: int) -> SoftmaxProblem:
    rng = random.Random(seed)
    K, D = rng.randint(2, 4), rng.randint(1, 4)
    return SoftmaxProblem(
        W=sympy.Matrix(K, D, lambda i, j: random_rational(rng)),
        x=sympy.Matrix(D, 1, lambda i, j: random_rational(rng)),
        b=sympy.Matrix(K, 1, lambda i, j: random_rational(rng, 1)),
        target=rng.randrange(K),
        learning_rate=rng.choice([sympy.Rational(1, 10), sympy.Rational(1, 2), sympy.Integer(1),
                                  sympy.Rational(3, 100), sympy.Rational(1, 4)]),
    )


def to_mp(value: sympy.Basic) -> mpmath.mpf:
    return mpmath.mpf(str(sympy.N(value, DIGITS + 10)))


def cross_entropy(W: list[list], x: list, b: list, target: int):
    """L = log(sum_i exp(z_i)) - z_target with z = W x + b, in mpmath."""
    z = [mpmath.fsum(W[i][j] * x[j] for j in range(len(x))) + b[i] for i in range(len(b))]
    return mpmath.log(mpmath.fsum(mpmath.exp(z_i) for z_i in z)) - z[target]


def central_difference(loss, values: list, index: int):
    plus, minus = list(values), list(values)
    plus[index] += STEP
    minus[index] -= STEP
    return (loss(plus) - loss(minus)) / (2 * STEP)


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_match_finite_differences(seed):
    problem = random_problem(seed)
    quantities = {name: q.value for name, q in solve_softmax(problem).items()}
    K, D = problem.W.shape

    with mpmath.workdps(DIGITS):
        W = [[to_mp(problem.W[i, j]) for j in range(D)] for i in range(K)]
        x = [to_mp(v) for v in problem.x]
        b = [to_mp(v) for v in problem.b]
        t = problem.target
        flat_W = [w for row in W for w in row]

        # Forward values.
        assert abs(to_mp(quantities["L"]) - cross_entropy(W, x, b, t)) < GRADIENT_TOLERANCE
        z = [mpmath.fsum(W[i][j] * x[j] for j in range(D)) + b[i] for i in range(K)]
        total = mpmath.fsum(mpmath.exp(z_i) for z_i in z)
        for i in range(K):
            assert abs(to_mp(quantities["y"][i]) - mpmath.exp(z[i]) / total) < GRADIENT_TOLERANCE

        # dL/dW, dL/db and dL/dx, each entry against its own central difference.
        for i in range(K):
            for j in range(D):
                expected = central_difference(
                    lambda v: cross_entropy([v[r * D:(r + 1) * D] for r in range(K)], x, b, t), flat_W, i * D + j)
                assert abs(to_mp(quantities["dL_dW"][i, j]) - expected) < GRADIENT_TOLERANCE, (i, j)
        for i in range(K):
            expected = central_difference(lambda v: cross_entropy(W, x, v, t), b, i)
            assert abs(to_mp(quantities["dL_db"][i]) - expected) < GRADIENT_TOLERANCE, i
            assert abs(to_mp(quantities["delta"][i]) - expected) < GRADIENT_TOLERANCE, i
        for j in range(D):
            expected = central_difference(lambda v: cross_entropy(W, v, b, t), x, j)
            assert abs(to_mp(quantities["dL_dx"][j]) - expected) < GRADIENT_TOLERANCE, j


@pytest.mark.parametrize("seed", SEEDS)
def test_sgd_step_and_decimals(seed):
    problem = random_problem(seed)
    quantities = {name: q.value for name, q in solve_softmax(problem).items()}
    eta = problem.learning_rate

    # The update is exactly theta - eta * gradient.
    assert_exactly_equal(quantities["W_new"], problem.W - eta * quantities["dL_dW"])
    assert_exactly_equal(quantities["b_new"], problem.b - eta * quantities["dL_db"])
    assert_exactly_equal(quantities["delta"], quantities["y"] - problem.t)
    assert_exactly_equal(quantities["dL_dW"], quantities["delta"] * problem.x.T)

    # Every decimal rounds the exact value to 3 places, and none is written -0.000.
    for name, value in quantities.items():
        entries = list(value) if isinstance(value, sympy.MatrixBase) else [value]
        for entry in entries:
            text = decimal_text(entry, 3)
            assert re.fullmatch(r"-?\d+\.\d{3}", text), (name, text)
            assert not re.fullmatch(r"-0\.0+", text), (name, entry)
            assert abs(Decimal(text) - Decimal(str(sympy.N(entry, 40)))) <= Decimal("0.0005"), (name, entry, text)


# Rounding

@pytest.mark.parametrize("value, places, expected", [
    (sympy.Rational(1, 2000), 3, "0.001"),  # 0.0005 exactly: halves round away from zero
    (sympy.Rational(-1, 2000), 3, "-0.001"),
    (sympy.Rational(3, 2000), 3, "0.002"),  # 0.0015
    (sympy.Rational(1, 400), 3, "0.003"),  # 0.0025
    (sympy.Rational(1, 8), 2, "0.13"),  # 0.125, exact in binary too
    (sympy.Rational(-1, 8), 2, "-0.13"),
    (sympy.Rational(2001, 2000), 3, "1.001"),  # 1.0005
    (sympy.Rational(4999, 10**7), 3, "0.000"),  # 0.0004999, just below the boundary
    (sympy.Rational(5001, 10**7), 3, "0.001"),
    (sympy.Rational(1, 3), 3, "0.333"),
    (sympy.Rational(2, 3), 3, "0.667"),
    (sympy.Rational(123456789 * 2000 + 1, 2000), 3, "123456789.001"),
])
def test_to_decimal_boundaries(value, places, expected):
    assert format(to_decimal(value, places), "f") == expected
    assert decimal_text(value, places) == expected


@pytest.mark.parametrize("value", [
    sympy.Rational(-1, 3000),
    sympy.Rational(-1, 2001),
    -sympy.exp(-20),
    -1 / (1 + sympy.exp(10)),
    sympy.Integer(0),
    -sympy.Rational(0),
])
def test_small_negative_is_plain_zero(value):
    assert decimal_text(value, 3) == "0.000"


def test_irrational_rounding():
    assert decimal_text(sympy.log(1 + sympy.exp(-1)), 3) == "0.313"
    assert decimal_text(sympy.E / (1 + sympy.E), 3) == "0.731"
    assert decimal_text(-sympy.pi, 4) == "-3.1416"
    assert decimal_text(sympy.exp(30), 2) == "10686474581524.46"


# Key strings

def _mul(*factors):
    """A product exactly as a solver builds it, without sympy distributing a number over a sum."""
    return sympy.Mul(*factors, evaluate=False)


@pytest.mark.parametrize("value, expected", [
    (E / (1 + E), "E/(1 + E)"),
    (-1 / (1 + E), "-1/(1 + E)"),
    (sympy.log(1 + sympy.exp(-1)), "log(1 + exp(-1))"),
    (1 - sympy.Rational(1, 10) * E / (1 + E), "1 - E/(10*(1 + E))"),  # sympy's default order writes -E/(10*(1 + E)) + 1
    (sympy.Rational(3, 2) - 2 * E / (1 + E), "3/2 - 2*E/(1 + E)"),
    # A negative product of a sum whose terms are all negative: the signs cancel.
    (_mul(-1, sympy.Add(-1, -E), 1 / (1 + E + sympy.exp(2))), "(1 + E)/(1 + E + exp(2))"),
    # A positive product of such a sum: the sign moves to the front.
    (_mul(3, sympy.Add(-1, -sympy.exp(3)), 1 / (2 + sympy.exp(3))), "-3*(1 + exp(3))/(2 + exp(3))"),
    # A negative product of a sum that starts with a negative term: the sign moves into the sum.
    (_mul(-2, sympy.Add(-2, sympy.exp(3)), 1 / (2 + sympy.exp(3))), "2*(2 - exp(3))/(2 + exp(3))"),
    (1 + _mul(3, sympy.Add(-1, -sympy.exp(3)), 1 / (2 + sympy.exp(3))), "1 - 3*(1 + exp(3))/(2 + exp(3))"),
    # A negative product whose sum starts with a positive term keeps its form.
    (_mul(-1, sympy.Add(1, -E), 1 / (1 + E)), "-(1 - E)/(1 + E)"),
])
def test_expression_text_forms(value, expected):
    text = expression_text(value)
    assert text == expected
    assert abs(sympy.N(sympy.sympify(text) - value, 40)) < 1e-35


@pytest.mark.parametrize("digits", [20, 50])
def test_to_mpmath_cache_matches_uncached(digits):
    denominator = 1 + E + sympy.exp(2)
    values = [E / denominator, sympy.exp(2) / denominator, sympy.log(denominator), 1 - E / (10 * denominator)]
    cache = {}
    with mpmath.workdps(10):  # a value cached at 10 digits must not be reused at more
        cached_low = [to_mpmath(v, cache) for v in values]
    with mpmath.workdps(digits):
        cached = [to_mpmath(v, cache) for v in values]
        uncached = [to_mpmath(v) for v in values]
        reference = [mpmath.mpf(str(sympy.N(v, digits + 10))) for v in values]
    assert cached == uncached
    for got, expected in zip(cached, reference):
        assert abs(got - expected) <= abs(expected) * mpmath.mpf(10) ** (2 - digits)
    assert cached_low != cached
