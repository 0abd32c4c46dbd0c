"""Turn the errors that mlexam raises into messages on stderr and exit codes."""

from __future__ import annotations

import functools
import os
import sys

import click

from generator.errors import MlexamError


def report_errors(command):
    """Turn an MlexamError raised by a command into a message and its exit code."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except MlexamError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except BrokenPipeError:
            # The reader of stdout stopped early, as `mlexam ... | head` does: not an error.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except OSError as error:
            where = f" {error.filename}" if error.filename else ""
            click.echo(f"error: cannot access{where}: {error.strerror or error}; check the path and its permissions",
                       err=True)
            sys.exit(1)
    return wrapper
