"""Compare a student's exact value with the key's, and the time budget of each answer.

The boundary rule: a value is "within_tolerance" when |student - exact| <= tolerance,
a closed interval. Rationals (every decimal a student types) are compared exactly, so
0.74 against 0.73 with tolerance 0.01 is accepted and 0.7401 is not. When either side
is transcendental (e, exp, log, sqrt), both are evaluated to COMPARE_DIGITS significant
digits, and differences below 10**-IDENTITY_DIGITS (relative to the larger value, or
absolute below 1) count as zero. Two expressions that agree that closely are "exact":
e/(1+e), 1/(1+e^(-1)) and exp(1)/(exp(1)+1) are the same value. Nothing is simplified.
"""

from __future__ import annotations

import decimal
import signal
import threading
import time

import sympy

from marker.errors import AnswerFormatError, AnswerTimeout

# Agreement to this many significant digits counts as equality of two expressions.
IDENTITY_DIGITS = 50
# Digits evaluated: enough guard digits beyond IDENTITY_DIGITS that evalf's rounding
# cannot turn a true zero difference into one above the identity threshold.
COMPARE_DIGITS = 70
# Seconds for one comparison.
COMPARE_SECONDS = 2.0
# Seconds for all entries of one vector or matrix, its transpose included.
ARRAY_SECONDS = 4.0

VERDICTS = ("exact", "within_tolerance", "wrong")


# After the first alarm, the alarm repeats at this interval until the block exits.
# An exception raised while Python runs a gc or weakref callback is discarded, so the
# next alarm raises it again.
# NOTE: Python prints each discarded AnswerTimeout to stderr as "Exception ignored in".
RETRY_SECONDS = 0.01


