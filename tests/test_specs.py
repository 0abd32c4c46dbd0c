"""Exam specs: the shipped specs build for many seeds, every variant keeps its settings,
and a spec with mistakes gets one message per mistake with file, line and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from generator import bpe_reference
from generator.bpe_questions import BPE_DIFFICULTY, VALID_RUN_MERGES
from generator.errors import InputFileError
from generator.paper import build_paper
from generator.spec import load_spec
from mlexam.cli import main

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "question_banks" / "specs").glob("*.yaml"))
SEEDS = range(200)
BPE_RANDOM_TYPES = {"bpe_train", "bpe_vocab", "bpe_valid_run"}


def spec_settings(question_spec: dict) -> dict:
    """Rebuild the bounds a BPE question must keep from its spec entry and the documented table."""
    level = question_spec.get("difficulty", "medium")
    settings = dict(BPE_DIFFICULTY[level])
    if question_spec["type"] == "bpe_valid_run":
        settings["merges"] = VALID_RUN_MERGES[level]
    for name in settings:
        if name in question_spec:
            settings[name] = question_spec[name]
    return settings


def check_bpe_variant(question, question_spec: dict) -> None:
    """Check a random BPE variant against its tie and difficulty settings with the reference BPE."""
    settings = spec_settings(question_spec)
    conventions = question.conventions
    words = [(item["word"], item["count"]) for item in question.problem["corpus"]]
    end_of_word = conventions["end_of_word"]
    merges = question.problem["merges"]
    assert merges == settings["merges"]
    assert len(words) == settings["words"]
    assert all(1 <= count <= settings["max_count"] for _, count in words)
    assert len({c for word, _ in words for c in word}) <= settings["max_characters"]

    # Ties: avoid means exactly one valid run, require means more than one.
    runs = bpe_reference.valid_runs(words, merges, end_of_word, conventions["min_count"])
    ties = question_spec.get("ties", "avoid")
    if ties == "avoid":
        assert len(runs) == 1, question.id
    elif ties == "require":
        assert len(runs) > 1, question.id

    # Table width and merges that build on merges, along the key's run.
    key_merges, _, _ = bpe_reference.train(words, merges, end_of_word, conventions["tie_rule"], conventions["min_count"])
    corpus = [(bpe_reference.start_symbols(w, end_of_word), f) for w, f in words]
    made, building = set(), 0
    for pair in key_merges:
        assert len(bpe_reference.pair_counts(corpus)) <= settings["max_pairs"]
        building += pair[0] in made or pair[1] in made
        made.add(pair[0] + pair[1])
        corpus = [(bpe_reference.apply_merge(s, pair), f) for s, f in corpus]
    assert building >= settings["build_on"]


def check_valid_run_options(question) -> None:
    words = [(item["word"], item["count"]) for item in question.problem["corpus"]]
    end_of_word = question.conventions["end_of_word"]
    expected = {letter.strip() for letter in question.parts[0].expected.split(",")}
    options = question.problem["options"]
    assert len({tuple(o["merges"]) for o in options}) == len(options)
    for option in options:
        merges = [tuple(text.split(" ")) for text in option["merges"]]
        valid = bpe_reference.is_valid_run(words, merges, end_of_word, question.conventions["min_count"])
        assert valid == (option["letter"] in expected), (question.id, option)


def test_three_specs_shipped():
    names = {path.stem for path in SPECS}
    assert {"practice", "exam-60", "bpe-drill"} <= names


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_spec_builds_200_seeds(spec_path):
    spec = load_spec(spec_path)
    question_specs = [q for section in spec.data["sections"] for q in section["questions"]]
    checked = 0
    for seed in SEEDS:
        paper = build_paper(spec, seed)
        assert len(paper.questions) == len(question_specs)
        for question, question_spec in zip(paper.questions, question_specs):
            assert question.marks > 0
            if question.type in BPE_RANDOM_TYPES and question.source == "random":
                check_bpe_variant(question, question_spec)
                checked += 1
            if question.type == "bpe_valid_run":
                check_valid_run_options(question)
    if any(q["type"] in BPE_RANDOM_TYPES and "fixed" not in q for q in question_specs):
        assert checked >= len(SEEDS)


def test_spec_seeds_give_different_variants():
    spec = load_spec(REPO / "question_banks" / "specs" / "bpe-drill.yaml")
    corpora = {str(build_paper(spec, seed).questions[0].problem["corpus"]) for seed in range(10)}
    assert len(corpora) >= 8


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_spec_renders_pdfs(spec_path, tmp_path):
    result = CliRunner().invoke(main, ["generate", "--spec", str(spec_path), "--seed", "11", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for suffix in ("paper.pdf", "key.pdf"):
        data = (tmp_path / f"{spec_path.stem}-11-{suffix}").read_bytes()
        assert data.startswith(b"%PDF")
        assert len(data) > 5000


BAD_SPEC = """\
format: mlexam-spec
format_version: 1
title: A spec with mistakes
sections:
  - title: BPE
    questions:
      - type: bpe_trian
      - type: bpe_train
        merge: 4
        marks: {merges: -2}
        conventions: {end_of_word: after}
        ties: never
      - type: bpe_valid_run
        difficulty: extreme
      - {type: concept, id: no_such_question}
