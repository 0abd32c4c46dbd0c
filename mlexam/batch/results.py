"""Write the results folder of `batch mark`, keeping the previous gradebook.

    gradebook.csv            one row per roster student (see mlexam.batch.report)
    gradebook.previous.csv   the gradebook this run replaced; older ones get a time stamp
    problems.csv             every file or student that needs attention, with the reason
    class-report.pdf         score histogram, facility and discrimination, mistakes heatmap
    feedback/<safe id>-feedback.pdf   one per marked student

Every path written is checked to lie inside the results folder after symbolic links
are resolved, so a link placed in that folder cannot redirect a write elsewhere.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from generator.errors import MlexamError
from mlexam.batch.mark import ClassResult, load_previous_gradebook, long_lived_objects_frozen, mark_changes
from mlexam.batch.report import TOTAL_COLUMN, csv_text, gradebook, render_class_report, write_problems
from mlexam.fileio import write_text_atomic

log = logging.getLogger(__name__)

GRADEBOOK = "gradebook.csv"
PREVIOUS_GRADEBOOK = "gradebook.previous.csv"
PROBLEMS = "problems.csv"
CLASS_REPORT = "class-report.pdf"
FEEDBACK_DIR = "feedback"


class UnsafeOutputError(MlexamError):
    """A path in the results folder leads outside it."""

    exit_code = 2


@dataclass
class WrittenResults:
    changes: list[str] | None  # None on the first run: there was no gradebook to compare with
    paths: dict[str, Path] = field(default_factory=dict)
    feedback: int = 0


def compare_with_previous(results_dir: Path, result: ClassResult) -> list[str] | None:
    """List the students whose marks or status differ from the gradebook already in `results_dir`."""
    previous = load_previous_gradebook(Path(results_dir) / GRADEBOOK)
    if previous is None:
        return None
    header, rows, id_column = gradebook(result)
    compared = [column for column in header if column == TOTAL_COLUMN or column.startswith("q")] + ["Status"]
    return mark_changes(previous, header, rows, id_column, compared)


def write_results(results_dir: Path, result: ClassResult, feedback: bool = True) -> WrittenResults:
    """Write every output file; the earlier gradebook is kept as gradebook.previous.csv."""
    # The marked class and its keys stay alive while the files are written.
    with long_lived_objects_frozen():
        return _write_results(Path(results_dir), result, feedback)


def _write_results(root: Path, result: ClassResult, feedback: bool) -> WrittenResults:
    root.mkdir(parents=True, exist_ok=True)
    written = WrittenResults(compare_with_previous(root, result))

    # Keep the earlier gradebook, and any earlier kept one under a time-stamped name.
    current = _inside(root, GRADEBOOK)
    if current.exists():
        kept = _inside(root, PREVIOUS_GRADEBOOK)
        if kept.exists():
            stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(kept.stat().st_mtime))
            os.replace(kept, _unused(root, f"gradebook.previous-{stamp}", ".csv"))
        os.replace(current, kept)
        written.paths["previous"] = kept

    header, rows, _ = gradebook(result)
    write_text_atomic(current, csv_text(header, rows))
    written.paths["gradebook"] = current
    written.paths["problems"] = _inside(root, PROBLEMS)
    write_problems(written.paths["problems"], result)
    written.paths["report"] = _inside(root, CLASS_REPORT)
    render_class_report(result, written.paths["report"])

    if feedback:
        render = feedback_renderer()
        for student in result.students:
            if student.report is None:
                continue
            path = _inside(root, f"{FEEDBACK_DIR}/{student.record['safe_name']}-feedback.pdf")
            render(path, result.key(student.id), student.submission.answer_file, student.report)
            written.feedback += 1
    return written


def _inside(root: Path, relative: str) -> Path:
    """Return root/relative, raising UnsafeOutputError when it resolves outside root."""
    path = root / relative
    resolved_root = root.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.parent.resolve().is_relative_to(resolved_root) or path.is_symlink():
        raise UnsafeOutputError(f"{path} leads outside the results folder {root} through a symbolic link; "
                                "remove the link or choose another --out folder")
    return path


def _unused(root: Path, stem: str, suffix: str) -> Path:
    number = 0
    path = root / f"{stem}{suffix}"
    while path.exists():
        number += 1
        path = root / f"{stem}-{number}{suffix}"
    return path


def feedback_renderer():
    """Return the feedback-sheet writer of `mlexam mark --feedback`: (path, key, answers, report)."""
    from mlexam.cli_mark import write_feedback

    return write_feedback