class time_budget:
    """Raise AnswerTimeout in a `with` block that runs longer than `seconds`.

    Uses SIGALRM through signal.setitimer, so it applies only in the main thread of a
    POSIX process. Elsewhere the block runs without a time limit, and the size caps of
    marker.mathread keep it short. An outer budget is restored on exit and still
    applies: an inner budget never extends it.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.active = False

    def __enter__(self) -> "time_budget":
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            return self
        self.outer = signal.getitimer(signal.ITIMER_REAL)
        if self.outer[0] and self.outer[0] < self.seconds:
            return self
        self.previous = signal.signal(signal.SIGALRM, self._on_alarm)
        self.started = time.monotonic()
        self.active = True
        signal.setitimer(signal.ITIMER_REAL, self.seconds, RETRY_SECONDS)
        return self

    def __exit__(self, *exc_info) -> None:
        if not self.active:
            return
        self.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        outer_remaining, outer_interval = self.outer
        if outer_remaining:
            elapsed = time.monotonic() - self.started
            signal.setitimer(signal.ITIMER_REAL, max(outer_remaining - elapsed, 0.001), outer_interval)

    def _on_alarm(self, signum, frame) -> None:
        # Raising inside __exit__ would skip restoring the outer handler.
        if not self.active or frame is None or frame.f_code is time_budget.__exit__.__code__:
            return
        raise AnswerTimeout(f"evaluating the answer timed out after {self.seconds:g} s", "the answer",
                            "a shorter expression or a plain decimal")


def compare(student, places: int | None, exact, tolerance) -> str:
    """Return "exact", "within_tolerance" or "wrong" for one value.

    `student` is a sympy value from marker.mathread. `places` is its count of decimal
    places, or None for an exact expression. Only exact expressions are tested for
    numerical identity, so a 60-digit decimal of e/(1+e) is within tolerance, not exact. `exact` is a sympy value or the key's sympy text such as
    "E/(1 + E)". `tolerance` is a decimal string or Decimal, or None for none.
    """
    exact = _key_value(exact)
    bound = _tolerance(tolerance)
    with time_budget(COMPARE_SECONDS):
        student = _key_value(student)
        if student == exact:
            return "exact"
        if student.is_Rational and exact.is_Rational:
            difference = abs(student - exact)
            if difference == 0:
                return "exact"
            return "within_tolerance" if bound is not None and difference <= bound else "wrong"

        student_digits = sympy.N(student, COMPARE_DIGITS)
        exact_digits = sympy.N(exact, COMPARE_DIGITS)
        scale = max(abs(student_digits), abs(exact_digits), sympy.Integer(1))
        noise = scale * sympy.Rational(1, 10 ** IDENTITY_DIGITS)
        difference = abs(student_digits - exact_digits)
        if places is None and difference <= noise:
            return "exact"
        if bound is not None and difference <= bound + noise:
            return "within_tolerance"
        return "wrong"


def compare_array(reading, exact_matrix_or_list, tolerance_layout) -> tuple[str, object]:
    """Compare a vector or matrix entry by entry; return (verdict for the whole, per-entry verdicts).

    The whole is "exact", "within_tolerance" (every entry exact or within, one at least
    within), "wrong" (some entry wrong), "transposed" (the student's transpose matches
    where the answer as given does not) or "shape" (neither shape fits; per-entry
    verdicts are then None). Per-entry verdicts follow the key's layout: a list for a
    vector, a list of rows for a matrix. `tolerance_layout` is one tolerance for every
    entry or a layout of them like the key's. The whole comparison has a budget of
    ARRAY_SECONDS, and each entry its own COMPARE_SECONDS within it.
    """
    with time_budget(ARRAY_SECONDS):
        return _compare_array(reading, exact_matrix_or_list, tolerance_layout)


def _compare_array(reading, exact_matrix_or_list, tolerance_layout) -> tuple[str, object]:
    exact = _key_matrix(exact_matrix_or_list)
    is_vector = not (isinstance(exact_matrix_or_list, (list, tuple)) and exact_matrix_or_list
                     and isinstance(exact_matrix_or_list[0], (list, tuple))) and exact.cols == 1
    student = reading.value if isinstance(reading.value, sympy.MatrixBase) else sympy.Matrix([[reading.value]])
    places = _places_matrix(reading.places, student.shape)
    tolerances = _tolerance_matrix(tolerance_layout, exact.shape)

    if student.shape == exact.shape:
        verdicts = _entry_verdicts(student, places, exact, tolerances)
        whole = _whole(verdicts)
        if whole == "wrong" and exact.rows == exact.cols and exact.rows > 1:
            transposed = _entry_verdicts(student.T, places.T, exact, tolerances)
            if _whole(transposed) != "wrong" and student != student.T:
                return "transposed", _layout(transposed, is_vector)
        return whole, _layout(verdicts, is_vector)
    if student.T.shape == exact.shape:
        transposed = _entry_verdicts(student.T, places.T, exact, tolerances)
        if is_vector or exact.rows == 1:
            # A vector typed as a row is the same vector.
            return _whole(transposed), _layout(transposed, is_vector)
        if _whole(transposed) != "wrong":
            return "transposed", _layout(transposed, is_vector)
    return "shape", None


def _entry_verdicts(student, places, exact, tolerances) -> list[list[str]]:
    return [[compare(student[i, j], places[i, j], exact[i, j], tolerances[i][j])
             for j in range(exact.cols)] for i in range(exact.rows)]


def _whole(verdicts: list[list[str]]) -> str:
    flat = [verdict for row in verdicts for verdict in row]
    if "wrong" in flat:
        return "wrong"
    return "within_tolerance" if "within_tolerance" in flat else "exact"


def _layout(verdicts: list[list[str]], is_vector: bool) -> object:
    return [row[0] for row in verdicts] if is_vector else verdicts


class _PlacesMatrix:
    """Per-entry places indexed like a sympy Matrix, with a transpose."""

    def __init__(self, rows: list[list[int | None]]):
        self.rows = rows

    def __getitem__(self, index):
        return self.rows[index[0]][index[1]]

    @property
    def T(self) -> "_PlacesMatrix":
        return _PlacesMatrix([list(column) for column in zip(*self.rows)])


def _places_matrix(places, shape: tuple[int, int]) -> _PlacesMatrix:
    if isinstance(places, list) and places and isinstance(places[0], list):
        return _PlacesMatrix(places)
    if isinstance(places, list):
        if shape[1] == 1:
            return _PlacesMatrix([[p] for p in places])
        return _PlacesMatrix([places])
    return _PlacesMatrix([[places] * shape[1] for _ in range(shape[0])])


def _tolerance_matrix(layout, shape: tuple[int, int]) -> list[list[object]]:
    if not isinstance(layout, (list, tuple)):
        return [[layout] * shape[1] for _ in range(shape[0])]
    if layout and isinstance(layout[0], (list, tuple)):
        return [list(row) for row in layout]
    return [[item] for item in layout] if shape[1] == 1 else [list(layout)]


def _key_value(value) -> sympy.Expr:
    """Read the key's exact value; key text goes through the same safe reader as answers."""
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return sympy.Integer(value)
    if isinstance(value, str):
        from marker.mathread import read_key_scalar

        return read_key_scalar(value.replace("**", "^"))
    raise TypeError(f"a key value must be sympy, int or text, not {type(value).__name__}")


def _key_matrix(value) -> sympy.Matrix:
    if isinstance(value, sympy.MatrixBase):
        return value
    if value and isinstance(value[0], (list, tuple)):
        return sympy.Matrix([[_key_value(item) for item in row] for row in value])
    return sympy.Matrix([[_key_value(item)] for item in value])


def _tolerance(tolerance) -> sympy.Rational | None:
    if tolerance is None:
        return None
    if isinstance(tolerance, sympy.Rational):
        return tolerance
    try:
        amount = decimal.Decimal(str(tolerance).strip())
    except decimal.InvalidOperation:
        raise AnswerFormatError("invalid tolerance on the key", tolerance, "a decimal such as 0.0005") from None
    if not amount.is_finite() or amount < 0:
        raise AnswerFormatError("invalid tolerance on the key", tolerance, "a decimal of at least 0")
    numerator, denominator = amount.as_integer_ratio()
    return sympy.Rational(numerator, denominator)
