"""Generate one paper per student of a roster, in parallel and resumably.

Layout of the output folder:

    students/<safe id>/<safe id>-paper.pdf     question paper with name, id and variant code
    students/<safe id>/<safe id>-answers.yaml  blank answer file with the student id filled in
    keys/<safe id>-key.json                    key for the marker (teachers only)
    keys/<safe id>-key.pdf                     worked solutions (teachers only)
    answer-key-booklet.pdf                     every key, each student's starting on a new page
    manifest.json                              exam id, spec sha256, secret fingerprint, files

Every file is written atomically, and the manifest is rewritten after each student, so
a run that is stopped part way leaves only complete files. The next run skips every
student whose files are present with the sha256 that the manifest records.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from generator.errors import InputFileError, MlexamError
from generator.spec import Spec, load_spec, unequal_draws
from mlexam.batch import secret as secrets_
from mlexam.batch.manifest import ExamMismatchError, Manifest, files_intact, load_manifest, sha256_file
from mlexam.batch.names import safe_name, safe_names
from mlexam.batch.roster import Roster, read_roster

log = logging.getLogger(__name__)

BOOKLET_NAME = "answer-key-booklet.pdf"
LOCK_NAME = ".mlexam-batch.lock"
# Temporary files that mlexam.fileio names ".<final name>.<random>.tmp"; a killed run can leave them.
STALE_TEMPORARY = re.compile(r"^\..+\.tmp$")


class BatchBusyError(MlexamError):
    """Another run is writing to the same output folder."""

    exit_code = 2


@dataclass
class Batch:
    """Everything a run needs, read and checked before any file is written."""

    roster: Roster
    spec: Spec
    exam_id: str
    out_dir: Path
    secret: bytes = field(repr=False)
    secret_path: Path
    secret_created: bool


@dataclass
class BatchResult:
    generated: list[str]
    skipped: list[str]
    failed: dict[str, str]
    booklet: Path | None
    manifest: Path


def prepare_batch(roster_path: Path, spec_path: Path, out_dir: Path, *, id_column: str | None = None,
                  name_column: str | None = None, email_column: str | None = None,
                  secret_path: Path | None = None, exam_id: str | None = None) -> Batch:
    """Read the roster, the spec and the secret (creating the secret on the first run)."""
    roster = read_roster(roster_path, id_column, name_column, email_column)
    spec = load_spec(spec_path)
    unequal = unequal_draws(spec)
    if unequal:
        raise InputFileError(spec_path, unequal)
    out_dir = Path(out_dir)
    if secret_path is None:
        secret_path = out_dir.resolve().parent / f"{safe_name(exam_id or spec.name)}.secret"
    if not Path(secret_path).exists() and out_dir.is_dir():
        # The folder is checked with a throwaway secret first, so that a folder the run would
        # reject leaves no new secret file behind.
        _open_manifest(Batch(roster, spec, exam_id or spec.sha256, out_dir, os.urandom(secrets_.SECRET_BYTES),
                             Path(secret_path), True))
    secret, created = secrets_.load_or_create_secret(secret_path)
    return Batch(roster, spec, exam_id or spec.sha256, out_dir, secret, Path(secret_path), created)


def run_batch(batch: Batch, workers: int | None = None, force: bool = False, progress: bool = True) -> BatchResult:
    """Write every student's files and the booklet, skipping finished students unless `force`."""
    out_dir = batch.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    with _folder_lock(out_dir):
        manifest = _open_manifest(batch)
        _remove_stale_temporaries(out_dir)
        jobs, skipped = _plan(batch, manifest, force)
        manifest.complete = False
        manifest.save(out_dir)

        # Build the students' files in worker processes; record each as it finishes.
        failed: dict[str, str] = {}
        generated: list[str] = []
        if jobs:
            count = min(workers or os.cpu_count() or 1, len(jobs))
            # Errors are logged through tqdm, so that each prints on its own line above the progress bar.
            with ProcessPoolExecutor(max_workers=count, initializer=_start_worker) as pool, logging_redirect_tqdm(), \
                    tqdm(total=len(jobs), unit="student", desc="papers", disable=not progress) as bar:
                futures = {pool.submit(build_student_files, job): job for job in jobs}
                for future in as_completed(futures):
                    job = futures[future]
                    try:
                        result = future.result()
                    except MlexamError as error:
                        failed[job["student"]["id"]] = str(error)
                        log.error("student %s: %s", job["student"]["id"], error)
                    except Exception as error:  # one student's failure must not stop the other papers
                        failed[job["student"]["id"]] = f"{type(error).__name__}: {error}"
                        log.error("student %s: building the paper failed: %s: %s", job["student"]["id"],
                                  type(error).__name__, error, exc_info=log.isEnabledFor(logging.DEBUG))
                    else:
                        _record(manifest, job, result, batch.roster)
                        manifest.save(out_dir)
                        generated.append(job["student"]["id"])
                    bar.update()

        # The booklet is rebuilt whenever a key changed or the booklet is not the recorded one.
        booklet = out_dir / BOOKLET_NAME
        recorded = manifest.booklet or {}
        in_booklet = list(manifest.students)
        booklet_ok = (recorded.get("sha256") and sha256_file(booklet) == recorded["sha256"]
                      and recorded.get("students") == in_booklet)
        if failed:
            booklet = None
        elif generated or force or not booklet_ok:
            from mlexam.batch.booklet import write_booklet

            write_booklet(batch, manifest, booklet)
            manifest.booklet = {"path": BOOKLET_NAME, "sha256": sha256_file(booklet), "students": in_booklet}
        manifest.complete = not failed
        manifest.save(out_dir)
    return BatchResult(generated, skipped, failed, booklet, out_dir / "manifest.json")


