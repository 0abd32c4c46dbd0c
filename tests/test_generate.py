"""`mlexam generate`: the four files, reproducible keys, and question papers that reveal no answer."""

from __future__ import annotations

import re

import pypdf
import pytest
import yaml
from click.testing import CliRunner

from generator import bpe
from generator.paper import build_paper
from generator.spec import bundled_spec_path, load_spec
from mlexam.cli import main
from mlexam.render import render_pdf

# Most tests here read PDFs that `mlexam generate` renders; `slow` marks them, and they run by default.
pytestmark = pytest.mark.slow

# Seeds whose question papers are rendered again only to look for leaked answers.
EXTRA_LEAK_SEEDS = [11, 12]


def pdf_text(path) -> str:
    """Extract the text of every page, with runs of whitespace collapsed to one space."""
    reader = pypdf.PdfReader(path)
    return normalize(" ".join(page.extract_text() for page in reader.pages))


def normalize(text: str) -> str:
    return " ".join(text.replace("\u2212", "-").split())


def pdf_metadata_text(path) -> str:
    """Collect every string a PDF carries outside its pages' text: document info, XMP,
    outline titles, named destinations, attachments and link annotations."""
    reader = pypdf.PdfReader(path)
    strings = [str(value) for value in (reader.metadata or {}).values()]
    if reader.xmp_metadata is not None:
        strings.append(reader.xmp_metadata.stream.get_data().decode("utf-8", errors="replace"))

    def outline_titles(items):
        for item in items:
            if isinstance(item, list):
                yield from outline_titles(item)
            else:
                yield str(item.title)

    strings.extend(outline_titles(reader.outline))
    strings.extend(str(name) for name in reader.named_destinations)
    strings.extend(str(name) for name in reader.attachments)
    for page in reader.pages:
        for annotation in page.get("/Annots") or []:
            annotation = annotation.get_object()
            strings.extend(str(annotation.get(key, "")) for key in ("/Contents", "/T"))
            strings.append(str((annotation.get("/A") or {}).get("/URI", "")))
    return normalize(" ".join(strings))


def question_sections(text: str, count: int) -> tuple[str, list[str]]:
    """Split a paper's text into the front matter and the text of each question."""
    starts = [text.index(f"Question {number}. ") for number in range(1, count + 1)]
    ends = starts[1:] + [len(text)]
    return text[:starts[0]], [text[start:end] for start, end in zip(starts, ends)]


def unsigned_decimals(value) -> list[str]:
    if isinstance(value, list):
        return [d for item in value for d in unsigned_decimals(item)]
    return [str(value).lstrip("-")]


def contains_tokens(text: str, tokens: str) -> bool:
    """Whether text has the space-separated tokens as a whole run, not inside longer tokens.

    A run may end at the punctuation that follows it in a sentence.
    """
    return re.search(r"(?<!\S)" + re.escape(tokens) + r"(?=[\s;,.]|$)", text) is not None


def starting_segmentation(word: str, conventions: dict) -> str:
    return " ".join(bpe.split_word(word, bpe.EndOfWord(conventions.get("end_of_word", "separate"))))


def revealed_answers(key: dict, question_index: int, text: str) -> list[str]:
    """List the answers of one key question that appear in text.

    A merge whose two sides are single characters, or a segmentation equal to a word's
    starting symbols, reveals nothing on its own, so only their order is looked for.
    """
    question = key["questions"][question_index]
    found = []
    for part in question["parts"]:
        if part.get("decimal") is not None:
            found += [f"{part['id']}: {d}" for d in unsigned_decimals(part["decimal"]) if d in text]
        if part["kind"] == "merge_list":
            merges = part["expected"]
            if len(merges) > 1 and (", ".join(merges) in text or " ".join(merges) in text):
                found.append(f"{part['id']}: the merge list")
            found += [f"{part['id']}: {m}" for m in merges
                      if any(len(side) > 1 for side in m.split(" ")) and contains_tokens(text, m)]
        if part["kind"] in ("segmentation", "encoding"):
            for word, tokens in part["expected"].items():
                if tokens != starting_segmentation(word, question["conventions"]) and contains_tokens(text, tokens):
                    found.append(f"{part['id']}: {word} -> {tokens}")
    return found


def assert_paper_reveals_nothing(key: dict, paper_pdf) -> None:
    text = pdf_text(paper_pdf)
    metadata = pdf_metadata_text(paper_pdf)
    front, sections = question_sections(text, len(key["questions"]))
    assert "Worked solution" not in text
    assert "answer key" not in (text + metadata).lower()
    for index, section in enumerate(sections):
        assert revealed_answers(key, index, section) == [], f"question {index + 1} text"
        assert revealed_answers(key, index, front) == [], "front matter"
        assert revealed_answers(key, index, metadata) == [], "PDF metadata"


# The four files and the key's header

