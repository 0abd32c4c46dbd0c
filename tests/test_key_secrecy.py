"""Question papers, their metadata and blank answer files carry no key value, seed or secret.

Every question type is built alone from a spec in the test's folder, with a seed
whose digits cannot occur by chance. The leak finder is first shown to find the
key values in the key PDF, so that a paper passing it means something.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from generator.paper import blank_answers_yaml, build_paper
from generator.registry import QUESTION_TYPES
from generator.spec import bundled_spec_path, load_spec
from hostile.leaks import found_secrets, key_secrets, without_examples
from hostile.papers import normalise, pdf_metadata_text, pdf_text, write_spec
from mlexam.render import html_to_pdf, render_html

SEED = 86420975
HEADER = {"course": "Course", "instructions": "Answer every question.", "duration_minutes": 30}
# Fields a question type needs besides `type`; every other type builds from its type alone.
EXTRA_FIELDS = {"concept": {"topic": "gradients", "count": 2}}


def type_spec(folder: Path, type_name: str) -> Path:
    question = {"type": type_name, **EXTRA_FIELDS.get(type_name, {})}
    return write_spec(folder, {**HEADER, "sections": [{"questions": [question]}]}, name=type_name)


def seed_texts(seed: int) -> list[str]:
    return [str(seed), format(seed, "x"), format(seed, "X")]


@pytest.mark.parametrize("type_name", sorted(QUESTION_TYPES))
def test_paper_hides_key(tmp_path, type_name):
    paper = build_paper(load_spec(type_spec(tmp_path, type_name)), SEED)
    key = json.loads(paper.key_json())
    secrets = [secret for question in key["questions"] for secret in key_secrets(question)]
    paper_pdf = tmp_path / "paper.pdf"
    paper_pdf.write_bytes(html_to_pdf(render_html("paper.html.j2", paper=paper, show_key=False)))
    texts = {
        "paper text": pdf_text(paper_pdf),
        "paper metadata": pdf_metadata_text(paper_pdf),
        "blank answer file": normalise(without_examples(blank_answers_yaml(paper))),
    }

    for where, text in texts.items():
        assert found_secrets(text, secrets) == [], where
        for seed_text in seed_texts(SEED):
            assert seed_text not in text, where
    assert str(SEED).encode() not in paper_pdf.read_bytes()


def test_leak_finder_finds_key_values(tmp_path):
    """The same search run on the answer key PDF finds its values, for BPE and backpropagation."""
    spec_path = write_spec(tmp_path, {**HEADER, "sections": [{"questions": [
        {"type": "bpe_train", "fixed": {"corpus": "low lowish", "merges": 4}},
        {"type": "backprop_softmax", "fixed": {"W": [[1, 0], [2, -1]], "x": [1, 2], "b": [0, 0], "t": [1, 0]}},
    ]}]})
    paper = build_paper(load_spec(spec_path), SEED)
    key = json.loads(paper.key_json())
    key_pdf = tmp_path / "key.pdf"
    key_pdf.write_bytes(html_to_pdf(render_html("key.html.j2", paper=paper, show_key=True)))

    found = found_secrets(pdf_text(key_pdf), key_secrets(key["questions"][0]) + key_secrets(key["questions"][1]))

    assert "lowi s h </w>" in found
    assert "low</w>" in found
    assert "0.731" in found
    assert "-0.269" in found


def test_practice_paper_hides_key(tmp_path):
    """The bundled practice paper, with fixed and random questions of several types, passes the same search."""
    paper = build_paper(load_spec(bundled_spec_path()), SEED)
    key = json.loads(paper.key_json())
    secrets = [secret for question in key["questions"] for secret in key_secrets(question)]
    paper_pdf = tmp_path / "paper.pdf"
    paper_pdf.write_bytes(html_to_pdf(render_html("paper.html.j2", paper=paper, show_key=False)))

    assert len(secrets) > 50
    for text in (pdf_text(paper_pdf), pdf_metadata_text(paper_pdf), normalise(without_examples(blank_answers_yaml(paper)))):
        assert found_secrets(text, secrets) == []
        assert str(SEED) not in text


# Batch papers: the course secret and each student's derived seed stay off the papers.

@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch-secrecy")
    roster = folder / "roster.csv"
    with roster.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["student id", "name", "email"])
        writer.writerow(["s1001", "Ana Silva", "ana@example.org"])
        writer.writerow(["s1002", "Bo Chen", "bo@example.org"])
    spec_path = write_spec(folder, {**HEADER, "sections": [{"questions": [
        {"type": "bpe_train"}, {"type": "backprop_softmax", "parts": ["y", "L", "delta"]}]}]}, name="exam")
    secret_path = folder / "exam.secret"
    finished = subprocess.run([sys.executable, "-m", "mlexam", "batch", "generate", str(roster), "--spec",
                               str(spec_path), "--out", str(folder / "out"), "--secret", str(secret_path),
                               "--workers", "1"], capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    return folder / "out", secret_path


def student_seeds(secret_path: Path, exam_id: str) -> dict[str, int]:
    from mlexam.batch.secret import read_secret, student_seed

    secret = read_secret(secret_path)
    return {student_id: student_seed(secret, exam_id, student_id) for student_id in ("s1001", "s1002")}


def test_batch_papers_hide_secret_and_seeds(batch_folder):
    out_dir, secret_path = batch_folder
    secret_hex = secret_path.read_text(encoding="ascii").strip()
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    exam_id = manifest.get("exam_id") or manifest["exam"]["id"]
    seeds = student_seeds(secret_path, exam_id)
    student_files = sorted((out_dir / "students").rglob("*"))

    assert [path.suffix for path in student_files if path.is_file()]
    for path in student_files:
        if not path.is_file():
            continue
        raw = path.read_bytes()
        texts = [raw.decode("latin-1")]
        if path.suffix == ".pdf":
            texts += [pdf_text(path), pdf_metadata_text(path)]
        for text in texts:
            assert secret_hex not in text.lower(), path.name
            assert secret_hex[:16] not in text.lower(), path.name
            for seed in seeds.values():
                for seed_text in seed_texts(seed):
                    assert seed_text not in text, path.name


def test_batch_papers_hide_key_values(batch_folder):
    out_dir, _ = batch_folder
    keys = sorted((out_dir / "keys").glob("*-key.json"))

    assert len(keys) == 2
    for key_path in keys:
        key = json.loads(key_path.read_text(encoding="utf-8"))
        secrets = [secret for question in key["questions"] for secret in key_secrets(question)]
        student = key_path.name.removesuffix("-key.json")
        paper_pdf, = (out_dir / "students").rglob(f"{student}-paper.pdf")
        answers, = (out_dir / "students").rglob(f"{student}-answers.yaml")
        assert secrets
        assert found_secrets(pdf_text(paper_pdf), secrets) == []
        assert found_secrets(pdf_metadata_text(paper_pdf), secrets) == []
        assert found_secrets(normalise(without_examples(answers.read_text(encoding="utf-8"))), secrets) == []


def test_batch_students_folder_has_no_key(batch_folder):
    """Only papers and answer files go in the folder that is handed out."""
    out_dir, secret_path = batch_folder
    names = [path.name for path in (out_dir / "students").rglob("*") if path.is_file()]

    assert names
    assert all(re.search(r"-(paper\.pdf|answers\.yaml)$", name) for name in names), names
    assert not any(path.name == secret_path.name for path in out_dir.rglob("*"))
