"""Read a student's number, vector or matrix into exact sympy values, without eval.

A small tokenizer and a recursive-descent parser build sympy objects directly, so
student text never reaches eval, exec, sympify or parse_expr. Accepted forms:

- numbers: integers, decimals read exactly ("0.731" is 731/1000), scientific notation
  ("1.5e-3"), fractions ("7/8");
- the constant e (also E), exp(x), ln(x) and log(x) (both natural), sqrt(x);
- + - * / and powers with ^ or ** (right-associative: 2^3^2 is 2^9), unary minus
  written "-" or U+2212, parentheses and spaces;
- implicit multiplication after a number or a closing parenthesis only: "2e",
  "2(1+e)", "(1+e)(2)", "2exp(1)". "e(2)" and "2 3" are rejected as ambiguous.

Scientific notation wins over implicit multiplication: "2e-3" is 0.002, while
"2e - 3" (with spaces) and "2*e-3" are 2e minus 3.

Vectors and matrices: nested lists "[[a, b], [c, d]]", rows "a b; c d" or "a, b; c, d",
or YAML/JSON lists of strings and numbers. Inside a row without commas, spaces
separate entries, but an operator with spaces on both sides joins its neighbours:
"1 -3" is two entries and "1 - 3" is one. A comma is never a decimal point: "0,731"
is rejected with a message.

Every read checks its caps (length, tokens, nesting, digits, magnitudes) before it
builds a value and runs inside a time budget, so "9**9**9" is rejected at once.
"""

from __future__ import annotations

import contextvars
import decimal
import math
import re
from dataclasses import dataclass

import mpmath
import sympy

from marker.errors import AnswerFormatError
from marker.numeric import time_budget

# Caps on one answer, checked before anything is evaluated. Exam answers are a few
# numbers of a few digits; these leave room for exact expressions and long decimals.
MAX_TEXT_CHARS = 2000
MAX_TOKENS = 600
MAX_NESTING = 40
MAX_LITERAL_DIGITS = 120
# Every intermediate value lies between 10**-MAX_LOG10 and 10**MAX_LOG10 (or is 0), so
# 10^400 is read exactly but 10^400000000 and exp(exp(100)) are rejected.
MAX_LOG10 = 1000
# Numerators and denominators of exact rationals stay below this many digits.
MAX_EXACT_DIGITS = 2500
# Roots: the denominator of a fractional exponent of a rational, such as 3 in 2^(1/3).
MAX_ROOT_DEGREE = 64
# sympy looks for perfect powers when it takes a root of a rational. For a 1000-digit
# integer that took about 0.4 s (sympy 1.12, one laptop core), for 100 digits a few ms.
MAX_ROOT_DIGITS = 100
MAX_ENTRIES = 400
# Seconds for one read; a read that overruns raises AnswerTimeout.
READ_SECONDS = 2.0

# Key strings are written by mlexam and can be far longer than any answer: the exact
# gradient of a tanh two-layer network runs to thousands of characters. They are read
# with these wider caps; every other cap is the same as for answers.
KEY_TEXT_CHARS = 50_000
KEY_TOKENS = 15_000
KEY_NESTING = 200
KEY_READ_SECONDS = 20.0


@dataclass(frozen=True)
class _Caps:
    text_chars: int
    tokens: int
    nesting: int


_ANSWER_CAPS = _Caps(MAX_TEXT_CHARS, MAX_TOKENS, MAX_NESTING)
_KEY_CAPS = _Caps(KEY_TEXT_CHARS, KEY_TOKENS, KEY_NESTING)
_caps = contextvars.ContextVar("mathread_caps", default=_ANSWER_CAPS)
# Working precision of the magnitude estimate kept beside each exact value.
ESTIMATE_DIGITS = 30

SCALAR_FORM = "a number or an exact expression, e.g. 0.731, 7/8 or e/(1+e)"
VECTOR_FORM = 'a list such as [0.731, 0.269] or "0.731 0.269"'
MATRIX_FORM = 'a list of rows such as [[1, 0], [0, 1]] or "1 0; 0 1"'
ALLOWED = ("digits, a decimal point, + - * / ^ ** ( ), the constant e, "
           "and the functions exp, ln, log, sqrt")
