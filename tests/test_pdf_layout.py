"""The compact HTML forms that keep WeasyPrint fast, and the PDF worker processes of `generate`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import sympy

from generator.errors import MlexamError
from mlexam.mathhtml import decimals_html, math_html, pair_counts_html
from mlexam.pdfworker import PdfWorker
from mlexam.render import _weasyprint, environment, render_html


def pdf_text(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True).stdout


def test_pair_counts_columns_bold_maximum():
    counts = [(("l", "o"), 2), (("o", "w"), 2), (("w", "</w>"), 1), (("w", "i"), 1), (("i", "s"), 1)]
    html = str(pair_counts_html(counts, 2))
    # The widest entry, "w </w>: 1", has 9 characters, so every column is 12 wide, 4 to a line.
    assert html == ('<div class="counts"><b>l o: 2</b>      <b>o w: 2</b>      w &lt;/w&gt;: 1   w i: 1\n'
                    'i s: 1</div>')


def test_pair_counts_long_symbols_fewer_columns():
    long_pair = (("abcdefghijklmnopqrstu", "vwxyzabcdefghijklmno"), 3)
    html = str(pair_counts_html([long_pair, (("a", "b"), 1), (("c", "d"), 1)], 3))
    lines = html.removeprefix('<div class="counts">').removesuffix("</div>").split("\n")
    # Entries are 48 characters wide with the gap, so only one fits in 84.
    assert len(lines) == 3
    assert lines[1] == "a b: 1"


def test_plain_matrix_one_element_per_column():
    html = str(math_html(sympy.Matrix([[1, 0], [2, -1]])))
    # Widths: 1 and 2 are one figure (0.6362 em); -1 adds a minus sign (0.8379 em); 2% and 0.05 em of slack.
    assert html == ('<span class="matrix plain"><span class="col" style="width: 0.70em">1\n2</span>'
                    '<span class="col" style="width: 1.55em">0\n\u22121</span></span>')


def test_decimal_vector_single_element():
    assert str(decimals_html(["0.731", "-0.269"])) == ('<span class="matrix plain" style="width: 3.82em">'
                                                       "0.731\n\u22120.269</span>")


def test_matrix_with_fractions_is_table():
    html = str(math_html(sympy.Matrix([[sympy.Rational(1, 3)], [2]])))
    assert html == ('<table class="matrix"><tr><td><span class="frac" style="width: 0.70em"><span class="num">1</span>3'
                    "</span></td></tr><tr><td>2</td></tr></table>")


def test_text_with_markup_gets_no_width():
    html = str(math_html(sympy.exp(2) / (1 + sympy.E)))
    assert html == '<span class="math"><span class="frac"><span class="num">e<sup>2</sup></span>1 + e</span></span>'


def test_matrix_over_common_denominator():
    d = 2 + sympy.E
    html = str(math_html(sympy.Matrix([1 / d, -2 / d, 0])))
    assert html == ('<span class="factored"><span class="frac" style="width: 2.81em"><span class="num">1</span>'
                    '2 + e</span>\u2009<span class="matrix plain" style="width: 1.55em">1\n\u22122\n0</span></span>')
    # Euler's number is upright text, so a column of e and 1 is plain text too.
    scaled = str(math_html(sympy.Matrix([sympy.E / d, 1 / d])))
    assert scaled.startswith('<span class="factored"><span class="frac" style="width: 2.81em"><span class="num">1</span>'
                             '2 + e</span>\u2009')
    assert scaled.endswith('<span class="matrix plain" style="width: 0.70em">e\n1</span></span>')


@pytest.mark.parametrize("value, shown", [
    (sympy.exp(sympy.Rational(11, 2)), "e<sup>11/2</sup>"),
    (sympy.exp(-sympy.Rational(1, 2)), "e<sup>\u22121/2</sup>"),
    (sympy.Symbol("x") ** sympy.Rational(3, 2), "<i>x</i><sup>3/2</sup>"),
    (sympy.exp(2), "e<sup>2</sup>"),
])
def test_rational_exponent_inline(value, shown):
    """A stacked fraction in a superscript is too small to read, so rational exponents are written 11/2."""
    assert str(math_html(value)) == f'<span class="math">{shown}</span>'



@pytest.mark.parametrize("entries", [
    [1 / (2 + sympy.E), 1 / (1 + sympy.E)],          # different denominators
    [1 / (2 + sympy.E), 0],                           # one fraction only
    [1 + 1 / (2 + sympy.E), 1 / (2 + sympy.E)],       # a sum
    [sympy.Rational(1, 2), 3],                        # a whole number has no denominator to share
])
def test_matrix_not_factored(entries):
    html = str(math_html(sympy.Matrix(entries)))
    assert html.startswith('<table class="matrix">'), html


def test_factored_matrix_equals_value():
    """Over many random problems of every network type, N / d is each shown matrix exactly."""
    from generator.registry import QUESTION_TYPES
    from mlexam.mathhtml import _common_denominator

    factored = 0
    for qtype in ["backprop_softmax", "backprop_sigmoid_bce", "backprop_linear_mse", "backprop_two_layer",
                  "backprop_batch_mean"]:
        for seed in range(12):
            question = QUESTION_TYPES[qtype].build("q1", {"type": qtype}, np.random.default_rng(seed), 3)
            for name, quantity in question.solution.items():
                if not isinstance(quantity.value, sympy.MatrixBase):
                    continue
                result = _common_denominator(quantity.value)
                if result is None:
                    continue
                denominator, numerators = result
                factored += 1
                difference = (numerators / denominator - quantity.value).applyfunc(sympy.simplify)
                assert difference == sympy.zeros(*quantity.value.shape), (qtype, seed, name)
    assert factored >= 60


def test_token_sequence_one_escaped_element():
    tokens = environment().filters["tokens"]
    assert str(tokens("lo w  </w>")) == '<code class="toks">lo w &lt;/w&gt;</code>'


def test_worker_writes_submitted_pdf(tmp_path):
    target = tmp_path / "doc.pdf"
    with PdfWorker() as worker:
        worker.submit('<p>Worked solution for question seven</p>', target)
        worker.wait()
    assert target.read_bytes().startswith(b"%PDF-")
    assert "Worked solution for question seven" in pdf_text(target)


def test_worker_write_failure_names_file(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    target = blocker / "key.pdf"
    with PdfWorker() as worker:
        worker.submit("<p>key</p>", target)
        with pytest.raises(MlexamError, match=r"not-a-folder/key\.pdf: could not write the PDF"):
            worker.wait()
    assert blocker.read_text() == "a file where a folder should be"


def test_idle_worker_stops_on_close():
    worker = PdfWorker()
    process = worker._process
    worker.close()
    assert process is None or not process.is_alive()


def test_without_fork_renders_in_process(tmp_path, monkeypatch):
    monkeypatch.setattr("multiprocessing.get_all_start_methods", lambda: ["spawn"])
    target = tmp_path / "doc.pdf"
    with PdfWorker() as worker:
        assert worker._process is None
        worker.submit("<p>rendered here</p>", target)
        worker.wait()
    assert "rendered here" in pdf_text(target)


def test_renderers_exit_when_parent_killed():
    script = ("import time; from mlexam.pdfworker import PdfWorker; worker = PdfWorker(documents=2); "
              "print(worker._process.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker_pid = int(parent.stdout.readline())
    # The worker forks the second renderer once WeasyPrint is loaded.
    children = Path(f"/proc/{worker_pid}/task/{worker_pid}/children")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not children.read_text().split():
        time.sleep(0.05)
    renderer_pids = [worker_pid, *map(int, children.read_text().split())]
    assert len(renderer_pids) == 2

    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(pid) for pid in renderer_pids):
        time.sleep(0.1)
    assert [pid for pid in renderer_pids if _running(pid)] == []


def test_two_renderers_then_in_process(tmp_path):
    targets = [tmp_path / f"doc{n}.pdf" for n in range(3)]
    with PdfWorker(documents=2) as worker:
        for n, target in enumerate(targets):
            worker.submit(f"<p>Document number {n}</p>", target)
        # Only two renderers exist, so the third document was written before submit returned.
        assert targets[2].exists()
        worker.wait()
    for n, target in enumerate(targets):
        assert f"Document number {n}" in pdf_text(target)


def test_two_renderer_errors_both_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with PdfWorker(documents=2) as worker:
        worker.submit("<p>a</p>", blocker / "a.pdf")
        worker.submit("<p>b</p>", blocker / "b.pdf")
        with pytest.raises(MlexamError) as raised:
            worker.wait()
    assert "file/a.pdf: could not write the PDF" in str(raised.value)
    assert "file/b.pdf: could not write the PDF" in str(raised.value)


def _running(pid: int) -> bool:
    """Return whether pid is a live process; a zombie waiting for its parent to reap it counts as ended."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_no_minus_before_negative_bracket():
    e = sympy.E
    value = sympy.Mul(-1, sympy.Add(-1, -2 * sympy.exp(3)), sympy.Pow(1 + e + sympy.exp(3), -1))
    html = str(math_html(value))
    assert html == ('<span class="math"><span class="frac"><span class="num">1 + 2\u2009e<sup>3</sup></span>'
                    "1 + e + e<sup>3</sup></span></span>")
    scaled = str(math_html(sympy.Mul(-3, sympy.Add(-1, -e), sympy.Pow(2 + e, -1))))
    assert scaled == ('<span class="math"><span class="frac" style="width: 4.45em"><span class="num">3\u2009(1 + e)</span>'
                      "2 + e</span></span>")


