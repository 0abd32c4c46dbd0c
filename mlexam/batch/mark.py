"""Mark a class: match each submission to a student, mark it against that student's key, flag copying.

A submission belongs to the student whose id it carries in `student_id`. When that
field is empty, the marker matches a file or folder name equal to a student id or to
its safe file name, as in `s123-answers.yaml`. One student with several files is marked
on the newest one, and every other file is listed as a problem.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from generator.errors import InputFileError, MlexamError
from mlexam.batch.manifest import Manifest, load_manifest, sha256_file
from mlexam.batch.submissions import Submission, collect_submissions

log = logging.getLogger(__name__)

# A submission is flagged as copied only when it earns at least this share of the
# marks against another student's key, so weak answers that happen to score a little
# more elsewhere are not flagged.
COPY_MIN_SHARE = Fraction(1, 2)
# Other students' keys marked in full per submission: the ones whose answers share the
# most values with the submission. Marking against every key would grow with the
# square of the class size.
COPY_CANDIDATES = 3
# A key value held by more than max(COPY_COMMON_MIN, class size / COPY_COMMON_DIVISOR)
# students is too common to count as evidence of copying.
COPY_COMMON_MIN = 3
COPY_COMMON_DIVISOR = 20
# A number in an answer or key value is a whole token between separators (space , ; [ ] ( )),
# so "1.5.3" and "x2" contain no number.
NUMBER_TOKEN = re.compile(r"(?<![^\s,;\[\]()])[+-]?(?:\d+\.?\d*|\.\d+)(?![^\s,;\[\]()])")


@dataclass
class Problem:
    """A row of problems.csv: a file or student that needs the teacher's attention."""

    file: str
    student_id: str
    kind: str
    detail: str


@dataclass
class StudentResult:
    record: dict  # the student's entry in the manifest
    status: str = "missing"  # marked, missing, or not marked (with a problem row)
    submission: Submission | None = None
    report: object | None = None  # marker.report.MarkReport
    total: Fraction | None = None  # report.total, stored once because MarkReport.total sums the parts on each access

    @property
    def id(self) -> str:
        return self.record["id"]


@dataclass
class ClassResult:
    manifest: Manifest
    students: list[StudentResult]
    problems: list[Problem] = field(default_factory=list)
    batch_dir: Path | None = None

    def counts(self) -> dict[str, int]:
        counts = {"students": len(self.students),
                  "marked": sum(s.status == "marked" for s in self.students),
                  "missing": sum(s.status == "missing" for s in self.students),
                  "problems": len(self.problems)}
        for problem in self.problems:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
        return counts

    def key(self, student_id: str) -> dict:
        """Read a student's key from the batch folder.

        Keys are read again when needed and not kept, because the keys of 1,000 students
        of the bundled practice paper take about 120 MB in memory (measured with tracemalloc).
        """
        from marker.answers import load_key

        return load_key(self.batch_dir / self.manifest.students[student_id]["files"]["key"]["path"])


def mark_class(batch_dir: Path, submissions_dir: Path, progress: bool = True) -> ClassResult:
    """Mark every submission under `submissions_dir` against the keys of the batch in `batch_dir`."""
    manifest = load_manifest(batch_dir)
    if manifest is None:
        raise InputFileError(batch_dir, ["no manifest.json here; give the --out folder of `mlexam batch generate`"])
    with long_lived_objects_frozen():
        return _mark_class(Path(batch_dir), manifest, submissions_dir, progress)


@contextlib.contextmanager
def long_lived_objects_frozen():
    """Freeze every object alive now (gc.freeze) for the block, so that garbage collections skip them.

    The reports of a class live until the results are written, and each full collection
    of the cyclic garbage collector would walk them all again. Reference counting still frees frozen objects. At the end of the block
    gc.unfreeze returns them to the collector, unless some objects were already frozen
    when the block began (by an outer block or by the caller), because gc.unfreeze would
    release those too.
    """
    frozen_before = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


def _mark_class(batch_dir: Path, manifest: Manifest, submissions_dir: Path, progress: bool) -> ClassResult:
    result = ClassResult(manifest, [StudentResult(record) for record in manifest.students.values()], [], batch_dir)
    matched, unreadable = _match_submissions(result, submissions_dir)

    # Each key is read once, in roster order. The student's newest submission is marked
    # against it and its values are indexed for the copying check. Then the key is dropped.
    codes = {record["variant_code"]: student_id for student_id, record in manifest.students.items()}
    key_problems: list[Problem] = []
    key_count = 0
    holders: dict[str, set[str]] = {}
    # Warnings go through tqdm, so that they print on their own line above the progress bar.
    with logging_redirect_tqdm():
        for student in tqdm(result.students, desc="marking", unit="student", disable=not progress):
            if _mark_one(result, student, matched.get(student.id, []), codes, key_problems, holders):
                key_count += 1
            # What is alive now lives until the class is marked, so later collections need
            # not walk it. mark_class unfreezes it at its end.
            gc.freeze()
    result.problems[:0] = key_problems

    by_id = {student.id: student for student in result.students}
    for student_id, submission in unreadable.items():
        student = by_id[student_id]
        if student.status == "missing" and student.submission is None:
            student.status = "not marked"
            student.submission = submission

    _flag_copying(result, holders, key_count)
    return result


