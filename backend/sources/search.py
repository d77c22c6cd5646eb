"""The searching stage: Sentinel-1 scenes of a source that touch the bboxes in the date window.

pystac-client runs the STAC API item search (one per bbox, the items merged by id); its answers are then
kept only for IW scenes with VV and the source's asset. The closest in time to the requested date come
first; which of them touch the sea, `max_scenes` at most, is backend.sources.sea's to say. A catalogue
that cannot be reached, times out or answers 5xx is asked again (STAC_RETRIES, backoff doubling); a 4xx
is final. SearchFailed carries the reason, credentials redacted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from datetime import time as dtime
from typing import Any

import pystac
import requests
from pydantic import BaseModel, Field
from pystac_client import Client
from pystac_client.exceptions import APIError
from shapely.geometry import box, shape

from backend.sources.access import AccessError, api_headers, redact
from backend.sources.config import SourceConfig
from backend.sources.request import AreaJobRequest

log = logging.getLogger(__name__)


class SearchFailed(Exception):
    """The catalogue could not be searched; str() is the reason as the job reports it."""


class Scene(BaseModel):
    """A STAC item to read, with what the archive reports of it (scenes.json)."""

    item_id: str
    datetime: str | None = Field(description="Acquisition time (ISO 8601) from the item.")
    platform: str | None = None
    instrument_mode: str | None = None
    polarizations: list[str] = []
    orbit_state: str | None = None
    footprint: dict[str, Any] = Field(description="The item's geometry (GeoJSON, lon/lat).")
    bbox: list[float] | None = None
    href: str = Field(
        "", exclude=True, description="The asset's URL, unsigned (not reported: it may carry keys)."
    )
    bboxes: list[int] = Field(
        description="Indices of the request's bboxes the footprint touches and whose window is read (at sea)."
    )
    bboxes_on_land: list[int] = Field(
        [], description="Indices of the bboxes the footprint touches only on land: their windows not read."
    )


def search_scenes(
    source: SourceConfig,
    request: AreaJobRequest,
    *,
    max_items: int,
    timeout: float,
    retries: int,
    backoff: float,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Scene]:
    """The scenes found, closest in time first (all of them: backend.sources.sea keeps `max_scenes` of
    those at sea); SearchFailed if the catalogue cannot be searched."""
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return _search(source, request, max_items=max_items, timeout=timeout)
        except AccessError as exc:
            raise SearchFailed(str(exc)) from exc
        except APIError as exc:
            status = getattr(exc, "status_code", None)
            if status is None:  # pystac-client's wrapping of a connection error or timeout
                reason = f"no answer ({redact(str(exc), source)[:300]})"
            else:
                reason = f"the STAC API answered {status}: {redact(str(exc), source)[:300]}"
            if status is not None and 400 <= status < 500:
                raise SearchFailed(reason) from exc
        except (requests.RequestException, pystac.STACError, OSError, ValueError, KeyError) as exc:
            reason = f"{type(exc).__name__}: {redact(str(exc), source)[:300]}"
        if attempt < attempts:
            log.warning("STAC search attempt %d of %d failed: %s", attempt, attempts, reason)
            sleep(backoff * 2 ** (attempt - 1))
    raise SearchFailed(
        f"STAC API {redact(str(source.stac_url))} unreachable after {attempts} attempts: {reason}"
    )


def _search(source: SourceConfig, request: AreaJobRequest, *, max_items: int, timeout: float) -> list[Scene]:
    client = Client.open(str(source.stac_url), headers=api_headers(source), timeout=timeout)
    start, end = request.window()
    found: dict[str, Scene] = {}
    for bbox in request.bboxes:
        search = client.search(
            collections=[source.collection], bbox=list(bbox), datetime=(start, end), max_items=max_items
        )
        for item in search.items():
            scene = _scene(item, source, request)
            if scene is not None:
                found.setdefault(scene.item_id, scene)
    noon = datetime.combine(request.date, dtime(12), UTC)

    def distance(scene: Scene) -> float:
        if scene.datetime is None:
            return float("inf")
        taken = datetime.fromisoformat(scene.datetime.replace("Z", "+00:00"))
        return abs((taken - noon).total_seconds())

    return sorted(found.values(), key=lambda s: (distance(s), s.item_id))


def _scene(item: pystac.Item, source: SourceConfig, request: AreaJobRequest) -> Scene | None:
    """The item as a Scene, or None if it is not an IW scene with VV, lacks the asset or misses every bbox."""
    props = item.properties
    mode = props.get("sar:instrument_mode")
    polarizations = [str(p).upper() for p in props.get("sar:polarizations") or []]
    asset = item.assets.get(source.asset)
    if mode != "IW" or "VV" not in polarizations or asset is None or item.geometry is None:
        return None
    footprint = shape(item.geometry)
    touched = [n for n, bbox in enumerate(request.bboxes) if footprint.intersects(box(*bbox))]
    if not touched:
        return None
    when = props.get("datetime") or props.get("start_datetime")
    return Scene(
        item_id=item.id,
        datetime=str(when) if when else None,
        platform=props.get("platform"),
        instrument_mode=mode,
        polarizations=polarizations,
        orbit_state=props.get("sat:orbit_state"),
        footprint=item.geometry,
        bbox=list(item.bbox) if item.bbox else None,
        href=asset.href,
        bboxes=touched,
    )
