"""The marker's results: one PartResult per marked part, and the MarkReport of a submission.

Marks are exact fractions, because a part split over three steps gives thirds. They
are shown as decimals: a fraction whose denominator divides a power of ten is shown
exactly (2.5, 0.25), any other is rounded half up to two decimal places (4/3 -> 1.33).
Totals are summed exactly before they are shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from fractions import Fraction

# Places shown for a mark whose exact decimal does not terminate, such as 1/3.
MARK_PLACES = 2


class Verdict(StrEnum):
    """The judgement of one part."""

    CORRECT = "correct"
    CORRECT_CARRIED = "correct_carried"  # right when worked from the student's own earlier wrong value
    ACCEPTED_TIE_BRANCH = "accepted_tie_branch"  # right along a valid tie branch other than the key's
    WITHIN_TOLERANCE = "within_tolerance"  # a decimal inside the stated tolerance but not the rounded key value
    WRONG = "wrong"
    MISSING = "missing"  # left blank
    INVALID = "invalid"  # could not be read; a format message says what was expected


# Verdicts that earn the part's full marks when the whole part has one verdict.
FULL_MARK_VERDICTS = frozenset({Verdict.CORRECT, Verdict.CORRECT_CARRIED, Verdict.ACCEPTED_TIE_BRANCH,
                                Verdict.WITHIN_TOLERANCE})


def mark_number(marks: Fraction) -> int | float:
    """Return marks as the number a report shows: 2 for 2, 2.5 for 5/2, 1.33 for 4/3."""
    marks = Fraction(marks)
    if marks.denominator == 1:
        return marks.numerator
    return float(mark_decimal(marks))


def mark_decimal(marks: Fraction) -> Decimal:
    exact = Decimal(marks.numerator) / Decimal(marks.denominator)
    denominator = marks.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator == 1:
        return exact.normalize()
    return exact.quantize(Decimal(1).scaleb(-MARK_PLACES), rounding=ROUND_HALF_UP)


def mark_text(marks: Fraction) -> str:
    return format(mark_decimal(Fraction(marks)), "f") if Fraction(marks).denominator != 1 else str(Fraction(marks))


@dataclass
class PartResult:
    """The mark of one part, with what the key expected and feedback for the student."""

    id: str  # "q1.merges"
    verdict: Verdict
    marks: Fraction
    maximum: Fraction
    expected: object  # the answer the part was marked against, JSON-ready
    feedback: str = ""
    mistake: str | None = None  # name of the recognised mistake, when the answer matches one
    # Values for the worked solution on the feedback sheet, such as the value carried
    # from the student's own earlier answer. JSON-ready.
    working: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {
            "id": self.id,
            "verdict": str(self.verdict),
            "marks": mark_number(self.marks),
            "maximum": mark_number(self.maximum),
            "expected": self.expected,
            "feedback": self.feedback,
        }
        if self.mistake:
            data["mistake"] = self.mistake
        return data


@dataclass
class MarkReport:
    """Every part's result for one answer file."""

    parts: list[PartResult]
    student_id: str = ""
    paper: str = ""

    @property
    def total(self) -> Fraction:
        return sum((part.marks for part in self.parts), Fraction(0))

    @property
    def maximum(self) -> Fraction:
        return sum((part.maximum for part in self.parts), Fraction(0))

    def part(self, part_id: str) -> PartResult:
        for result in self.parts:
            if result.id == part_id:
                return result
        raise KeyError(part_id)

    def to_dict(self) -> dict:
        return {
            "student_id": self.student_id,
            "paper": self.paper,
            "total": mark_number(self.total),
            "maximum": mark_number(self.maximum),
            "parts": [part.to_dict() for part in self.parts],
        }
