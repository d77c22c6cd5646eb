"""The body of POST /api/area-jobs (names as in the InstaGeo design), and its checks against the settings.

Shape errors (a bbox of three numbers, a date that is not one) are pydantic's, answered as one sentence by
backend.api.errors; the checks that need the settings (area, window length, source names) are check_request's,
each a ValueError naming the field, answered 422 by the route.
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC, datetime, time, timedelta

from pydantic import BaseModel, Field, field_validator
from pyproj import Geod

from backend.sources.settings import AreaSettings

GEOD = Geod(ellps="WGS84")
BBox = tuple[float, float, float, float]


class AreaJobRequest(BaseModel):
    bboxes: list[BBox] = Field(
        min_length=1,
        description="[min_lon, min_lat, max_lon, max_lat] in WGS 84 degrees, each over the sea or the coast.",
        examples=[[[51.5, 26.9, 51.6, 27.0]]],
    )
    date: dt.date = Field(description="The day of interest (UTC).", examples=["2026-06-01"])
    temporal_tolerance: int = Field(
        3, ge=0, description="Days before and after `date` a scene may be from (the window is 2n+1 days)."
    )
    data_source: str = Field(description="A configured source's name (AREA_SOURCES).")
    max_scenes: int = Field(5, ge=1, description="Scenes used at most, the closest in time to `date` first.")

    @field_validator("bboxes")
    @classmethod
    def _valid_bboxes(cls, bboxes: list[BBox]) -> list[BBox]:
        for n, (west, south, east, north) in enumerate(bboxes):
            where = f"bboxes[{n}]"
            if not (-180 <= west <= 180 and -180 <= east <= 180):
                raise ValueError(f"{where}: longitudes must lie in -180..180")
            if not (-90 <= south <= 90 and -90 <= north <= 90):
                raise ValueError(f"{where}: latitudes must lie in -90..90")
            if west >= east:
                raise ValueError(f"{where}: min_lon must be below max_lon (a box across 180 is two boxes)")
            if south >= north:
                raise ValueError(f"{where}: min_lat must be below max_lat")
        return bboxes

    def window(self) -> tuple[datetime, datetime]:
        """The datetime interval searched: from the start of date - n days to the end of date + n days."""
        start = datetime.combine(self.date - timedelta(days=self.temporal_tolerance), time.min, UTC)
        end = datetime.combine(self.date + timedelta(days=self.temporal_tolerance), time.max, UTC)
        return start, end


def bbox_km2(bbox: BBox) -> float:
    """Geodesic area of a lon/lat box on WGS 84."""
    west, south, east, north = bbox
    lons, lats = [west, east, east, west], [south, south, north, north]
    area, _ = GEOD.polygon_area_perimeter(lons, lats)
    return abs(area) / 1e6


def check_request(request: AreaJobRequest, settings: AreaSettings) -> None:
    """ValueError, saying which field is wrong, for what only the settings can tell."""
    if request.data_source not in settings.AREA_SOURCES:
        names = ", ".join(sorted(settings.AREA_SOURCES)) or "none"
        raise ValueError(f"data_source: unknown source {request.data_source!r} (configured: {names})")
    if len(request.bboxes) > settings.AREA_MAX_BBOXES:
        raise ValueError(f"bboxes: {len(request.bboxes)} boxes, over the limit of {settings.AREA_MAX_BBOXES}")
    for n, bbox in enumerate(request.bboxes):
        km2 = bbox_km2(bbox)
        if km2 > settings.MAX_AREA_KM2:
            raise ValueError(f"bboxes[{n}]: {km2:.0f} km2, over MAX_AREA_KM2 = {settings.MAX_AREA_KM2:g} km2")
    days = 2 * request.temporal_tolerance + 1
    if days > settings.AREA_MAX_WINDOW_DAYS:
        raise ValueError(
            f"temporal_tolerance: a window of {days} days (date +- {request.temporal_tolerance}) is over "
            f"the limit of {settings.AREA_MAX_WINDOW_DAYS} days"
        )
    if request.max_scenes > settings.AREA_MAX_SCENES:
        raise ValueError(f"max_scenes: {request.max_scenes} is over the limit of {settings.AREA_MAX_SCENES}")
