"""`mlexam batch generate` and `mlexam batch mark`: a paper per student, and a class marked at once."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from mlexam.cli_errors import report_errors



@click.group("batch")
def batch() -> None:
    """Give every student of a roster their own variant, and mark the whole class."""


def _show_progress() -> bool:
    """Show progress bars unless --quiet set the log level to errors only."""
    return logging.getLogger("mlexam").getEffectiveLevel() < logging.ERROR


@batch.command("generate")
@click.argument("roster_path", metavar="ROSTER.csv", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Exam spec (YAML) that every student's variant is drawn from.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the papers, keys, booklet and manifest.")
@click.option("--id-column", help="Roster column with the student id. Default: detected from the header.")
@click.option("--name-column", help="Roster column with the student's name. Default: detected.")
@click.option("--email-column", help="Roster column with the email address. Default: detected.")
@click.option("--secret", "secret_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Secret file that the variants are derived from; created on the first run. "
                   "Default: <OUT>/../<exam>.secret.")
@click.option("--exam-id", help="Name of this sitting; a new id gives every student a new variant. "
                                "Default: the spec's sha256.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes. Default: the number of CPUs.")
@click.option("--force", is_flag=True, help="Write every file again, even the ones already finished.")
@report_errors
def batch_generate(roster_path, spec_path, out_dir, id_column, name_column, email_column, secret_path,
                   exam_id, workers, force) -> None:
    """Write a unique question paper and answer file for each student of ROSTER.csv, and every key."""
    from mlexam.batch.generate import prepare_batch, run_batch

    batch_run = prepare_batch(roster_path, spec_path, out_dir, id_column=id_column, name_column=name_column,
                              email_column=email_column, secret_path=secret_path, exam_id=exam_id)
    for problem in batch_run.roster.problems:
        click.echo(f"warning: {problem}", err=True)
    if batch_run.secret_created:
        click.echo(f"Created a new secret in {batch_run.secret_path} (readable by you only). Keep it and keep it "
                   "private: it regenerates every student's paper and key.", err=True)
    else:
        click.echo(f"Using the secret in {batch_run.secret_path}.", err=True)
    click.echo(f"Roster {roster_path}: {len(batch_run.roster.students)} students ({batch_run.roster.kind} format, "
               f"id column {batch_run.roster.id_column!r}).", err=True)

    result = run_batch(batch_run, workers=workers or os.cpu_count(), force=force, progress=_show_progress())
    click.echo(f"{len(result.generated)} generated, {len(result.skipped)} already finished, "
               f"{len(result.failed)} failed; manifest {result.manifest}", err=True)
    if result.booklet:
        click.echo(f"Answer-key booklet: {result.booklet}", err=True)
    if result.failed:
        names = ", ".join(sorted(result.failed)[:10]) + (", ..." if len(result.failed) > 10 else "")
        click.echo(f"Not generated: {names}. The errors above give the reason for each; fix them and run the "
                   "same command again, which generates only the students that are missing.", err=True)
        sys.exit(1)


@batch.command("mark")
@click.argument("batch_dir", metavar="DIR", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("submissions_dir", metavar="SUBMISSIONS",
                type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", "results_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the gradebook, problems list, class report and feedback.")
@click.option("--dry-run", is_flag=True, help="Mark and show which marks would change; write nothing.")
@click.option("--feedback/--no-feedback", default=True, show_default=True,
              help="Write a feedback PDF for every marked student.")
@report_errors
def batch_mark(batch_dir, submissions_dir, results_dir, dry_run, feedback) -> None:
    """Mark every answer file in SUBMISSIONS against the keys in DIR, written by `batch generate`."""
    from mlexam.batch.mark import mark_class
    from mlexam.batch.results import compare_with_previous, write_results

    if results_dir.resolve().is_relative_to(submissions_dir.resolve()):
        raise click.BadParameter("the results folder must not be inside the submissions folder, "
                                 "or the next run would read the results as submissions", param_hint="--out")
    result = mark_class(batch_dir, submissions_dir, progress=_show_progress())

    # Show what a re-mark changes before anything is overwritten.
    changes = compare_with_previous(results_dir, result)
    if changes is not None:
        students = "1 student's marks differ" if len(changes) == 1 else f"{len(changes)} students' marks differ"
        click.echo(f"{students} from the gradebook in {results_dir}:"
                   if changes else f"No marks differ from the gradebook in {results_dir}.")
        for line in changes:
            click.echo(f"  {line}")
    if not dry_run:
        write_results(results_dir, result, feedback=feedback)

    counts = result.counts()
    kinds = ", ".join(f"{counts[kind]} {kind}" for kind in sorted(counts)
                      if kind not in ("students", "marked", "missing", "problems"))
    click.echo(f"{counts['students']} students: {counts['marked']} marked, {counts['missing']} missing; "
               f"{counts['problems']} problems{f' ({kinds})' if kinds else ''}"
               f"{'; dry run, nothing written' if dry_run else f'; results written to {results_dir}/'}", err=True)
