"""GET /api/map/config: the web page's basemap (MAP_TILE_URL, MAP_ATTRIBUTION); none by default, offline.

The slicks and footprints the map draws come from the results routes (`.../slicks`, `.../images`); this
route only says which tiles, if any, to draw beneath them. `tile_source` gives the page's Content-Security-
Policy the tile server's origin, so that the operator's basemap loads and nothing else does.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter
from pydantic import BaseModel, Field

from backend.api.deps import SettingsDep

router = APIRouter(prefix="/map", tags=["map"])


class MapConfig(BaseModel):
    """What the web page's map draws beneath the slicks."""

    tile_url: str | None = Field(
        None,
        description="Basemap tile URL template (`{z}`, `{x}`, `{y}`, optional `{s}`): the MAP_TILE_URL "
        "setting. Null: no basemap; the map shows footprints and slicks only and needs no network.",
        examples=["https://tile.openstreetmap.org/{z}/{x}/{y}.png"],
    )
    attribution: str | None = Field(
        None, description="Plain text credited under the map for the basemap (MAP_ATTRIBUTION); null: none."
    )


@router.get("/config", name="map_config", summary="The web page's basemap", response_model=MapConfig)
def map_config(settings: SettingsDep) -> MapConfig:
    """The basemap the analysts' map uses: a tile URL template, or null (the default: no basemap, offline)."""
    return MapConfig(tile_url=settings.MAP_TILE_URL or None, attribution=settings.MAP_ATTRIBUTION or None)


def tile_source(tile_url: str) -> str | None:
    """The CSP source that lets the page load `tile_url`'s tiles: `https://host[:port]`, `https://*.host`
    for a `{s}.host` template, the bare scheme for another placeholder in the host; None: no basemap."""
    if not tile_url:
        return None
    parts = urlsplit(tile_url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return None
    if host.startswith("{s}."):
        host = f"*.{host[4:]}"
    if "{" in host or "}" in host:
        return f"{parts.scheme}:"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a placeholder or garbage where the port goes
        return f"{parts.scheme}:"
    return f"{parts.scheme}://{host}{port}"
