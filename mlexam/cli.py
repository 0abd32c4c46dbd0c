"""The `mlexam` command and its subcommands.

Library code raises MlexamError subclasses; this module alone turns them into
messages on stderr and exit codes (1 for an error, 2 for bad input or usage).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

import mlexam
from mlexam.cli_batch import batch
from mlexam.cli_check import check
from mlexam.cli_errors import report_errors
from mlexam.cli_mark import mark
from mlexam.cli_solve import solve_backprop, solve_bpe

log = logging.getLogger("mlexam")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(mlexam.__version__, prog_name="mlexam")
@click.option("-v", "--verbose", count=True, help="Show more progress detail (-vv for debug logging).")
@click.option("-q", "--quiet", is_flag=True, help="Show errors only.")
def main(verbose: int, quiet: bool) -> None:
    """Generate and mark exam questions on byte-pair encoding and backpropagation."""
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr)
    logging.getLogger("mlexam").setLevel(level)
    logging.getLogger("generator").setLevel(level)
    logging.getLogger("marker").setLevel(level)


@main.command()
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Exam spec (YAML). Default: the bundled practice paper.")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True,
              help="Seed of the random variants; the same spec and seed give the same paper.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out"),
              show_default=True, help="Folder for the four output files.")
@report_errors
def generate(spec_path: Path | None, seed: int, out_dir: Path) -> None:
    """Write a question paper, its answer key (PDF and JSON) and a blank answer file."""
    from mlexam.pdfworker import PdfWorker

    try:
        # Started first, so that it loads WeasyPrint while this process imports sympy and builds the paper.
        with PdfWorker(documents=2) as pdf_worker:
            from generator.paper import build_paper, write_paper
            from generator.spec import bundled_spec_path, load_spec

            spec = load_spec(spec_path or bundled_spec_path())
            paper = build_paper(spec, seed)
            paths = write_paper(paper, out_dir, pdf_worker=pdf_worker)
    except KeyboardInterrupt:
        # Each file is written whole or not at all, but the four files of a set are not.
        click.echo(f"Interrupted: the set for seed {seed} in {out_dir} may be incomplete, or partly from an "
                   "earlier run. Run the same command again to write all four files.", err=True)
        sys.exit(130)
    count = len(paper.questions)
    click.echo(f"Paper {paper.code}: {count} question{'s' if count != 1 else ''}, "
               f"{paper.total_marks} mark{'s' if paper.total_marks != 1 else ''} (seed {seed}).")
    for label, name in (("question paper", "paper"), ("answer key", "key_pdf"),
                        ("key for the marker", "key"), ("blank answer file", "answers")):
        click.echo(f"  {label + ':':20} {paths[name]}")
    if "kept_answers" in paths:
        click.echo(f"Kept {paths['kept_answers']} unchanged because it differs from the blank answer file.", err=True)


@main.group()
def solve() -> None:
    """Print the worked solution of a problem typed in from any paper."""


solve.add_command(solve_bpe)
solve.add_command(solve_backprop)
main.add_command(batch)
main.add_command(check)
main.add_command(mark)
