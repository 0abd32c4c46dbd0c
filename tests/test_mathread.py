"""Reading student numbers without eval, and comparing them with the key's exact values."""

from __future__ import annotations

import gc
import math
import time

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator.paper import build_paper
from generator.spec import bundled_spec_path, load_spec
from marker.errors import AnswerFormatError, AnswerTimeout
from marker.mathread import Reading, read_scalar, read_value
from marker.numeric import compare, compare_array, time_budget

E = sympy.E
Y1 = E / (1 + E)


@pytest.fixture(scope="module")
def practice_key() -> dict:
    return build_paper(load_spec(bundled_spec_path()), 1).key_dict()


def key_part(key: dict, part_id: str) -> dict:
    return next(part for question in key["questions"] for part in question["parts"] if part["id"] == part_id)


# ---- the course example: y1 = e/(1+e) --------------------------------------------------

@pytest.mark.parametrize("text", ["e/(1+e)", "1/(1+e^(-1))", "exp(1)/(exp(1)+1)", "E/(1 + E)",
                                  "1/(1 + exp(-1))", "e / (1 + e)", "1/(1+e**-1)"])
def test_y1_equivalent_forms_are_exact(text):
    value, places = read_scalar(text)
    assert places is None
    assert compare(value, places, "E/(1 + E)", "0.0005") == "exact"


def test_y1_decimal_within_key_tolerance(practice_key):
    part = key_part(practice_key, "q4.y")
    assert part["expected"][0] == "E/(1 + E)"
    value, places = read_scalar("0.731")
    assert value == sympy.Rational(731, 1000)
    assert places == 3
    assert compare(value, places, part["expected"][0], part["tolerance"][0]) == "within_tolerance"


def test_loss_decimal_within_carried_tolerance(practice_key):
    part = key_part(practice_key, "q4.L")
    # -log(0.731) = 0.31334..., so a student who rounded y first still writes 0.313.
    assert compare(*read_scalar("0.313"), part["expected"], part["tolerance"]) == "within_tolerance"
    assert compare(*read_scalar("log(1+e^(-1))"), part["expected"], part["tolerance"]) == "exact"
    assert compare(*read_scalar("-ln(e/(1+e))"), part["expected"], part["tolerance"]) == "exact"
    assert compare(*read_scalar("0.32"), part["expected"], part["tolerance"]) == "wrong"


def test_y2_is_wrong_for_y1():
    assert compare(*read_scalar("1/(1+e)"), "E/(1 + E)", "0.0005") == "wrong"
    assert compare(*read_scalar("0.269"), "E/(1 + E)", "0.0005") == "wrong"


def test_decimal_comma_rejected_with_fix():
    with pytest.raises(AnswerFormatError) as caught:
        read_value("0,731", "scalar")
    assert "decimal point" in str(caught.value)
    assert "0.731" in caught.value.expected
    assert caught.value.found == "'0,731'"


def test_unicode_minus_reads_exactly():
    assert read_scalar("\u22120.269") == (sympy.Rational(-269, 1000), 3)
    assert read_scalar("1 \u2212 0.269") == (sympy.Rational(731, 1000), 3)
    assert read_scalar("e^(\u22121)")[0] == sympy.exp(-1)
    reading = read_value(["\u22120.269", "0.269"], "vector", (2, 1))
    assert list(reading.value) == [sympy.Rational(-269, 1000), sympy.Rational(269, 1000)]


# ---- the grammar ----------------------------------------------------------------------

@pytest.mark.parametrize("text, value, places", [
    ("0.731", sympy.Rational(731, 1000), 3),
    ("0.1", sympy.Rational(1, 10), 1),
    (".5", sympy.Rational(1, 2), 1),
    ("3.", sympy.Integer(3), 0),
    ("7/8", sympy.Rational(7, 8), None),
    ("-3", sympy.Integer(-3), 0),
    ("1.5e-3", sympy.Rational(3, 2000), 4),
    ("2E3", sympy.Integer(2000), 0),
    ("2e-3", sympy.Rational(1, 500), 3),
    ("2e - 3", 2 * E - 3, None),
    ("2e", 2 * E, None),
    ("2(1+e)", 2 * (1 + E), None),
    ("(1+e)(2)", 2 * (1 + E), None),
    ("2exp(1)", 2 * E, None),
    ("2^3^2", sympy.Integer(512), None),
    ("2**3**2", sympy.Integer(512), None),
    ("-2^2", sympy.Integer(-4), None),
    ("2^-1", sympy.Rational(1, 2), None),
    ("sqrt(8)", 2 * sympy.sqrt(2), None),
    ("ln(2)", sympy.log(2), None),
    ("log(2)", sympy.log(2), None),
    ("10^400", sympy.Integer(10) ** 400, None),
    ("1 - 0.269", sympy.Rational(731, 1000), 3),
    ("2 \u00d7 3", sympy.Integer(6), None),
    ("  0.5\u00a0", sympy.Rational(1, 2), 1),
])
def test_scalar_forms(text, value, places):
    assert read_scalar(text) == (value, places)


