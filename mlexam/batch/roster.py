"""Read a class roster: a CSV file with one row per student.

A plain CSV needs a header row with a student id column; name and email columns are
optional. Moodle and Canvas gradebook exports are read as they are:

    Moodle:  First name,Surname,ID number,Institution,Department,Email address,...
    Canvas:  Student,ID,SIS User ID,SIS Login ID,Section,...
             "    Points Possible",,,,,10,...      <- skipped

The delimiter (`,`, `;`, tab or `|`) is detected, a UTF-8 byte-order mark is dropped,
blank lines are skipped, and a repeated id is reported and its later rows left out.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from generator.errors import InputFileError

log = logging.getLogger(__name__)

# Header names tried in order when no column is named on the command line; compared
# case-insensitively after trimming. For the id, the first candidate column with a
# value in every row wins, so a Canvas export whose "SIS User ID" column is empty
# falls back to Canvas's own "ID".
ID_CANDIDATES = ("student id", "student_id", "studentid", "id number", "sis user id", "student number",
                 "matriculation number", "id", "username", "sis login id", "email address")
NAME_CANDIDATES = ("name", "full name", "student name", "student")
FIRST_NAME_CANDIDATES = ("first name", "firstname", "given name")
LAST_NAME_CANDIDATES = ("surname", "last name", "lastname", "family name")
EMAIL_CANDIDATES = ("email", "email address", "e-mail", "mail")

# Columns that a gradebook import identifies students by; the gradebook repeats them.
MOODLE_IDENTITY = ("First name", "Surname", "ID number", "Email address")
CANVAS_IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")

# A roster is a class list; this is far beyond any class and stops a wrong file early.
MAX_ROSTER_BYTES = 20_000_000
SNIFF_BYTES = 8192


@dataclass
class Student:
    id: str
    name: str = ""
    email: str = ""
    line: int = 0
    row: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "email": self.email}


@dataclass
class Roster:
    """The students of a roster in file order, with what was left out and why."""

    path: Path
    kind: str  # "moodle", "canvas" or "csv"
    id_column: str
    name_column: str | None
    email_column: str | None
    identity_columns: list[str]
    students: list[Student]
    problems: list[str]


def read_roster(path: Path, id_column: str | None = None, name_column: str | None = None,
                email_column: str | None = None) -> Roster:
    """Read the roster at `path`; raise InputFileError when no student can be read from it."""
    path = Path(path)
    rows = _read_rows(path)
    header_index = next((i for i, (_, row) in enumerate(rows) if any(cell.strip() for cell in row)), None)
    if header_index is None:
        raise InputFileError(path, ["the roster is empty; expected a header row and one row per student"])
    header = [cell.strip() for cell in rows[header_index][1]]
    body = rows[header_index + 1:]
    kind = _roster_kind(header)

    # Pick the columns: named ones must exist, the others are detected from the header.
    records = [(line, dict(zip(header, [cell.strip() for cell in row]))) for line, row in body
               if any(cell.strip() for cell in row) and not _is_points_possible(row)]
    id_col = _named_column(path, header, id_column, "--id-column") if id_column else _detect_id(header, records)
    if id_col is None:
        raise InputFileError(path, [f"no student id column among {', '.join(map(repr, header))}; "
                                    "name it with --id-column"])
    name_col = _named_column(path, header, name_column, "--name-column") if name_column \
        else _find(header, NAME_CANDIDATES)
    first_col, last_col = _find(header, FIRST_NAME_CANDIDATES), _find(header, LAST_NAME_CANDIDATES)
    email_col = _named_column(path, header, email_column, "--email-column") if email_column \
        else _find(header, EMAIL_CANDIDATES)

    # Read the students, leaving out rows without an id and repeats of an id.
    students: list[Student] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for line, record in records:
        student_id = record.get(id_col, "")
        if not student_id:
            problems.append(f"{path}: line {line}: no value in the id column {id_col!r}; row left out")
            continue
        if student_id in first_line:
            problems.append(f"{path}: line {line}: duplicate student id {student_id!r} "
                            f"(first on line {first_line[student_id]}); row left out")
            continue
        first_line[student_id] = line
        if name_col:
            name = record.get(name_col, "")
        else:
            name = " ".join(record.get(col, "") for col in (first_col, last_col) if col).strip()
        email = record.get(email_col, "") if email_col else ""
        students.append(Student(student_id, name, email, line, record))
    if not students:
        raise InputFileError(path, [f"no student rows with an id in column {id_col!r}"] + problems)

    identity = _identity_columns(kind, header, id_col, name_col or "", email_col or "")
    return Roster(path, kind, id_col, name_col, email_col, identity, students, problems)


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """Decode the file and split it into rows, each with its 1-based starting line."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputFileError(path, [f"cannot read the roster: {error.strerror}"]) from None
    if len(raw) > MAX_ROSTER_BYTES:
        raise InputFileError(path, [f"{len(raw)} bytes is too large for a roster (limit {MAX_ROSTER_BYTES})"])
    text = _decode(path, raw)

    try:
        dialect = csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel  # one column, or too little text to tell: plain commas
    # In strict mode a quote that is never closed is an error. Otherwise the csv module
    # reads the rest of the file into that one field, and the students after it are lost.
    reader = csv.reader(io.StringIO(text, newline=""), dialect, strict=True)
    rows = []
    line = reader.line_num + 1
    try:
        for row in reader:
            rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            raise InputFileError(path, [f"line {line}: a quote (\") opened in this row is never closed, so the "
                                        "rest of the file would be read as one field; close the quote or "
                                        "remove it"]) from None
        raise InputFileError(path, [f"line {reader.line_num}: invalid CSV: {error}; a field that contains a "
                                    "quote must be quoted whole, with the quote doubled (\"\")"]) from None
    return rows