FUNCTIONS = ("exp", "ln", "log", "sqrt")
CONSTANTS = ("e", "E")

_SPACES = {"\u00a0", "\u2009", "\u202f", "\u2007", "\t", "\n", "\r"}
_MINUS_SIGNS = {"\u2212"}
_TIMES_SIGNS = {"\u00d7", "\u00b7", "\u22c5"}
_SUPERSCRIPTS = set("\u00b2\u00b3\u00b9\u2070\u2071\u2074\u2075\u2076\u2077\u2078\u2079\u207a\u207b")
_NUMBER = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_DECIMAL_COMMA = re.compile(r"[0-9],[0-9]")

_mp = mpmath.MPContext()
_mp.dps = ESTIMATE_DIGITS


@dataclass
class Reading:
    """A student's answer read exactly.

    `value` is a sympy scalar, or a sympy Matrix (K x 1 for a vector). `places` has the
    layout of the answer: per entry, the decimal places written ("0.731" has 3, "1.5e-3"
    has 4, a lone integer such as "3" has 0), or None for an expression with no decimal
    literal in it (such as 7/8 or e/(1+e)). `text` is the normalised source.
    """

    value: object
    places: object
    text: str


@dataclass
class _Token:
    kind: str  # "num", "name", "op", "(", ")", "[", "]", ",", ";"
    text: str
    position: int
    space_before: bool


@dataclass
class _Value:
    exact: sympy.Expr
    estimate: mpmath.mpf
    places: int | None


def read_value(raw: object, kind: str, shape: tuple[int, int] | None = None) -> Reading:
    """Read an answer of kind "scalar", "vector" or "matrix" as YAML or JSON gave it.

    `shape` is the expected (rows, cols); it tells a list "[1,2]" from decimal commas
    "[0,731, 0,269]". A shape that differs from `shape` is returned as read, so the
    caller can report it. Raises AnswerFormatError (or AnswerTimeout) for anything else.
    """
    if kind not in ("scalar", "vector", "matrix"):
        raise ValueError(f"unknown answer kind {kind!r}")
    with time_budget(READ_SECONDS):
        if kind == "scalar":
            return _read_scalar_raw(raw)
        rows = _rows_of(raw, kind, shape)
        return _build_array(rows, kind, raw)


def read_scalar(text: str) -> tuple[sympy.Expr, int | None]:
    """Read one number or exact expression; return (exact value, decimal places or None)."""
    with time_budget(READ_SECONDS):
        value = _evaluate_text(_normalise(text, SCALAR_FORM), SCALAR_FORM)
    return value.exact, value.places


def read_key_scalar(text: str) -> sympy.Expr:
    """Read one exact value of a key, under the wider KEY_* caps on length, symbols and nesting."""
    token = _caps.set(_KEY_CAPS)
    try:
        with time_budget(KEY_READ_SECONDS):
            return _evaluate_text(_normalise(text, SCALAR_FORM), SCALAR_FORM).exact
    finally:
        _caps.reset(token)


# ---- raw YAML/JSON values -------------------------------------------------------------

def _read_scalar_raw(raw: object) -> Reading:
    if isinstance(raw, (list, tuple, dict)):
        raise AnswerFormatError("a single number is expected, not a list", raw, SCALAR_FORM)
    text = _entry_text(raw, SCALAR_FORM)
    if "," in text and _DECIMAL_COMMA.search(text):
        raise AnswerFormatError("a comma is not a decimal point", raw,
                                f"a decimal point, e.g. {_with_points(text)}")
    if "," in text or ";" in text or "[" in text:
        raise AnswerFormatError("a single number is expected, not a list", raw, SCALAR_FORM)
    value = _evaluate_text(text, SCALAR_FORM)
    return Reading(value.exact, value.places, text)


