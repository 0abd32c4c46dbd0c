"""A fast path for the common numeric answer: plain decimals such as "0.731" or "[0.731, 0.269]".

marker.mathread reads every form an answer may take, exactly, through sympy; that
costs tens of microseconds per entry. Most answers are plain decimals, so this module
reads those with fractions.Fraction and compares them with the key's values, which are
read once per key. It gives the same verdicts as marker.numeric.compare and
compare_array: a decimal equals the key only when the two rationals are equal, and it
is within tolerance when |student - exact| <= tolerance, where an irrational exact
value is taken to KEY_DIGITS significant digits and differences below
10**-IDENTITY_DIGITS (relative) count as zero. Anything else (expressions, decimal
commas, shapes other than the key's) returns None from fast_read, and the caller uses
marker.mathread and marker.numeric instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction
from functools import lru_cache

import mpmath

from generator.exact import to_mpmath
from marker.mathread import read_key_scalar
from marker.numeric import COMPARE_DIGITS, IDENTITY_DIGITS

# A plain decimal entry: optional sign, digits, optional point and digits. No exponent.
_PLAIN = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
# Entries longer than this go to the full reader, which checks its own size caps.
MAX_FAST_CHARS = 40
KEY_DIGITS = COMPARE_DIGITS
# Distinct key strings kept read; a class of 1,000 has a few tens of thousands.
KEY_VALUE_CACHE_SIZE = 50_000
_NOISE = Fraction(1, 10 ** IDENTITY_DIGITS)


@dataclass
class FastReading:
    """Plain decimals as written: rows of (text, decimal places), column layout for a vector."""

    rows: list[list[tuple[str, int]]]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.rows[0])

    def floats(self, is_scalar: bool, is_vector: bool):
        import numpy as np

        if is_scalar:
            return float(self.rows[0][0][0])
        array = np.array([[float(text) for text, _ in row] for row in self.rows])
        return array[:, 0] if is_vector else array


@dataclass
class KeyEntry:
    """One exact entry of the key: the rational itself, or a rational approximation of it."""

    rational: Fraction | None  # the exact value when it is rational
    approximation: Fraction  # KEY_DIGITS significant digits when it is not
    tolerance: Fraction | None
    terminating: Decimal | None  # the exact value when it is a terminating decimal, such as 2 or 0.25
    value_float: float
    tolerance_float: float
    key_decimal: Decimal | None = None  # the key's rounded decimal, such as 0.731 for e/(1+e)


def _entry(text: object) -> tuple[str, int] | None:
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        return None
    cleaned = str(text).replace("\u2212", "-").strip()
    if len(cleaned) > MAX_FAST_CHARS or not _PLAIN.fullmatch(cleaned):
        return None
    mantissa = cleaned.lstrip("+-")
    places = len(mantissa.partition(".")[2])
    return cleaned, places


def _entries(items: list) -> list[tuple[str, int]] | None:
    read = [_entry(item) for item in items]
    return None if not read or any(entry is None for entry in read) else read


def fast_read(raw: object, kind: str, shape: tuple[int, int] | None) -> FastReading | None:
    """Read plain decimals in the key's shape; return None for any other answer."""
    if kind == "scalar":
        entry = _entry(raw)
        return None if entry is None else FastReading([[entry]])
    if shape is None:
        return None
    rows = _rows(raw, kind)
    if rows is None:
        return None
    read = [_entries(row) for row in rows]
    if any(row is None for row in read):
        return None
    if kind == "vector":
        flat = [entry for row in read for entry in row]
        read = [[entry] for entry in flat]
    reading = FastReading(read)
    if any(len(row) != len(read[0]) for row in read) or reading.shape != shape:
        return None
    return reading


def _rows(raw: object, kind: str) -> list[list] | None:
    if isinstance(raw, list):
        if all(isinstance(item, list) for item in raw):
            return raw if kind == "matrix" else None
        if kind == "vector":
            return [raw]
        if all(isinstance(item, str) for item in raw):
            return [item.split() for item in raw]
        return None
    if not isinstance(raw, str) or "," in raw and ";" in raw:
        return None
    text = raw.strip()
    if kind == "vector":
        if text.startswith("[") and text.endswith("]") and text.count("[") == 1:
            return [[item for item in text[1:-1].split(",")]]
        return [text.split()] if "," not in text and ";" not in text and "[" not in text else None
    if text.startswith("[["):
        if not text.endswith("]]"):
            return None
        return [row.split(",") for row in re.split(r"\]\s*,\s*\[", text[2:-2])]
    if "[" in text or "," in text:
        return None
    return [row.split() for row in text.split(";")]


