"""Conceptual questions from question_banks/conceptual.yaml: choice, true/false, numeric and short answer.

A spec asks for one bank question by id ({type: concept, id: bptt_memory}) or draws
distinct questions of a topic ({type: concept, topic: gradients, count: 2}). Each bank
question becomes one part of the paper's question. Numeric questions fill their
parameters from the bank's lists and compute the answer exactly with a named formula.
"""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np
import sympy

from generator.errors import InputFileError, ProblemError
from generator.exact import decimal_text, exact_text
from generator.question import Part, Question
from mlexam.resources import resource_path

log = logging.getLogger(__name__)

BANK_FORMAT = "mlexam-conceptual"
BANK_VERSIONS = {1}
KINDS = ("choice", "true_false", "numeric", "short")
TOPICS = ("bpe", "bptt", "attention", "gradients", "remedies")
MAX_OPTIONS = 5
DEFAULT_DECIMAL_PLACES = 3

ITEM_FIELDS = {
    "choice": {"id", "topic", "kind", "marks", "text", "options", "explanation"},
    "true_false": {"id", "topic", "kind", "marks", "text", "answer", "explanation"},
    "numeric": {"id", "topic", "kind", "marks", "text", "formula", "params", "decimal_places", "explanation"},
    "short": {"id", "topic", "kind", "text", "rubric", "explanation"},
}
REQUIRED_FIELDS = {
    "choice": ("id", "topic", "kind", "marks", "text", "options"),
    "true_false": ("id", "topic", "kind", "marks", "text", "answer"),
    "numeric": ("id", "topic", "kind", "marks", "text", "formula", "params"),
    "short": ("id", "topic", "kind", "text", "rubric"),
}


@dataclass(frozen=True)
class Formula:
    """A named computation of a numeric question; params are exact sympy numbers."""

    params: tuple[str, ...]
    compute: Callable[[dict], sympy.Basic]
    counted: str  # what the formula counts, for the worked solution


FORMULAS = {
    "bptt_hidden_states": Formula(
        ("T", "B", "h", "bytes"), lambda p: p["T"] * p["B"] * p["h"] * p["bytes"],
        "T x B x h x bytes"),
    "attention_weights": Formula(
        ("N", "L", "H", "bytes"), lambda p: p["N"] * p["N"] * p["H"] * p["L"] * p["bytes"],
        "N x N x H x L x bytes"),
    "attention_with_qkv": Formula(
        ("N", "L", "d", "bytes"), lambda p: p["L"] * (p["N"] * p["N"] + 3 * p["N"] * p["d"]) * p["bytes"],
        "L x (N x N + 3 x N x d) x bytes"),
    "repeated_product": Formula(("factor", "n"), lambda p: p["factor"] ** p["n"], "factor^n"),
}

CHOICE_LETTERS = "ABCDE"
CHOICE_FORM = 'one or more option letters, e.g. "B" or "A, D"'
INTEGER_FORM = "a whole number, e.g. 4096"
SCALAR_FORM = "a decimal number, e.g. 0.125"
RUBRIC_FORM = "a few sentences of plain text"


# Loading and checking the bank

def bank_path() -> Path:
    return resource_path("question_banks", "conceptual.yaml")


@cache
def load_bank(path: Path | None = None) -> dict[str, dict]:
    """Read and validate the bank; return its questions by id, or raise InputFileError listing every mistake."""
    from generator.spec import load_yaml_with_lines

    path = Path(path or bank_path())
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(path, [f"cannot read the question bank: {error}"]) from None
    data, lines = load_yaml_with_lines(text, str(path))
    problems = validate_bank(data, lines)
    if problems:
        raise InputFileError(path, problems)
    return {item["id"]: item for item in data["questions"]}


