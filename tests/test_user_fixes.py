"""Cases a first-time user hit: each asserts the message or result that mlexam now gives."""

import json
import re
import subprocess
from xml.etree import ElementTree

import pytest
import sympy
import yaml
from click.testing import CliRunner

from generator.paper import build_paper, write_paper
from generator.spec import load_spec
from marker.bpe_marking import read_tokens, token_separators
from marker.core import mark_submission
from marker.feedback import KeyLine, TokensLine, feedback_context
from mlexam.cli import main
from mlexam.render import render_html

HEADER = "format: mlexam-spec\nformat_version: 1\ntitle: Fixes\nsections:\n  - title: A\n    questions:\n"
SOFTMAX_EXAMPLE = "fixed: {W: [[1, 0], [2, -1]], x: [1, 2], b: [0, 0], t: [1, 0]}"


def write_spec(tmp_path, questions: str):
    path = tmp_path / "spec.yaml"
    path.write_text(HEADER + questions, encoding="utf-8")
    return path


def test_unknown_token_reads_whole():
    separators = token_separators(set("kinder"))

    assert read_tokens("[UNK] in d e r </w>", separators, "q1") == ["[UNK]", "in", "d", "e", "r", "</w>"]
    assert read_tokens("low+[UNK]+</w>", separators, "q1") == ["low", "[UNK]", "</w>"]
    assert read_tokens("[low, ish, </w>]", separators, "q1") == ["low", "ish", "</w>"]


def test_ragged_fixed_matrix_reports_each(tmp_path):
    spec = write_spec(tmp_path, "      - type: backprop_softmax\n"
                                "        fixed: {W: [[1, 0], [2]], x: [1, 2], b: [0, 0], t: [1, 0]}\n"
                                "      - type: backprop_softmax\n"
                                "        fixed: {W: [[1, 0], [2, 1]], x: [1, 2], b: [0, 0], t: [1, 1]}\n")

    result = CliRunner().invoke(main, ["generate", "--spec", str(spec), "--out", str(tmp_path / "out")])

    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "sections.0.questions.0 (question 1): invalid W" in result.output
    assert "sections.0.questions.1 (question 2): invalid t" in result.output
    assert not (tmp_path / "out").exists()


def test_feedback_never_replaces_inputs(tmp_path):
    spec = write_spec(tmp_path, f"      - type: backprop_softmax\n        {SOFTMAX_EXAMPLE}\n")
    paths = write_paper(build_paper(load_spec(spec), 1), tmp_path / "out")
    answers_before = paths["answers"].read_bytes()
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes", encoding="utf-8")
    runner = CliRunner()

    same = runner.invoke(main, ["mark", str(paths["key"]), str(paths["answers"]), "--feedback", str(paths["answers"])])
    other = runner.invoke(main, ["mark", str(paths["key"]), str(paths["answers"]), "--feedback", str(notes)])

    assert same.exit_code == 2
    assert "is the answer file" in same.output
    assert paths["answers"].read_bytes() == answers_before
    assert other.exit_code == 2
    assert "exists and is not a PDF, so it is kept" in other.output
    assert notes.read_text(encoding="utf-8") == "my notes"


def test_rounded_too_early_named(tmp_path):
    spec = write_spec(tmp_path, f"      - type: backprop_softmax\n        {SOFTMAX_EXAMPLE}\n")
    key = build_paper(load_spec(spec), 1).key_dict()

    report = mark_submission(key, {"q1": {"y": "[1/(1+e^(-1)), 0.27]", "delta": "[-0.27, 0.27]"}})
    feedback = {part.id: part.feedback for part in report.parts}

    assert "Entry 2 is off." in feedback["q1.y"]
    assert "rounded to 2 decimal places, but the paper asks for 3" in feedback["q1.y"]
    assert "These are the key's values rounded to 2 decimal places" in feedback["q1.delta"]


def test_wrong_shape_gets_verdict(tmp_path):
    spec = write_spec(tmp_path, "      - type: backprop_softmax\n"
                                "        fixed: {W: [[1, 0], [2, -1], [0, 1]], x: [1, 2], b: [0, 0, 0], t: [1, 0, 0]}\n")
    key = build_paper(load_spec(spec), 1).key_dict()

    report = mark_submission(key, {"q1": {"dL_dW": "[[1, 2, 3], [4, 5, 6]]", "W_new": "[[1, 2, 3], [4, 5, 6]]"}})
    verdicts = {part.id: (str(part.verdict), part.feedback) for part in report.parts}

    assert verdicts["q1.dL_dW"][0] == "wrong"
    assert "Wrong shape: expected 3 x 2, found 2 x 3" in verdicts["q1.dL_dW"][1]
    assert verdicts["q1.W_new"][0] == "wrong"


def test_train_paper_lists_encode_words(tmp_path):
    import pypdf

    spec = write_spec(tmp_path, "      - type: bpe_train\n"
                                "        fixed: {corpus: \"low lower lowest newest\", merges: 4, encode: [lowly]}\n")
    paths = write_paper(build_paper(load_spec(spec), 1), tmp_path / "out")

    paper_text = "".join(page.extract_text() for page in pypdf.PdfReader(paths["paper"]).pages)
    key_text = "".join(page.extract_text() for page in pypdf.PdfReader(paths["key_pdf"]).pages)
    blank = yaml.safe_load(paths["answers"].read_text(encoding="utf-8"))
    key = json.loads(paths["key"].read_text(encoding="utf-8"))

    assert "encode these new words with your merges: lowly" in paper_text
    assert "low l y </w>" not in paper_text
    assert "lowly" in key_text
    assert list(blank["answers"]["q1"]["encodings"]) == ["lowly"]
    assert key["questions"][0]["parts"][2]["expected"] == {"lowly": "low l y </w>"}


