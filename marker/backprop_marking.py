"""Marking of numeric parts (scalar, vector, matrix) with error carried forward.

Each part is read exactly, its shape checked, and compared with the key. A wrong
value is then compared with the value worked from the student's own earlier answers,
through the question type's `carry_forward` hook, and earns its marks there
(correct_carried). Only admissible values are ever carried: the question type's
`admissible` hook decides which (for softmax, a y that is a probability vector), and a
value of the wrong shape or a transposed matrix is never carried.

Values passed to the hooks and the mistake solvers are numpy float64 arrays: a vector
has shape (n,), a matrix (rows, cols), and a scalar is a Python float. Carried values
are compared in floating point with the key's tolerance, because they are worked from
the student's own rounded decimals.
"""

from __future__ import annotations

import re

from fractions import Fraction

import numpy as np
import sympy

from generator.registry import QUESTION_TYPES
from marker import fastnumeric, mistakes
from marker.errors import AnswerFormatError
from marker.mathread import read_key_scalar, read_value
from marker.numeric import compare, compare_array
from marker.report import PartResult, Verdict

# Added to every tolerance when a carried value (worked in float64 from the student's
# decimals) is compared, so that float rounding never decides a boundary case.
FLOAT_SLACK = 1e-9

VERDICT_OF = {"exact": Verdict.CORRECT, "within_tolerance": Verdict.WITHIN_TOLERANCE}


class NumericProblem:
    """A backpropagation problem's inputs as floats, for the carried values and the mistake solvers."""

    def __init__(self, data: dict):
        self.W = _float_array(data["W"])
        self.x = _float_array(data["x"])
        self.b = _float_array(data["b"])
        self.target = int(data["target"])
        self.t = np.zeros(len(self.b))
        self.t[self.target] = 1.0
        self.eta = float(Fraction(str(data.get("learning_rate", "1/10"))))


def _float_array(entries) -> np.ndarray:
    if entries and isinstance(entries[0], list):
        return np.array([[float(Fraction(str(v))) for v in row] for row in entries])
    return np.array([float(Fraction(str(v))) for v in entries])


def to_float(value) -> object:
    """Convert a sympy scalar or Matrix to a float or a float array (vector shape (n,))."""
    if isinstance(value, sympy.MatrixBase):
        array = np.array([[float(v) for v in value.row(i)] for i in range(value.rows)])
        return array[:, 0] if value.cols == 1 else array
    return float(value)


def key_layout_shape(expected) -> tuple[int, int] | None:
    if not isinstance(expected, list):
        return None
    if expected and isinstance(expected[0], list):
        return len(expected), len(expected[0])
    return len(expected), 1


def _tolerance_array(tolerance, shape) -> object:
    if tolerance is None and shape is None:
        return 0.0
    if tolerance is None:
        return np.zeros(_array_shape(shape))
    if isinstance(tolerance, list):
        return np.array(_float_nested(tolerance))
    return float(Fraction(str(tolerance)))


def _array_shape(shape: tuple[int, int]) -> tuple[int, ...]:
    """Return the numpy shape of a key layout: (n,) for a vector, (rows, cols) for a matrix."""
    return (shape[0],) if shape[1] == 1 else shape


def _float_nested(value):
    if isinstance(value, list):
        return [_float_nested(v) for v in value]
    return float(Fraction(str(value)))


def _key_values(state) -> dict:
    """Return the key's exact values as floats, by part name, cached per key."""
    cached = state.cache.get("key_values")
    if cached is None:
        cached = {}
        for part in state.question["parts"]:
            if part["kind"] in ("scalar", "vector", "matrix"):
                cached[part["name"]] = _float_nested_key(part["expected"])
        state.cache["key_values"] = cached
    return cached


def _float_nested_key(expected):
    if isinstance(expected, list):
        return np.array([_float_nested_key(v) for v in expected])
    return float(_read_key_text(expected))


def _numeric_problem(state) -> NumericProblem | None:
    if "numeric_problem" not in state.cache:
        try:
            state.cache["numeric_problem"] = NumericProblem(state.question["problem"])
        except (KeyError, ValueError, TypeError, ZeroDivisionError):
            state.cache["numeric_problem"] = None
    return state.cache["numeric_problem"]


