"""The sample report as a PDF, printed from the same HTML the browser shows.

A signed-off report travels as a PDF (archived with the patient record, attached to
an e-mail, printed for the review meeting), so the PDF must say exactly what the
HTML says: WeasyPrint lays out the very HTML string `render_sample_report` returns,
with a print stylesheet (A4, page numbers, the sample and page count in every
footer, tables kept from splitting across a row). The report is self-contained
(inline CSS, inline SVG plots, no scripts), so WeasyPrint is given a URL fetcher that
refuses every remote address: rendering a report never touches the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

PRINT_CSS = """
@page {
  size: A4;
  margin: 16mm 14mm 18mm 14mm;
  @bottom-left { content: "GenoFlow report - " string(sample); font-size: 8pt; color: #555; }
  @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 8pt; color: #555; }
}
header h1 { string-set: sample attr(data-sample); }
header { padding: 10px 14px; }
main { padding: 4px 0 0; max-width: none; }
h2 { break-after: avoid; }
h3 { break-after: avoid; }
tr, .plot, .stopped, .narrative { break-inside: avoid; }
table { font-size: 9pt; }
td code { overflow-wrap: anywhere; word-break: break-all; }  /* a SHA-256 wraps inside its cell */
.plot { max-width: 100%; }
"""


PANGO_HINT = ("install Pango, which WeasyPrint lays text out with (Debian/Ubuntu: `apt-get install "
              "libpango-1.0-0 libpangoft2-1.0-0`; Fedora: `dnf install pango`; macOS: `brew install pango`)")


class ReportFetchRefused(Exception):
    """The report asked for something outside itself while printing."""


class PdfUnavailable(Exception):
    """WeasyPrint cannot be loaded here (not installed, or a system library it needs is missing)."""


def _weasyprint() -> Any:
    """The weasyprint module; PdfUnavailable, naming what to install, when it cannot be loaded. WeasyPrint
    loads Pango and HarfBuzz from the system when imported: a missing one is an OSError, not an ImportError."""
    try:
        import weasyprint
    except ImportError as exc:
        raise PdfUnavailable(f"WeasyPrint is not installed ({exc}); `pip install weasyprint`, and "
                             f"{PANGO_HINT}") from None
    except OSError as exc:
        raise PdfUnavailable(f"WeasyPrint cannot load a system library ({exc}): {PANGO_HINT}") from None
    return weasyprint


def _local_only_fetcher() -> Callable[[str], dict[str, Any]]:
    weasyprint = _weasyprint()

    def fetch(url: str) -> dict[str, Any]:
        if url.startswith("data:"):
            return weasyprint.default_url_fetcher(url)
        raise ReportFetchRefused(f"the report refers to {url}; reports must be self-contained")

    return fetch


def html_to_pdf(html: str) -> bytes:
    """Lay out a self-contained HTML report on A4 pages and return the PDF bytes.

    Raises PdfUnavailable when WeasyPrint cannot be loaded (the message names what to install)."""
    weasyprint = _weasyprint()
    document = weasyprint.HTML(string=html, url_fetcher=_local_only_fetcher())
    quiet = _BrowserOnlyCss()
    logger = logging.getLogger("weasyprint")
    logger.addFilter(quiet)
    try:
        return document.write_pdf(stylesheets=[weasyprint.CSS(string=PRINT_CSS)])
    finally:
        logger.removeFilter(quiet)


class _BrowserOnlyCss(logging.Filter):
    """Drops WeasyPrint's notes on the page's browser-only CSS (`fill` of the SVG text classes): the report
    is styled for browsers first, and a note per property in every run's log says nothing to a reader."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Ignored `")


def pdf_page_count(pdf: bytes) -> int:
    """How many pages a PDF has (pypdfium2 opens it as a reader would)."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        return len(document)
    finally:
        document.close()


def pdf_page_text(pdf: bytes, page: int = 0) -> str:
    """The text on one page, as a PDF reader extracts it (what a search in the PDF finds)."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        text_page = document[page].get_textpage()
        return str(text_page.get_text_range())
    finally:
        document.close()


def pdf_page_png(pdf: bytes, page: int = 0, *, scale: float = 1.5) -> bytes:
    """One page rendered to PNG, to check the PDF is drawn, not only written."""
    import io

    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        image = document[page].render(scale=scale).to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    finally:
        document.close()