def validate_bank(data: object, lines: dict[tuple, int]) -> list[str]:
    """Return one message per mistake in a bank, each with its line and field."""
    problems: list[str] = []

    def report(path: tuple, message: str) -> None:
        line = lines.get(path) or lines.get(path[:-1]) or lines.get(path[:-2]) or 1
        field = ".".join(str(p) for p in path) or "(top level)"
        problems.append(f"line {line}: {field}: {message}")

    if not isinstance(data, dict):
        report((), f"a question bank is a YAML mapping with format: {BANK_FORMAT} and questions")
        return problems
    for key in data:
        if key not in ("format", "format_version", "questions"):
            report((key,), "unknown field; allowed: format, format_version, questions")
    if data.get("format") != BANK_FORMAT:
        report(("format",), f"must be {BANK_FORMAT!r}, found {data.get('format')!r}")
    if data.get("format_version") not in BANK_VERSIONS:
        report(("format_version",), f"unsupported version {data.get('format_version')!r}; supported: 1")
    questions = data.get("questions")
    if not isinstance(questions, list) or not questions:
        report(("questions",), "missing or empty; list at least one question")
        return problems
    seen: set[str] = set()
    for index, item in enumerate(questions):
        _validate_item(item, ("questions", index), report, seen)
    return problems


def _validate_item(item: object, path: tuple, report, seen: set[str]) -> None:
    if not isinstance(item, dict):
        report(path, "a question is a mapping with id, topic, kind and text")
        return
    kind = item.get("kind")
    if kind not in KINDS:
        report(path + ("kind",), f"must be one of {', '.join(KINDS)}, found {kind!r}")
        return
    for key in item:
        if key not in ITEM_FIELDS[kind]:
            report(path + (key,), f"unknown field for a {kind} question; allowed: {', '.join(sorted(ITEM_FIELDS[kind]))}")
    for key in REQUIRED_FIELDS[kind]:
        if key not in item:
            report(path, f"missing {key!r}; a {kind} question needs {', '.join(REQUIRED_FIELDS[kind])}")

    # Identity and text.
    qid = item.get("id")
    if not isinstance(qid, str) or not qid.isidentifier():
        report(path + ("id",), f"must be a name of letters, digits and underscores, found {qid!r}")
    elif qid in seen:
        report(path + ("id",), f"duplicate id {qid!r}; every question needs its own id")
    else:
        seen.add(qid)
    if "topic" in item and item["topic"] not in TOPICS:
        report(path + ("topic",), f"must be one of {', '.join(TOPICS)}, found {item['topic']!r}")
    if "marks" in item and not (_is_int(item["marks"]) and item["marks"] >= 1):
        report(path + ("marks",), f"must be a whole number of 1 or more, found {item['marks']!r}")
    if "text" in item and (not isinstance(item["text"], str) or not item["text"].strip()):
        report(path + ("text",), "must be non-empty text")

    # Kind-specific fields.
    if kind == "choice" and "options" in item:
        _validate_options(item["options"], path + ("options",), report)
    if kind == "true_false" and "answer" in item and not isinstance(item["answer"], bool):
        report(path + ("answer",), f"must be true or false, found {item['answer']!r}")
    if kind == "numeric":
        _validate_numeric(item, path, report)
    if kind == "short" and "rubric" in item:
        _validate_rubric(item["rubric"], path + ("rubric",), report)


def _validate_options(options: object, path: tuple, report) -> None:
    if not isinstance(options, list) or not 2 <= len(options) <= MAX_OPTIONS:
        report(path, f"must list 2 to {MAX_OPTIONS} options, each {{text: ..., correct: true or false}}")
        return
    texts = []
    for index, option in enumerate(options):
        if not isinstance(option, dict) or set(option) != {"text", "correct"}:
            report(path + (index,), "must be a mapping with exactly text and correct")
            continue
        if not isinstance(option["text"], str) or not option["text"].strip():
            report(path + (index, "text"), "must be non-empty text")
        if not isinstance(option["correct"], bool):
            report(path + (index, "correct"), f"must be true or false, found {option['correct']!r}")
        texts.append(option["text"])
    if len(set(texts)) != len(texts):
        report(path, "two options have the same text")
    if not any(isinstance(o, dict) and o.get("correct") is True for o in options):
        report(path, "no option is marked correct: true")


