"""Build specs and papers in a test's folder, and read back what a PDF contains."""

from __future__ import annotations

import re
from pathlib import Path

import pypdf
import yaml

from generator.paper import build_paper, write_paper
from generator.spec import bundled_spec_path, load_spec

# PDF names whose presence would let a viewer run code, open a file or carry a hidden file.
ACTIVE_PDF_NAMES = ("/EmbeddedFiles", "/EmbeddedFile", "/JavaScript", "/JS", "/Launch", "/OpenAction",
                    "/AA", "/RichMedia", "/SubmitForm", "/ImportData", "/GoToR")


def write_spec(folder: Path, data: dict, name: str = "hostile") -> Path:
    """Write `data` as a spec file, with the format header filled in, and return its path."""
    full = {"format": "mlexam-spec", "format_version": 1, "title": "Spec under test"}
    full.update(data)
    path = Path(folder) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(full, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def generate(spec_path: Path | None, seed: int, out_dir: Path) -> dict[str, Path]:
    """Build and write one paper in-process, as `mlexam generate` does."""
    spec = load_spec(spec_path or bundled_spec_path())
    return write_paper(build_paper(spec, seed), out_dir)


def pdf_text(path: Path) -> str:
    """Return the text of every page, with all whitespace runs made single spaces."""
    reader = pypdf.PdfReader(path)
    text = " ".join(page.extract_text() or "" for page in reader.pages)
    return normalise(text)


def pdf_metadata_text(path: Path) -> str:
    reader = pypdf.PdfReader(path)
    return normalise(" ".join(str(value) for value in (reader.metadata or {}).values()))


def normalise(text: str) -> str:
    """Make PDF and source text comparable: one space for any whitespace, ASCII minus."""
    return re.sub(r"\s+", " ", text.replace("\u2212", "-")).strip()


def active_pdf_names(path: Path) -> list[str]:
    """Return every active or embedding name found anywhere in the PDF's objects."""
    reader = pypdf.PdfReader(path)
    found: list[str] = []
    seen: set[int] = set()

    def visit(obj, depth: int) -> None:
        if depth > 60:
            return
        if isinstance(obj, pypdf.generic.IndirectObject):
            if obj.idnum in seen:
                return
            seen.add(obj.idnum)
            obj = obj.get_object()
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key in ACTIVE_PDF_NAMES:
                    found.append(key)
                if key == "/S" and value in ("/JavaScript", "/Launch", "/SubmitForm", "/ImportData"):
                    found.append(str(value))
                visit(value, depth + 1)
        elif isinstance(obj, list):
            for item in obj:
                visit(item, depth + 1)

    visit(reader.trailer, 0)
    return found