def test_killed_parent_gets_no_pdf(tmp_path):
    target = tmp_path / "key.pdf"
    script = ("import sys, time; from mlexam.pdfworker import PdfWorker; worker = PdfWorker(); "
              f"worker.submit('<p>' + 'long text ' * 20000 + '</p>', {str(target)!r}); "
              "print(worker._process.pid, flush=True); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _running(worker_pid):
        time.sleep(0.1)
    assert not _running(worker_pid)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- XHTML input and set widths

ALL_TYPES_SPEC = """format: mlexam-spec
format_version: 1
title: Every question type
sections:
  - title: Byte-pair encoding
    questions:
      - {type: bpe_train, ties: allow}
      - {type: bpe_encode}
      - {type: bpe_vocab}
      - {type: bpe_valid_run}
  - title: Backpropagation
    questions:
      - {type: backprop_softmax}
      - {type: backprop_sigmoid_bce}
      - {type: backprop_linear_mse}
      - {type: backprop_two_layer}
      - {type: backprop_batch_mean}
      - {type: concept, topic: gradients, count: 2}
"""


@pytest.fixture(scope="module")
def all_types_documents(tmp_path_factory) -> dict[str, str]:
    """The paper, key and booklet pages of a paper with every question type, as HTML."""
    from generator.paper import build_paper
    from generator.spec import load_spec

    spec_path = tmp_path_factory.mktemp("spec") / "all.yaml"
    spec_path.write_text(ALL_TYPES_SPEC, encoding="utf-8")
    paper = build_paper(load_spec(spec_path), 3)
    paper.student = {"id": "s001", "name": "Ada Lovelace"}
    cover = {"students": [{"id": "s001", "name": "Ada Lovelace", "variant_code": paper.code}],
             "exam_id": "exam", "fingerprint": "abc"}
    return {
        "paper": render_html("paper.html.j2", paper=paper, show_key=False),
        "key": render_html("key.html.j2", paper=paper, show_key=True),
        "booklet key": render_html("booklet.html.j2", paper=paper, show_key=True, cover=None),
        "booklet cover": render_html("booklet.html.j2", paper=paper, show_key=True, cover=cover),
    }


def test_installed_weasyprint_takes_a_parsed_tree():
    assert _weasyprint()[0].accepts_tree is True


def test_every_document_is_well_formed_xhtml(all_types_documents):
    for name, html in all_types_documents.items():
        ElementTree.fromstring(html)  # raises ParseError, naming line and column, if not


def _page_images(pdf: bytes, folder: Path, stem: str) -> list[bytes]:
    path = folder / f"{stem}.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(path), str(folder / stem)], check=True)
    return [page.read_bytes() for page in sorted(folder.glob(f"{stem}-*.png"))]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["paper", "key"])
