"""Locate the bundled templates and question banks, in a wheel or in a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the folder `templates` or `question_banks`.

    A wheel carries both inside the `mlexam` package; a source checkout (and an
    editable install) has them at the top of the repository.
    """
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bundled folder {name!r} not found beside {_PACKAGE_DIR}; reinstall mlexam")


def resource_path(folder: str, *parts: str) -> Path:
    return resource_dir(folder).joinpath(*parts)
