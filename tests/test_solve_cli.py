"""`mlexam solve bpe` and `mlexam solve backprop` against independent solutions, and their usage errors."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal

import mpmath
import pytest
import sympy
from click.testing import CliRunner

from mlexam.cli import main
from reference_bpe import reference_encode, reference_train

DIGITS = 50
# Exact values printed by the CLI are compared with mpmath's at 50 digits.
VALUE_TOLERANCE = mpmath.mpf(10) ** -40


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), prog_name="mlexam")


# solve bpe

def random_bpe_problem(seed: int) -> dict:
    """Draw a corpus over a small alphabet, conventions, a stopping rule and words to encode."""
    rng = random.Random(9000 + seed)
    alphabet = rng.choice(["abc", "abcd", "lowe"])
    words: dict[str, int] = {}
    for _ in range(rng.randint(1, 5)):
        words["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))] = rng.randint(1, 9)
    return {
        "words": list(words.items()),
        "end_of_word": rng.choice(["separate", "attached", "none"]),
        "tie_rule": rng.choice(["first", "lexicographic"]),
        "merges": rng.randint(0, 8),
        "encode": sorted({"".join(rng.choice(alphabet + "z") for _ in range(rng.randint(1, 6))) for _ in range(3)}),
    }


def bpe_args(problem: dict) -> list[str]:
    args = ["solve", "bpe", *(f"{word}:{count}" for word, count in problem["words"]),
            "--merges", str(problem["merges"]), "--end-of-word", problem["end_of_word"],
            "--tie-rule", problem["tie_rule"]]
    for word in problem["encode"]:
        args += ["--encode", word]
    return args


def pair(text: str) -> tuple[str, str]:
    first, second = text.split(" ")
    return first, second


@pytest.mark.parametrize("seed", range(40))
def test_solve_bpe_json_matches_reference(seed):
    problem = random_bpe_problem(seed)
    result = run_cli(*bpe_args(problem), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)

    reference = reference_train(problem["words"], num_merges=problem["merges"],
                                end_of_word=problem["end_of_word"], tie_rule=problem["tie_rule"])
    assert [pair(p) for p in data["merges"]] == reference.merges
    assert data["initial_corpus"] == reference.initial_corpus
    assert len(data["steps"]) == len(reference.steps)
    for step, expected in zip(data["steps"], reference.steps, strict=True):
        assert [(pair(p), count) for p, count in step["pair_counts"]] == expected.counts
        assert [pair(p) for p in step["tied"]] == expected.tied
        assert step["corpus_after"] == expected.corpus_after
    final = reference.steps[-1].corpus_after if reference.steps else reference.initial_corpus
    assert data["segmentation"] == {word: segmentation for (word, _), segmentation in zip(problem["words"], final)}
    assert data["vocab_size"] == {"initial": len(reference.initial_vocab), "final": len(reference.vocab)}
    assert data["encodings"] == {
        word: " ".join(reference_encode(word, reference.merges, problem["end_of_word"]))
        for word in problem["encode"]}


def test_solve_bpe_vocab_size_stops_at_target():
    result = run_cli("solve", "bpe", "low:5", "lower:2", "newest:6", "widest:3", "--vocab-size", "14", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)

    reference = reference_train([("low", 5), ("lower", 2), ("newest", 6), ("widest", 3)], target_vocab=14)
    assert [pair(p) for p in data["merges"]] == reference.merges
    assert data["vocab_size"] == {"initial": 11, "final": 14}


def test_solve_bpe_text_shows_steps():
    result = run_cli("solve", "bpe", "low lowish", "--merges", "2", "--encode", "lowly")
    assert result.exit_code == 0, result.output

    lines = result.stdout.splitlines()
    assert "Step 1: pair counts" in lines
    assert "Step 2: pair counts" in lines
    assert "  tie at 2 between 2 pairs: l o, o w" in lines
    assert "  merge: l o -> lo" in lines
    assert "  corpus: lo w </w>, lo w i s h </w>" in lines
    assert "  merge: lo w -> low" in lines
    assert "  lowish: low i s h </w>" in lines
    assert "  lowly: low l y </w>" in lines


# solve backprop

def random_backprop_problem(seed: int) -> dict:
    rng = random.Random(11000 + seed)
    K, D = rng.randint(2, 4), rng.randint(1, 3)

    def number() -> sympy.Rational:
        return sympy.Rational(rng.randint(-4, 4), rng.choice([1, 1, 2, 4]))

    return {
        "W": [[number() for _ in range(D)] for _ in range(K)],
        "x": [number() for _ in range(D)],
        "b": [number() for _ in range(K)],
        "target": rng.randrange(K),
        "lr": rng.choice([sympy.Rational(1, 10), sympy.Rational(1, 2), sympy.Rational(1, 4)]),
        "places": rng.choice([2, 3, 4]),
    }


def backprop_args(problem: dict) -> list[str]:
    K = len(problem["W"])
    return ["solve", "backprop",
            "--W", "; ".join(" ".join(str(v) for v in row) for row in problem["W"]),
            "--x", " ".join(str(v) for v in problem["x"]),
            "--b", ", ".join(str(v) for v in problem["b"]),
            "--target", " ".join("1" if i == problem["target"] else "0" for i in range(K)),
            "--lr", str(problem["lr"]), "--places", str(problem["places"])]


def expected_backprop(problem: dict) -> dict:
    """Compute every quantity in mpmath from the definitions: z = W x + b, y = softmax(z),
    L = -log y_t, delta = y - t, dL/dW = delta x^T, dL/db = delta, dL/dx = W^T delta, SGD."""
    W = [[mpmath.mpf(v.p) / v.q for v in row] for row in problem["W"]]
    x = [mpmath.mpf(v.p) / v.q for v in problem["x"]]
    b = [mpmath.mpf(v.p) / v.q for v in problem["b"]]
    eta = mpmath.mpf(problem["lr"].p) / problem["lr"].q
    K, D, t = len(W), len(x), problem["target"]

    z = [mpmath.fsum(W[i][j] * x[j] for j in range(D)) + b[i] for i in range(K)]
    total = mpmath.fsum(mpmath.exp(v) for v in z)
    y = [mpmath.exp(v) / total for v in z]
    delta = [y[i] - (1 if i == t else 0) for i in range(K)]
    dW = [[delta[i] * x[j] for j in range(D)] for i in range(K)]
    return {
        "z": z, "y": y, "L": -mpmath.log(y[t]), "delta": delta, "dL_dW": dW, "dL_db": delta,
        "dL_dx": [mpmath.fsum(W[i][j] * delta[i] for i in range(K)) for j in range(D)],
        "W_new": [[W[i][j] - eta * dW[i][j] for j in range(D)] for i in range(K)],
        "b_new": [b[i] - eta * delta[i] for i in range(K)],
    }


def rounded(value, places: int) -> str:
    """Round half away from zero, the rule the solver states, and never write -0."""
    text = format(Decimal(mpmath.nstr(value, DIGITS, min_fixed=-100, max_fixed=100)).quantize(
        Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP), "f")
    return text[1:] if text.startswith("-") and set(text[1:]) <= {"0", "."} else text


def flatten(value) -> list:
    return [v for item in value for v in flatten(item)] if isinstance(value, list) else [value]


def assert_backprop_json(data: dict, problem: dict) -> None:
    expected = expected_backprop(problem)
    assert set(data["quantities"]) == set(expected)
    assert data["decimal_places"] == problem["places"]
    for name, values in expected.items():
        quantity = data["quantities"][name]
        # Exact strings are sympy's own output, so the test may parse them.
        exact = [sympy.sympify(text) for text in flatten(quantity["exact"])]
        for text_value, value in zip(exact, flatten(values), strict=True):
            assert abs(mpmath.mpf(str(sympy.N(text_value, DIGITS))) - value) < VALUE_TOLERANCE, name
        assert flatten(quantity["decimal"]) == [rounded(v, problem["places"]) for v in flatten(values)], name


@pytest.mark.parametrize("seed", range(30))
def test_solve_backprop_json_matches_definitions(seed):
    problem = random_backprop_problem(seed)
    result = run_cli(*backprop_args(problem), "--json")
    assert result.exit_code == 0, result.output

    with mpmath.workdps(DIGITS):
        assert_backprop_json(json.loads(result.stdout), problem)


def test_solve_backprop_target_class_number():
    by_number = run_cli("solve", "backprop", "--W", "1 0; 2 -1", "--x", "1 2", "--target", "2", "--json")
    one_hot = run_cli("solve", "backprop", "--W", "1 0; 2 -1", "--x", "1 2", "--target", "0 1", "--json")
    assert by_number.exit_code == 0, by_number.output
    assert json.loads(by_number.stdout) == json.loads(one_hot.stdout)
    assert json.loads(by_number.stdout)["problem"]["target"] == 1


def test_solve_backprop_text_shows_steps():
    result = run_cli("solve", "backprop", "--W", "[[1, 0], [2, -1]]", "--x", "[1, 2]", "--target", "1 0")
    assert result.exit_code == 0, result.output

    lines = result.stdout.splitlines()
    assert "z = W x + b" in lines
    assert "δ = ∂L/∂z = y − t" in lines
    assert "  decimal: [-0.269, 0.269]" in lines
    assert "  decimal: [[-0.269, -0.538], [0.269, 0.538]]" in lines
    assert "  decimal: 0.313" in lines


def test_solve_backprop_subprocess():
    problem = random_backprop_problem(99)
    completed = subprocess.run([sys.executable, "-m", "mlexam", *backprop_args(problem), "--json"],
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr

    with mpmath.workdps(DIGITS):
        assert_backprop_json(json.loads(completed.stdout), problem)


# Usage errors

BACKPROP_OK = {"--W": "1 0; 2 -1", "--x": "1 2", "--b": "0 0", "--target": "1 0"}

BAD_ARGUMENTS = [
    # (arguments, text that names the argument)
    (["solve", "bpe", "low", "lower"], "--merges"),
    (["solve", "bpe", "low:x", "lower:2", "--merges", "2"], "CORPUS"),
    (["solve", "bpe", "low:0", "--merges", "2"], "CORPUS"),
    (["solve", "bpe", "low", "lower:2", "--merges", "2"], "CORPUS"),
    (["solve", "backprop", *sum(([k, v] for k, v in {**BACKPROP_OK, "--target": "1 1"}.items()), [])], "--target"),
    (["solve", "backprop", *sum(([k, v] for k, v in {**BACKPROP_OK, "--target": "0 0"}.items()), [])], "--target"),
    (["solve", "backprop", *sum(([k, v] for k, v in {**BACKPROP_OK, "--target": "3"}.items()), [])], "--target"),
    (["solve", "backprop", *sum(([k, v] for k, v in {**BACKPROP_OK, "--W": "1 0; 2"}.items()), [])], "--W"),
    (["solve", "backprop", *sum(([k, v] for k, v in {**BACKPROP_OK, "--x": "1 2 3"}.items()), [])], "--x"),
    (["solve", "backprop", *sum(([k, v] for k, v in {**BACKPROP_OK, "--b": "0 0 0"}.items()), [])], "--b"),
    (["solve", "backprop", *sum(([k, v] for k, v in {**BACKPROP_OK, "--W": "1/0 0; 2 -1"}.items()), [])], "--W"),
    (["solve", "backprop", *sum(([k, v] for k, v in {**BACKPROP_OK, "--x": "1 two"}.items()), [])], "--x"),
    (["solve", "backprop", *sum(([k, v] for k, v in BACKPROP_OK.items()), []), "--lr", "0"], "--lr"),
    (["solve", "backprop", *sum(([k, v] for k, v in BACKPROP_OK.items()), []), "--lr", "1/0"], "--lr"),
]


@pytest.mark.parametrize("args, names", BAD_ARGUMENTS, ids=lambda value: " ".join(value) if isinstance(value, list) else value)
def test_bad_arguments_are_usage_errors(args, names):
    result = run_cli(*args)

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "Usage: mlexam solve" in result.output
    message = result.output.split("Error:", 1)[1].splitlines()[0]
    assert names in message
    assert "Example: mlexam solve" in result.output


def test_bad_argument_subprocess_has_no_traceback():
    completed = subprocess.run([sys.executable, "-m", "mlexam", "solve", "backprop", "--W", "1 0; 2",
                                "--x", "1 2", "--target", "1 0"],
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "Invalid value for --W" in completed.stderr
    assert "Example: mlexam solve backprop" in completed.stderr
