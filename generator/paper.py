"""Assemble a paper from a spec and a seed, and write its four files.

The files are the question paper PDF, the answer key PDF with worked solutions, the
key as versioned JSON for the marker, and a blank answer file in YAML.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import mlexam
from generator.errors import InputFileError, ProblemError
from generator.question import Question
from generator.registry import QUESTION_TYPES
from generator.spec import Spec
from mlexam.fileio import write_text_atomic

KEY_FORMAT = "mlexam-key"
KEY_VERSION = 1
ANSWERS_FORMAT = "mlexam-answers"
ANSWERS_VERSION = 1

# Raised whenever the same spec and seed would give different variants, so that a key
# records which sequence of draws made it.
GENERATOR_VERSION = 1
RNG_NAME = "numpy PCG64, one SeedSequence(seed).spawn child per question"


@dataclass
class Section:
    title: str
    instructions: str
    questions: list[Question]


@dataclass
class Paper:
    """A generated paper: its sections of questions and everything the key records."""

    spec: Spec
    seed: int
    code: str  # printed on the paper; reveals neither the seed nor any answer
    sections: list[Section]
    student: dict | None = None

    @property
    def questions(self) -> list[Question]:
        return [q for section in self.sections for q in section.questions]

    @property
    def total_marks(self) -> int:
        return sum(q.marks for q in self.questions)

    @property
    def title(self) -> str:
        return self.spec.data["title"]

    def key_dict(self) -> dict:
        return {
            "format": KEY_FORMAT,
            "format_version": KEY_VERSION,
            "generator": {"name": "mlexam", "version": mlexam.__version__,
                          "generator_version": GENERATOR_VERSION, "rng": RNG_NAME},
            "seed": self.seed,
            "spec": {"name": self.spec.name, "sha256": self.spec.sha256},
            "paper_code": self.code,
            "title": self.title,
            "decimal_places": self.spec.decimal_places,
            "total_marks": self.total_marks,
            "questions": [q.to_dict() for q in self.questions],
        }

    def key_json(self) -> str:
        return json.dumps(self.key_dict(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def paper_code(spec: Spec, seed: int) -> str:
    digest = hashlib.sha256(f"{spec.sha256}:{seed}:{GENERATOR_VERSION}".encode()).hexdigest()
    return "P-" + digest[:8].upper()


def build_paper(spec: Spec, seed: int, code: str | None = None) -> Paper:
    """Build every question of the spec; question i draws from the i-th child of the seed."""
    places = spec.decimal_places
    question_specs = [q for section in spec.data["sections"] for q in section["questions"]]
    children = np.random.SeedSequence(seed).spawn(len(question_specs))
    sections = []
    problems: list[str] = []
    number = 0
    for section_index, section in enumerate(spec.data["sections"]):
        questions = []
        for question_index, question_spec in enumerate(section["questions"]):
            rng = np.random.Generator(np.random.PCG64(children[number]))
            number += 1
            question_places = int(question_spec.get("decimal_places", places))
            build = QUESTION_TYPES[question_spec["type"]].build
            try:
                questions.append(build(f"q{number}", question_spec, rng, question_places))
            except ProblemError as error:
                problems.append(f"sections.{section_index}.questions.{question_index} (question {number}): {error}")
        sections.append(Section(section.get("title", ""), section.get("instructions", ""), questions))
    if problems:
        raise InputFileError(spec.path, problems)
    return Paper(spec, seed, code or paper_code(spec, seed), sections)


def blank_answers_yaml(paper: Paper) -> str:
    """Write the blank answer file: every part id, with a comment giving the expected form."""
    lines = [
        f"# Answer file for {json.dumps(paper.title, ensure_ascii=False)}, paper {paper.code}.",
        "# Write each answer between the quotes, or replace the quotes with a YAML list.",
        "# Numbers may be decimals, fractions or exact expressions such as e/(1+e).",
        f"# Give decimals to {paper.spec.decimal_places} decimal places unless a question says otherwise.",
        f"format: {ANSWERS_FORMAT}",
        f"format_version: {ANSWERS_VERSION}",
        f"paper: {paper.code}",
        f"student_id: {json.dumps((paper.student or {}).get('id', ''), ensure_ascii=False)}",
        "answers:",
    ]
    for question in paper.questions:
        lines.append(f"  {question.id}:")
        for part in question.parts:
            lines.append(f"    # {part.label} ({part.marks} mark{'s' if part.marks != 1 else ''}): {part.form}")
            lines.extend(_yaml_value(part.name, part.blank, indent=4))
    return "\n".join(lines) + "\n"


def _yaml_value(name: str, blank: object, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(blank, dict):
        return [f"{pad}{name}:"] + [f"{pad}  {json.dumps(k, ensure_ascii=False)}: \"\"" for k in blank]
    if isinstance(blank, list):
        return [f"{pad}{name}:"] + [f"{pad}  - \"\"" for _ in blank]
    return [f"{pad}{name}: \"\""]


def _holds_other_text(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8", errors="replace") != text
    except FileNotFoundError:
        return False


def write_paper(paper: Paper, out_dir: Path, stem: str | None = None, pdf_worker=None) -> dict[str, Path]:
    """Write the paper PDF, key PDF, key JSON and blank answer file; return their paths.

    With a `mlexam.pdfworker.PdfWorker`, the key and paper PDFs are laid out in its
    processes, at the same time.
    """
    from mlexam.render import render_html, render_pdf

    out_dir = Path(out_dir)
    stem = stem or f"{paper.spec.name}-{paper.seed}"
    paths = {
        "paper": out_dir / f"{stem}-paper.pdf",
        "key_pdf": out_dir / f"{stem}-key.pdf",
        "key": out_dir / f"{stem}-key.json",
        "answers": out_dir / f"{stem}-answers.yaml",
    }
    write_text_atomic(paths["key"], paper.key_json())
    blank = blank_answers_yaml(paper)
    if _holds_other_text(paths["answers"], blank):
        # The student may have filled this file in: it is kept, and the blank goes beside it.
        paths["kept_answers"] = paths["answers"]
        paths["answers"] = out_dir / f"{stem}-answers.blank.yaml"
    write_text_atomic(paths["answers"], blank)
    if pdf_worker is None:
        render_pdf("paper.html.j2", paths["paper"], paper=paper, show_key=False)
        render_pdf("key.html.j2", paths["key_pdf"], paper=paper, show_key=True)
        return paths
    pdf_worker.submit(render_html("key.html.j2", paper=paper, show_key=True), paths["key_pdf"])
    pdf_worker.submit(render_html("paper.html.j2", paper=paper, show_key=False), paths["paper"])
    pdf_worker.wait()
    return paths