def _entry_text(raw: object, form: str) -> str:
    """Turn one YAML/JSON entry into text; floats go through their shortest repr."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise AnswerFormatError("the answer is empty", raw, form)
    if isinstance(raw, bool):
        raise AnswerFormatError("true/false is not a number", raw, form)
    if isinstance(raw, int):
        if abs(raw).bit_length() > MAX_LITERAL_DIGITS * 3.33:
            raise AnswerFormatError("the number has too many digits", raw, form)
        return str(raw)
    if isinstance(raw, float):
        if math.isnan(raw) or math.isinf(raw):
            raise AnswerFormatError("NaN and infinity are not numbers an answer can have", raw, form)
        return repr(raw)
    if isinstance(raw, decimal.Decimal):
        if not raw.is_finite():
            raise AnswerFormatError("NaN and infinity are not numbers an answer can have", raw, form)
        return format(raw, "f") if abs(raw.as_tuple().exponent) <= MAX_LITERAL_DIGITS else str(raw)
    if isinstance(raw, str):
        return _normalise(raw, form)
    raise AnswerFormatError("this is not a number or text", raw, form)


def _normalise(text: str, form: str) -> str:
    if not isinstance(text, str):
        raise AnswerFormatError("this is not text", text, form)
    if len(text) > _caps.get().text_chars:
        raise AnswerFormatError(f"the answer is longer than {_caps.get().text_chars} characters", text, form)
    chars = []
    for char in text:
        if char in _MINUS_SIGNS:
            chars.append("-")
        elif char in _TIMES_SIGNS:
            chars.append("*")
        elif char in _SPACES:
            chars.append(" ")
        else:
            chars.append(char)
    return "".join(chars).strip()


def _with_points(text: str) -> str:
    return re.sub(r"([0-9]),([0-9])", r"\1.\2", text)


def _rows_of(raw: object, kind: str, shape: tuple[int, int] | None) -> list[list[object]]:
    """Split a raw vector or matrix answer into rows of raw entries."""
    form = VECTOR_FORM if kind == "vector" else MATRIX_FORM
    if isinstance(raw, (list, tuple)):
        rows = _rows_of_list(raw, kind, form)
    elif isinstance(raw, str):
        rows = _rows_of_text(_normalise(raw, form), kind, form, shape)
    elif kind == "vector" and shape == (1, 1) and not isinstance(raw, (dict, bool)) and raw is not None:
        rows = [[raw]]
    else:
        raise AnswerFormatError("a list is expected", raw, form)
    if not rows or not rows[0]:
        raise AnswerFormatError("the answer is empty", raw, form)
    if sum(len(row) for row in rows) > MAX_ENTRIES:
        raise AnswerFormatError(f"the answer has more than {MAX_ENTRIES} entries", raw, form)
    if any(len(row) != len(rows[0]) for row in rows):
        raise AnswerFormatError("the rows have different lengths", raw, form)
    _check_decimal_commas_in_list(rows, kind, shape, raw, form)
    return rows


def _rows_of_list(raw: list | tuple, kind: str, form: str) -> list[list[object]]:
    if any(isinstance(item, (list, tuple)) for item in raw):
        if not all(isinstance(item, (list, tuple)) for item in raw):
            raise AnswerFormatError("the list mixes rows and single entries", raw, form)
        if any(isinstance(entry, (list, tuple, dict)) for row in raw for entry in row):
            raise AnswerFormatError("the list is nested more than two levels deep", raw, form)
        return [list(row) for row in raw]
    if any(isinstance(item, dict) for item in raw):
        raise AnswerFormatError("a list entry is a mapping, not a number", raw, form)
    if kind == "vector":
        return [[item] for item in raw]
    # A flat list of row strings, such as ["1 0", "0 1"] for a matrix.
    if all(isinstance(item, str) for item in raw):
        return [_split_row(_normalise(item, form), form) for item in raw]
    return [list(raw)]


def _rows_of_text(text: str, kind: str, form: str, shape: tuple[int, int] | None) -> list[list[object]]:
    if not text:
        raise AnswerFormatError("the answer is empty", text, form)
    if text.startswith("["):
        return _rows_of_brackets(text, kind, form, shape)
    rows = [_split_row(row.strip(), form) for row in _split_top(text, ";")]
    if kind == "vector" and len(rows) > 1 and all(len(row) == 1 for row in rows):
        return rows
    if kind == "vector" and len(rows) == 1:
        return [[entry] for entry in rows[0]]
    return rows


def _rows_of_brackets(text: str, kind: str, form: str, shape: tuple[int, int] | None) -> list[list[object]]:
    """Read "[a, b]" or "[[a, b], [c, d]]" into rows of entry texts."""
    if not text.endswith("]"):
        raise AnswerFormatError("the opening [ has no matching ]", text, form)
    inner = text[1:-1].strip()
    if _depth_error(inner):
        raise AnswerFormatError("the brackets do not match", text, form)
    if inner.startswith("["):
        rows = []
        for row in _split_top(inner, ","):
            row = row.strip()
            if not (row.startswith("[") and row.endswith("]")):
                raise AnswerFormatError("each row of a matrix must be in [ ]", text, form)
            rows.append(_split_entries(row[1:-1], form, text))
        return rows
    entries = _split_entries(inner, form, text)
    if kind == "vector":
        return [[entry] for entry in entries]
    return [entries]


def _split_entries(inner: str, form: str, whole: str) -> list[str]:
    if "[" in inner or "]" in inner:
        raise AnswerFormatError("the list is nested more than two levels deep", whole, form)
    if ";" in inner:
        raise AnswerFormatError('";" separates rows only outside [ ]', whole, form)
    _reject_mixed_commas(inner, whole)
    return [entry.strip() for entry in _split_top(inner, ",")]


def _reject_mixed_commas(row: str, whole: str) -> None:
    """Reject "0,5, 1": commas between digits beside commas before a space are decimal commas."""
    if _DECIMAL_COMMA.search(row) and re.search(r",\s", row):
        raise AnswerFormatError("a comma is not a decimal point", whole,
                                f"a decimal point, e.g. {_with_points(whole)}")


def _split_row(row: str, form: str) -> list[str]:
    """Split one row: on commas when it has any, else on spaces that separate operands."""
    if not row:
        raise AnswerFormatError("a row is empty", row, form)
    if any("," == char for char in _top_level_chars(row)):
        _reject_mixed_commas(row, row)
        return [entry.strip() for entry in _split_top(row, ",")]
    tokens = _tokenize(row, form)
    entries, start = [], 0
    for index in range(1, len(tokens)):
        if _starts_new_entry(tokens[index - 1], tokens[index], tokens[index + 1] if index + 1 < len(tokens) else None):
            entries.append(row[start:tokens[index].position].strip())
            start = tokens[index].position
    entries.append(row[start:].strip())
    return entries


def _starts_new_entry(previous: _Token, token: _Token, following: _Token | None) -> bool:
    """Tell "1 -3" (two entries) from "1 - 3" (one) at a space between tokens."""
    if not token.space_before:
        return False
    if previous.kind not in ("num", ")") and not (previous.kind == "name" and previous.text in CONSTANTS):
        return False
    if token.kind in ("num", "(") or (token.kind == "name"):
        return True
    return token.kind == "op" and token.text in "+-" and following is not None and not following.space_before


def _top_level_chars(text: str):
    depth = 0
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif depth == 0:
            yield char


def _split_top(text: str, separator: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _depth_error(text: str) -> bool:
    depth = 0
    for char in text:
        depth += char in "(["
        depth -= char in ")]"
        if depth < 0:
            return True
    return depth != 0


def _check_decimal_commas_in_list(rows, kind, shape, raw, form) -> None:
    """Reject decimal commas that made a list longer than the expected shape."""
    read_shape = (len(rows), len(rows[0]))
    if shape is None or read_shape == tuple(shape) or read_shape == tuple(reversed(shape)):
        return
    texts = raw if isinstance(raw, str) else None
    if texts is not None and _DECIMAL_COMMA.search(texts):
        raise AnswerFormatError("a comma is not a decimal point", raw,
                                f"a decimal point, e.g. {_with_points(texts)}")
    entries = [entry for row in rows for entry in row]
    if kind == "vector":
        rows = [entries]
    expected_count = shape[0] * shape[1]
    # A YAML flow list [0,731, 0,269] arrives as four integers: 0, 731, 0, 269.
    if len(entries) == 2 * expected_count and all(len(row) % 2 == 0 for row in rows) and all(
            isinstance(entry, (int, str)) and not isinstance(entry, bool) and str(entry).strip().lstrip("-").isdigit()
            for entry in entries):
        rows_with_points = ["[" + ", ".join(f"{str(row[i]).strip()}.{str(row[i + 1]).strip()}"
                                            for i in range(0, len(row), 2)) + "]" for row in rows]
        suggestion = rows_with_points[0] if kind == "vector" or len(rows) == 1 else "[" + ", ".join(rows_with_points) + "]"
        raise AnswerFormatError("a comma is not a decimal point (the list has twice the expected entries)",
                                raw, f"a decimal point, e.g. {suggestion}")


def _build_array(rows: list[list[object]], kind: str, raw: object) -> Reading:
    form = VECTOR_FORM if kind == "vector" else MATRIX_FORM
    exact_rows, places_rows, text_rows = [], [], []
    for row in rows:
        exact_row, places_row, text_row = [], [], []
        for entry in row:
            if entry is None or (isinstance(entry, str) and not entry.strip()):
                raise AnswerFormatError(f"entry {len(text_row) + 1} of row {len(text_rows) + 1} is empty"
                                        if kind == "matrix" else f"entry {len(text_rows) + 1} is empty", raw, form)
            text = _entry_text(entry, form)
            if _DECIMAL_COMMA.search(text):
                raise AnswerFormatError("a comma is not a decimal point", entry,
                                        f"a decimal point, e.g. {_with_points(text)}")
            value = _evaluate_text(text, form)
            exact_row.append(value.exact)
            places_row.append(value.places)
            text_row.append(text)
        exact_rows.append(exact_row)
        places_rows.append(places_row)
        text_rows.append(text_row)
    matrix = sympy.Matrix(exact_rows)
    if kind == "vector":
        if matrix.cols != 1 and matrix.rows != 1:
            raise AnswerFormatError("a vector is expected, not a matrix", raw, VECTOR_FORM)
        if matrix.rows == 1:
            matrix = matrix.T
        places = [p for row in places_rows for p in row]
        text = "[" + ", ".join(t for row in text_rows for t in row) + "]"
        return Reading(matrix, places, text)
    text = "[" + ", ".join("[" + ", ".join(row) + "]" for row in text_rows) + "]"
    return Reading(matrix, places_rows, text)


# ---- tokens ---------------------------------------------------------------------------

def _tokenize(text: str, form: str) -> list[_Token]:
    max_tokens = _caps.get().tokens
    tokens: list[_Token] = []
    index, space = 0, False
    while index < len(text):
        char = text[index]
        if char == " ":
            index, space = index + 1, True
            continue
        if len(tokens) >= max_tokens:
            raise AnswerFormatError(f"the answer has more than {max_tokens} symbols", text, form)
        number = _NUMBER.match(text, index)
        name = _NAME.match(text, index)
        if number:
            token = _Token("num", number.group(0), index, space)
        elif name:
            token = _Token("name", name.group(0), index, space)
        elif text.startswith("**", index):
            token = _Token("op", "^", index, space)
        elif char in "+-*/^":
            token = _Token("op", char, index, space)
        elif char in "()[],;":
            token = _Token(char, char, index, space)
        elif char in _SUPERSCRIPTS:
            raise AnswerFormatError(f"the superscript {char!r} is not allowed", text,
                                    "a power written with ^, e.g. e^2 or e^(-1)")
        elif char.isdigit():
            raise AnswerFormatError(f"the digit {char!r} is not one of the ASCII digits 0-9", text,
                                    f"{form}, typed with the digits 0-9")
        else:
            raise AnswerFormatError(f"the character {char!r} is not allowed", text,
                                    f"{form}, written with {ALLOWED}")
        tokens.append(token)
        index += 2 if text.startswith("**", index) and token.kind == "op" else len(token.text)
        space = False
    return tokens


# ---- grammar --------------------------------------------------------------------------
#   expression := term (("+" | "-") term)*
#   term       := signed (("*" | "/") signed | implicit factor)*
#   signed     := ("+" | "-") signed | power
#   power      := atom ("^" signed)?            right-associative; -2^2 is -(2^2)
#   atom       := number | constant | function "(" expression ")" | "(" expression ")"

def _evaluate_text(text: str, form: str) -> _Value:
    if not text:
        raise AnswerFormatError("the answer is empty", text, form)
    if len(text) > _caps.get().text_chars:
        raise AnswerFormatError(f"the answer is longer than {_caps.get().text_chars} characters", text, form)
    if "," in text:
        if _DECIMAL_COMMA.search(text):
            raise AnswerFormatError("a comma is not a decimal point", text,
                                    f"a decimal point, e.g. {_with_points(text)}")
        raise AnswerFormatError("a comma cannot be inside one entry", text, form)
    parser = _Parser(_tokenize(text, form), text, form)
    value = parser.expression(0)
    if parser.index < len(parser.tokens):
        parser.fail_at(parser.tokens[parser.index])
    _check_real(value, text, form)
    if value.exact == 0:
        value.exact = sympy.Integer(0)
    return value


def _check_real(value: _Value, text: str, form: str) -> None:
    exact = value.exact
    if exact.has(sympy.zoo, sympy.oo, sympy.nan, -sympy.oo) or exact.has(sympy.I):
        raise AnswerFormatError("the value is not a finite real number", text, form)


class _Parser:
    def __init__(self, tokens: list[_Token], text: str, form: str):
        self.tokens = tokens
        self.text = text
        self.form = form
        self.index = 0
        self.max_nesting = _caps.get().nesting

    def fail(self, reason: str) -> None:
        raise AnswerFormatError(reason, self.text, self.form)

    def fail_at(self, token: _Token) -> None:
        if token.kind == "name":
            self.fail(f"the name {token.text!r} is not allowed (allowed: {ALLOWED})")
        if token.kind in ("[", "]", ";"):
            self.fail(f"{token.text!r} cannot stand inside one entry")
        self.fail(f"unexpected {token.text!r} at character {token.position + 1}")

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            self.fail("the expression ends too early")
        self.index += 1
        return token

    def expression(self, depth: int) -> _Value:
        if depth > self.max_nesting:
            self.fail(f"the expression is nested more than {self.max_nesting} levels deep")
        value = self.term(depth)
        while (token := self.peek()) is not None and token.kind == "op" and token.text in "+-":
            self.index += 1
            right = self.term(depth)
            value = _add(value, right, -1 if token.text == "-" else 1, self)
        return value

    def term(self, depth: int) -> _Value:
        value = self.signed(depth)
        while (token := self.peek()) is not None:
            if token.kind == "op" and token.text in "*/":
                self.index += 1
                right = self.signed(depth)
                value = _multiply(value, right, self) if token.text == "*" else _divide(value, right, self)
            elif token.kind == "(" and self.tokens[self.index - 1].text in CONSTANTS:
                self.fail("e is a constant, not a function: write e*(...) for a product or exp(...) for a power")
            elif token.kind in ("(", "name") and self.tokens[self.index - 1].kind in ("num", ")"):
                # Implicit multiplication: "2e", "2(1+e)", "(1+e)(2)".
                value = _multiply(value, self.power(depth), self)
            elif token.kind == "num":
                self.fail("two numbers are next to each other; write * between them, or commas between list entries")
            else:
                break
        return value

    def signed(self, depth: int) -> _Value:
        if depth > self.max_nesting:
            self.fail(f"the expression is nested more than {self.max_nesting} levels deep")
        token = self.peek()
        if token is not None and token.kind == "op" and token.text in "+-":
            self.index += 1
            value = self.signed(depth + 1)
            if token.text == "-":
                return _Value(-value.exact, -value.estimate, value.places)
            return value
        return self.power(depth)

    def power(self, depth: int) -> _Value:
        base = self.atom(depth)
        token = self.peek()
        if token is not None and token.kind == "op" and token.text == "^":
            self.index += 1
            exponent = self.signed(depth + 1)
            return _power(base, exponent, self)
        return base

    def atom(self, depth: int) -> _Value:
        token = self.take()
        if token.kind == "num":
            return _number(token.text, self)
        if token.kind == "(":
            value = self.expression(depth + 1)
            self.expect_close()
            return value
        if token.kind == "name":
            if token.text in CONSTANTS:
                return _Value(sympy.E, _mp.e, None)
            if token.text in FUNCTIONS:
                opening = self.take()
                if opening.kind != "(":
                    self.fail(f"{token.text} needs its argument in parentheses, e.g. {token.text}(2)")
                argument = self.expression(depth + 1)
                self.expect_close()
                return _apply(token.text, argument, self)
        self.fail_at(token)

    def expect_close(self) -> None:
        token = self.peek()
        if token is None or token.kind != ")":
            self.fail("a ( has no matching )")
        self.index += 1


# ---- exact values with size checks ----------------------------------------------------

def _number(text: str, parser: _Parser) -> _Value:
    match = _NUMBER.fullmatch(text)
    mantissa, exponent_text = match.group(1), match.group(2)
    digits = mantissa.replace(".", "")
    if len(digits) > MAX_LITERAL_DIGITS:
        parser.fail(f"a number has more than {MAX_LITERAL_DIGITS} digits")
    fraction_digits = len(mantissa.partition(".")[2])
    exponent = 0
    if exponent_text:
        exponent_digits = exponent_text[1:].lstrip("+-")
        if len(exponent_digits.lstrip("0")) > 4 or int(exponent_digits) > MAX_LOG10:
            parser.fail(f"a power of ten is beyond 10^{MAX_LOG10}")
        exponent = int(exponent_text[1:])
    shift = exponent - fraction_digits
    numerator = int(digits)
    exact = sympy.Integer(numerator * 10 ** shift) if shift >= 0 else sympy.Rational(numerator, 10 ** -shift)
    places = max(0, -shift) if ("." in mantissa or exponent_text) else 0
    estimate = _mp.mpf(numerator) * _mp.power(10, shift)
    value = _Value(exact, estimate, places)
    _check_size(value, parser)
    return value


def _merge_places(left: int | None, right: int | None) -> int | None:
    if left is None:
        return right
    if right is None:
        return left
    return max(left, right)


def _operation_places(left: _Value, right: _Value) -> int | None:
    """Return the places of a combined expression: None unless it contains a decimal literal."""
    return _merge_places(left.places or None, right.places or None)


def _add(left: _Value, right: _Value, sign: int, parser: _Parser) -> _Value:
    exact = left.exact + sign * right.exact
    value = _Value(exact, left.estimate + sign * right.estimate, _operation_places(left, right))
    _check_size(value, parser)
    return value


def _multiply(left: _Value, right: _Value, parser: _Parser) -> _Value:
    _check_log10(_log10(left.estimate) + _log10(right.estimate), parser)
    value = _Value(left.exact * right.exact, left.estimate * right.estimate, _operation_places(left, right))
    _check_size(value, parser)
    return value


def _divide(left: _Value, right: _Value, parser: _Parser) -> _Value:
    if right.exact == 0:
        parser.fail("division by zero")
    if right.estimate == 0:
        parser.fail("a divisor is too close to zero to evaluate")
    _check_log10(_log10(left.estimate) - _log10(right.estimate), parser)
    value = _Value(left.exact / right.exact, left.estimate / right.estimate, _operation_places(left, right))
    _check_size(value, parser)
    return value


def _power(base: _Value, exponent: _Value, parser: _Parser) -> _Value:
    places = _operation_places(base, exponent)
    if base.exact == 0:
        if exponent.estimate <= 0:
            parser.fail("0 to a power that is not positive is undefined")
        return _Value(sympy.Integer(0), _mp.mpf(0), places)
    if abs(exponent.estimate) > 10 * MAX_LOG10:
        parser.fail(f"an exponent is beyond {10 * MAX_LOG10}")
    _check_log10(exponent.estimate * _log10(base.estimate), parser)
    if base.exact.is_Rational and exponent.exact.is_Rational:
        _check_rational_power(base.exact, exponent.exact, parser)
    elif base.estimate < 0 and not exponent.exact.is_Integer:
        parser.fail("a negative number to a fractional power is not a real number")
    exact = sympy.Pow(base.exact, exponent.exact)
    value = _Value(exact, _mp.power(base.estimate, exponent.estimate), places)
    if isinstance(value.estimate, mpmath.mpc) or _mp.im(value.estimate) != 0:
        parser.fail("the value is not a real number")
    _check_size(value, parser)
    return value


def _check_rational_power(base: sympy.Rational, exponent: sympy.Rational, parser: _Parser) -> None:
    if exponent.q > MAX_ROOT_DEGREE:
        parser.fail(f"a root of degree above {MAX_ROOT_DEGREE} (an exponent with a large denominator)")
    if base < 0 and exponent.q % 2 == 0:
        parser.fail("an even root of a negative number is not a real number")
    digits = max(_digit_count(base.p), _digit_count(base.q))
    if exponent.q > 1 and digits > MAX_ROOT_DIGITS:
        parser.fail(f"a root of a number with more than {MAX_ROOT_DIGITS} digits")
    if abs(exponent.p) * digits > MAX_EXACT_DIGITS:
        parser.fail(f"the exact power would have more than {MAX_EXACT_DIGITS} digits")


def _apply(function: str, argument: _Value, parser: _Parser) -> _Value:
    places = argument.places or None
    if function == "exp":
        if argument.estimate > MAX_LOG10 * math.log(10) or argument.estimate < -MAX_LOG10 * math.log(10):
            parser.fail(f"exp of a number beyond ±{round(MAX_LOG10 * math.log(10))} is out of range")
        value = _Value(sympy.exp(argument.exact), _mp.exp(argument.estimate), places)
    elif function in ("ln", "log"):
        if _is_not_positive(argument):
            parser.fail(f"{function} of a number that is not positive")
        value = _Value(sympy.log(argument.exact), _mp.log(argument.estimate), places)
    else:
        if argument.exact.is_Rational:
            _check_rational_power(argument.exact, sympy.Rational(1, 2), parser)
        if argument.exact != 0 and _is_not_positive(argument):
            parser.fail("sqrt of a negative number is not a real number")
        value = _Value(sympy.sqrt(argument.exact), _mp.sqrt(abs(argument.estimate)), places)
    _check_size(value, parser)
    return value


def _is_not_positive(value: _Value) -> bool:
    if value.exact.is_Rational:
        return value.exact <= 0
    return value.estimate <= 0


def _log10(estimate: mpmath.mpf) -> float:
    if estimate == 0:
        return 0.0
    return float(_mp.log10(abs(estimate)))


def _check_log10(log10: float, parser: _Parser) -> None:
    if abs(log10) > MAX_LOG10:
        parser.fail(f"a value in the calculation is beyond 10^±{MAX_LOG10}")


def _digit_count(integer: int) -> int:
    return max(1, math.ceil(abs(integer).bit_length() * 0.30103))


def _check_size(value: _Value, parser: _Parser) -> None:
    if value.estimate != 0:
        _check_log10(_log10(value.estimate), parser)
    exact = value.exact
    if exact.is_Rational and max(_digit_count(exact.p), _digit_count(exact.q)) > MAX_EXACT_DIGITS:
        parser.fail(f"an exact fraction in the calculation has more than {MAX_EXACT_DIGITS} digits")