def _open_manifest(batch: Batch) -> Manifest:
    """Return the folder's manifest, or a new one; raise ExamMismatchError for another exam's folder."""
    wanted = Manifest(batch.exam_id, batch.spec.name, batch.spec.sha256, secrets_.fingerprint(batch.secret),
                      title=batch.spec.data["title"])
    existing = load_manifest(batch.out_dir)
    if existing is None:
        others = [p.name for p in batch.out_dir.iterdir() if p.name != LOCK_NAME]
        if others:
            raise ExamMismatchError(f"{batch.out_dir} is not empty ({', '.join(sorted(others)[:5])}) and has no "
                                    "manifest.json, so it may hold other work; choose an empty or new --out folder")
        wanted.roster = _roster_record(batch.roster)
        return wanted
    differences = existing.mismatches(wanted)
    if differences:
        raise ExamMismatchError(
            f"{batch.out_dir} contains a different exam: {'; '.join(differences)}. Use another --out folder, or "
            "the spec, --exam-id and --secret that made this one.")
    existing.roster = _roster_record(batch.roster)
    return existing


def _roster_record(roster: Roster) -> dict:
    return {"path": str(roster.path), "sha256": sha256_file(roster.path), "kind": roster.kind,
            "id_column": roster.id_column, "name_column": roster.name_column,
            "email_column": roster.email_column, "identity_columns": roster.identity_columns}


def _plan(batch: Batch, manifest: Manifest, force: bool) -> tuple[list[dict], list[str]]:
    """List a job for every student whose files are missing, changed or forced; keep the rest."""
    names = safe_names([student.id for student in batch.roster.students])
    jobs, skipped = [], []
    records: dict[str, dict] = {}
    for student in batch.roster.students:
        code = secrets_.variant_code(batch.secret, batch.exam_id, student.id)
        record = manifest.students.get(student.id)
        if not force and record and record.get("variant_code") == code and \
                record.get("safe_name") == names[student.id] and files_intact(batch.out_dir, record["files"]):
            record.update(name=student.name, email=student.email, roster=_identity(batch.roster, student))
            records[student.id] = record
            skipped.append(student.id)
            continue
        jobs.append({
            "spec_path": str(batch.spec.path), "spec_sha256": batch.spec.sha256, "exam_id": batch.exam_id,
            "seed": secrets_.student_seed(batch.secret, batch.exam_id, student.id), "variant_code": code,
            "student": student.to_dict(), "roster": _identity(batch.roster, student),
            "safe_name": names[student.id], "out_dir": str(batch.out_dir),
        })
    gone = sorted(set(manifest.students) - {s.id for s in batch.roster.students})
    if gone:
        log.warning("%d students in the manifest are no longer in the roster; their files stay in %s: %s",
                    len(gone), batch.out_dir, ", ".join(gone[:10]))
    manifest.students = records
    return jobs, skipped