def matches(student, value, tolerance) -> bool:
    """Return whether a float value equals the student's within the tolerance, entry by entry."""
    student = np.asarray(student, dtype=float)
    value = np.asarray(value, dtype=float)
    if student.shape != value.shape or not np.all(np.isfinite(value)):
        return False
    tolerance = np.asarray(tolerance, dtype=float)
    if tolerance.ndim and tolerance.shape != value.shape:
        # A mistaken value, such as a transposed dL/dW, can have another shape than the key.
        tolerance = tolerance.T if tolerance.T.shape == value.shape else np.full(value.shape, tolerance.max())
    return bool(np.all(np.abs(student - value) <= tolerance + FLOAT_SLACK))


# Carried values

def carried_values(state) -> dict:
    """Return the student's values that may be carried into later parts, by part name."""
    return state.shared.setdefault("values", {})


def _with_unasked(state, values: dict) -> dict:
    """Add the values of quantities the paper did not ask, worked from the carried ones.

    A paper that asks for y and dL/dW but not delta still carries the student's y into
    dL/dW, through the delta it implies.
    """
    qtype = QUESTION_TYPES.get(state.question["type"])
    if qtype is None or qtype.carry_forward is None:
        return values
    asked = {part["name"] for part in state.question["parts"]}
    filled = dict(values)
    for name in qtype.parts:
        if name in asked or name in filled:
            continue
        try:
            value = as_floats(qtype.carry_forward(state.question["problem"], name, filled))
        except (ValueError, TypeError, IndexError, FloatingPointError, ZeroDivisionError):
            value = None
        if value is not None:
            filled[name] = value
    return filled


def carried_value(state, name: str):
    qtype = QUESTION_TYPES.get(state.question["type"])
    if qtype is None or qtype.carry_forward is None:
        return None
    try:
        return as_floats(qtype.carry_forward(state.question["problem"], name,
                                             _with_unasked(state, carried_values(state))))
    except (ValueError, TypeError, IndexError, FloatingPointError, ZeroDivisionError):
        return None


def as_floats(value):
    """Turn a hook's result (a float, a list, a numpy or sympy value) into a float or a float array."""
    if value is None:
        return None
    if isinstance(value, sympy.MatrixBase):
        return to_float(value)
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else array


def is_admissible(state, name: str, value, shape) -> bool:
    expected_shape = () if shape is None else _array_shape(shape)
    if np.shape(value) != expected_shape:
        return False
    if not np.all(np.isfinite(value)):
        return False
    qtype = QUESTION_TYPES.get(state.question["type"])
    if qtype is None or qtype.admissible is None:
        return True
    return bool(qtype.admissible(state.question["problem"], name, value))


def _record(state, name: str, student, shape, right: bool, readable: bool = True) -> None:
    """Keep the student's value for later parts, or mark it as one that is never carried.

    A right value is kept when admissible. A wrong value is kept only when it is
    admissible and every value it is worked from was carried too: after y = t,
    a delta of 0 and a dL/dW of 0 are never carried, so no later part earns marks from them.
    """
    not_carried = state.shared.setdefault("not_carried", set())
    if right and readable:
        # A value that matches the key (or the student's own admissible values) is admissible.
        carried_values(state)[name] = student
    elif readable and not dependencies(state, name) & not_carried and is_admissible(state, name, student, shape):
        carried_values(state)[name] = student
    else:
        not_carried.add(name)


def dependencies(state, name: str) -> set[str]:
    """Return the parts whose values the carry_forward hook needs for this part, found by leaving each out."""
    cache = state.cache.setdefault("dependencies", {})
    if name in cache:
        return cache[name]
    qtype = QUESTION_TYPES.get(state.question["type"])
    found: set[str] = set()
    if qtype is not None and qtype.carry_forward is not None:
        problem = state.question["problem"]
        full = _with_unasked(state, dict(_key_values(state)))
        if qtype.carry_forward(problem, name, full) is not None:
            found = {other for other in full
                     if qtype.carry_forward(problem, name, {k: v for k, v in full.items() if k != other}) is None}
    cache[name] = found
    return found


# The part marker