def test_parsed_tree_gives_the_same_pages(all_types_documents, name, tmp_path, monkeypatch):
    """The tree from Python's XML parser lays out exactly as the tree from WeasyPrint's HTML5 parser."""
    from mlexam.render import html_to_pdf

    html = all_types_documents[name]
    fast = _page_images(html_to_pdf(html), tmp_path, "tree")
    monkeypatch.setattr(_weasyprint()[0], "accepts_tree", False)
    parsed_by_weasyprint = _page_images(html_to_pdf(html), tmp_path, "string")
    assert len(fast) >= 2
    assert fast == parsed_by_weasyprint


def _boxes(box):
    yield box
    for child in getattr(box, "children", None) or []:
        yield from _boxes(child)


def _text_width(box) -> float:
    """Width of the widest line of text inside a box."""
    lines = [b for b in _boxes(box) if type(b).__name__ == "LineBox"]
    return max(sum(t.width for t in line.children if type(t).__name__ == "TextBox") for line in lines)


@pytest.mark.slow
def test_set_widths_and_marks_fit(all_types_documents):
    """Each fraction and matrix column with a set width is at least as wide as its text, as
    WeasyPrint measures it, and no part's first line runs into its marks."""
    from mlexam.render import AssetFetcher
    from mlexam.resources import resource_dir

    document_class, font_config = _weasyprint()
    sized = parts = 0
    for name in ("paper", "key"):
        root = ElementTree.fromstring(all_types_documents[name])
        document = document_class.from_tree(root, str(resource_dir("templates")) + "/", AssetFetcher())
        for page in document.render(font_config=font_config).pages:
            for box in _boxes(page._page_box):
                element = getattr(box, "element", None)
                if element is None:
                    continue
                classes = element.get("class", "").split()
                if type(box).__name__ == "InlineBlockBox" and "width" in element.get("style", ""):
                    sized += 1
                    assert _text_width(box) <= box.width + 1e-6, (name, element.text)
                if type(box).__name__ == "AbsolutePlaceholder":
                    assert _text_width(box._box) <= box._box.width + 1e-6, (name, box._box.element.text)
                if type(box).__name__ == "BlockBox" and classes[:1] == ["part"] and element.tag == "div":
                    # The positioned marks sit in a line of the part, as a placeholder for their box.
                    marks = next(b._box for b in _boxes(box) if type(b).__name__ == "AbsolutePlaceholder")
                    assert marks.element.get("class") == "marks"
                    assert _text_width(marks) <= marks.width + 1e-6, (name, marks.element.text)
                    first_line = next(b for b in _boxes(box) if type(b).__name__ == "LineBox")
                    for child in first_line.children:
                        if type(child).__name__ != "AbsolutePlaceholder":
                            assert child.position_x + child.margin_width() <= marks.position_x + 1e-6, (name, child)
                    parts += 1
    assert sized >= 40
    assert parts >= 20
