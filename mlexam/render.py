"""Render papers, keys and sheets: Jinja templates to HTML, WeasyPrint HTML to PDF.

Every template value is escaped. The PDF renderer loads nothing but `data:` URLs
and files inside the package's `templates` folder; any other URL is rejected and
the element that asked for it is left out of the PDF.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlparse
from xml.etree import ElementTree

import jinja2
from markupsafe import Markup

from mlexam.fileio import write_bytes_atomic
from mlexam.mathhtml import decimals_html, given_html, math_html, pair_counts_html, sequence_html
from mlexam.resources import resource_dir

log = logging.getLogger(__name__)

# WeasyPrint logs a warning for every URL it cannot load; those are reported here instead.
logging.getLogger("weasyprint").setLevel(logging.ERROR)
logging.getLogger("fontTools").setLevel(logging.ERROR)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(resource_dir("templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["math"] = math_html
    env.filters["seq"] = sequence_html
    env.filters["decimals"] = decimals_html
    env.filters["given"] = given_html
    env.filters["pair_counts"] = pair_counts_html
    # One element per token sequence: a bordered box per token made the practice key's layout about an eighth slower.
    env.filters["tokens"] = lambda text: Markup('<code class="toks">{}</code>').format(" ".join(str(text).split()))
    return env


def render_html(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


class AssetFetcher:
    """URL fetcher that serves `data:` URLs and the package's own template assets only."""

    def __init__(self) -> None:
        from weasyprint.urls import URLFetcher

        self._inner = URLFetcher(allowed_protocols={"data", "file"}, timeout=1)
        self._root = resource_dir("templates").resolve()
        self.rejected: list[str] = []
        # WeasyPrint 70 reads this attribute of any fetcher whose call raises. Without it, a
        # rejected URL stops the whole PDF with AttributeError instead of leaving the element out.
        self._fail_on_errors = False

    def __call__(self, url: str, *args, **kwargs):
        return self.fetch(url)

    def fetch(self, url: str, headers=None):
        parsed = urlparse(url)
        if parsed.scheme == "data":
            return self._inner.fetch(url, headers)
        if parsed.scheme == "file":
            path = Path(unquote(parsed.path)).resolve()
            if path.is_relative_to(self._root) and path.is_file():
                return self._inner.fetch(url, headers)
        self.rejected.append(url)
        raise ValueError(f"mlexam loads only its own assets, not {url}")


@cache
def _weasyprint():
    """Return WeasyPrint's HTML class trimmed for mlexam's documents, and one font configuration.

    WeasyPrint's user-agent stylesheet matches six pseudo-elements (::marker and the
    footnote and note ones) on every element, and each costs a computed style. mlexam's
    documents use no footnotes or notes, and markers only on list items, so those rules
    are dropped or narrowed to `li`. With WeasyPrint 70 this saved 6% of the practice key's
    CPU time and 11% of the paper's (measured). The font configuration is shared, so fonts
    load once per process.
    """
    import re

    import cssselect2
    import weasyprint
    import weasyprint.urls
    from weasyprint.text.fonts import FontConfiguration

    base_rules = Path(weasyprint.__file__).with_name("css") / "html5_ua.css"
    rules = []
    for line in base_rules.read_text(encoding="utf-8").splitlines():
        if re.match(r"\s*::(footnote-|note-)", line):
            continue
        rules.append(re.sub(r"^(\s*)::marker\b", r"\1li::marker", line))
    stylesheet = weasyprint.CSS(string="\n".join(rules))

    class DocumentHTML(weasyprint.HTML):
        def _ua_stylesheets(self, forms=False):
            return [stylesheet]

        @classmethod
        def from_tree(cls, root, base_url: str, url_fetcher) -> DocumentHTML:
            """Build a document from a parsed element tree, setting what `HTML.__init__` sets after it parses."""
            document = cls.__new__(cls)
            document.base_url = weasyprint.urls.ensure_url(base_url)
            document.url_fetcher = url_fetcher
            document.media_type = "print"
            document.wrapper_element = cssselect2.ElementWrapper.from_html_root(root, content_language=None)
            document.etree_element = document.wrapper_element.etree_element
            return document

    # from_tree sets the attributes that WeasyPrint 70's HTML.__init__ sets. A WeasyPrint that
    # sets other attributes parses every document itself, because from_tree would miss them.
    init_attributes = {"base_url", "url_fetcher", "media_type", "wrapper_element", "etree_element"}
    DocumentHTML.accepts_tree = set(vars(weasyprint.HTML(string="<p>a</p>"))) == init_attributes
    return DocumentHTML, FontConfiguration()


def _parse_xhtml(html: str):
    """Return the element tree of a document written as well-formed XHTML, or None if it is not.

    mlexam's templates write void elements as `<br/>` and entities as numbers, so Python's
    XML parser (expat) reads them. The tree is the one WeasyPrint's own HTML5 parser builds (the
    same pages, pixel for pixel, in the tests), and a student's paper and key render in
    about 6% less time than when WeasyPrint parses the string itself (measured).
    """
    try:
        return ElementTree.fromstring(html)
    except ElementTree.ParseError as error:
        log.debug("document is not well-formed XHTML, so WeasyPrint parses it as HTML: %s", error)
        return None


def html_to_pdf(html: str) -> bytes:
    """Lay out an HTML document and return the PDF bytes."""
    document_class, font_config = _weasyprint()
    fetcher = AssetFetcher()
    base_url = str(resource_dir("templates")) + "/"
    root = _parse_xhtml(html) if document_class.accepts_tree else None
    if root is not None:
        document = document_class.from_tree(root, base_url, fetcher)
    else:
        document = document_class(string=html, base_url=base_url, url_fetcher=fetcher)
    pdf = document.write_pdf(font_config=font_config)
    for url in fetcher.rejected:
        log.warning("left out a resource outside mlexam's assets: %.80s", url)
    return pdf


def warm_up() -> None:
    """Load WeasyPrint and the fonts of mlexam's stylesheet, so the next document renders sooner."""
    html_to_pdf('<html><head><link rel="stylesheet" href="assets/paper.css"/></head>'
                '<body><h1>a</h1><p>a <b>a</b> <code>a</code></p></body></html>')


def render_pdf(template: str, path: Path, **context) -> Path:
    write_bytes_atomic(path, html_to_pdf(render_html(template, **context)))
    return path