def _mark_one(result: ClassResult, student: StudentResult, submissions: list[Submission], codes: dict[str, str],
              key_problems: list[Problem], holders: dict[str, set[str]]) -> bool:
    """Mark the student's newest submission and index their key's values. Return whether the key was usable."""
    newest = max(submissions, key=lambda s: (s.mtime, s.name)) if submissions else None
    for other in submissions:
        if other is not newest:
            result.problems.append(Problem(other.name, student.id, "duplicate",
                                           f"{len(submissions)} files for this student; marked the newest, "
                                           f"{newest.name}, and not this one"))
    student.submission = newest
    key = _read_key(result, student.id, key_problems)
    if key is None:
        if newest is not None:
            student.status = "not marked"
        return False
    for value in _values(_key_answers(key)):
        holders.setdefault(value, set()).add(student.id)
    if newest is not None:
        _mark_student(student, key, newest, codes, result.problems)
    return True


def _match_submissions(result: ClassResult, submissions_dir: Path) -> tuple[dict[str, list[Submission]],
                                                                          dict[str, Submission]]:
    """Match every readable submission to a student, and list the others in result.problems with the reason."""
    manifest = result.manifest
    matched: dict[str, list[Submission]] = {}
    unreadable: dict[str, Submission] = {}
    for submission in collect_submissions(submissions_dir):
        if submission.problem:
            # An unreadable file is still tied to a student when its name matches, so the
            # gradebook shows "not marked" for that student instead of "missing".
            named = _match_name(submission.name, manifest)
            result.problems.append(Problem(submission.name, named or "", submission.kind, submission.problem))
            if named:
                unreadable.setdefault(named, submission)
            continue
        student_id, how = _match(submission, manifest)
        if student_id is None:
            result.problems.append(Problem(submission.name, how, "unknown id", _unknown_reason(submission, how)))
            continue
        matched.setdefault(student_id, []).append(submission)
    return matched, unreadable


def _read_key(result: ClassResult, student_id: str, problems: list[Problem]) -> dict | None:
    """Return the student's key, or None after adding a problem row when it cannot be used."""
    from marker.core import check_key

    record = result.manifest.students[student_id]
    entry = record["files"]["key"]
    try:
        key = result.key(student_id)
        check_key(key)
    except MlexamError as error:
        problems.append(Problem(entry["path"], student_id, "key", f"the key cannot be read: {error}"))
        return None
    owner = key["student"].get("id") if isinstance(key.get("student"), dict) else None
    if key.get("paper_code") != record["variant_code"] or owner not in (None, student_id):
        problems.append(Problem(
            entry["path"], student_id, "key",
            f"this file is the key of paper {key.get('paper_code')!r} (student {owner!r}), not of {student_id}'s "
            f"paper {record['variant_code']}, so {student_id} was not marked; run `mlexam batch generate` again "
            "with the same roster, spec and --out folder, which writes the changed key again"))
        return None
    if sha256_file(result.batch_dir / entry["path"]) != entry["sha256"]:
        log.warning("%s differs from the key that batch generate wrote (sha256 mismatch)", entry["path"])
    return key


def _mark_student(student: StudentResult, key: dict, submission: Submission, codes: dict[str, str],
                  problems: list[Problem]) -> None:
    _check_paper_code(submission, student.record, codes, problems)
    try:
        student.report = _mark(key, submission)
    except MlexamError as error:
        student.status = "not marked"
        problems.append(Problem(submission.name, student.id, "unmarkable", " ".join(str(error).split())))
        return
    student.total = student.report.total
    student.status = "marked"


def _match(submission: Submission, manifest: Manifest) -> tuple[str | None, str]:
    """Return (student id or None, the id the file carries or the name it was matched on)."""
    carried = (submission.answer_file.student_id or "").strip()
    if carried:
        return (carried if carried in manifest.students else None), carried
    return _match_name(submission.name, manifest), ""


def _match_name(name: str, manifest: Manifest) -> str | None:
    """Return the student whose id or safe name is the file's name or one of its folders."""
    by_name = {}
    for student_id, record in manifest.students.items():
        by_name[student_id] = student_id
        by_name[record["safe_name"]] = student_id
    parts = Path(name).parts
    candidates = [Path(parts[-1]).stem, *reversed(parts[:-1])]
    for candidate in candidates:
        stem = candidate.removesuffix("-answers")
        if stem in by_name:
            return by_name[stem]
    return None


def _unknown_reason(submission: Submission, carried: str) -> str:
    if carried:
        return f"student_id {carried!r} is not in the roster of this batch"
    return "no student_id in the file, and its name matches no student id"