def mark_numeric_part(part: dict, state) -> PartResult:
    name, kind = part["name"], part["kind"]
    maximum = Fraction(part["marks"])
    expected = part["expected"]
    shape = key_layout_shape(expected)
    raw = state.answers.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()) or raw == []:
        return PartResult(part["id"], Verdict.MISSING, Fraction(0), maximum, expected, "No answer given.")

    # Read the answer and compare it with the key: plain decimals on the fast path,
    # every other form through the full reader.
    fast = fastnumeric.fast_read(raw, kind, shape)
    if fast is not None:
        verdict = fastnumeric.fast_compare(fast, _key_entries(state, part))
        student = fast.floats(kind == "scalar", kind == "vector")
    else:
        try:
            reading = read_value(raw, kind, shape)
            exact = _key_exact(state, part)
            if kind == "scalar":
                verdict = compare(reading.value, reading.places, exact, part.get("tolerance"))
            else:
                verdict, _ = compare_array(reading, exact, part.get("tolerance"))
        except AnswerFormatError as error:
            error.part = part["id"]
            return PartResult(part["id"], Verdict.INVALID, Fraction(0), maximum, expected, str(error))
        student = _student_floats(reading.value, shape)
    tolerance = _part_tolerance(state, part, shape)

    if verdict == "within_tolerance" and _equals_key_decimal(state, part, student):
        verdict = "exact"
    if verdict in VERDICT_OF:
        _record(state, name, student, shape, right=True)
        feedback = "Right." if verdict == "exact" else (
            f"Right within the tolerance; the key gives {_shown(part.get('decimal', expected))}.")
        return PartResult(part["id"], VERDICT_OF[verdict], maximum, maximum, expected, feedback)

    # Error carried forward from the student's own earlier values.
    carried = carried_value(state, name) if verdict not in ("shape", "transposed") else None
    if carried is not None and matches(student, carried, tolerance):
        _record(state, name, student, shape, right=True)
        working = _carried_working(state, name, carried)
        return PartResult(part["id"], Verdict.CORRECT_CARRIED, maximum, maximum, expected,
                          f"Not the key's value, but right for your own {working['from']}: error carried forward.",
                          working=working)

    # Wrong: name the mistake when a mistaken solver gives the same value.
    mistake = "transposed" if verdict == "transposed" else _find_mistake(state, name, student, tolerance)
    _record(state, name, student, shape, right=False, readable=verdict not in ("shape", "transposed"))
    feedback = _wrong_feedback(part, verdict, student, shape, mistake)
    if verdict not in ("shape", "transposed"):
        feedback += _detail_hint(part, raw, student, tolerance)
    working = _carried_working(state, name, carried) if carried is not None else {}
    return PartResult(part["id"], Verdict.WRONG, Fraction(0), maximum, expected, feedback, mistake, working)


# Decimals on a paper differ by at least 10**-6, so floats this close are the same decimal.
SAME_DECIMAL = 1e-12


def _equals_key_decimal(state, part: dict, student) -> bool:
    """Return whether the student wrote the key's own rounded decimal, such as 0.731 for e/(1+e)."""
    if part.get("decimal") is None:
        return False
    cache = state.cache.setdefault("key_decimals", {})
    if part["name"] not in cache:
        cache[part["name"]] = np.array(_float_nested(part["decimal"]))
    key_decimal = cache[part["name"]]
    return np.shape(student) == key_decimal.shape and bool(np.all(np.abs(student - key_decimal) <= SAME_DECIMAL))


def _part_tolerance(state, part: dict, shape):
    cache = state.cache.setdefault("tolerances", {})
    if part["name"] not in cache:
        cache[part["name"]] = _tolerance_array(part.get("tolerance"), shape)
    return cache[part["name"]]


def _key_entries(state, part: dict) -> list:
    cache = state.cache.setdefault("key_entries", {})
    if part["name"] not in cache:
        cache[part["name"]] = fastnumeric.key_entries(part["expected"], part.get("tolerance"), part.get("decimal"))
    return cache[part["name"]]


def _key_exact(state, part: dict):
    """Return the key's exact value as sympy, read once per key."""
    cache = state.cache.setdefault("key_exact", {})
    if part["name"] not in cache:
        expected = part["expected"]
        if isinstance(expected, list):
            rows = expected if expected and isinstance(expected[0], list) else [[v] for v in expected]
            cache[part["name"]] = sympy.Matrix([[_read_key_text(v) for v in row] for row in rows])
        else:
            cache[part["name"]] = _read_key_text(expected)
    return cache[part["name"]]


def _read_key_text(text) -> sympy.Expr:
    return read_key_scalar(str(text).replace("**", "^"))


