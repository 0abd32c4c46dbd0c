"""Exact values as text: sympy expression strings for the key, and correctly rounded decimals."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import sympy

# Digits evaluated beyond the requested places before rounding. sympy's evalf returns
# these digits correct, so only a value within 10**-(places + GUARD_DIGITS) of a
# rounding boundary could round the other way; the values on a paper are never that close.
GUARD_DIGITS = 30


def to_decimal(expr: sympy.Basic, places: int) -> Decimal:
    """Round an exact value to a number of decimal places (half to even)."""
    value = sympy.N(expr, places + GUARD_DIGITS + _integer_digits(expr))
    if value == 0:
        return Decimal(0).quantize(Decimal(1).scaleb(-places))
    if not value.is_real:
        raise ValueError(f"{expr} is not a real number")
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def decimal_text(expr: sympy.Basic, places: int) -> str:
    text = format(to_decimal(expr, places), "f")
    return "0" + text[2:] if text.startswith("-0") and set(text[1:]) <= {"0", "."} else text


def _integer_digits(expr: sympy.Basic) -> int:
    magnitude = sympy.N(abs(expr), 5)
    if magnitude == 0 or magnitude < 1:
        return 0
    return int(sympy.floor(sympy.log(magnitude, 10))) + 1


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
