"""The values a feedback sheet shows: each part's mark, the student's answer and a worked solution.

Where a part was marked against the student's own earlier value, the worked solution
uses that value: "with your y = [0.269, 0.731], delta would be [-0.731, 0.731]".
"""

from __future__ import annotations

import re

from marker.core import submission_fields
from marker.report import MarkReport, PartResult, Verdict, mark_text

# Labels the feedback sheet uses for quantities that carry errors forward.
QUANTITY_LABELS = {"z": "z", "y": "y", "L": "L", "delta": "δ", "dL_dW": "∂L/∂W", "dL_db": "∂L/∂b",
                   "dL_dx": "∂L/∂x", "W_new": "W after the update", "b_new": "b after the update"}


def feedback_context(key: dict, answers, report: MarkReport) -> dict:
    by_question, student_id, _ = submission_fields(answers)
    places = int(key.get("decimal_places", 3))
    results = {part.id: part for part in report.parts}
    questions = []
    for question in key["questions"]:
        given = by_question.get(question["id"]) or {}
        parts = []
        for part in question["parts"]:
            result = results.get(part["id"])
            if result is None:
                continue
            parts.append({
                "id": part["id"],
                "label": part["label"],
                "verdict": str(result.verdict).replace("_", " "),
                "verdict_class": _verdict_class(result),
                "marks": f"{mark_text(result.marks)}/{mark_text(result.maximum)}",
                "answer": _shown(given.get(part["name"], "")) or "(blank)",
                "feedback": result.feedback,
                "worked": worked_solution(question, part, result, places),
            })
        if question["type"].startswith("bpe") and given.get("trace"):
            parts[0]["answer"] += " (with a trace of every step)" if parts else ""
        questions.append({"id": question["id"], "title": question["title"], "parts": parts,
                          "marks": mark_text(sum((results[p["id"]].marks for p in question["parts"]
                                                  if p["id"] in results), start=0)),
                          "maximum": mark_text(sum(p["marks"] for p in question["parts"]))})
    return {
        "title": key.get("title", "mlexam paper"),
        "paper_code": key.get("paper_code", ""),
        "student_id": student_id or report.student_id,
        "total": mark_text(report.total),
        "maximum": mark_text(report.maximum),
        "questions": questions,
    }


def worked_solution(question: dict, part: dict, result: PartResult, places: int) -> list[str]:
    """Return the lines of the worked solution of one part."""
    solution = question.get("solution", {})
    if part["kind"] == "merge_list":
        return _merge_lines(result)
    if part["kind"] in ("segmentation", "encoding"):
        if not isinstance(result.expected, dict):
            return []
        return [TokensLine(word, tokens) for word, tokens in result.expected.items()]
    if part["kind"] == "rubric" and isinstance(result.expected, list):
        return [f"Key point ({mark_text(point['marks'])} mark{'s' if point['marks'] != 1 else ''}): {point['point']}"
                for point in result.expected if isinstance(point, dict) and "point" in point and "marks" in point]
    if part["kind"] not in ("scalar", "vector", "matrix"):
        return [f"Expected: {_shown(result.expected)}"]

    lines = []
    entry = solution.get(part["name"], {}) if isinstance(solution, dict) else {}
    label = QUANTITY_LABELS.get(part["name"], part["label"])
    if entry.get("formula"):
        lines.append(f"{label} = {entry['formula']}")
    lines.append(KeyLine(label, _key_value(part["expected"]), part.get("decimal", ""),
                         f"Key: {label} = {_exact_text(part['expected'])} ≈ {_shown(part.get('decimal', ''))}"))
    working = result.working
    if working.get("carried") is not None and working.get("sources"):
        yours = ", ".join(f"{QUANTITY_LABELS.get(name, name)} = {_rounded(value, places)}"
                          for name, value in working["sources"].items())
        lines.append(f"With your {yours}, {label} would be {_rounded(working['carried'], places)}.")
    return lines


# Exact key forms longer than this are shown as decimals only: they would not fit the sheet's column.
MAX_SHOWN_EXACT_CHARS = 120
# A matrix whose widest row of exact key text is longer than this is shown as decimals only,
# because typeset it would run past the sheet's right margin (seen with 4 x 3 matrices
# of sums of fractions).
MAX_SHOWN_ROW_CHARS = 100


class TokensLine(str):
    """A worked-solution line "word: tokens" that the sheet sets with the word and tokens in monospace."""

    def __new__(cls, word: str, tokens: str):
        line = super().__new__(cls, f"{word}: {tokens}")
        line.word, line.tokens = word, tokens
        return line


class KeyLine(str):
    """The key's value of a numeric part: its text, and the exact value the sheet typesets (None if too long)."""

    def __new__(cls, label: str, exact, decimal, text: str):
        line = super().__new__(cls, text)
        line.label, line.exact, line.decimal = label, exact, decimal
        return line


def _key_value(expected):
    """Read the key's exact text into sympy for typesetting; None when it is too long or unreadable."""
    import sympy

    from marker.errors import AnswerFormatError
    from marker.mathread import read_key_scalar

    def one(text):
        if len(str(text)) > MAX_SHOWN_EXACT_CHARS:
            raise ValueError("too long to show")
        return read_key_scalar(str(text).replace("**", "^"))

    try:
        if isinstance(expected, list):
            rows = expected if expected and isinstance(expected[0], list) else [[v] for v in expected]
            if max(sum(len(str(v)) for v in row) for row in rows) > MAX_SHOWN_ROW_CHARS:
                return None
            return sympy.Matrix([[one(v) for v in row] for row in rows])
        return one(expected)
    except (AnswerFormatError, ValueError):
        return None


def _merge_lines(result: PartResult) -> list[str]:
    lines = []
    for step in result.working.get("steps", []):
        mark = "right" if step["right"] else "wrong"
        tied = ", ".join(step["tied"]) or "none (training stops)"
        lines.append(f"Step {step['step']}: you merged {step['merge'] or '(nothing)'} ({mark}); "
                     f"on your corpus the pairs tied for the maximum were {tied}.")
    if result.verdict not in (Verdict.ACCEPTED_TIE_BRANCH,):
        lines.append("Key: " + ", ".join(result.expected if isinstance(result.expected, list) else []))
    return lines


def _verdict_class(result: PartResult) -> str:
    if result.marks == result.maximum:
        return "full"
    return "partial" if result.marks > 0 else "none"


def _rounded(value, places: int) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_rounded(v, places) for v in value) + "]"
    return f"{value:.{places}f}"


def _exact_text(value) -> str:
    """Write the key's sympy text the way the paper does: e for Euler's number, not E."""
    return re.sub(r"\bE\b", "e", _shown(value))


def _shown(value) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{word}: {_shown(tokens)}" for word, tokens in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return "" if value is None else str(value)