def _student_floats(value, shape):
    array = to_float(value)
    if shape is not None and shape[1] == 1 and isinstance(array, np.ndarray) and array.ndim == 2 and 1 in array.shape:
        return array.reshape(-1)
    return array


def _find_mistake(state, name: str, student, tolerance) -> str | None:
    problem = _numeric_problem(state)
    if problem is None:
        return None
    qtype = state.question["type"]
    cache = state.cache.setdefault("mistakes", {})
    if name not in cache:
        cache[name] = mistakes.mistaken_values(qtype, name, problem, _key_values(state))
    candidates = list(cache[name])
    own = _with_unasked(state, carried_values(state))
    if own:
        candidates += mistakes.mistaken_values(qtype, name, problem, {**_key_values(state), **own})
    for mistake, value in candidates:
        if matches(student, value, tolerance):
            return mistake
    return None


def _carried_working(state, name: str, carried) -> dict:
    """Describe a carried value for the feedback sheet: which of the student's values it comes from."""
    sources = sorted(dependencies(state, name))
    values = carried_values(state)
    return {
        "from": _dependency_text(state, name),
        "sources": {source: _plain(values[source]) for source in sources if source in values},
        "carried": _plain(carried),
    }


def _dependency_text(state, name: str) -> str:
    dependencies = DEPENDENCY_NAMES.get(state.question["type"], {})
    return dependencies.get(name, "earlier answers")


# The earlier quantity each softmax part is worked from, for feedback.
DEPENDENCY_NAMES = {
    "backprop_softmax": {"y": "z", "L": "y", "delta": "y", "dL_dW": "delta", "dL_db": "delta", "dL_dx": "delta",
                         "W_new": "dL/dW", "b_new": "dL/db"},
}


def _wrong_feedback(part: dict, verdict: str, student, shape, mistake: str | None) -> str:
    if verdict == "shape":
        found = np.shape(student)
        found_text = "a single number" if not found else " x ".join(str(n) for n in (found + (1,))[:2])
        return f"Wrong shape: expected {shape[0]} x {shape[1]}, found {found_text}."
    text = f"Wrong; the key gives {_shown(part.get('decimal', part['expected']))}."
    if mistake:
        text += f" This matches {mistakes.describe(mistake)}."
    return text


_DECIMAL_PLACES = re.compile(r"\d\.(\d+)")


def _entries_off(indices, ndim: int) -> str:
    """Name the entries outside the tolerance: "Entry 2 is off." or "Row 1, column 2 and row 2, column 1 are off."."""
    if ndim == 1:
        names = [f"{index[0] + 1}" for index in indices]
        return f"Entry {names[0]} is off." if len(names) == 1 else f"Entries {_and_list(names)} are off."
    names = [f"row {index[0] + 1}, column {index[1] + 1}" for index in indices]
    text = _and_list(names)
    return f"{text[0].upper()}{text[1:]} {'is' if len(names) == 1 else 'are'} off."


def _and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _detail_hint(part: dict, raw: object, student, tolerance) -> str:
    """Say which entries are off, and whether they are the key's values rounded to fewer places."""
    if part.get("decimal") is None:
        return ""
    key = np.array(_float_nested(part["decimal"]))
    student = np.asarray(student, dtype=float)
    if key.shape != student.shape:
        return ""
    off = np.abs(student - key) > np.asarray(tolerance) + FLOAT_SLACK
    hint = ""
    if student.ndim > 0 and 0 < off.sum() < key.size:
        hint += " " + _entries_off(np.argwhere(off), student.ndim)
    asked = [len(m) for m in _DECIMAL_PLACES.findall(str(part["decimal"]))]
    given = [len(m) for m in _DECIMAL_PLACES.findall(str(raw))]
    if asked and given and min(given) < max(asked):
        places = min(given)
        if np.all(np.abs(student[off] - np.round(key[off], places)) <= 10.0 ** -(places + 3)):
            subject = "These are the key's values" if student.ndim else "This is the key's value"
            hint += (f" {subject} rounded to {places} decimal place{'s' if places != 1 else ''}, "
                     f"but the paper asks for {max(asked)}, which the tolerance is set for.")
    return hint


def _shown(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def _plain(value):
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return np.round(value, 6).tolist()
    return round(float(value), 6)