def test_yaml_numbers_read_exactly():
    assert read_value(0.731, "scalar").value == sympy.Rational(731, 1000)
    assert read_value(-0.0, "scalar").value == 0
    assert read_value(-0.0, "scalar").value.is_zero
    assert read_value(3, "scalar").value == 3
    assert read_value(1e-05, "scalar").value == sympy.Rational(1, 100000)


@pytest.mark.parametrize("raw", [float("nan"), float("inf"), float("-inf"), True, None, "", "   "])
def test_yaml_non_numbers_invalid(raw):
    with pytest.raises(AnswerFormatError):
        read_value(raw, "scalar")


def test_vector_forms_agree():
    expected = sympy.Matrix([sympy.Rational(731, 1000), sympy.Rational(269, 1000)])
    for raw in ["[0.731, 0.269]", "0.731 0.269", "0.731, 0.269", "0.731; 0.269", [0.731, 0.269],
                ["0.731", "0.269"], "[0.731,0.269]", "  [ 0.731 , 0.269 ]  "]:
        reading = read_value(raw, "vector", (2, 1))
        assert reading.value == expected, raw
        assert reading.places == [3, 3], raw


def test_row_spaces_split_entries():
    assert list(read_value("1 -3", "vector", (2, 1)).value) == [1, -3]
    assert list(read_value("1 - 3", "vector", (1, 1)).value) == [-2]
    assert list(read_value("e/(1+e) 1/(1+e)", "vector", (2, 1)).value) == [Y1, 1 / (1 + E)]
    assert list(read_value("-5 -4 -5", "vector", (3, 1)).value) == [-5, -4, -5]


def test_matrix_forms_agree():
    expected = sympy.Matrix([[sympy.Rational(5, 4), 0], [-3, sympy.Rational(7, 8)]])
    for raw in ["1.25 0; -3 7/8", "[[1.25, 0], [-3, 7/8]]", [[1.25, 0], [-3, "7/8"]],
                ["1.25 0", "-3 7/8"], "1.25, 0; -3, 7/8"]:
        reading = read_value(raw, "matrix", (2, 2))
        assert reading.value == expected, raw
        assert reading.places == [[2, 0], [0, None]], raw


def test_list_commas_told_from_decimal_commas():
    assert list(read_value("[1,2]", "vector", (2, 1)).value) == [1, 2]
    for raw in ["[0,731, 0,269]", "0,731 0,269", [0, 731, 0, 269], ["0", "731", "0", "269"]]:
        with pytest.raises(AnswerFormatError) as caught:
            read_value(raw, "vector", (2, 1))
        assert "decimal point" in str(caught.value), raw


def test_mixed_commas_are_decimal_commas():
    with pytest.raises(AnswerFormatError) as caught:
        read_value("[0,5, 1, 2]", "vector", (3, 1))
    assert caught.value.expected == "a decimal point, e.g. [0.5, 1, 2]"
    with pytest.raises(AnswerFormatError, match="a comma is not a decimal point"):
        read_value("0,5, 1, 2", "vector", (3, 1))
    assert read_value("[[1,2], [3,4]]", "matrix", (2, 2)).value == sympy.Matrix([[1, 2], [3, 4]])


def test_other_shape_returned_as_read():
    reading = read_value("[1, 2, 3]", "vector", (2, 1))
    assert reading.value.shape == (3, 1)
    assert reading.text == "[1, 2, 3]"


def test_ragged_matrix_invalid():
    with pytest.raises(AnswerFormatError, match="different lengths"):
        read_value("1 2; 3", "matrix", (2, 2))


# ---- untrusted input ------------------------------------------------------------------

