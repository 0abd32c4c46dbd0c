"""Mark an answer file against a key: dispatch each part to the marker of its kind.

A question is marked part by part, in the key's order. Each part marker gets the
part's key entry and a QuestionState, which carries the student's answers to the
whole question and lets an earlier part leave values for later ones: the merge list
leaves the student's own merges for the segmentation, and a backpropagation part
leaves the student's value for the parts that depend on it.

PART_MARKERS maps a part kind to its marker. QUESTION_MARKERS maps a question type
to a marker of the whole question; when a type has one, it is used instead of the
part markers.
"""

from __future__ import annotations

import logging

from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

from generator.errors import MlexamError
from marker import backprop_marking, bpe_marking, rubric
from marker.report import MarkReport, PartResult, Verdict

KEY_FORMAT = "mlexam-key"
KEY_VERSIONS = {1}

# Keys whose derived data (exact values, mistaken answers, results per merge list) stay cached.
# A batch marks many answer files against one key, so a few entries are enough.
KEY_CACHE_SIZE = 8

log = logging.getLogger(__name__)


class KeyFormatError(MlexamError):
    """A key that the marker cannot use: wrong format, unknown part kind, or a paper mismatch."""

    exit_code = 2


@dataclass
class QuestionState:
    """One question of one submission while it is being marked."""

    question: dict  # the question's entry in the key
    answers: dict  # the student's raw answers to this question, by part name
    cache: dict  # derived data of this question that does not depend on the student
    shared: dict = field(default_factory=dict)  # values earlier parts leave for later parts


PartMarker = Callable[[dict, QuestionState], PartResult]
QuestionMarker = Callable[[QuestionState], list[PartResult]]

PART_MARKERS: dict[str, PartMarker] = {
    "merge_list": bpe_marking.mark_merge_list,
    "segmentation": bpe_marking.mark_segmentation,
    "encoding": bpe_marking.mark_encodings,
    "scalar": backprop_marking.mark_numeric_part,
    "vector": backprop_marking.mark_numeric_part,
    "matrix": backprop_marking.mark_numeric_part,
}

# Choice, whole-number and short-answer parts (BPE valid runs, vocabulary sizes, concept questions).
PART_MARKERS.update(rubric.PART_MARKERS)

QUESTION_MARKERS: dict[str, QuestionMarker] = {}

_key_caches: OrderedDict[int, tuple[dict, dict]] = OrderedDict()


def key_cache(key: dict) -> dict:
    """Return the cache of derived data for this key object, one dict per question id.

    Entries are found by the key's identity and hold a reference to the key, so an id
    cannot be reused by another object while its entry exists.
    """
    entry = _key_caches.get(id(key))
    if entry is not None and entry[0] is key:
        _key_caches.move_to_end(id(key))
        return entry[1]
    cache: dict = {}
    _key_caches[id(key)] = (key, cache)
    while len(_key_caches) > KEY_CACHE_SIZE:
        _key_caches.popitem(last=False)
    return cache


def check_key(key: object) -> None:
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT:
        found = key.get("format") if isinstance(key, dict) else type(key).__name__
        raise KeyFormatError(f"not an mlexam key: format is {found!r}, expected {KEY_FORMAT!r}")
    if key.get("format_version") not in KEY_VERSIONS:
        raise KeyFormatError(f"unsupported key format_version {key.get('format_version')!r}; supported: 1")
    questions = key.get("questions")
    if not isinstance(questions, list) or not questions:
        raise KeyFormatError("the key has no questions list; use the key JSON that mlexam generate wrote")
    for number, question in enumerate(questions, 1):
        _check_key_question(number, question)
        if question.get("type") in QUESTION_MARKERS:
            continue
        for part in question["parts"]:
            if part.get("kind") not in PART_MARKERS:
                raise KeyFormatError(f"part {part.get('id')}: no marker for part kind {part.get('kind')!r}; "
                                     f"known kinds: {', '.join(PART_MARKERS)}")


def _check_key_question(number: int, question: object) -> None:
    """Raise KeyFormatError unless a key question has an id, a type and parts with id, kind and marks."""
    if not isinstance(question, dict) or not all(isinstance(question.get(name), str) for name in ("id", "type")):
        raise KeyFormatError(f"question {number} of the key has no id or type; use the key JSON that "
                             "mlexam generate wrote")
    parts = question.get("parts")
    if not isinstance(parts, list) or not parts:
        raise KeyFormatError(f"question {question['id']} of the key has no parts; use the key JSON that "
                             "mlexam generate wrote")
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("id"), str) or "kind" not in part \
                or "marks" not in part:
            raise KeyFormatError(f"a part of question {question['id']} in the key has no id, kind or marks; "
                                 "use the key JSON that mlexam generate wrote")


def submission_fields(answers: object) -> tuple[dict, str, str]:
    """Return (answers by question id, student id, paper code) from an AnswerFile or a dict.

    A dict may be a whole answer file (with `answers`, `student_id`, `paper`) or just
    the mapping of question ids to answers.
    """
    if hasattr(answers, "answers"):
        return (answers.answers or {}, str(getattr(answers, "student_id", "") or ""),
                str(getattr(answers, "paper", "") or ""))
    if isinstance(answers, dict) and isinstance(answers.get("answers"), dict):
        return answers["answers"], str(answers.get("student_id") or ""), str(answers.get("paper") or "")
    if isinstance(answers, dict):
        return answers, "", ""
    raise KeyFormatError(f"answers must be a mapping of question ids to answers, found {type(answers).__name__}")


def mark_submission(key: dict, answers: dict | object) -> MarkReport:
    """Mark one answer file against a key and return every part's result, in the key's order."""
    check_key(key)
    by_question, student_id, paper = submission_fields(answers)
    key_code = str(key.get("paper_code") or "")
    if paper and key_code and paper != key_code:
        raise KeyFormatError(f"the answer file is for paper {paper}, but the key is for paper {key_code}; "
                             "mark it with the key of its own paper")

    cache = key_cache(key)
    results: list[PartResult] = []
    for question in key["questions"]:
        raw = by_question.get(question["id"])
        state = QuestionState(question, raw if isinstance(raw, dict) else {},
                              cache.setdefault(question["id"], {}))
        if raw is not None and not isinstance(raw, dict):
            results.extend(_unreadable_question(question, raw))
            continue
        question_marker = QUESTION_MARKERS.get(question["type"])
        if question_marker is not None:
            results.extend(question_marker(state))
            continue
        for part in question["parts"]:
            results.append(_mark_part(part, state))
    return MarkReport(results, student_id, paper or key_code)


def _mark_part(part: dict, state: QuestionState) -> PartResult:
    """Mark one part; a fault in the marker costs that part an automatic mark, never the whole file."""
    try:
        return PART_MARKERS[part["kind"]](part, state)
    except (ValueError, TypeError, ArithmeticError, IndexError):
        # A key missing a field (KeyError) still stops marking, because no part can be trusted then.
        log.exception("marker failed on part %s", part["id"])
        return PartResult(part["id"], Verdict.INVALID, Fraction(0), Fraction(part["marks"]), part["expected"],
                          "mlexam could not mark this answer automatically; it needs marking by hand")


def _unreadable_question(question: dict, raw: object) -> list[PartResult]:
    message = (f"{question['id']}: expected a block of answers by part name "
               f"({', '.join(p['name'] for p in question['parts'])}), found {type(raw).__name__}")
    return [PartResult(part["id"], Verdict.INVALID, Fraction(0), Fraction(part["marks"]), part["expected"], message)
            for part in question["parts"]]
