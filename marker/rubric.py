"""Marking of choice, whole-number and short-answer parts.

Each `mark_*` function takes the part's key entry and the student's raw answer and
returns (verdict, marks, feedback). A blank answer is "missing", an answer of the
wrong form is "invalid" with a message on the expected form, and never earns marks.

    >>> mark_choice({"expected": "A, C", "marks": 2}, "c, a")
    ('correct', Fraction(2, 1), 'Right: A, C.')
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Callable

from marker.report import PartResult, Verdict

# Answers are cut to this many characters before matching, so a pasted essay cannot
# slow the marker down; a short answer on a paper is a few sentences.
MAX_ANSWER_CHARS = 2000
# Whole numbers on a paper (bytes of attention memory) stay far below this many digits.
MAX_INTEGER_DIGITS = 40

_LETTERS = re.compile(r"\(?\b([A-Ea-e])\b\)?\.?")
_SEPARATORS = re.compile(r"[\s,;/&]+|\band\b", re.IGNORECASE)
_INTEGER = re.compile(r"[+\-\u2212]?[0-9][0-9 _\u2009]*(\.0*)?")

MarkResult = tuple[str, Fraction, str]


def _field(part, name: str, default=None):
    if isinstance(part, dict):
        return part.get(name, default)
    return getattr(part, name, default)


def _is_blank(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip()) or raw == []


# Multiple choice and true/false

def read_letters(raw: str) -> set[str] | None:
    """Read option letters such as "A", "(b)", "A, C" or "a and d"; return None when other text is present."""
    letters = set()
    for piece in _SEPARATORS.split(raw.strip()):
        if not piece:
            continue
        match = _LETTERS.fullmatch(piece)
        if match is None:
            return None
        letters.add(match.group(1).upper())
    return letters


def mark_choice(part, raw: object) -> MarkResult:
    """Mark option letters: full marks only for exactly the set of correct letters.

    A true/false part also accepts the words true and false, listed in the part's `accepted`.
    """
    maximum = Fraction(_field(part, "marks", 0))
    expected = {letter.strip() for letter in str(_field(part, "expected", "")).split(",") if letter.strip()}
    shown = ", ".join(sorted(expected))
    if _is_blank(raw):
        return Verdict.MISSING.value, Fraction(0), "No answer given."
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        raw = ", ".join(raw)
    if not isinstance(raw, str):
        return Verdict.INVALID.value, Fraction(0), 'Write option letters as text, e.g. "B" or "A, D".'
    text = raw[:MAX_ANSWER_CHARS].strip()
    accepted = [str(word).lower() for word in (_field(part, "accepted") or [])]
    if text.lower() in accepted:
        return Verdict.CORRECT.value, maximum, f"Right: {shown}."
    words = {"true", "false"} if accepted else set()
    if text.lower() in words:
        return Verdict.WRONG.value, Fraction(0), f"Wrong: the answer is {shown} ({accepted[0]})."
    letters = read_letters(text)
    if letters is None or not letters:
        return Verdict.INVALID.value, Fraction(0), (
            f'Could not read {text[:40]!r} as option letters; write letters A to E, e.g. "B" or "A, D".')
    if letters == expected:
        return Verdict.CORRECT.value, maximum, f"Right: {shown}."
    chosen = ", ".join(sorted(letters))
    missed = ", ".join(sorted(expected - letters))
    extra = ", ".join(sorted(letters - expected))
    details = "; ".join(filter(None, [f"missed {missed}" if missed else "", f"not correct: {extra}" if extra else ""]))
    return Verdict.WRONG.value, Fraction(0), f"Wrong: you chose {chosen}, the answer is {shown} ({details})."


# Whole numbers

def mark_integer(part, raw: object) -> MarkResult:
    """Mark a whole number exactly; spaces, underscores and thin spaces may group digits, commas may not."""
    maximum = Fraction(_field(part, "marks", 0))
    expected = int(_field(part, "expected"))
    if _is_blank(raw):
        return Verdict.MISSING.value, Fraction(0), "No answer given."
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        return Verdict.INVALID.value, Fraction(0), "Write a whole number, e.g. 4096."
    text = str(raw).strip()[:MAX_ANSWER_CHARS]
    if "," in text:
        return Verdict.INVALID.value, Fraction(0), (
            f"Could not read {text[:40]!r}: a comma is not read as a digit separator; write 1048576 or 1 048 576.")
    if _INTEGER.fullmatch(text) is None:
        return Verdict.INVALID.value, Fraction(0), f"Could not read {text[:40]!r} as a whole number, e.g. 4096."
    digits = re.sub(r"[ _\u2009]", "", text).replace("\u2212", "-").split(".")[0]
    if len(digits.lstrip("+-")) > MAX_INTEGER_DIGITS:
        return Verdict.INVALID.value, Fraction(0), f"The number has more than {MAX_INTEGER_DIGITS} digits."
    value = int(digits)
    if value == expected:
        return Verdict.CORRECT.value, maximum, f"Right: {expected}."
    return Verdict.WRONG.value, Fraction(0), f"Wrong: {value}; the answer is {expected}."


# Short answers against a rubric of key points

def phrase_pattern(phrase: str) -> re.Pattern:
    """Match a phrase case-insensitively on word boundaries, with any run of spaces between its words.

    A boundary is only required next to a letter or digit, so "O(T)" still matches at its end.
    """
    words = [re.escape(word) for word in phrase.split()]
    body = r"\s+".join(words)
    start = r"\b" if phrase[:1].isalnum() else ""
    end = r"\b" if phrase[-1:].isalnum() else ""
    return re.compile(start + body + end, re.IGNORECASE)


def mark_rubric(part, raw: object) -> MarkResult:
    """Award each key point's marks when the answer contains one of its phrasings; name every point found."""
    rubric = _field(part, "expected") or []
    if _is_blank(raw):
        return Verdict.MISSING.value, Fraction(0), "No answer given."
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        raw = "\n".join(raw)
    if not isinstance(raw, str):
        return Verdict.INVALID.value, Fraction(0), "Write the answer as plain text."
    text = raw[:MAX_ANSWER_CHARS]
    cut = len(raw) > MAX_ANSWER_CHARS

    marks = Fraction(0)
    found, missing = [], []
    for point in rubric:
        hit = next((p for p in point["phrases"] if phrase_pattern(p).search(text)), None)
        if hit is not None:
            marks += Fraction(point["marks"])
            found.append(f"{point['point']} (\"{hit}\", {point['marks']})")
        else:
            missing.append(point["point"])
    maximum = sum((Fraction(point["marks"]) for point in rubric), Fraction(0))
    feedback = "Key points found: " + ("; ".join(found) if found else "none") + "."
    if missing:
        feedback += " Not found: " + "; ".join(missing) + "."
    if cut:
        feedback += f" Only the first {MAX_ANSWER_CHARS} characters were read."
    verdict = Verdict.CORRECT if marks == maximum else Verdict.WRONG
    return verdict.value, marks, feedback


# Adapters for the marker's table of part kinds

def part_marker(mark: Callable[[object, object], MarkResult]):
    """Wrap a mark_* function as a marker of (part key entry, question state) -> PartResult."""
    def marker(part: dict, state) -> PartResult:
        verdict, marks, feedback = mark(part, state.answers.get(part["name"]))
        return PartResult(part["id"], Verdict(verdict), marks, Fraction(part["marks"]), part["expected"], feedback)
    marker.__name__ = mark.__name__
    return marker


PART_MARKERS = {
    "choice": part_marker(mark_choice),
    "integer": part_marker(mark_integer),
    "rubric": part_marker(mark_rubric),
}