def _decode(path: Path, raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputFileError(path, [f"byte {error.start}: not UTF-8 text; export or save the roster as "
                                    "CSV UTF-8"]) from None


def _roster_kind(header: list[str]) -> str:
    names = {cell.casefold() for cell in header}
    if {"student", "id", "sis user id"} <= names:
        return "canvas"
    if {"id number", "email address"} & names and {"first name", "surname"} <= names:
        return "moodle"
    return "csv"


def _is_points_possible(row: list[str]) -> bool:
    """Canvas exports have a second row giving each assignment's maximum, not a student."""
    return bool(row) and row[0].strip().casefold() == "points possible"


def _find(header: list[str], candidates: tuple[str, ...]) -> str | None:
    by_name = {cell.casefold(): cell for cell in reversed(header)}
    return next((by_name[name] for name in candidates if name in by_name), None)


def _named_column(path: Path, header: list[str], name: str, option: str) -> str:
    found = _find(header, (name.strip().casefold(),))
    if found is None:
        raise InputFileError(path, [f"{option} {name!r}: no such column; the header has "
                                    f"{', '.join(map(repr, header))}"])
    return found


def _detect_id(header: list[str], records: list[tuple[int, dict]]) -> str | None:
    present = [column for name in ID_CANDIDATES if (column := _find(header, (name,)))]
    for column in present:
        if records and all(record.get(column) for _, record in records):
            return column
    return present[0] if present else None


def _identity_columns(kind: str, header: list[str], id_col: str, name_col: str, email_col: str) -> list[str]:
    """The roster columns that the gradebook repeats so that an import can match each row."""
    if kind == "canvas":
        wanted = CANVAS_IDENTITY
    elif kind == "moodle":
        wanted = MOODLE_IDENTITY
    else:
        wanted = ()
    columns = [column for name in wanted if (column := _find(header, (name.casefold(),)))]
    for column in (id_col, name_col, email_col):
        if column and column not in columns:
            columns.append(column)
    return columns
