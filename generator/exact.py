"""Exact values as text: sympy expression strings for the key, and correctly rounded decimals."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import mpmath
import sympy

# Digits evaluated beyond the requested places before rounding, plus 10 working digits
# that absorb mpmath's rounding in sums and products. Only an irrational value within
# about 10**-(places + GUARD_DIGITS) of a rounding boundary could round the other way.
# Rationals are divided exactly.
GUARD_DIGITS = 30


def to_decimal(expr: sympy.Basic, places: int) -> Decimal:
    """Round an exact value to a number of decimal places, halves away from zero as in school rounding."""
    quantum = Decimal(1).scaleb(-places)
    if isinstance(expr, sympy.Rational):
        # Exact decimal division: a boundary value such as 1/8 or 1/2000 rounds as written.
        with localcontext() as context:
            context.prec = places + GUARD_DIGITS + len(str(abs(int(expr))))
            return (Decimal(int(expr.p)) / Decimal(int(expr.q))).quantize(quantum, rounding=ROUND_HALF_UP)
    return _evaluate(expr, places + GUARD_DIGITS).quantize(quantum, rounding=ROUND_HALF_UP)


def _evaluate(expr: sympy.Basic, digits_after_point: int) -> Decimal:
    """Evaluate a real expression to about digits_after_point digits after the point."""
    with mpmath.workdps(30):
        estimate = to_mpmath(expr)
    if estimate == 0:
        return Decimal(0)
    integer_digits = 0 if abs(estimate) < 1 else int(mpmath.floor(mpmath.log10(abs(estimate)))) + 1
    digits = max(15, digits_after_point + integer_digits + 10)
    with mpmath.workdps(digits):
        value = to_mpmath(expr)
        return Decimal(mpmath.nstr(value, digits, strip_zeros=False, min_fixed=-mpmath.inf, max_fixed=mpmath.inf))


def to_mpmath(expr: sympy.Basic):
    """Evaluate the nodes a key uses (numbers, e, exp, log, sums, products, powers) with mpmath.

    This is much faster than sympy's evalf on the same tree; any other node falls back to evalf.
    """
    if expr.is_Integer:
        return mpmath.mpf(int(expr))
    if expr.is_Rational:
        return mpmath.mpf(int(expr.p)) / int(expr.q)
    if expr is sympy.E:
        return mpmath.e
    if isinstance(expr, sympy.exp):
        return mpmath.exp(to_mpmath(expr.args[0]))
    if isinstance(expr, sympy.log) and len(expr.args) == 1:
        return mpmath.log(to_mpmath(expr.args[0]))
    if expr.is_Add:
        return mpmath.fsum(to_mpmath(term) for term in expr.args)
    if expr.is_Mul:
        return mpmath.fprod(to_mpmath(factor) for factor in expr.args)
    if expr.is_Pow:
        return mpmath.power(to_mpmath(expr.args[0]), to_mpmath(expr.args[1]))
    value = sympy.N(expr, mpmath.mp.dps)
    if not value.is_real:
        raise ValueError(f"{expr} is not a real number")
    return mpmath.mpf(value)


def decimal_text(expr: sympy.Basic, places: int) -> str:
    text = format(to_decimal(expr, places), "f")
    return "0" + text[2:] if text.startswith("-0") and set(text[1:]) <= {"0", "."} else text


def exact_text(value: sympy.Basic) -> str | list:
    """Write a scalar as a sympy string, a vector as a list and a matrix as a list of rows."""
    if isinstance(value, sympy.MatrixBase):
        if value.cols == 1:
            return [str(v) for v in value]
        return [[str(v) for v in value.row(i)] for i in range(value.rows)]
    return str(value)


def decimal_value(value: sympy.Basic, places: int) -> str | list:
    """Write a scalar, vector or matrix as decimal strings, in the layout of exact_text."""
    if isinstance(value, sympy.MatrixBase):
        if value.cols == 1:
            return [decimal_text(v, places) for v in value]
        return [[decimal_text(v, places) for v in value.row(i)] for i in range(value.rows)]
    return decimal_text(value, places)