def _validate_numeric(item: dict, path: tuple, report) -> None:
    formula = FORMULAS.get(item.get("formula"))
    if "formula" in item and formula is None:
        report(path + ("formula",), f"unknown formula {item['formula']!r}; allowed: {', '.join(FORMULAS)}")
    params = item.get("params")
    if "params" in item:
        if not isinstance(params, dict):
            report(path + ("params",), "must map each parameter to a list of values, e.g. {N: [128, 256]}")
            params = None
        else:
            for name, values in params.items():
                if not isinstance(values, list) or not values or not all(_is_number(v) for v in values):
                    report(path + ("params", name), "must be a non-empty list of whole numbers or decimal strings")
    if formula is not None and isinstance(params, dict):
        missing = [name for name in formula.params if name not in params]
        if missing:
            report(path + ("params",), f"missing {', '.join(missing)}; formula {item['formula']} needs {', '.join(formula.params)}")
    if "decimal_places" in item and not (_is_int(item["decimal_places"]) and 0 <= item["decimal_places"] <= 8):
        report(path + ("decimal_places",), f"must be a whole number from 0 to 8, found {item['decimal_places']!r}")
    names = set(params or {}) | {"places"}
    for field in ("text", "explanation"):
        if isinstance(item.get(field), str):
            for placeholder in _placeholders(item[field]):
                if placeholder not in names:
                    report(path + (field,), f"placeholder {{{placeholder}}} is not a parameter; use one of {', '.join(sorted(names))}")


def _validate_rubric(rubric: object, path: tuple, report) -> None:
    if not isinstance(rubric, list) or not rubric:
        report(path, "must list key points, each {point: ..., marks: ..., phrases: [...]}")
        return
    for index, point in enumerate(rubric):
        if not isinstance(point, dict):
            report(path + (index,), "must be a mapping with point, marks and phrases")
            continue
        for key in point:
            if key not in ("point", "marks", "phrases"):
                report(path + (index, key), "unknown field; allowed: point, marks, phrases")
        if not isinstance(point.get("point"), str) or not point.get("point", "").strip():
            report(path + (index, "point"), "must be non-empty text naming the key point")
        if not (_is_int(point.get("marks")) and point["marks"] >= 1):
            report(path + (index, "marks"), f"must be a whole number of 1 or more, found {point.get('marks')!r}")
        phrases = point.get("phrases")
        if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
            report(path + (index, "phrases"), "must be a non-empty list of phrases that show the key point")


def _placeholders(text: str) -> list[str]:
    """Return the {name} placeholders of a text; a bad brace gives the whole text as one bad name."""
    try:
        return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        return [text]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if _is_int(value):
        return True
    if isinstance(value, str):
        try:
            Decimal(value)
        except ArithmeticError:
            return False
        return True
    return False


# Choosing and building questions

def select_items(spec: dict, rng: np.random.Generator, bank: dict[str, dict]) -> list[dict]:
    """Return the bank questions a spec entry asks for: one by id, or count distinct ones of a topic."""
    if "id" in spec:
        return [bank[spec["id"]]]
    pool = [item for item in bank.values() if item["topic"] == spec["topic"]]
    count = int(spec.get("count", 1))
    if count > len(pool):
        raise ProblemError(f"concept count for topic {spec['topic']}", count, f"at most {len(pool)}")
    return [pool[i] for i in sorted(rng.choice(len(pool), size=count, replace=False))]


def build_concept(qid: str, spec: dict, rng: np.random.Generator, places: int) -> Question:
    bank = load_bank()
    items = select_items(spec, rng, bank)
    places = int(spec.get("decimal_places", places))
    marks = spec.get("marks", {})
    parts, shown, solutions = [], [], []
    for item in items:
        part, view, solution = _build_item(qid, item, rng, places, marks.get(item["id"]))
        parts.append(part)
        shown.append(view)
        solutions.append(solution)
    topics = sorted({item["topic"] for item in items})
    title = spec.get("title", "Concepts: " + ", ".join(TOPIC_TITLES[t] for t in topics))
    return Question(qid, "concept", title, "bank", {"decimal_places": places}, {"items": shown}, parts,
                    solutions, {"items": solutions})


