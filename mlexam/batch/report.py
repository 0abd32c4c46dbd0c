"""Write a marked class: the gradebook CSV, the problems list and the class report PDF.

Gradebook columns, in order:

    roster identity columns   as in the roster, e.g. "ID number" (Moodle) or "Student", "ID",
                              "SIS User ID", "SIS Login ID", "Section" (Canvas)
    q1, q2, ...               marks per question
    Total                     the total mark
    Status                    marked, missing or not marked
    Submission                the marked file, relative to the submissions folder

A missing or unmarked student has empty mark cells, which both Moodle and Canvas
import as "no grade" rather than zero.
"""

from __future__ import annotations

import base64
import csv
import io
import math
import statistics
from collections import Counter
from fractions import Fraction
from pathlib import Path

from marker.mistakes import DESCRIPTIONS
from mlexam.batch.mark import ClassResult, StudentResult
from mlexam.fileio import write_text_atomic

STATUS_COLUMN = "Status"
SUBMISSION_COLUMN = "Submission"
TOTAL_COLUMN = "Total"
PROBLEM_COLUMNS = ["file", "student_id", "problem", "detail"]
# Mistakes shown in the heatmap; the rest are counted in the table only.
HEATMAP_MISTAKES = 12
PLOT_DPI = 150
# Totals up to this many marks get one histogram bar per mark; larger papers get this many bars.
MAX_MARK_BARS = 40


def gradebook(result: ClassResult) -> tuple[list[str], list[dict[str, str]], str]:
    """Return the header, one row per roster student, and the id column's name."""
    from marker.report import mark_text

    roster = result.manifest.roster
    identity = list(roster.get("identity_columns") or [roster.get("id_column") or "student_id"])
    id_column = roster.get("id_column") or identity[0]
    if id_column in identity:
        identity.remove(id_column)
    identity.insert(0, id_column)  # first, so that the gradebook's first column is the id
    questions = [question["id"] for question in result.manifest.questions]
    header = identity + questions + [TOTAL_COLUMN, STATUS_COLUMN, SUBMISSION_COLUMN]

    rows = []
    for student in result.students:
        row = {column: student.record.get("roster", {}).get(column, "") for column in identity}
        row[id_column] = student.id
        for question_id in questions:
            row[question_id] = mark_text(question_marks(student, question_id)) if student.report else ""
        row[TOTAL_COLUMN] = mark_text(student.total) if student.report else ""
        row[STATUS_COLUMN] = student.status
        row[SUBMISSION_COLUMN] = student.submission.name if student.submission else ""
        rows.append(row)
    return header, rows, id_column


def question_marks(student: StudentResult, question_id: str) -> Fraction:
    return sum((part.marks for part in student.report.parts if part.id.split(".")[0] == question_id), Fraction(0))


# A spreadsheet reads a cell that starts with one of these as a formula, so a roster
# name or file name such as =HYPERLINK(...) would run when the teacher opens the file.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert_cell(value: object) -> object:
    """Prefix text that a spreadsheet would run as a formula with an apostrophe; numbers are kept."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def csv_text(header: list[str], rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writerow({name: inert_cell(name) for name in header})
    writer.writerows({name: inert_cell(value) for name, value in row.items()} for row in rows)
    return buffer.getvalue()


def write_problems(path: Path, result: ClassResult) -> None:
    rows = [{"file": p.file, "student_id": p.student_id, "problem": p.kind, "detail": p.detail}
            for p in result.problems]
    write_text_atomic(path, csv_text(PROBLEM_COLUMNS, rows))


# ---- class statistics ----------------------------------------------------------------

def part_statistics(result: ClassResult) -> list[dict]:
    """Facility (mean mark over maximum) and discrimination of every part, over marked students.

    Discrimination is the Pearson correlation between the part's mark and the total of
    the other parts, so a part is not correlated with itself. It is None when either
    side is constant or fewer than three students were marked.
    """
    marked = [s for s in result.students if s.report]
    if not marked:
        return []
    totals = [s.total for s in marked]
    stats = []
    for index, part in enumerate(marked[0].report.parts):
        marks = [s.report.parts[index].marks for s in marked]
        scores = [float(mark) for mark in marks]
        rest = [float(total - mark) for total, mark in zip(totals, marks)]
        maximum = float(part.maximum)
        stats.append({
            "id": _slot_name(marked, index), "maximum": maximum,
            "facility": _facility(marked, index),
            "discrimination": _correlation(scores, rest),
            "blank": sum(str(s.report.parts[index].verdict) == "missing" for s in marked),
        })
    return stats


def _facility(marked: list, index: int) -> float | None:
    """Return the mean share of the part's marks that students earned, or None for a part worth nothing."""
    parts = [student.report.parts[index] for student in marked]
    if any(not part.maximum for part in parts):
        return None
    return statistics.fmean(float(part.marks / part.maximum) for part in parts)


def _slot_name(marked: list, index: int) -> str:
    """Name the part at `index` of every report: its id, or its question and position where students differ.

    Concept questions drawn from a topic give each student other bank questions, so the
    part ids at one position differ, as in q10.vanishing_power and q10.exploding_cause.
    """
    ids = {student.report.parts[index].id for student in marked}
    if len(ids) == 1:
        return ids.pop()
    question = marked[0].report.parts[index].id.split(".")[0]
    position = sum(part.id.split(".")[0] == question for part in marked[0].report.parts[:index]) + 1
    return f"{question} item {position} (varies)"


