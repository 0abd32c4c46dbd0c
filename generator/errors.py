"""Exceptions that carry the bad value; only the command line turns them into messages."""

from __future__ import annotations


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