def test_generate_writes_four_files(generated_paper):
    for name, path in generated_paper["paths"].items():
        assert path.is_file(), name
        assert path.stat().st_size > 0, name
        assert str(path) in generated_paper["output"]
    assert sorted(p.name for p in generated_paper["dir"].iterdir()) == sorted(
        p.name for p in generated_paper["paths"].values())
    for name in ("paper", "key_pdf"):
        assert generated_paper["paths"][name].read_bytes().startswith(b"%PDF-")


def test_key_header(generated_paper):
    key = generated_paper["key"]
    assert key["format"] == "mlexam-key"
    assert key["format_version"] == 1
    assert key["seed"] == generated_paper["seed"]
    assert key["generator"]["name"] == "mlexam"
    assert isinstance(key["generator"]["generator_version"], int)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", key["generator"]["version"])
    assert key["total_marks"] == sum(part["marks"] for q in key["questions"] for part in q["parts"])


def test_answers_yaml_has_every_part(generated_paper):
    answers = yaml.safe_load(generated_paper["paths"]["answers"].read_text(encoding="utf-8"))
    key = generated_paper["key"]

    assert answers["format"] == "mlexam-answers"
    assert answers["paper"] == key["paper_code"]
    expected_ids = {part["id"] for q in key["questions"] for part in q["parts"]}
    found_ids = {f"{qid}.{name}" for qid, parts in answers["answers"].items() for name in parts}
    assert found_ids == expected_ids


def test_answers_yaml_reveals_nothing(generated_paper):
    text = normalize(generated_paper["paths"]["answers"].read_text(encoding="utf-8"))
    key = generated_paper["key"]
    for index in range(len(key["questions"])):
        assert revealed_answers(key, index, text) == []


# Reproducibility

def test_same_seed_gives_identical_key(generated_paper, tmp_path):
    result = CliRunner().invoke(main, ["generate", "--seed", str(generated_paper["seed"]), "--out", str(tmp_path)],
                                prog_name="mlexam")
    assert result.exit_code == 0, result.output

    again = tmp_path / generated_paper["paths"]["key"].name
    assert again.read_bytes() == generated_paper["paths"]["key"].read_bytes()


def test_key_json_built_in_process_matches_file(generated_paper):
    paper = build_paper(load_spec(bundled_spec_path()), generated_paper["seed"])
    assert paper.key_json().encode("utf-8") == generated_paper["paths"]["key"].read_bytes()


def test_different_seeds_give_different_keys():
    spec = load_spec(bundled_spec_path())
    keys = {seed: build_paper(spec, seed).key_dict() for seed in range(1, 6)}

    questions = [str(key["questions"]) for key in keys.values()]
    assert len(set(questions)) == len(questions)
    assert len({key["paper_code"] for key in keys.values()}) == len(keys)


# What the PDFs show

def test_key_pdf_shows_answers(generated_paper):
    text = pdf_text(generated_paper["paths"]["key_pdf"])
    key = generated_paper["key"]

    decimals = [d for q in key["questions"] for part in q["parts"] if part.get("decimal") is not None
                for d in unsigned_decimals(part["decimal"])]
    # The bundled spec contains the course example, whose dL/dW is [[-0.269, -0.538], [0.269, 0.538]].
    assert "0.269" in decimals
    assert "0.538" in decimals
    assert [d for d in decimals if d not in text] == []
    for question in key["questions"]:
        for part in question["parts"]:
            if part["kind"] == "merge_list":
                assert "Merges: " + ", ".join(part["expected"]) in text
            if part["kind"] in ("segmentation", "encoding"):
                for tokens in part["expected"].values():
                    assert contains_tokens(text, tokens), (part["id"], tokens)


def test_question_paper_reveals_no_answer(generated_paper):
    assert_paper_reveals_nothing(generated_paper["key"], generated_paper["paths"]["paper"])


@pytest.mark.parametrize("seed", EXTRA_LEAK_SEEDS)
def test_question_paper_reveals_no_answer_other_seeds(seed, tmp_path):
    paper = build_paper(load_spec(bundled_spec_path()), seed)
    path = render_pdf("paper.html.j2", tmp_path / "paper.pdf", paper=paper, show_key=False)

    assert_paper_reveals_nothing(paper.key_dict(), path)


def test_leak_check_finds_key_answers(generated_paper):
    """Check the leak check itself: run on the key PDF, it must find the values it looks for."""
    key = generated_paper["key"]
    text = pdf_text(generated_paper["paths"]["key_pdf"])
    _, sections = question_sections(text, len(key["questions"]))
    for index, question in enumerate(key["questions"]):
        if any(part["kind"] in ("merge_list", "vector", "encoding") for part in question["parts"]):
            assert revealed_answers(key, index, sections[index]) != [], f"question {index + 1}"


def test_interrupted_generate_warns(tmp_path, monkeypatch):
    import generator.paper

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generator.paper, "write_paper", interrupted)
    result = CliRunner().invoke(main, ["generate", "--out", str(tmp_path / "out"), "--seed", "4"])

    assert result.exit_code == 130
    assert "Interrupted: the set for seed 4" in result.stderr
    assert "may be incomplete" in result.stderr
    assert "Run the same command again" in result.stderr
