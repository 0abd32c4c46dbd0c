"""`mlexam mark KEY ANSWERS`: mark one answer file and print, or write, the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from generator.errors import MlexamError
from marker.report import MarkReport, mark_text

# Width of the verdict column of the table: the longest verdict is "accepted_tie_branch".
VERDICT_WIDTH = 19


@click.command("mark")
@click.argument("key_path", metavar="KEY", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("answers_path", metavar="ANSWERS", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the marks as JSON instead of a table.")
@click.option("--feedback", "feedback_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.pdf",
              help="Also write a feedback sheet with the marks and a worked solution to this PDF.")
def mark(key_path: Path, answers_path: Path, as_json: bool, feedback_path: Path | None) -> None:
    """Mark the answer file ANSWERS against the key KEY (the -key.json file of `mlexam generate`).

    \b
    Examples:
      mlexam mark out/practice-1-key.json out/practice-1-answers.yaml
      mlexam mark out/practice-1-key.json answers.yaml --json
      mlexam mark out/practice-1-key.json answers.yaml --feedback feedback.pdf
    """
    from marker.answers import load_answers, load_key

    if feedback_path is not None:
        _check_feedback_path(feedback_path, key_path, answers_path)
    try:
        key = load_key(key_path)
        answers = load_answers(answers_path, key)
        report = _mark_or_explain(key, answers, key_path)
        if feedback_path is not None:
            write_feedback(feedback_path, key, answers, report)
    except MlexamError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except OSError as error:
        click.echo(f"error: cannot write the feedback sheet {feedback_path}: {error.strerror or error}; "
                   "choose a folder you can write to", err=True)
        sys.exit(1)

    for problem in answers.problems:
        click.echo(f"warning: {answers_path}: {problem}", err=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(format_table(report))
    if feedback_path is not None:
        click.echo(f"Feedback sheet: {feedback_path}", err=True)


def _mark_or_explain(key: dict, answers, key_path: Path) -> MarkReport:
    """Mark, turning a key with missing or mistyped fields into an error that names the key file."""
    from marker import mark_submission

    try:
        return mark_submission(key, answers)
    except (KeyError, TypeError, IndexError, AttributeError) as error:
        raise KeyFileError(f"{key_path}: the key is missing or has a mistyped field ({type(error).__name__}: "
                           f"{error}); write it again with `mlexam generate`") from None


class KeyFileError(MlexamError):
    exit_code = 2


def format_table(report: MarkReport) -> str:
    id_width = max([len("part")] + [len(part.id) for part in report.parts])
    mark_width = max([len("marks")] + [len(_marks(part.marks, part.maximum)) for part in report.parts])
    lines = []
    if report.student_id or report.paper:
        lines.append(f"Student {report.student_id or '(no id)'}, paper {report.paper or '(no code)'}")
    lines.append(f"{'part':<{id_width}}  {'verdict':<{VERDICT_WIDTH}}  {'marks':>{mark_width}}  feedback")
    for part in report.parts:
        lines.append(f"{part.id:<{id_width}}  {str(part.verdict):<{VERDICT_WIDTH}}  "
                     f"{_marks(part.marks, part.maximum):>{mark_width}}  {part.feedback}".rstrip())
    lines.append(f"Total: {_marks(report.total, report.maximum)}")
    return "\n".join(lines)


def _marks(marks, maximum) -> str:
    return f"{mark_text(marks)}/{mark_text(maximum)}"


def _check_feedback_path(feedback_path: Path, key_path: Path, answers_path: Path) -> None:
    """Exit with a message when writing the sheet would replace an input or a file that is not a PDF."""
    target = feedback_path.resolve()
    for label, source in (("answer file", answers_path), ("key", key_path)):
        if source.exists() and target == source.resolve():
            click.echo(f"error: --feedback {feedback_path} is the {label}; give the sheet its own name, "
                       "e.g. feedback.pdf", err=True)
            sys.exit(2)
    if target.is_file():
        with target.open("rb") as stream:
            if stream.read(5) != b"%PDF-":
                click.echo(f"error: --feedback {feedback_path} exists and is not a PDF, so it is kept; "
                           "give the sheet another name, e.g. feedback.pdf", err=True)
                sys.exit(2)


def write_feedback(path: Path, key: dict, answers, report: MarkReport) -> Path:
    """Write the feedback sheet PDF atomically: marks per part and the worked solution."""
    from marker.feedback import feedback_context
    from mlexam.render import render_pdf

    return render_pdf("feedback.html.j2", path, **feedback_context(key, answers, report))
