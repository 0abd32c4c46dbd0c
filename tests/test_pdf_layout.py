"""The compact HTML forms that keep WeasyPrint fast, and the PDF worker processes of `generate`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sympy

from generator.errors import MlexamError
from mlexam.mathhtml import decimals_html, math_html, pair_counts_html
from mlexam.pdfworker import PdfWorker
from mlexam.render import environment


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
    assert html == '<span class="matrix plain"><span class="col">1\n2</span><span class="col">0\n\u22121</span></span>'


def test_decimal_vector_single_element():
    assert str(decimals_html(["0.731", "-0.269"])) == '<span class="matrix plain">0.731\n\u22120.269</span>'


def test_matrix_with_fractions_is_table():
    html = str(math_html(sympy.Matrix([[sympy.Rational(1, 3)], [2]])))
    assert html == ('<table class="matrix"><tr><td><span class="frac"><span class="num">1</span>3</span></td></tr>'
                    "<tr><td>2</td></tr></table>")


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
    assert scaled == '<span class="math"><span class="frac"><span class="num">3\u2009(1 + e)</span>2 + e</span></span>'


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
