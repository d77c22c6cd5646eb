"""/docs (Swagger UI) works offline: its files are the project's, and in Chromium it renders with no request
leaving the API's origin; /favicon.ico is an icon."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.api.main import app

if TYPE_CHECKING:
    from playwright.sync_api import Page
    from stack_harness import Stack


@pytest.fixture
def client() -> Iterator[TestClient]:
    yield TestClient(app)  # not entered: no lifespan, so no Redis; these routes need none


def test_docs_reference_only_same_origin_files_and_forbid_others(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "http" not in re.sub(r"<script>.*?</script>", "", docs.text, flags=re.DOTALL)
    csp = docs.headers["content-security-policy"]
    assert csp.startswith("default-src 'self'; script-src 'self' 'sha256-")
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200 and asset.content, url
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/redoc").status_code == 404  # not offered: it would be another CDN bundle
    assert client.get("/openapi.json").json()["info"]["title"] == "Oil-spill detection"


def test_favicon_is_an_icon(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file


@pytest.mark.e2e
def test_swagger_ui_renders_offline_in_chromium(stack: Stack, page: Page) -> None:
    from playwright.sync_api import expect

    problems: list[str] = []
    away: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("request", lambda request: request.url.startswith(stack.api_url) or away.append(request.url))
    page.route(re.compile(r"^(?!" + re.escape(stack.api_url) + ")"), lambda route: route.abort())  # offline
    page.goto(f"{stack.api_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Oil-spill detection")
    operation = page.locator(".opblock-summary-path", has_text="/api/upload")
    expect(operation.first).to_be_visible()
    operation.first.click()  # an operation opens, with its responses
    expect(page.locator(".opblock-body .responses-table").first).to_be_visible()
    assert away == [] and problems == []
    assert httpx.get(f"{stack.api_url}/favicon.ico").status_code == 200