def test_empty_submission_not_marked(tmp_path):
    import csv

    roster = tmp_path / "roster.csv"
    roster.write_text("student id,name\ns1,Ann\ns2,Bob\n", encoding="utf-8")
    spec = write_spec(tmp_path, "      - type: backprop_softmax\n        classes: 2\n        inputs: 2\n"
                                "        parts: [delta]\n")
    runner = CliRunner()
    generated = runner.invoke(main, ["batch", "generate", str(roster), "--spec", str(spec), "--out",
                                     str(tmp_path / "exam"), "--secret", str(tmp_path / "s.secret"),
                                     "--workers", "1"])
    assert generated.exit_code == 0, generated.output
    submissions = tmp_path / "subs"
    submissions.mkdir()
    (submissions / "s1-answers.yaml").write_bytes((tmp_path / "exam/students/s1/s1-answers.yaml").read_bytes())
    (submissions / "s2.yaml").write_bytes(b"")

    marked = runner.invoke(main, ["batch", "mark", str(tmp_path / "exam"), str(submissions), "--out",
                                  str(tmp_path / "results"), "--no-feedback"])

    assert marked.exit_code == 0, marked.output
    with (tmp_path / "results/gradebook.csv").open(encoding="utf-8") as stream:
        rows = {row["student id"]: row for row in csv.DictReader(stream)}
    assert rows["s1"]["Status"] == "marked"
    assert rows["s2"]["Status"] == "not marked"
    assert rows["s2"]["Submission"] == "s2.yaml"
    problems = (tmp_path / "results/problems.csv").read_text(encoding="utf-8")
    assert "s2.yaml,s2,unreadable,empty file (0 bytes)" in problems


def test_matrix_entries_off_named(tmp_path):
    spec = write_spec(tmp_path, f"      - type: backprop_softmax\n        {SOFTMAX_EXAMPLE}\n")
    key = build_paper(load_spec(spec), 1).key_dict()

    # The key's dL/dW is [[-0.269, -0.538], [0.269, 0.538]].
    report = mark_submission(key, {"q1": {"dL_dW": "[[-0.269, -0.5], [0.3, 0.538]]"}})

    assert "Row 1, column 2 and row 2, column 1 are off." in report.part("q1.dL_dW").feedback


def test_feedback_typesets_key_and_tokens(tmp_path):
    spec = write_spec(tmp_path, f"      - type: backprop_softmax\n        {SOFTMAX_EXAMPLE}\n"
                                "      - type: bpe_train\n        fixed: {corpus: low lowish, merges: 4}\n")
    key = build_paper(load_spec(spec), 1).key_dict()
    answers = {"q1": {"y": "[0.73, 0.27]"}}
    context = feedback_context(key, answers, mark_submission(key, answers))
    parts = {part["id"]: part for question in context["questions"] for part in question["parts"]}

    key_line = next(line for line in parts["q1.y"]["worked"] if isinstance(line, KeyLine))
    assert key_line.exact == sympy.Matrix([sympy.E / (1 + sympy.E), 1 / (1 + sympy.E)])
    assert key_line.decimal == ["0.731", "0.269"]
    tokens_line = next(line for line in parts["q2.segmentation"]["worked"] if isinstance(line, TokensLine))
    assert (tokens_line.word, tokens_line.tokens) == ("low", "low</w>")

    html = render_html("feedback.html.j2", **context)
    # y = [e/(1 + e), 1/(1 + e)] is typeset as one fraction in front of [e, 1].
    assert '<span class="num">1</span>1 + e</span>\u2009<span class="matrix plain" style="width: 0.70em">e\n1</span></span>' in html
    assert '<code>low</code>:&#160;<code class="toks">low&lt;/w&gt;</code>' in html
    ElementTree.fromstring(html)  # well-formed, so WeasyPrint gets the tree from the fast parser


def test_feedback_lists_key_points(tmp_path):
    spec = write_spec(tmp_path, "      - {type: concept, id: remedies_short}\n")
    key = build_paper(load_spec(spec), 1).key_dict()
    answers = {"q1": {"remedies_short": "clipping"}}
    context = feedback_context(key, answers, mark_submission(key, answers))

    worked = context["questions"][0]["parts"][0]["worked"]

    assert worked == ["Key point (1 mark): Gradient clipping",
                      "Key point (1 mark): Truncated backpropagation through time",
                      "Key point (1 mark): Gating units (LSTM or GRU)"]


WIDE_SPEC = "      - {type: backprop_batch_mean, difficulty: hard, classes: 4}\n"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_feedback_stays_inside_page(tmp_path, seed):
    """Wide exact matrices are shown as decimals, so no word of the sheet runs past the right margin."""
    from pypdf import PdfReader

    from mlexam.cli_mark import write_feedback

    key = build_paper(load_spec(write_spec(tmp_path, WIDE_SPEC)), seed).key_dict()
    answers = {"q1": {part["name"]: part["decimal"] for part in key["questions"][0]["parts"]}}
    answers["q1"]["W_new"] = "[[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]"
    pdf = write_feedback(tmp_path / "feedback.pdf", key, answers, mark_submission(key, answers))

    page_width = float(PdfReader(pdf).pages[0].mediabox.width)
    boxes = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    right_edges = [float(x) for x in re.findall(r'xMax="([\d.]+)"', boxes)]
    assert right_edges
    right_margin = 17 * 72 / 25.4  # 17 mm, from paper.css
    assert max(right_edges) <= page_width - right_margin + 0.5
