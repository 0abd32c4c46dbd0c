"""List the answers in a file that cannot be read, without saying whether any answer is right.

With a key, each part is read as its kind requires (a number, a vector of the paper's
length, a list of merges, one segmentation per word). Without a key, only the file's
structure and blank answers are checked, because the kind of each part is on the key.
"""

from __future__ import annotations

import os

from marker.answers import AnswerFile, load_answers, load_key
from marker.errors import AnswerFormatError
from marker.mathread import read_value

NUMERIC_KINDS = ("scalar", "vector", "matrix")
MERGE_FORM = 'a list of pairs, each two symbols with a space between them, e.g. ["l o", "lo w"]'
TOKENS_FORM = 'for each word, its tokens separated by spaces, e.g. "low </w>"'


def check_answers(answer_path: str | os.PathLike, key: dict | str | os.PathLike | None = None) -> list[str]:
    """Return one line per answer that cannot be read, and why; an empty list when all can be read.

    Raises InputFileError when the file itself cannot be read.
    """
    if key is not None and not isinstance(key, dict):
        key = load_key(key)
    answer_file = load_answers(answer_path, key)
    problems = list(answer_file.problems)
    if key is None:
        return problems + _blank_parts(answer_file)

    for question in key["questions"]:
        given = answer_file.answers.get(question["id"], {})
        for part in question.get("parts", []):
            problem = _part_problem(part, given.get(part["name"]))
            if problem:
                problems.append(f"{part['id']}: {problem}")
    return problems


def count_answers(answer_path: str | os.PathLike, key: dict | None = None) -> int:
    """Count the parts: those on the key when there is one, else those in the file."""
    if key is not None:
        return sum(len(question.get("parts", [])) for question in key["questions"])
    return sum(len(parts) for parts in load_answers(answer_path).answers.values())


def _blank_parts(answer_file: AnswerFile) -> list[str]:
    """List blank parts, and the blank words or entries inside a part that is partly filled in."""
    problems = []
    for question_id, parts in answer_file.answers.items():
        for part_name, raw in parts.items():
            where = f"{question_id}.{part_name}"
            if _is_blank(raw):
                problems.append(f"{where}: no answer given")
            elif isinstance(raw, dict):
                problems += [f"{where}: no answer given for {word!r}" for word, value in raw.items() if _is_blank(value)]
            elif isinstance(raw, list):
                problems += [f"{where}: entry {number} is blank" for number, value in enumerate(raw, 1) if _is_blank(value)]
    return problems


def _part_problem(part: dict, raw: object) -> str | None:
    if _is_blank(raw):
        return "no answer given"
    kind = part.get("kind")
    if kind in NUMERIC_KINDS:
        shape = _expected_shape(part.get("expected"), kind)
        try:
            reading = read_value(raw, kind, shape)
        except AnswerFormatError as error:
            error.part = None
            return str(error)
        return _shape_problem(reading, kind, shape)
    if kind == "merge_list":
        return _merge_list_problem(raw)
    if kind in ("segmentation", "encoding"):
        return _token_map_problem(raw, part.get("expected") or {})
    return None


def _expected_shape(expected: object, kind: str) -> tuple[int, int] | None:
    if kind == "vector" and isinstance(expected, list):
        return (len(expected), 1)
    if kind == "matrix" and isinstance(expected, list) and expected and isinstance(expected[0], list):
        return (len(expected), len(expected[0]))
    return None


def _shape_problem(reading, kind: str, shape: tuple[int, int] | None) -> str | None:
    """Report a list whose size does not fit the question; a transposed matrix is left to the marker."""
    if shape is None:
        return None
    found = tuple(reading.value.shape)
    if kind == "vector" and found[0] != shape[0]:
        return f"{found[0]} entries were read; the question asks for a vector of {shape[0]}"
    if kind == "matrix" and found not in (shape, shape[::-1]):
        return (f"a {found[0]} x {found[1]} matrix was read; the question asks for "
                f"{shape[0]} rows of {shape[1]} entries")
    return None


def _merge_list_problem(raw: object) -> str | None:
    if not isinstance(raw, list):
        return f"found {raw!r}; expected {MERGE_FORM}"
    for number, merge in enumerate(raw, start=1):
        if _is_blank(merge):
            return f"merge {number} is blank; expected {MERGE_FORM}"
        if not isinstance(merge, str) or len(merge.split()) != 2:
            return f"merge {number} is {merge!r}; expected {MERGE_FORM}"
    return None


def _token_map_problem(raw: object, words: dict) -> str | None:
    if not isinstance(raw, dict):
        return f"found {raw!r}; expected a mapping from each word to its tokens, {TOKENS_FORM}"
    for word in words:
        tokens = raw.get(word)
        if _is_blank(tokens):
            return f"no tokens given for {word!r}; expected {TOKENS_FORM}"
        if not isinstance(tokens, str):
            return f"the tokens of {word!r} are {tokens!r}; expected {TOKENS_FORM}"
    unknown = [word for word in raw if word not in words]
    if unknown:
        return f"words not in the question: {', '.join(map(repr, unknown))}"
    return None


def _is_blank(raw: object) -> bool:
    if raw is None:
        return True
    if isinstance(raw, str):
        return not raw.strip()
    if isinstance(raw, list):
        return not raw or all(_is_blank(item) for item in raw)
    if isinstance(raw, dict):
        return not raw or all(_is_blank(item) for item in raw.values())
    return False
