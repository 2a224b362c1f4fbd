"""The upload page itself: one HTML file, its script and its style sheet, served beside the API.

The page is plain HTML, CSS and JavaScript (no build step, nothing fetched from elsewhere) and talks only to
the portal's API, through relative URLs. Its Content-Security-Policy allows nothing but the portal itself.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
# The page never embeds another site, runs inline script or loads anything from elsewhere.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


def add_page(app: FastAPI) -> None:
    """Serve the page at `/` and its script and style under `/static/`."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def upload_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})
