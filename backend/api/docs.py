"""The API reference (`/docs`, Swagger UI) from the project's own files, and the site's icon.

FastAPI's default /docs loads Swagger UI from a CDN, so it is blank offline; here its script and style are the
vendored copies in backend/web/vendor/swagger-ui/ and a Content-Security-Policy keeps the page to its origin.
ReDoc is not offered (it would be another CDN bundle to vendor for the same document).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
FAVICON = Path(__file__).resolve().parents[1] / "web" / "favicon.ico"
_SWAGGER = "/static/vendor/swagger-ui"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _csp(html: str) -> str:
    """Scripts from this origin plus the page's own inline ones (by hash); Swagger UI styles inline."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'"
    )


def _page(body: str) -> HTMLResponse:
    headers = {"Content-Security-Policy": _csp(body), "X-Content-Type-Options": "nosniff"}
    return HTMLResponse(body, headers=headers)


def install(app: FastAPI) -> None:
    """Add GET /docs, its OAuth2 redirect page and /favicon.ico to an app built with docs_url=None."""
    assert app.openapi_url, "the docs need the OpenAPI document"
    docs = get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} - API reference",
        swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
        swagger_favicon_url="/favicon.ico",
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
    ).body
    docs_html = bytes(docs).decode()
    redirect = bytes(get_swagger_ui_oauth2_redirect_html().body).decode()

    def swagger_ui() -> HTMLResponse:
        """Swagger UI for the OpenAPI document, with no request leaving this origin."""
        return _page(docs_html)

    def oauth2_redirect() -> HTMLResponse:
        return _page(redirect)

    def favicon() -> FileResponse:
        return FileResponse(FAVICON, media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"})

    app.add_api_route(DOCS_URL, swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route(OAUTH2_REDIRECT_URL, oauth2_redirect, methods=["GET"], include_in_schema=False)
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
