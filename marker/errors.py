"""Exceptions raised while reading a student's answer; the caller turns them into feedback."""

from __future__ import annotations

from generator.errors import MlexamError


class AnswerFormatError(MlexamError, ValueError):
    """An answer that cannot be read: invalid input, which earns no marks but is not a wrong answer.

    `part` is the part id (such as "q4.y") or None until the caller knows it, `found` a
    short repr of what was read and `expected` the form that would have been read. The
    message is built when printed, so a caller may set `part` after catching the error.
    """

    exit_code = 1

    def __init__(self, reason: str, found: object, expected: str, part: str | None = None):
        self.reason = reason
        self.found = _short_repr(found)
        self.expected = expected
        self.part = part
        super().__init__(reason, self.found, expected, part)

    def __str__(self) -> str:
        where = f"part {self.part}: " if self.part else ""
        return f"{where}{self.reason}: found {self.found}; expected {self.expected}"


class AnswerTimeout(AnswerFormatError):
    """Reading or comparing an answer took longer than its time budget."""


# Messages quote at most this many characters of the student's text.
MAX_SHOWN_CHARS = 60


def _short_repr(value: object) -> str:
    shown = repr(value)
    if len(shown) > MAX_SHOWN_CHARS:
        shown = shown[: MAX_SHOWN_CHARS - 5] + "...'" if isinstance(value, str) else shown[: MAX_SHOWN_CHARS - 3] + "..."
    return shown
