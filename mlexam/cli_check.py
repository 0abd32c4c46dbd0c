"""`mlexam check`: tell a student which answers cannot be read, before handing the file in."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from generator.errors import MlexamError

log = logging.getLogger("mlexam")


@click.command("check")
@click.argument("answers", type=click.Path(path_type=Path))
@click.option("--key", "key_path", type=click.Path(path_type=Path),
              help="Key JSON of the paper; with it, every number, vector and matrix is read as the paper expects.")
def check(answers: Path, key_path: Path | None) -> None:
    """Check that every answer in ANSWERS can be read; never says whether an answer is right.

    Exit status: 0 when all answers can be read, 1 when some cannot, 2 when the file
    itself (or the key) cannot be read.
    """
    from marker.answers import load_key
    from marker.check import check_answers, count_answers

    try:
        key = load_key(key_path) if key_path is not None else None
        problems = check_answers(answers, key)
        total = count_answers(answers, key)
    except MlexamError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)

    if key is None:
        log.warning("no --key given: only blank answers and the file's structure were checked")
    if not problems:
        click.echo(f"{answers}: all {total} answers can be read")
        return
    click.echo(f"{answers}: {len(problems)} problem{'s' if len(problems) != 1 else ''} in {total} answers:")
    for problem in problems:
        click.echo(f"  {problem}")
    sys.exit(1)