DANGEROUS = ["print(1)", "__import__('os').getcwd()", "(lambda: 1)()", "29^11^7", "9**9**9",
             "10^10^10", "exp(exp(exp(100)))", "10^400000000", "().__class__.__bases__",
             "open('/etc/passwd').read()", "__import__('os').system('touch SENTINEL')"]


@pytest.mark.parametrize("text", DANGEROUS)
def test_dangerous_input_invalid_and_inert(text, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    with pytest.raises(AnswerFormatError):
        read_value(text, "scalar")
    elapsed = time.perf_counter() - started
    assert capsys.readouterr() == ("", "")
    assert not (tmp_path / "SENTINEL").exists()
    # A generous guard: the caps reject these before any arithmetic, far below 1 s.
    assert elapsed < 1.0


NAMES_ALLOWED = "(allowed: digits, a decimal point, + - * / ^ ** ( ), the constant e, and the functions exp, ln, log, sqrt)"
BAD_INPUTS = [
    ("0,731", AnswerFormatError, "a comma is not a decimal point"),
    ("1,5", AnswerFormatError, "a comma is not a decimal point"),
    ("print(1)", AnswerFormatError, f"the name 'print' is not allowed {NAMES_ALLOWED}"),
    ("os", AnswerFormatError, "the name 'os' is not allowed"),
    ("x", AnswerFormatError, "the name 'x' is not allowed"),
    ("pi", AnswerFormatError, "the name 'pi' is not allowed"),
    ("lambda", AnswerFormatError, "the name 'lambda' is not allowed"),
    ("import", AnswerFormatError, "the name 'import' is not allowed"),
    ("nan", AnswerFormatError, "the name 'nan' is not allowed"),
    ("inf", AnswerFormatError, "the name 'inf' is not allowed"),
    ("Infinity", AnswerFormatError, "the name 'Infinity' is not allowed"),
    ("a.b", AnswerFormatError, "the character '.' is not allowed"),
    ("x[0]", AnswerFormatError, "a single number is expected, not a list"),
    ("'text'", AnswerFormatError, "the character \"'\" is not allowed"),
    ('"text"', AnswerFormatError, "the character '\"' is not allowed"),
    ("5!", AnswerFormatError, "the character '!' is not allowed"),
    ("1 = 1", AnswerFormatError, "the character '=' is not allowed"),
    ("$1", AnswerFormatError, "the character '$' is not allowed"),
    ("1 % 2", AnswerFormatError, "the character '%' is not allowed"),
    ("\x00", AnswerFormatError, "the character '\\x00' is not allowed"),
    ("0.5\u00b2", AnswerFormatError, "the superscript '\u00b2' is not allowed"),
    ("1/0", AnswerFormatError, "division by zero"),
    ("0^-1", AnswerFormatError, "0 to a power that is not positive is undefined"),
    ("log(0)", AnswerFormatError, "log of a number that is not positive"),
    ("ln(-1)", AnswerFormatError, "ln of a number that is not positive"),
    ("sqrt(-2)", AnswerFormatError, "an even root of a negative number is not a real number"),
    ("(-8)^(1/3)", AnswerFormatError, "the value is not a real number"),
    ("(-2)^e", AnswerFormatError, "a negative number to a fractional power is not a real number"),
    ("1 +", AnswerFormatError, "the expression ends too early"),
    ("(1", AnswerFormatError, "a ( has no matching )"),
    ("1)", AnswerFormatError, "unexpected ')' at character 2"),
    ("2^^3", AnswerFormatError, "unexpected '^' at character 3"),
    ("1 // 2", AnswerFormatError, "unexpected '/' at character 4"),
    ("exp 1", AnswerFormatError, "exp needs its argument in parentheses, e.g. exp(2)"),
    ("e(2)", AnswerFormatError, "e is a constant, not a function"),
    ("2 3", AnswerFormatError, "two numbers are next to each other"),
    ("[1, 2]", AnswerFormatError, "a single number is expected, not a list"),
    ("1; 2", AnswerFormatError, "a single number is expected, not a list"),
    ("", AnswerFormatError, "the answer is empty"),
    ("1" * 200, AnswerFormatError, "a number has more than 120 digits"),
    ("(" * 100 + "1" + ")" * 100, AnswerFormatError, "the expression is nested more than 40 levels deep"),
    ("-" * 100 + "1", AnswerFormatError, "the expression is nested more than 40 levels deep"),
    ("1" + "+1" * 700, AnswerFormatError, "the answer has more than 600 symbols"),
    ("x" * 3000, AnswerFormatError, "the answer is longer than 2000 characters"),
    ("1e99999", AnswerFormatError, "a power of ten is beyond 10^1000"),
    ("2^(1/1000)", AnswerFormatError, "a root of degree above 64"),
    ("e^5000", AnswerFormatError, "a value in the calculation is beyond 10^\u00b11000"),
    ("exp(10000)", AnswerFormatError, "exp of a number beyond \u00b12303 is out of range"),
    ("123456789^300", AnswerFormatError, "a value in the calculation is beyond 10^\u00b11000"),
    ("sqrt(10^150)", AnswerFormatError, "a root of a number with more than 100 digits"),
    ("(1/3+1/7)^3000", AnswerFormatError, "the exact power would have more than 2500 digits"),
]


@pytest.mark.parametrize("text, error_type, reason", BAD_INPUTS)
def test_bad_input_table(text, error_type, reason):
    with pytest.raises(error_type) as caught:
        read_value(text, "scalar")
    assert caught.value.reason.startswith(reason)
    assert caught.value.expected


def test_error_message_names_part():
    with pytest.raises(AnswerFormatError) as caught:
        read_value("print(1)", "scalar")
    caught.value.part = "q4.L"
    message = str(caught.value)
    assert message.startswith("part q4.L: the name 'print' is not allowed")
    assert "exp, ln, log, sqrt" in message
    assert "'print(1)'" in message


@pytest.fixture
def no_gc_callbacks():
    """Keep collection from running hypothesis's gc callback, where a timeout is discarded and retried."""
    gc.disable()
    yield
    gc.enable()


def test_time_budget_raises_timeout(no_gc_callbacks):
    with pytest.raises(AnswerTimeout):
        with time_budget(0.05):
            while True:
                pass


def test_time_budget_keeps_outer_budget(no_gc_callbacks):
    with pytest.raises(AnswerTimeout):
        with time_budget(0.1):
            with time_budget(5):
                pass
            while True:
                pass


GRAMMAR_TEXT = st.text(alphabet="0123456789.,;+-*/^() eE[]lnogxpsqrt\u2212", max_size=40)


@settings(max_examples=400, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), GRAMMAR_TEXT), st.sampled_from(["scalar", "vector", "matrix"]))
def test_read_value_raises_only_format_errors(text, kind):
    try:
        reading = read_value(text, kind, (2, 1) if kind == "vector" else (2, 2) if kind == "matrix" else None)
    except AnswerFormatError:
        return
    assert isinstance(reading, Reading)
    assert reading.value.is_real if kind == "scalar" else all(entry.is_real for entry in reading.value)


