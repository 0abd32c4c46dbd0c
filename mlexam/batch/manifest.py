"""The manifest of a batch folder: which exam it holds and every file written for it.

`manifest.json` carries a format name and version, the exam id, the spec's sha256 and
a fingerprint of the secret (never the secret itself). Each student's record has the
id, name, variant code and every file with its sha256, so that a later run can tell a
finished file from a missing or damaged one, and `batch mark` can find the keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import mlexam
from generator.errors import InputFileError, MlexamError
from mlexam.fileio import write_text_atomic

MANIFEST_FORMAT = "mlexam-batch-manifest"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"


class ExamMismatchError(MlexamError):
    """The output folder already holds a different exam."""

    exit_code = 2


@dataclass
class Manifest:
    exam_id: str
    spec_name: str
    spec_sha256: str
    secret_fingerprint: str
    title: str = ""
    total_marks: int = 0
    questions: list[dict] = field(default_factory=list)
    roster: dict = field(default_factory=dict)
    students: dict[str, dict] = field(default_factory=dict)
    booklet: dict | None = None
    complete: bool = False

    def to_dict(self) -> dict:
        return {
            "format": MANIFEST_FORMAT,
            "format_version": MANIFEST_VERSION,
            "generator": {"name": "mlexam", "version": mlexam.__version__},
            "exam_id": self.exam_id,
            "spec": {"name": self.spec_name, "sha256": self.spec_sha256},
            "secret_fingerprint": self.secret_fingerprint,
            "title": self.title,
            "total_marks": self.total_marks,
            "questions": self.questions,
            "roster": self.roster,
            "complete": self.complete,
            "booklet": self.booklet,
            "students": list(self.students.values()),
        }

    def save(self, folder: Path) -> None:
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        write_text_atomic(Path(folder) / MANIFEST_NAME, text)

    def mismatches(self, other: Manifest) -> list[str]:
        """Describe how `other` is a different exam from this one; empty when it is the same."""
        found = []
        if other.exam_id != self.exam_id:
            found.append(f"exam id {self.exam_id!r} here, {other.exam_id!r} requested")
        if other.spec_sha256 != self.spec_sha256:
            found.append(f"spec sha256 {self.spec_sha256[:12]}... here, {other.spec_sha256[:12]}... requested")
        if other.secret_fingerprint != self.secret_fingerprint:
            found.append("the secret differs (its fingerprint does not match)")
        return found


def load_manifest(folder: Path) -> Manifest | None:
    """Read `folder/manifest.json`; return None when there is none."""
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputFileError(path, [f"cannot read the manifest: {error}"]) from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise InputFileError(path, [f"not an mlexam batch manifest (format {MANIFEST_FORMAT!r} expected)"])
    if data.get("format_version") != MANIFEST_VERSION:
        raise InputFileError(path, [f"manifest version {data.get('format_version')!r} is not supported; "
                                    f"this mlexam reads version {MANIFEST_VERSION}"])
    try:
        return Manifest(
            exam_id=data["exam_id"], spec_name=data["spec"]["name"], spec_sha256=data["spec"]["sha256"],
            secret_fingerprint=data["secret_fingerprint"], title=data.get("title", ""),
            total_marks=data.get("total_marks", 0), questions=data.get("questions", []),
            roster=data.get("roster", {}), students={s["id"]: s for s in data["students"]},
            booklet=data.get("booklet"), complete=bool(data.get("complete")))
    except (KeyError, TypeError) as error:
        raise InputFileError(path, [f"the manifest is missing the field {error}; regenerate the batch"]) from None


def sha256_file(path: Path) -> str | None:
    """Return the file's sha256, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def files_intact(folder: Path, files: dict[str, dict]) -> bool:
    """Tell whether every recorded file exists with the recorded sha256."""
    return bool(files) and all(sha256_file(Path(folder) / entry["path"]) == entry["sha256"]
                               for entry in files.values())