"""

# (line, field, a word of the message) for each mistake in BAD_SPEC.
BAD_SPEC_MISTAKES = [
    (7, "sections.0.questions.0.type", "bpe_train"),
    (9, "sections.0.questions.1.merge", "merges"),
    (10, "sections.0.questions.1.marks.merges", "0 or more"),
    (11, "sections.0.questions.1.conventions.end_of_word", "separate, attached, none"),
    (12, "sections.0.questions.1.ties", "avoid, allow, require"),
    (14, "sections.0.questions.2.difficulty", "easy, medium, hard"),
    (15, "sections.0.questions.3.id", "why_bpe_unknown"),
]


def test_bad_spec_one_message_per_mistake(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_SPEC, encoding="utf-8")
    with pytest.raises(InputFileError) as raised:
        load_spec(path)
    problems = raised.value.problems
    assert len(problems) == len(BAD_SPEC_MISTAKES), problems
    for line, field, hint in BAD_SPEC_MISTAKES:
        matching = [p for p in problems if p.startswith(f"line {line}: {field}: ")]
        assert len(matching) == 1, (line, field, problems)
        assert hint in matching[0]
    assert str(path) in str(raised.value)


def test_bad_spec_cli_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_SPEC, encoding="utf-8")
    result = CliRunner().invoke(main, ["generate", "--spec", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    for line, field, _ in BAD_SPEC_MISTAKES:
        assert f"{path}: line {line}: {field}: " in result.output
    assert not (tmp_path / "out").exists()


def test_bad_concept_settings(tmp_path):
    path = tmp_path / "concept.yaml"
    path.write_text("""\
format: mlexam-spec
format_version: 1
title: Concepts
sections:
  - title: Concepts
    questions:
      - {type: concept, topic: gradients, count: 9}
      - {type: concept, topic: poetry}
      - {type: concept, id: bptt_memory, topic: bptt}
      - {type: concept, id: bptt_memory, marks: {other_part: 2}}
""", encoding="utf-8")
    with pytest.raises(InputFileError) as raised:
        load_spec(path)
    problems = raised.value.problems
    assert len(problems) == 4, problems
    assert problems[0].startswith("line 7: sections.0.questions.0.count: the bank has 4 questions on gradients")
    assert problems[1].startswith("line 8: sections.0.questions.1.topic: must be one of bpe, bptt")
    assert problems[2].startswith("line 9: sections.0.questions.2: give either id")
    assert problems[3].startswith("line 10: sections.0.questions.3.marks.other_part: unknown part")


def test_question_decimal_places_range(tmp_path):
    path = tmp_path / "places.yaml"
    path.write_text("""\
format: mlexam-spec
format_version: 1
title: Places
sections:
  - title: Concepts
    questions:
      - {type: concept, id: vanishing_power, decimal_places: 12}
""", encoding="utf-8")
    with pytest.raises(InputFileError) as raised:
        load_spec(path)
    assert raised.value.problems == [
        "line 7: sections.0.questions.0.decimal_places: must be from 0 to 8 so the question fits a page, found 12"]


def test_docs_example_spec_generates(tmp_path):
    text = (REPO / "docs" / "specs.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 1
    path = tmp_path / "example.yaml"
    path.write_text(blocks[0], encoding="utf-8")
    spec = load_spec(path)
    types = [q.type for q in build_paper(spec, 4).questions]
    assert types == ["bpe_train", "bpe_train", "bpe_vocab", "bpe_valid_run", "bpe_encode",
                     "concept", "concept", "concept"]
    result = CliRunner().invoke(main, ["generate", "--spec", str(path), "--seed", "4", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "example-4-paper.pdf").read_bytes().startswith(b"%PDF")


def test_docs_list_every_difficulty_value():
    text = (REPO / "docs" / "specs.md").read_text(encoding="utf-8")
    for name, values in ((n, [BPE_DIFFICULTY[level][n] for level in ("easy", "medium", "hard")])
                         for n in BPE_DIFFICULTY["easy"]):
        row = f"| `{name}` | {values[0]} | {values[1]} | {values[2]} |"
        assert row in text, row


def test_spec_with_tab_names_fix(tmp_path):
    path = tmp_path / "tabbed.yaml"
    path.write_text("format: mlexam-spec\nformat_version: 1\ntitle: T\nsections:\n\t- title: A\n", encoding="utf-8")
    with pytest.raises(InputFileError) as raised:
        load_spec(path)
    assert "invalid YAML" in str(raised.value)
    assert "indent with spaces, not tabs" in str(raised.value)


def test_short_answer_marks_rejected(tmp_path):
    path = tmp_path / "short.yaml"
    path.write_text("format: mlexam-spec\nformat_version: 1\ntitle: Short\nsections:\n  - title: A\n    questions:\n"
                    "      - {type: concept, id: bptt_memory, marks: {bptt_memory: 3}}\n", encoding="utf-8")

    with pytest.raises(InputFileError) as raised:
        load_spec(path)

    message = str(raised.value)
    assert "sections.0.questions.0.marks.bptt_memory" in message
    assert "bptt_memory is a short answer, worth the sum of its rubric points (2)" in message
    assert "remove this entry" in message