# ---- comparing with the key -----------------------------------------------------------

@pytest.mark.parametrize("student, verdict", [
    ("0.74", "within_tolerance"), ("0.72", "within_tolerance"), ("0.7401", "wrong"), ("0.7199", "wrong"),
    ("0.73", "exact"), ("73/100", "exact"), ("0.730", "exact"),
])
def test_tolerance_interval_closed(student, verdict):
    assert compare(*read_scalar(student), "73/100", "0.01") == verdict


def test_tolerance_boundary_with_transcendental_key():
    # y1 + 0.0005 lies exactly on the boundary, so it is accepted; a hair beyond is not.
    assert compare(*read_scalar("e/(1+e) + 0.0005"), "E/(1 + E)", "0.0005") == "within_tolerance"
    assert compare(*read_scalar("e/(1+e) + 0.0005000001"), "E/(1 + E)", "0.0005") == "wrong"


def test_no_tolerance_means_exact_only():
    assert compare(*read_scalar("0.731"), "E/(1 + E)", None) == "wrong"
    assert compare(*read_scalar("e/(1+e)"), "E/(1 + E)", None) == "exact"


def test_long_decimal_of_transcendental_not_exact():
    digits = format(sympy.N(Y1, 60), "f")[:55]
    assert compare(*read_scalar(digits), "E/(1 + E)", "0.0005") == "within_tolerance"