def key_entries(expected: object, tolerance: object, decimal: object = None) -> list[list[KeyEntry]]:
    """Read the key's exact values once: rows of entries, column layout for a vector or a scalar.

    `decimal`, in the same layout, is the key's rounded decimal; a student who writes it
    exactly gets "exact", as the key's own answer.
    """
    if not isinstance(expected, list):
        return [[_key_entry(expected, tolerance, decimal)]]
    if expected and isinstance(expected[0], list):
        return [[_key_entry(value, _at(tolerance, i, j), _at(decimal, i, j)) for j, value in enumerate(row)]
                for i, row in enumerate(expected)]
    return [[_key_entry(value, _at(tolerance, i, None), _at(decimal, i, None))] for i, value in enumerate(expected)]


def _at(layout: object, i: int, j: int | None) -> object:
    if not isinstance(layout, list):
        return layout
    row = layout[i]
    return row[j] if j is not None and isinstance(row, list) else row


def _key_entry(text: object, tolerance: object, decimal: object) -> KeyEntry:
    rational, approximation = _key_value(str(text))
    bound = None if tolerance is None else Fraction(Decimal(str(tolerance).strip()))
    bound_float = float(bound) if bound is not None else -1.0
    key_decimal = None if decimal is None else Decimal(str(decimal).strip())
    if rational is not None:
        return KeyEntry(rational, rational, bound, _terminating(rational), float(rational), bound_float, key_decimal)
    return KeyEntry(None, approximation, bound, None, float(approximation), bound_float, key_decimal)


@lru_cache(maxsize=KEY_VALUE_CACHE_SIZE)
def _key_value(text: str) -> tuple[Fraction | None, Fraction]:
    """Return (the exact rational or None, a KEY_DIGITS approximation) of one key string.

    The same strings recur across the keys of a class (1/(1 + E), log(2), small
    integers), so they are read once per process.
    """
    value = read_key_scalar(text.replace("**", "^"))
    if value.is_Rational:
        rational = Fraction(int(value.p), int(value.q))
        return rational, rational
    with mpmath.workdps(KEY_DIGITS + 10):
        approximation = mpmath.nstr(to_mpmath(value), KEY_DIGITS, min_fixed=-mpmath.inf, max_fixed=mpmath.inf)
    return None, Fraction(Decimal(approximation))


def _terminating(value: Fraction) -> Decimal | None:
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return None
    with localcontext() as context:
        context.prec = len(str(value.numerator)) + len(str(value.denominator)) + 10
        return Decimal(value.numerator) / Decimal(value.denominator)


# Float differences this far (relative) from the tolerance decide a verdict without
# exact arithmetic; closer ones, the boundary cases, are decided with fractions.
FLOAT_MARGIN = 1e-9


def compare_entry(text: str, entry: KeyEntry) -> str:
    """Compare one plain decimal with one key entry, as marker.numeric.compare does."""
    if entry.terminating is not None or entry.key_decimal is not None:
        written = Decimal(text)
        if written == entry.terminating or written == entry.key_decimal:
            return "exact"
    difference = abs(float(text) - entry.value_float)
    margin = FLOAT_MARGIN * max(abs(entry.value_float), entry.tolerance_float, 1.0)
    if difference < entry.tolerance_float - margin:
        return "within_tolerance"
    if difference > entry.tolerance_float + margin:
        return "wrong"
    return _compare_exactly(Fraction(Decimal(text)), entry)


def _compare_exactly(student: Fraction, entry: KeyEntry) -> str:
    if entry.rational is not None:
        difference = abs(student - entry.rational)
        if difference == 0:
            return "exact"
        return "within_tolerance" if entry.tolerance is not None and difference <= entry.tolerance else "wrong"
    noise = max(abs(student), abs(entry.approximation), Fraction(1)) * _NOISE
    difference = abs(student - entry.approximation)
    if entry.tolerance is not None and difference <= entry.tolerance + noise:
        return "within_tolerance"
    return "wrong"


def fast_compare(reading: FastReading, key: list[list[KeyEntry]]) -> str:
    """Return "exact", "within_tolerance", "wrong" or "transposed" for a reading in the key's shape."""
    whole = _whole(reading.rows, key)
    rows, cols = len(key), len(key[0])
    if whole == "wrong" and rows == cols and rows > 1:
        transposed = [list(column) for column in zip(*reading.rows)]
        symmetric = ([[Decimal(v) for v, _ in row] for row in transposed]
                     == [[Decimal(v) for v, _ in row] for row in reading.rows])
        if not symmetric and _whole(transposed, key) != "wrong":
            return "transposed"
    return whole


def _whole(rows: list[list[tuple[str, int]]], key: list[list[KeyEntry]]) -> str:
    verdicts = {compare_entry(value, entry) for row, key_row in zip(rows, key) for (value, _), entry in
                zip(row, key_row)}
    if "wrong" in verdicts:
        return "wrong"
    return "within_tolerance" if "within_tolerance" in verdicts else "exact"
