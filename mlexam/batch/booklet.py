"""The answer-key booklet: a cover listing every student, then each student's key from a new page.

Workers render each key PDF while the papers are generated. The booklet joins them with
pypdf and adds one bookmark per student, so no key is laid out a second time.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from mlexam.fileio import write_bytes_atomic
from mlexam.render import html_to_pdf, render_html


def render_student_key(paper) -> bytes:
    """Render one student's key with worked solutions; the student's name and id head it."""
    return html_to_pdf(render_html("booklet.html.j2", paper=paper, show_key=True, cover=None))


def write_booklet(batch, manifest, path: Path) -> None:
    """Write the cover and every student's key PDF, in roster order, to one PDF at `path`."""
    from pypdf import PdfReader, PdfWriter

    students = [manifest.students[s.id] for s in batch.roster.students if s.id in manifest.students]
    cover_paper = SimpleNamespace(title=batch.spec.data["title"], spec=batch.spec, code="all variants",
                                  total_marks=manifest.total_marks)
    cover = html_to_pdf(render_html("booklet.html.j2", paper=cover_paper, show_key=True,
                                    cover={"students": students, "exam_id": manifest.exam_id,
                                           "fingerprint": manifest.secret_fingerprint}))
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(cover)), outline_item="Contents", import_outline=False)
    for record in students:
        key_pdf = batch.out_dir / record["files"]["key_pdf"]["path"]
        label = f"{record['id']} {record['name']}".strip()
        writer.append(PdfReader(key_pdf), outline_item=label, import_outline=False)
    buffer = io.BytesIO()
    writer.write(buffer)
    write_bytes_atomic(path, buffer.getvalue())
