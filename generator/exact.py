"""Exact values as text: sympy expression strings for the key, and correctly rounded decimals."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import mpmath
import sympy
from sympy.printing.str import StrPrinter

# Digits evaluated beyond the requested places before rounding, plus 10 working digits
# that absorb mpmath's rounding in sums and products. Only an irrational value within
# about 10**-(places + GUARD_DIGITS) of a rounding boundary could round the other way.
# Rationals are divided exactly.
GUARD_DIGITS = 30
# Digits before the point that the first evaluation of an irrational value makes room for.
INTEGER_DIGITS = 10


class KeyPrinter(StrPrinter):
    """A StrPrinter for key strings that moves minus signs out of the sums in a product.

    A sum whose terms are all negative has its sign taken out: 3*(-1 - E)/S is written
    -3*(1 + E)/S. A negative product with a sum that starts with a negative term has
    the sign moved into that sum: -(-1 + E)/S is written (1 - E)/S.

    Construct it with order="none" so that terms and factors keep the order the solver
    built them in. The default order sorts every sum, which takes most of the time of
    sympy's str() on key values.
    """

    def _print_Mul(self, expr: sympy.Mul) -> str:
        if not any(factor.is_Add for factor in expr.args):
            return super()._print_Mul(expr)
        coefficient, original = expr.as_coeff_mul()
        factors = list(original)
        for i, factor in enumerate(factors):
            if factor.is_Add and all(_is_negative_term(term) for term in factor.args):
                coefficient, factors[i] = -coefficient, -factor
        if coefficient.is_negative:
            for i, factor in enumerate(factors):
                if factor.is_Add and _is_negative_term(factor.args[0]):
                    coefficient, factors[i] = -coefficient, -factor
                    break
        if factors == list(original):
            return super()._print_Mul(expr)
        # The product is rebuilt once with the new signs. It has the same value, and it
        # may simplify, e.g. to a sum when only a number and one sum remain.
        flipped = sympy.Mul(coefficient, *factors)
        return super()._print_Mul(flipped) if flipped.is_Mul else self._print(flipped)


def _is_negative_term(term: sympy.Basic) -> bool:
    """Return whether a term has a negative numeric coefficient, as -2, -E or -3*exp(2)/10 do."""
    return bool(term.as_coeff_Mul()[0].is_negative)


_PRINTER = KeyPrinter({"order": "none"})


def to_decimal(expr: sympy.Basic, places: int, cache: dict | None = None) -> Decimal:
    """Round an exact value to a number of decimal places, halves away from zero as in school rounding.

    cache is passed on to to_mpmath.
    """
    quantum = Decimal(1).scaleb(-places)
    if isinstance(expr, sympy.Rational):
        # Exact decimal division: a boundary value such as 1/8 or 1/2000 rounds as written.
        with localcontext() as context:
            context.prec = places + GUARD_DIGITS + len(str(abs(int(expr))))
            return (Decimal(int(expr.p)) / Decimal(int(expr.q))).quantize(quantum, rounding=ROUND_HALF_UP)
    return _evaluate(expr, places + GUARD_DIGITS, cache).quantize(quantum, rounding=ROUND_HALF_UP)


def _evaluate(expr: sympy.Basic, digits_after_point: int, cache: dict | None = None) -> Decimal:
    """Evaluate a real expression to about digits_after_point digits after the point.

    The first evaluation has room for INTEGER_DIGITS digits before the point. A larger
    value is evaluated again with room for all of its digits.
    """
    digits = digits_after_point + INTEGER_DIGITS + 10
    while True:
        with mpmath.workdps(digits):
            value = to_mpmath(expr, cache)
        if value == 0:
            return Decimal(0)
        integer_digits = 0 if abs(value) < 1 else int(mpmath.floor(mpmath.log10(abs(value)))) + 1
        needed = max(15, digits_after_point + integer_digits + 10)
        if needed <= digits:
            return Decimal(mpmath.nstr(value, needed, strip_zeros=False, min_fixed=-mpmath.inf, max_fixed=mpmath.inf))
        digits = needed


def to_mpmath(expr: sympy.Basic, cache: dict | None = None):
    """Evaluate the nodes a key uses (numbers, e, exp, log, sums, products, powers) with mpmath.

    This is much faster than sympy's evalf on the same tree; any other node falls back to evalf.
    With a cache dict, every sum, product, power, exp and log is evaluated once per
    working precision. The entries of one key share many of these, such as the softmax
    denominator. The dict keys are (mpmath.mp.prec, subexpression), so one dict may be
    used at several precisions.
    """
    if expr.is_Integer:
        return mpmath.mpf(int(expr))
    if expr.is_Rational:
        return mpmath.mpf(int(expr.p)) / int(expr.q)
    if expr is sympy.E:
        return mpmath.e
    if cache is None:
        return _evaluate_node(expr, None)
    key = (mpmath.mp.prec, expr)
    value = cache.get(key)
    if value is None:
        value = cache[key] = _evaluate_node(expr, cache)
    return value


def _evaluate_node(expr: sympy.Basic, cache: dict | None):
    if isinstance(expr, sympy.exp):
        return mpmath.exp(to_mpmath(expr.args[0], cache))
    if isinstance(expr, sympy.log) and len(expr.args) == 1:
        return mpmath.log(to_mpmath(expr.args[0], cache))
    if expr.is_Add:
        return mpmath.fsum(to_mpmath(term, cache) for term in expr.args)
    if expr.is_Mul:
        return mpmath.fprod(to_mpmath(factor, cache) for factor in expr.args)
    if expr.is_Pow:
        return mpmath.power(to_mpmath(expr.args[0], cache), to_mpmath(expr.args[1], cache))
    value = sympy.N(expr, mpmath.mp.dps)
    if not value.is_real:
        raise ValueError(f"{expr} is not a real number")
    return mpmath.mpf(value)


def decimal_text(expr: sympy.Basic, places: int, cache: dict | None = None) -> str:
    text = format(to_decimal(expr, places, cache), "f")
    return "0" + text[2:] if text.startswith("-0") and set(text[1:]) <= {"0", "."} else text


def expression_text(value: sympy.Basic) -> str:
    """Write one exact value as sympy syntax, such as "E/(1 + E)" or "1 - E/(10*(1 + E))"."""
    return _PRINTER.doprint(value)


def exact_text(value: sympy.Basic) -> str | list:
    """Write a scalar as a sympy string, a vector as a list and a matrix as a list of rows."""
    if isinstance(value, sympy.MatrixBase):
        rows = value.tolist()
        if value.cols == 1:
            return [expression_text(row[0]) for row in rows]
        return [[expression_text(v) for v in row] for row in rows]
    return expression_text(value)


def decimal_value(value: sympy.Basic, places: int, cache: dict | None = None) -> str | list:
    """Write a scalar, vector or matrix as decimal strings, in the layout of exact_text.

    cache is passed on to to_mpmath, and one dict may serve every value of a key.
    """
    if isinstance(value, sympy.MatrixBase):
        rows = value.tolist()
        if value.cols == 1:
            return [decimal_text(row[0], places, cache) for row in rows]
        return [[decimal_text(v, places, cache) for v in row] for row in rows]
    return decimal_text(value, places, cache)