def _identity(roster: Roster, student) -> dict[str, str]:
    return {column: student.row.get(column, "") for column in roster.identity_columns}


def _record(manifest: Manifest, job: dict, result: dict, roster: Roster) -> None:
    """Store a finished student in roster order, so the manifest reads like the roster."""
    manifest.questions = result["questions"]
    manifest.total_marks = result["total_marks"]
    manifest.students[job["student"]["id"]] = {
        **job["student"], "safe_name": job["safe_name"], "variant_code": job["variant_code"],
        "roster": job["roster"], "files": result["files"]}
    manifest.students = {s.id: manifest.students[s.id] for s in roster.students if s.id in manifest.students}


def _remove_stale_temporaries(out_dir: Path) -> None:
    folders = [out_dir, out_dir / "keys", *sorted((out_dir / "students").glob("*/"))]
    for folder in folders:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in folder.iterdir():
            if entry.is_file() and not entry.is_symlink() and STALE_TEMPORARY.match(entry.name):
                log.info("removing %s, left by an interrupted run", entry)
                entry.unlink()


class _folder_lock:
    """An exclusive lock on the output folder, released when the process ends however it ends.

    A POSIX record lock (lockf) is not inherited by forked worker processes, so a worker
    left running after its parent was killed does not keep the next run out.
    """

    def __init__(self, folder: Path):
        self.path = folder / LOCK_NAME

    def __enter__(self):
        self.handle = open(self.path, "a")
        try:
            fcntl.lockf(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            self.handle.close()
            raise BatchBusyError(f"another mlexam run is writing to {self.path.parent}; wait for it to finish") \
                from None
        return self

    def __exit__(self, *exc):
        self.handle.close()


# Worker side: runs in a separate process, so it takes and returns plain data.

def _start_worker() -> None:
    """Load the generator and WeasyPrint, then exempt what they loaded from garbage collection.

    Rendering allocates many short-lived objects, and each full collection would otherwise
    walk sympy's and WeasyPrint's module objects as well.
    """
    import gc

    import generator.paper  # noqa: F401  (imported for its side effect: sympy and the question types load here)
    from mlexam.render import warm_up

    warm_up()
    gc.freeze()


@cache
def _spec(path: str, sha256: str) -> Spec:
    spec = load_spec(path)
    if spec.sha256 != sha256:
        raise ExamMismatchError(f"{path} changed while the papers were being generated; run the command again")
    return spec


def build_student_files(job: dict) -> dict:
    """Build one student's paper and write the paper, blank answers, key JSON and key PDF."""
    from generator.paper import blank_answers_yaml, build_paper
    from mlexam.batch.booklet import render_student_key
    from mlexam.fileio import write_bytes_atomic
    from mlexam.render import html_to_pdf, render_html

    spec = _spec(job["spec_path"], job["spec_sha256"])
    paper = build_paper(spec, job["seed"], code=job["variant_code"])
    paper.student = {"id": job["student"]["id"], "name": job["student"]["name"]}
    out_dir = Path(job["out_dir"])
    name = job["safe_name"]
    paths = {
        "paper": Path("students") / name / f"{name}-paper.pdf",
        "answers": Path("students") / name / f"{name}-answers.yaml",
        "key": Path("keys") / f"{name}-key.json",
        "key_pdf": Path("keys") / f"{name}-key.pdf",
    }

    # The key JSON names the student and the exam, so a key found alone can be traced.
    key = paper.key_dict()
    key["exam_id"] = job["exam_id"]
    key["student"] = dict(paper.student)
    contents = {
        "paper": html_to_pdf(render_html("paper.html.j2", paper=paper, show_key=False)),
        "answers": blank_answers_yaml(paper).encode("utf-8"),
        "key": (json.dumps(key, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        "key_pdf": render_student_key(paper),
    }
    files = {}
    for label, relative in paths.items():
        write_bytes_atomic(out_dir / relative, contents[label])
        files[label] = {"path": relative.as_posix(), "sha256": hashlib.sha256(contents[label]).hexdigest()}

    questions = [{"id": q.id, "type": q.type, "marks": q.marks,
                  "parts": [{"id": p.id, "name": p.name, "marks": p.marks} for p in q.parts]}
                 for q in paper.questions]
    return {"files": files, "questions": questions, "total_marks": paper.total_marks}
