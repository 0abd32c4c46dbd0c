"""Hostile text in specs and rosters is printed as text, and the PDF renderer fetches nothing.

A spec title, a section title, instructions, a question title, a BPE corpus and a
student's name all reach the HTML templates. Each one below carries markup that
would load a local file, call a local server, run a script or embed a style. The
tests check that the rendered PDF shows the markup as text, that the server
received no request and that the PDF carries no active content.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from generator.paper import build_paper
from generator.spec import load_spec
from hostile.papers import active_pdf_names, generate, normalise, pdf_metadata_text, pdf_text, write_spec
from mlexam.render import AssetFetcher, html_to_pdf, render_html
from mlexam.resources import resource_dir


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Respond to every request with a tiny stylesheet and record its path."""

    def do_GET(self):  # noqa: N802 (name fixed by BaseHTTPRequestHandler)
        self.server.requests.append(self.path)
        body = b"body { background: red }"
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def local_server():
    """A localhost HTTP server that records every request it gets."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def hostile_snippets(port: int) -> dict[str, str]:
    """Markup that would fetch, run or style something if it reached the HTML unescaped."""
    return {
        "image": '<img src="file:///etc/passwd">',
        "stylesheet": f'<link rel=stylesheet href="http://127.0.0.1:{port}/x.css">',
        "script": "<script>document.write('PWNED')</script>",
        "style": f'<span style="background: url(file:///etc/passwd); color: url(http://127.0.0.1:{port}/s)">s</span>',
        "remote image": f'<img src="http://127.0.0.1:{port}/img.png">',
        "import": f"<style>@import url(http://127.0.0.1:{port}/i.css);</style>",
    }


@pytest.fixture(scope="module")
def hostile_paper(tmp_path_factory, local_server):
    """Generate a paper whose every free-text field carries hostile markup."""
    folder = tmp_path_factory.mktemp("hostile-render")
    snippets = hostile_snippets(local_server.server_address[1])
    spec_path = write_spec(folder, {
        "title": "Title " + snippets["image"],
        "course": "Course " + snippets["stylesheet"],
        "instructions": "Instructions " + snippets["script"] + " " + snippets["import"],
        "duration_minutes": 30,
        "sections": [
            {"title": "Section " + snippets["style"], "questions": [
                {"type": "bpe_train", "title": "Question " + snippets["remote image"],
                 "fixed": {"corpus": "<b>bold</b> <i>low</i> <script>x", "merges": 2}},
            ]},
        ],
    })
    paths = generate(spec_path, 3, folder / "out")
    return folder, snippets, paths


def test_hostile_spec_text_printed_as_text(hostile_paper):
    _, snippets, paths = hostile_paper
    text = pdf_text(paths["paper"])

    # A long title may wrap inside a URL, where the extracted text gains a space.
    unbroken = text.replace(" ", "")
    for name in ("image", "stylesheet", "script", "remote image"):
        assert normalise(snippets[name]).replace(" ", "") in unbroken, name
    assert "<b>bold</b>" in text
    assert "<script>x" in text


def test_hostile_spec_fetches_nothing(hostile_paper, local_server):
    # The fixture has rendered the paper and the key by now.
    assert local_server.requests == []


def test_hostile_spec_html_is_escaped(hostile_paper):
    folder, snippets, _ = hostile_paper
    paper = build_paper(load_spec(folder / "hostile.yaml"), 3)

    for show_key in (False, True):
        html = render_html("paper.html.j2" if not show_key else "key.html.j2", paper=paper, show_key=show_key)
        assert "<script" not in html
        assert "<img" not in html
        assert "<style>@import" not in html
        assert 'style="background: url(' not in html
        assert "<b>bold</b>" not in html
        assert "&lt;script&gt;" in html
        assert "&lt;img src=&#34;file:///etc/passwd&#34;&gt;" in html


def test_hostile_pdfs_have_no_active_content(hostile_paper):
    _, _, paths = hostile_paper

    for name in ("paper", "key_pdf"):
        assert active_pdf_names(paths[name]) == [], name


def test_hostile_title_in_metadata_as_text(hostile_paper):
    _, snippets, paths = hostile_paper

    assert snippets["image"] in pdf_metadata_text(paths["paper"])


def test_student_name_printed_as_text(tmp_path, local_server):
    port = local_server.server_address[1]
    paper = build_paper(load_spec(write_spec(tmp_path, {
        "course": "c", "instructions": "i", "duration_minutes": 30,
        "sections": [{"questions": [{"type": "bpe_encode"}]}]})), 5)
    paper.student = {"id": f'<link rel=stylesheet href="http://127.0.0.1:{port}/id.css">',
                     "name": '<img src="file:///etc/passwd"> Ana'}
    path = tmp_path / "student.pdf"
    path.write_bytes(html_to_pdf(render_html("paper.html.j2", paper=paper, show_key=False)))

    text = pdf_text(path)
    assert '<img src="file:///etc/passwd"> Ana' in text
    assert f"http://127.0.0.1:{port}/id.css" in text
    assert local_server.requests == []
    assert active_pdf_names(path) == []


def test_minimal_spec_generates(tmp_path):
    """A spec with only the required fields (no course, instructions or duration) renders."""
    spec_path = write_spec(tmp_path, {"sections": [{"questions": [{"type": "bpe_encode"}]}]})

    paths = generate(spec_path, 1, tmp_path / "out")

    assert "Spec under test" in pdf_text(paths["paper"])


# The fetcher itself, called the way WeasyPrint calls it.

def test_fetcher_serves_own_stylesheet():
    css = resource_dir("templates") / "assets" / "paper.css"
    fetcher = AssetFetcher()

    result = fetcher.fetch(css.as_uri())
    content = result.read() if hasattr(result, "read") else result.get("string") or result["file_obj"].read()
    assert content == css.read_bytes()
    assert fetcher.rejected == []


def test_fetcher_serves_data_urls():
    fetcher = AssetFetcher()

    result = fetcher.fetch("data:text/css;base64,Ym9keXt9")
    content = result.read() if hasattr(result, "read") else result.get("string") or result["file_obj"].read()
    assert content == b"body{}"


def rejected_urls(port: int) -> list[str]:
    templates = resource_dir("templates")
    return [
        "file:///etc/passwd",
        (templates / "assets").as_uri() + "/../../pyproject.toml",
        (templates / "assets").as_uri() + "/%2e%2e/%2e%2e/pyproject.toml",
        templates.as_uri(),  # a folder, not a file
        Path(__file__).resolve().as_uri(),
        f"http://127.0.0.1:{port}/x.css",
        f"https://127.0.0.1:{port}/x.css",
        f"ftp://127.0.0.1:{port}/x.css",
        "file://127.0.0.1/etc/passwd",
        "javascript:alert(1)",
        "/etc/passwd",
        "../pyproject.toml",
    ]


def test_fetcher_rejects_other_urls(local_server):
    fetcher = AssetFetcher()

    for url in rejected_urls(local_server.server_address[1]):
        with pytest.raises(ValueError):
            fetcher.fetch(url)
    assert fetcher.rejected == rejected_urls(local_server.server_address[1])
    assert local_server.requests == []


def hostile_url_html(port: int, secret: Path, well_formed: bool) -> str:
    """Return markup with local and remote URLs: HTML5 that only WeasyPrint's parser reads, or XHTML for expat."""
    if well_formed:
        return (f'<html><head><link rel="stylesheet" href="http://127.0.0.1:{port}/tree.css"/>'
                f'<style>@import url("http://127.0.0.1:{port}/tree-import.css");</style></head>'
                f'<body><img src="{secret.as_uri()}"/><img src="http://127.0.0.1:{port}/tree.png"/>'
                f'<p>text</p></body></html>')
    return (f'<html><head><link rel="stylesheet" href="http://127.0.0.1:{port}/raw.css">'
            f'<style>@import url("http://127.0.0.1:{port}/import.css");'
            f'body {{ background: url("{secret.as_uri()}") }}</style></head>'
            f'<body><img src="{secret.as_uri()}"><img src="http://127.0.0.1:{port}/raw.png">'
            f'<object data="file:///etc/passwd"></object>'
            f'<a href="file:///etc/passwd">link</a><p>text</p></body></html>')