def _correlation(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return statistics.correlation(xs, ys)


def mistake_counts(result: ClassResult) -> Counter:
    """Count (part id, mistake name) over the marked students."""
    return Counter((part.id, part.mistake) for s in result.students if s.report
                   for part in s.report.parts if part.mistake)


def score_summary(result: ClassResult) -> dict:
    totals = [float(s.total) for s in result.students if s.report]
    if not totals:
        return {}
    return {"n": len(totals), "mean": statistics.fmean(totals), "median": statistics.median(totals),
            "sd": statistics.stdev(totals) if len(totals) > 1 else 0.0, "min": min(totals), "max": max(totals)}


# ---- plots ---------------------------------------------------------------------------

def _png_data_url(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PLOT_DPI, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def histogram_plot(result: ClassResult) -> str | None:
    import matplotlib.pyplot as plt

    totals = [float(s.total) for s in result.students if s.report]
    if not totals:
        return None
    maximum = float(result.manifest.total_marks or max(totals) or 1)
    figure, axes = plt.subplots(figsize=(6.4, 2.8))
    # One bar per whole mark when that fits, so that no bar mixes two totals.
    if maximum <= MAX_MARK_BARS:
        bins = [mark - 0.5 for mark in range(int(math.ceil(maximum)) + 2)]
    else:
        bins = MAX_MARK_BARS
    axes.hist(totals, bins=bins, range=(0, maximum), color="#4c72b0", edgecolor="white")
    axes.set_xlabel(f"Total mark (out of {maximum:g})")
    axes.set_ylabel("Number of students")
    axes.set_title(f"Score distribution ({len(totals)} marked)")
    axes.yaxis.get_major_locator().set_params(integer=True)
    return _png_data_url(figure)


def parts_plot(stats: list[dict]) -> str | None:
    import matplotlib.pyplot as plt

    if not stats:
        return None
    labels = [s["id"] for s in stats]
    positions = range(len(labels))
    # Many parts get upright labels in a smaller font, so neighbouring labels never overlap.
    crowded = len(labels) > 12
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.4 if crowded else 5.0), sharex=True)
    top.bar(positions, [s["facility"] or 0 for s in stats], color="#55a868")
    top.set_ylim(0, 1)
    # Two-line labels in a smaller font stay within their own axes instead of running into each other.
    top.set_ylabel("Facility\n(mean mark / maximum)", fontsize=8)
    top.set_title("Per-part facility and discrimination")
    bottom.bar(positions, [s["discrimination"] if s["discrimination"] is not None else 0 for s in stats],
               color="#c44e52")
    bottom.axhline(0, color="#333", linewidth=0.8)
    bottom.set_ylim(-1, 1)
    bottom.set_ylabel("Discrimination\n(part vs rest, r)", fontsize=8)
    bottom.set_xlabel("Part")
    if crowded:
        bottom.set_xticks(list(positions), labels, rotation=90, ha="center", fontsize=6)
    else:
        bottom.set_xticks(list(positions), labels, rotation=45, ha="right")
    figure.tight_layout()
    return _png_data_url(figure)


def mistakes_plot(counts: Counter) -> str | None:
    import matplotlib.pyplot as plt
    import numpy as np

    if not counts:
        return None
    by_mistake = Counter()
    for (_, mistake), number in counts.items():
        by_mistake[mistake] += number
    mistakes = [name for name, _ in by_mistake.most_common(HEATMAP_MISTAKES)]
    parts = sorted({part for part, mistake in counts if mistake in mistakes})
    grid = np.array([[counts.get((part, mistake), 0) for mistake in mistakes] for part in parts])
    figure, axes = plt.subplots(figsize=(6.4, 1.2 + 0.35 * len(parts) + 0.1 * max(map(len, mistakes))))
    image = axes.imshow(grid, cmap="Oranges", aspect="auto")
    axes.set_xticks(range(len(mistakes)), mistakes, rotation=40, ha="right")
    axes.set_yticks(range(len(parts)), parts)
    axes.set_xlabel("Recognised mistake")
    axes.set_ylabel("Part")
    axes.set_title("Most common recognised mistakes (number of students)")
    for row in range(len(parts)):
        for column in range(len(mistakes)):
            if grid[row, column]:
                axes.text(column, row, str(grid[row, column]), ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=axes, label="Students")
    return _png_data_url(figure)


def render_class_report(result: ClassResult, path: Path) -> None:
    """Render the class report PDF with its plots embedded as data: URLs."""
    import matplotlib

    matplotlib.use("Agg")
    from mlexam.render import render_pdf

    stats = part_statistics(result)
    counts = mistake_counts(result)
    render_pdf("class_report.html.j2", path, manifest=result.manifest, counts=result.counts(),
               summary=score_summary(result), stats=stats, mistakes=counts.most_common(),
               histogram=histogram_plot(result), parts_plot=parts_plot(stats), mistakes_plot=mistakes_plot(counts),
               problems=result.problems, isfinite=math.isfinite, mistake_descriptions=DESCRIPTIONS)
