"""Read exact numbers, vectors and matrices typed as problem input (not student answers).

Accepted: integers, decimals and fractions such as -3, 0.1 and 1/2, with U+2212 as a
minus sign; vectors as "1 2", "1, 2" or "[1, 2]"; matrices as "1 0; 2 -1" or
"[[1, 0], [2, -1]]". Nothing is evaluated: each entry goes through fractions.Fraction.
"""

from __future__ import annotations

import re
from fractions import Fraction

import sympy

from generator.errors import ProblemError

# Problem inputs are small exam numbers; a longer entry is a typing mistake.
MAX_ENTRY_LENGTH = 40
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(/\d+)?$")


def read_number(text: str, what: str = "number") -> sympy.Rational:
    cleaned = str(text).strip().replace("\u2212", "-")
    if len(cleaned) > MAX_ENTRY_LENGTH or not _NUMBER.match(cleaned):
        raise ProblemError(what, text, "a whole number, decimal or fraction such as 2, -0.5 or 1/3")
    try:
        value = Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        raise ProblemError(what, text, "a number with a non-zero denominator such as 1/3") from None
    return sympy.Rational(value.numerator, value.denominator)


def read_matrix(text: str, what: str = "matrix") -> sympy.Matrix:
    """Read "1 0; 2 -1" or "[[1, 0], [2, -1]]" into a sympy Matrix of rationals."""
    body = str(text).strip()
    if body.startswith("[["):
        rows = re.split(r"\]\s*,?\s*\[", body[2:].rstrip().removesuffix("]]"))
    else:
        rows = body.strip("[]").split(";")
    matrix = [_split_entries(row) for row in rows if row.strip()]
    if not matrix or any(len(row) != len(matrix[0]) for row in matrix):
        raise ProblemError(what, text, 'rows of equal length, e.g. "1 0; 2 -1" or "[[1, 0], [2, -1]]"')
    return sympy.Matrix([[read_number(v, what) for v in row] for row in matrix])


def read_vector(text: str, what: str = "vector") -> sympy.Matrix:
    """Read "1 2", "1, 2" or "[1, 2]" into a sympy column vector of rationals."""
    entries = _split_entries(str(text).strip().strip("[]"))
    if not entries:
        raise ProblemError(what, text, 'entries separated by spaces or commas, e.g. "1 2" or "[1, 2]"')
    return sympy.Matrix([read_number(v, what) for v in entries])


def _split_entries(row: str) -> list[str]:
    return [entry for entry in re.split(r"[\s,]+", row.strip().strip("[]")) if entry]