@pytest.mark.parametrize("well_formed", [False, True], ids=["html5", "xhtml"])
def test_raw_html_with_hostile_urls_fetches_nothing(tmp_path, local_server, well_formed):
    """Even markup given to the PDF step directly loads nothing outside the assets, whichever parser reads it."""
    from xml.etree import ElementTree

    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n")
    html = hostile_url_html(local_server.server_address[1], secret, well_formed)
    if well_formed:
        ElementTree.fromstring(html)

    pdf = html_to_pdf(html)

    path = tmp_path / "raw.pdf"
    path.write_bytes(pdf)
    assert local_server.requests == []
    assert active_pdf_names(path) == []
    assert b"/EmbeddedFile" not in pdf


def test_entity_declarations_read_no_file(tmp_path):
    """A document that declares an external entity gets none of the file's text into the PDF."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRETVALUE", encoding="utf-8")
    html = (f'<?xml version="1.0"?><!DOCTYPE html [<!ENTITY leak SYSTEM "{secret.as_uri()}">]>'
            "<html><body><p>before &leak; after</p></body></html>")

    path = tmp_path / "entity.pdf"
    path.write_bytes(html_to_pdf(html))
    assert "TOPSECRETVALUE" not in pdf_text(path)


def test_local_server_records_requests(local_server):
    """The server that the tests above expect to stay silent does record a request sent to it."""
    import urllib.request

    port = local_server.server_address[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/probe.css", timeout=5) as response:
        assert response.read() == b"body { background: red }"

    assert local_server.requests == ["/probe.css"]
    local_server.requests.clear()


def test_feedback_sheet_prints_answers_as_text(tmp_path, local_server):
    """Markup in a student's answers reaches the feedback PDF as text and fetches nothing."""
    import json
    import subprocess
    import sys

    from hostile.answers import expected_answers, write_answer_file

    port = local_server.server_address[1]
    spec_path = write_spec(tmp_path, {
        "course": "c", "instructions": "i", "duration_minutes": 30,
        "sections": [{"questions": [{"type": "bpe_train", "fixed": {"corpus": "low lowish", "merges": 2}},
                                    {"type": "backprop_softmax", "parts": ["y", "L"]}]}]})
    key = json.loads(build_paper(load_spec(spec_path), 2).key_json())
    key_path = tmp_path / "key.json"
    key_path.write_text(json.dumps(key), encoding="utf-8")
    answers = expected_answers(key)
    answers["q1"]["merges"] = [f'<link rel=stylesheet href="http://127.0.0.1:{port}/m.css">', "<b>x"]
    answers["q2"]["L"] = f'<img src="http://127.0.0.1:{port}/l.png">'
    answers["q2"]["y"] = f'<style>@import url(http://127.0.0.1:{port}/y.css);</style>'
    answers_path = write_answer_file(tmp_path / "answers.yaml", key, answers, student_id="<script>s1</script>")
    feedback = tmp_path / "feedback.pdf"

    finished = subprocess.run([sys.executable, "-m", "mlexam", "mark", str(key_path), str(answers_path),
                               "--feedback", str(feedback)], capture_output=True, text=True)

    assert finished.returncode == 0, finished.stderr
    assert local_server.requests == []
    assert active_pdf_names(feedback) == []
    text = pdf_text(feedback)
    assert "<script>s1</script>" in text
    assert f'<img src="http://127.0.0.1:{port}/l.png">' in text
    assert "<style>@import" in text
    assert "&lt;" not in text
