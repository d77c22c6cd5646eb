"""A small STAC API for the tests: the item-search contract pystac-client relies on, and the scenes' files.

Run as `python tests/stac_server.py --port P --dir D`: items come from D/items.json (a list of STAC Items),
files from D/files/ through Starlette's StaticFiles, which answers HTTP Range requests as GDAL's /vsicurl/
needs (Python's http.server does not). Item search (GET and POST /search) honours `collections`, `ids`,
`bbox` (against each item's bbox), `datetime` (an instant or an interval, open ends as ".."), `limit`, and
pages with a `next` link carrying a token, as STAC API - Item Search 1.0 specifies.

Everything is also served under /private/ (the same catalogue, its asset links under /private/files/), but
only to requests with `Authorization: Bearer <PRIVATE_TOKEN>`; others get 401: a source with access=bearer.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STAC_VERSION = "1.0.0"
PRIVATE = "/private"
PRIVATE_TOKEN = "test-bearer-token-not-to-be-shown"
CONFORMS = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/collections",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _in_window(item: dict[str, Any], window: str | None) -> bool:
    if not window:
        return True
    taken = _time(item["properties"]["datetime"])
    if "/" not in window:
        return taken == _time(window)
    start, end = window.split("/")
    return (start in ("", "..") or _time(start) <= taken) and (end in ("", "..") or taken <= _time(end))


def _touches(item: dict[str, Any], bbox: list[float] | None) -> bool:
    if not bbox:
        return True
    west, south, east, north = item["bbox"]
    return not (west > bbox[2] or east < bbox[0] or south > bbox[3] or north < bbox[1])


def make_app(folder: Path) -> Private:
    items: list[dict[str, Any]] = json.loads((folder / "items.json").read_text())

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def landing(request: Request) -> JSONResponse:
        root = base(request)
        links = [
            {"rel": "self", "href": f"{root}/", "type": "application/json"},
            {"rel": "root", "href": f"{root}/", "type": "application/json"},
            {"rel": "conformance", "href": f"{root}/conformance"},
            {"rel": "data", "href": f"{root}/collections"},
            {"rel": "search", "href": f"{root}/search", "type": "application/geo+json", "method": "GET"},
            {"rel": "search", "href": f"{root}/search", "type": "application/geo+json", "method": "POST"},
        ]
        body = {"type": "Catalog", "id": "test-stac", "stac_version": STAC_VERSION, "description": "tests"}
        return JSONResponse(body | {"conformsTo": CONFORMS, "links": links})

    async def conformance(_: Request) -> JSONResponse:
        return JSONResponse({"conformsTo": CONFORMS})

    async def collections(request: Request) -> JSONResponse:
        ids = sorted({item["collection"] for item in items})
        return JSONResponse({"collections": [_collection(base(request), c) for c in ids], "links": []})

    async def search(request: Request) -> JSONResponse:
        if request.method == "POST":
            params: dict[str, Any] = await request.json()
        else:
            query = request.query_params
            params = {k: query[k] for k in query}
            for key in ("collections", "ids"):
                if key in params:
                    params[key] = params[key].split(",")
            if "bbox" in params:
                params["bbox"] = [float(v) for v in params["bbox"].split(",")]
        try:
            limit, start = int(params.get("limit") or 10), int(params.get("token") or 0)
            found = [
                item
                for item in items
                if (not params.get("collections") or item["collection"] in params["collections"])
                and (not params.get("ids") or item["id"] in params["ids"])
                and _touches(item, params.get("bbox"))
                and _in_window(item, params.get("datetime"))
            ]
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"code": "BadRequest", "description": str(exc)}, status_code=400)
        page = found[start : start + limit]
        if request.scope.get("root_path") == PRIVATE:  # the private catalogue's assets are private too
            page = [_private(item, str(request.base_url)) for item in page]
        links: list[dict[str, Any]] = []
        if start + limit < len(found):
            href = f"{base(request)}/search"
            if request.method == "POST":
                links.append(
                    {"rel": "next", "href": href, "method": "POST", "body": params | {"token": start + limit}}
                )
            else:
                args = "&".join(f"{k}={v}" for k, v in request.query_params.items() if k != "token")
                links.append({"rel": "next", "href": f"{href}?{args}&token={start + limit}", "method": "GET"})
        body = {"type": "FeatureCollection", "features": page, "links": links}
        return JSONResponse(body | {"numberMatched": len(found), "numberReturned": len(page)})

    app = Starlette(
        routes=[
            Route("/", landing),
            Route("/conformance", conformance),
            Route("/collections", collections),
            Route("/search", search, methods=["GET", "POST"]),
            Mount("/files", StaticFiles(directory=folder / "files")),
        ]
    )
    return Private(app)


class Private:
    """/private/...: the same app with root_path /private, behind the bearer token."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == PRIVATE or path.startswith(PRIVATE + "/")):
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization") != f"Bearer {PRIVATE_TOKEN}".encode():
                await JSONResponse({"code": "Unauthorized"}, status_code=401)(scope, receive, send)
                return
            scope = {**scope, "root_path": PRIVATE}
        await self.app(scope, receive, send)


def _private(item: dict[str, Any], base: str) -> dict[str, Any]:
    public = base.removesuffix("/").removesuffix(PRIVATE) + "/files/"
    assets = {
        key: {**asset, "href": asset["href"].replace(public, f"{base.rstrip('/')}/files/")}
        for key, asset in item["assets"].items()
    }
    return {**item, "assets": assets}


def _collection(root: str, name: str) -> dict[str, Any]:
    return {
        "type": "Collection",
        "id": name,
        "stac_version": STAC_VERSION,
        "description": name,
        "license": "proprietary",
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
        "links": [{"rel": "self", "href": f"{root}/collections/{name}"}],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(make_app(args.dir), host="127.0.0.1", port=args.port, log_level="warning")