def test_compare_array_verdicts(practice_key):
    part = key_part(practice_key, "q4.dL_dW")
    good = read_value("-0.269 -0.538; 0.269 0.538", "matrix", (2, 2))
    assert compare_array(good, part["expected"], part["tolerance"]) == (
        "within_tolerance", [["within_tolerance", "within_tolerance"], ["within_tolerance", "within_tolerance"]])
    transposed = read_value("-0.269 0.269; -0.538 0.538", "matrix", (2, 2))
    assert compare_array(transposed, part["expected"], part["tolerance"])[0] == "transposed"
    sign_slip = read_value("0.269 0.538; -0.269 -0.538", "matrix", (2, 2))
    assert compare_array(sign_slip, part["expected"], part["tolerance"]) == (
        "wrong", [["wrong", "wrong"], ["wrong", "wrong"]])
    short = read_value("[[1, 2, 3]]", "matrix", (2, 2))
    assert compare_array(short, part["expected"], part["tolerance"]) == ("shape", None)


def test_compare_array_vector_entries(practice_key):
    part = key_part(practice_key, "q4.y")
    reading = read_value("[e/(1+e), 0.2]", "vector", (2, 1))
    assert compare_array(reading, part["expected"], part["tolerance"]) == ("wrong", ["exact", "wrong"])
    exact = read_value(["e/(1+e)", "1/(1+e)"], "vector", (2, 1))
    assert compare_array(exact, part["expected"], part["tolerance"]) == ("exact", ["exact", "exact"])


def test_non_square_transpose_recognised():
    expected = [["1", "2", "3"], ["4", "5", "6"]]
    reading = read_value("1 4; 2 5; 3 6", "matrix", (2, 3))
    assert compare_array(reading, expected, "0") == (
        "transposed", [["exact", "exact", "exact"], ["exact", "exact", "exact"]])


def test_huge_exact_values_compare():
    value, places = read_scalar("10^400")
    assert value == 10 ** 400
    assert compare(value, places, sympy.Integer(10) ** 400, "0") == "exact"
    assert math.isclose(float(sympy.N(value / sympy.Integer(10) ** 399)), 10.0)


def test_decimal_comma_suggestions():
    with pytest.raises(AnswerFormatError) as caught:
        read_value(["0", "731", "0", "269"], "vector", (2, 1))
    assert caught.value.expected == "a decimal point, e.g. [0.731, 0.269]"
    with pytest.raises(AnswerFormatError) as caught:
        read_value([[0, 269, 0, 538], [0, 269, 0, 538]], "matrix", (2, 2))
    assert caught.value.expected == "a decimal point, e.g. [[0.269, 0.538], [0.269, 0.538]]"
    with pytest.raises(AnswerFormatError) as caught:
        read_value("[-0,269, 0,269]", "vector", (2, 1))
    assert caught.value.expected == "a decimal point, e.g. [-0.269, 0.269]"


def test_unicode_minus_in_exponent():
    assert read_scalar("1.5e\u22123") == (sympy.Rational(3, 2000), 4)


@pytest.mark.parametrize("raw, kind, reason", [
    ("[1, , 2]", "vector", "entry 2 is empty"),
    ([[1, ""], [2, 3]], "matrix", "entry 2 of row 1 is empty"),
    ("e\u00b2", "scalar", "the superscript '\u00b2' is not allowed"),
    ("[[1, 2], 3]", "matrix", "each row of a matrix must be in [ ]"),
    ([[1, [2]], [3, 4]], "matrix", "the list is nested more than two levels deep"),
    ("1 2; 3 4", "vector", "a vector is expected, not a matrix"),
])
def test_list_format_messages(raw, kind, reason):
    with pytest.raises(AnswerFormatError) as caught:
        read_value(raw, kind)
    assert caught.value.reason == reason


def test_read_over_budget_times_out(monkeypatch, no_gc_callbacks):
    import marker.mathread

    monkeypatch.setattr(marker.mathread, "READ_SECONDS", 0.0002)
    with pytest.raises(AnswerTimeout) as caught:
        read_value(" + ".join(["sqrt(e/(1+e)) * log(7/3)"] * 25), "scalar")
    assert "timed out" in caught.value.reason
    monkeypatch.undo()
    assert read_value("0.5", "scalar").value == sympy.Rational(1, 2)


def test_non_ascii_digits_invalid():
    with pytest.raises(AnswerFormatError) as caught:
        read_value("\uff11.5", "scalar")
    assert caught.value.reason == "the digit '\uff11' is not one of the ASCII digits 0-9"
