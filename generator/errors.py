"""Exceptions that carry the bad value; only the command line turns them into messages."""

from __future__ import annotations

import re


class MlexamError(Exception):
    """Base of every error that mlexam reports as a message instead of a traceback."""

    exit_code = 1


class ProblemError(MlexamError, ValueError):
    """A problem's input (a corpus, a matrix, a setting) is invalid."""

    exit_code = 2

    def __init__(self, what: str, value: object, expected: str):
        self.what = what
        self.value = value
        self.expected = expected
        shown = repr(value) if value is not None else "nothing"
        super().__init__(f"invalid {what}: got {shown}; expected {expected}")


class InputFileError(MlexamError):
    """A file that mlexam reads (a spec, a key, an answer file, a roster) is unreadable or invalid."""

    exit_code = 2

    def __init__(self, path: object, problems: list[str]):
        self.path = str(path)
        self.problems = list(problems)
        lines = "\n".join(f"{self.path}: {problem}" for problem in self.problems)
        super().__init__(lines)


def yaml_fix(problem: str, text: str = "") -> str:
    """Return the likely fix for a PyYAML parse problem, to follow its message."""
    if "\t" in problem or re.search(r"^[ ]*\t", text, re.MULTILINE):
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return 'put double quotes around a value that contains ": ", e.g. y: "[0.731, 0.269]"'
    return "check the indentation and quotes on that line and the line before it; a value with [ ] , : or # is safest in double quotes"

