"""Find the answer files in a submissions folder and read each one, or say why it cannot be read.

Every entry under the folder ends up either as a readable submission or as a problem
with a reason, so no file goes unaccounted for. Symbolic links are reported and never
followed, so a link cannot make the marker read a file outside the folder.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from generator.errors import InputFileError, MlexamError

log = logging.getLogger(__name__)

# Larger than any answer file; a file beyond this is reported without being read whole.
MAX_SUBMISSION_BYTES = 1_000_000
# Share of NUL bytes at even or odd offsets above which a file without a byte-order
# mark is taken for UTF-16 text rather than binary data (ASCII text in UTF-16 has 50%).
UTF16_NUL_SHARE = 0.3


@dataclass
class Submission:
    """One file under the submissions folder: its answers, or the reason it could not be read."""

    name: str  # path relative to the submissions folder, with "/" separators
    path: Path
    answer_file: object | None = None  # marker.answers.AnswerFile
    problem: str | None = None
    kind: str = ""  # category of the problem: unreadable, symlink, not a file
    mtime: float = 0.0


def collect_submissions(folder: Path) -> list[Submission]:
    """Return every entry under `folder`, sorted by name, each read or with its problem."""
    from marker.answers import load_answers

    root = Path(folder)
    if not root.is_dir():
        raise InputFileError(root, ["the submissions folder does not exist or is not a folder"])
    found: list[Submission] = []
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        base = Path(directory)
        for name in list(subdirectories):
            if (base / name).is_symlink():
                found.append(_problem(root, base / name, "symlink", "a symbolic link to a folder; not followed"))
        for name in files:
            found.append(_read_one(root, base / name, load_answers))
    return sorted(found, key=lambda submission: submission.name)


def _problem(root: Path, path: Path, kind: str, reason: str) -> Submission:
    return Submission(path.relative_to(root).as_posix(), path, problem=reason, kind=kind)


def _read_one(root: Path, path: Path, load_answers) -> Submission:
    try:
        info = os.lstat(path)
    except OSError as error:
        return _problem(root, path, "unreadable", f"cannot read the file: {error.strerror}")
    if stat.S_ISLNK(info.st_mode):
        return _problem(root, path, "symlink", "a symbolic link; not followed")
    if not stat.S_ISREG(info.st_mode):
        return _problem(root, path, "not a file", "not a regular file")

    # Look at the bytes first, so that the reason given for a bad file is the real one.
    reason = _byte_problem(path, info.st_size)
    if reason:
        submission = _problem(root, path, "unreadable", reason)
    else:
        try:
            answer_file = load_answers(path)
        except MlexamError as error:
            submission = _problem(root, path, "unreadable", _one_line(error))
        except (ValueError, RecursionError) as error:
            log.debug("reading %s failed", path, exc_info=True)
            submission = _problem(root, path, "unreadable", f"cannot be read as an answer file: {error}")
        else:
            submission = Submission(path.relative_to(root).as_posix(), path, answer_file)
    submission.mtime = info.st_mtime
    return submission


def _byte_problem(path: Path, size: int) -> str | None:
    """Describe an empty, binary, oversized or wrongly encoded file; None for UTF-8 text."""
    if size == 0:
        return "empty file (0 bytes)"
    if size > MAX_SUBMISSION_BYTES:
        return f"{size:,} bytes, more than the {MAX_SUBMISSION_BYTES:,} an answer file can have"
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(handle, "rb") as stream:
            data = stream.read(MAX_SUBMISSION_BYTES + 1)
    except OSError as error:
        return f"cannot read the file: {error.strerror}"
    if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return None  # a byte-order mark: the answer-file reader decodes it
    if b"\x00" in data:
        even, odd = data[0::2], data[1::2]
        if max(even.count(0) / max(len(even), 1), odd.count(0) / max(len(odd), 1)) > UTF16_NUL_SHARE:
            return "UTF-16 text without a byte-order mark; save the file as UTF-8"
        return f"binary data (a NUL byte at offset {data.index(0)}), not an answer file"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        shown = data[error.start:error.start + 1].hex().upper()
        return (f"not UTF-8: byte 0x{shown} at offset {error.start}, as Latin-1 or Windows-1252 text has; "
                "save the file as UTF-8")
    return None


def _one_line(error: Exception) -> str:
    """Return an error's message without the file name prefix, on one line."""
    problems = getattr(error, "problems", None)
    return "; ".join(problems) if problems else " ".join(str(error).split())