TOPIC_TITLES = {"bpe": "byte-pair encoding", "bptt": "backpropagation through time",
                "attention": "attention memory", "gradients": "exploding and vanishing gradients",
                "remedies": "remedies for unstable gradients"}


def _build_item(qid: str, item: dict, rng: np.random.Generator, places: int, marks: int | None):
    """Return the Part, the view the paper shows, and the worked answer of one bank question."""
    part_id = f"{qid}.{item['id']}"
    kind = item["kind"]
    view = {"id": item["id"], "kind": kind, "text": item["text"].strip()}
    solution = {"id": item["id"], "kind": kind, "explanation": str(item.get("explanation", "")).strip()}

    if kind in ("choice", "true_false"):
        if kind == "choice":
            order = rng.permutation(len(item["options"]))
            options = [item["options"][i] for i in order]
        else:
            options = [{"text": "True", "correct": item["answer"]}, {"text": "False", "correct": not item["answer"]}]
        letters = [CHOICE_LETTERS[i] for i, option in enumerate(options) if option["correct"]]
        view["options"] = [{"letter": CHOICE_LETTERS[i], "text": o["text"]} for i, o in enumerate(options)]
        view["select_all"] = len(letters) > 1
        accepted = [o["text"].lower() for o in options if o["correct"]] if kind == "true_false" else None
        part = Part(part_id, item["id"], _label(item), "choice", int(marks or item["marks"]), CHOICE_FORM,
                    ", ".join(letters), accepted=accepted)
        solution["answer"] = ", ".join(letters)
        solution["options"] = [{"letter": CHOICE_LETTERS[i], "text": o["text"], "correct": o["correct"]}
                               for i, o in enumerate(options)]
        return part, view, solution

    if kind == "numeric":
        return _build_numeric(part_id, item, rng, places, marks, view, solution)

    rubric = [{"point": p["point"], "marks": p["marks"], "phrases": list(p["phrases"])} for p in item["rubric"]]
    part = Part(part_id, item["id"], _label(item), "rubric", sum(p["marks"] for p in rubric), RUBRIC_FORM, rubric)
    solution["rubric"] = rubric
    return part, view, solution


def _build_numeric(part_id, item, rng, places, marks, view, solution):
    formula = FORMULAS[item["formula"]]
    drawn = {name: values[int(rng.integers(len(values)))] for name, values in item["params"].items()}
    exact = {name: sympy.Rational(str(value)) for name, value in drawn.items()}
    value = sympy.nsimplify(formula.compute(exact))
    item_places = int(item.get("decimal_places", places))
    filled = {**{name: str(v) for name, v in drawn.items()}, "places": item_places}
    view["text"] = item["text"].strip().format_map(filled)
    solution["explanation"] = str(item.get("explanation", "")).strip().format_map(filled)
    solution["params"] = {name: str(v) for name, v in drawn.items()}
    solution["formula"] = formula.counted
    if value.is_integer:
        part = Part(part_id, item["id"], _label(item), "integer", int(marks or item["marks"]), INTEGER_FORM, int(value))
        solution["answer"] = str(int(value))
        return part, view, solution
    # Half a unit in the last requested place: the answer is one rounding of an exact value.
    tolerance = format(Decimal(5).scaleb(-item_places - 1), "f")
    decimal = decimal_text(value, item_places)
    part = Part(part_id, item["id"], _label(item), "scalar", int(marks or item["marks"]),
                f"{SCALAR_FORM}, to {item_places} decimal places", exact_text(value), decimal, tolerance)
    solution["answer"] = f"{exact_text(value)} ≈ {decimal}"
    return part, view, solution


def _label(item: dict) -> str:
    words = {"choice": "Multiple choice", "true_false": "True or false", "numeric": "Numeric answer",
             "short": "Short answer"}
    return f"{words[item['kind']]}: {item['id'].replace('_', ' ')}"