def _check_paper_code(submission: Submission, record: dict, codes: dict[str, str], problems: list[Problem]) -> None:
    paper = (submission.answer_file.paper or "").strip()
    if not paper or paper == record["variant_code"]:
        return
    owner = codes.get(paper)
    detail = (f"the file is the answer file of {owner}'s paper ({paper}); marked against {record['id']}'s own key"
              if owner else f"paper code {paper!r} belongs to no student of this batch; marked against "
                            f"{record['id']}'s own key ({record['variant_code']})")
    problems.append(Problem(submission.name, record["id"], "paper code", detail))


class MarkerFailure(MlexamError):
    """The marker raised an unexpected error on one submission; the rest of the class is still marked."""


def _mark(key: dict, submission: Submission, failure_level: int = logging.WARNING):
    """Mark the answers only, so a paper code in the file never stops the marking."""
    from marker.core import mark_submission

    try:
        return mark_submission(key, submission.answer_file.answers)
    except MlexamError:
        raise
    except Exception as error:  # one submission must not stop the marking of a whole class
        log.log(failure_level, "the marker failed on %s against the key of paper %s", submission.path,
                key.get("paper_code"), exc_info=log.isEnabledFor(logging.DEBUG))
        raise MarkerFailure(f"the marker failed on this file: {type(error).__name__}: {error}") from error


def _flag_copying(result: ClassResult, holders: dict[str, set[str]], key_count: int) -> None:
    """Flag a submission that earns more marks against another student's key than against its own.

    `holders` is an inverted index from each key value to the students whose key has it,
    over the `key_count` keys that could be read.
    A value in many keys (such as 0, 1 or a shared corpus word) is no evidence of
    copying, and leaving it out keeps the work linear in the class size.
    """
    common_limit = max(COPY_COMMON_MIN, key_count // COPY_COMMON_DIVISOR)

    for student in result.students:
        if student.status != "marked":
            continue
        overlap_by_student: Counter[str] = Counter()
        for value in _values(student.submission.answer_file.answers):
            owners = holders.get(value)
            if owners and len(owners) <= common_limit:
                overlap_by_student.update(owners)
        own_overlap = overlap_by_student.pop(student.id, 0)
        own = student.total
        best = None
        for other, overlap in overlap_by_student.most_common(COPY_CANDIDATES):
            # Only a submission closer to another student's key than to its own is marked again.
            if overlap <= own_overlap:
                break
            try:
                total = Fraction(_mark(result.key(other), student.submission, logging.DEBUG).total)
            except MlexamError:
                continue
            if best is None or total > best[0]:
                best = (total, other)
        maximum = Fraction(student.report.maximum)
        if best and best[0] > own and best[0] >= COPY_MIN_SHARE * maximum:
            result.problems.append(Problem(
                student.submission.name, student.id, "possible copying",
                f"the answers match {best[1]}'s variant better than {student.id}'s own: "
                f"{_show(best[0])}/{_show(maximum)} against {best[1]}'s key, "
                f"{_show(own)}/{_show(maximum)} against the student's own key"))


def _key_answers(key: dict) -> list:
    return [[part.get("expected"), part.get("decimal")] for question in key.get("questions", [])
            for part in question.get("parts", [])]


def _values(answers: object) -> set[str]:
    """Collect the words and numbers of an answer (or a key) as comparable strings.

    Numbers are rounded to two places, so "0.731" and "0.7311" count as the same value.
    """
    found: set[str] = set()
    stack = [answers]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif item is not None:
            text = str(item)
            found.add(" ".join(text.split()))
            for number in NUMBER_TOKEN.findall(text):
                found.add(f"{float(number):.2f}")
    found.discard("")
    found.discard("0.00")
    return found


def _show(value: Fraction) -> str:
    from marker.report import mark_text

    return mark_text(value)


def load_previous_gradebook(path: Path) -> dict[str, dict[str, str]] | None:
    """Read an earlier gradebook.csv into rows by student id; None when there is none."""
    import csv

    if not path.exists():
        return None
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        id_column = reader.fieldnames[0] if reader.fieldnames else None
        return {row[id_column]: row for row in reader if id_column}


def mark_changes(previous: dict[str, dict[str, str]], header: list[str], rows: list[dict[str, str]],
                 id_column: str, compared: list[str]) -> list[str]:
    """Describe every student whose marks or status differ from the previous gradebook."""
    changes = []
    for row in rows:
        old = previous.get(row[id_column])
        if old is None:
            changes.append(f"{row[id_column]}: new in the gradebook, total {row.get('Total') or '-'}")
            continue
        differences = []
        for column in compared:
            before, after = old.get(column, ""), row.get(column, "")
            if before != after:
                differences.append(f"{column} {before or '-'} -> {after or '-'}{_delta(before, after)}")
        if differences:
            changes.append(f"{row[id_column]}: " + ", ".join(differences))
    for student_id in sorted(set(previous) - {row[id_column] for row in rows}):
        changes.append(f"{student_id}: in the previous gradebook only")
    return changes


def _delta(before: str, after: str) -> str:
    try:
        difference = Fraction(after) - Fraction(before)
    except (ValueError, ZeroDivisionError):
        return ""
    return f" ({'+' if difference > 0 else ''}{_show(difference)})"

