"""Shared fixtures for the test suite."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

# Property tests draw the same examples on every run, so a CI failure reproduces
# locally; HYPOTHESIS_PROFILE=thorough draws more.
settings.register_profile("ci", derandomize=True, database=None, max_examples=60,
                          deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Seed of the paper that the generate tests share, because rendering both PDFs takes seconds.
GENERATED_SEED = 7


@pytest.fixture(scope="session")
def generated_paper(tmp_path_factory) -> dict:
    """Run `mlexam generate` once with the bundled spec; return the output paths and the key."""
    from mlexam.cli import main

    out_dir = tmp_path_factory.mktemp("generated")
    result = CliRunner().invoke(main, ["generate", "--seed", str(GENERATED_SEED), "--out", str(out_dir)],
                                prog_name="mlexam")
    assert result.exit_code == 0, result.output
    stem = f"practice-{GENERATED_SEED}"
    paths = {
        "paper": out_dir / f"{stem}-paper.pdf",
        "key_pdf": out_dir / f"{stem}-key.pdf",
        "key": out_dir / f"{stem}-key.json",
        "answers": out_dir / f"{stem}-answers.yaml",
    }
    return {"dir": Path(out_dir), "seed": GENERATED_SEED, "paths": paths, "output": result.output,
            "key": json.loads(paths["key"].read_text(encoding="utf-8"))}


@pytest.fixture
def strict_xhtml(monkeypatch):
    """Make every document mlexam renders in this test parse as XHTML, or fail the test.

    Off that path WeasyPrint would still render the document, only more slowly, so a
    template that stops being well-formed would otherwise go unnoticed.
    """
    from xml.etree import ElementTree

    import mlexam.render

    monkeypatch.setattr(mlexam.render, "_parse_xhtml", ElementTree.fromstring)
