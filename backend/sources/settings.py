"""The area jobs' settings, a base of backend.core.config.Settings (one settings object for the service).

AREA_SOURCES is JSON: {"<name>": {"stac_url": ..., "collection": ..., "asset": "vv", "access": ...}, ...}.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from backend.sources.config import DEFAULT_SOURCES, SourceConfig


class AreaSettings(BaseSettings):
    """Sources and limits of POST /api/area-jobs and of the worker stages that search, fetch and read."""

    AREA_SOURCES: dict[str, SourceConfig] = Field(default_factory=lambda: dict(DEFAULT_SOURCES))
    # Each bbox's geodesic area; a window of 10 m pixels over 2500 km2 is 25 Mpx (100 MB as float32).
    MAX_AREA_KM2: float = Field(2500.0, gt=0)
    AREA_MAX_BBOXES: int = Field(10, ge=1)
    # The date window is `date` +- temporal_tolerance days: at most this many days long.
    AREA_MAX_WINDOW_DAYS: int = Field(31, ge=1)
    AREA_MAX_SCENES: int = Field(10, ge=1)  # the most a request's max_scenes may ask for
    # Pixels read per scene (all its windows together); a scene over it fails alone, with the reason.
    AREA_SCENE_MAX_PIXELS: int = Field(60_000_000, ge=1)
    # Items asked of the catalogue per bbox before filtering (IW, VV, the asset present).
    STAC_MAX_ITEMS: int = Field(200, ge=1)
    # Points per window (a scene's footprint within a bbox) checked against the GSHHG shoreline by the ML
    # service before reading: a window with none at sea is not read (backend.sources.sea); 0 = no check.
    AREA_SEA_SAMPLES: int = Field(1024, ge=0, le=4096)
    STAC_TIMEOUT_SECONDS: float = Field(30.0, gt=0)
    STAC_RETRIES: int = Field(3, ge=0)  # more attempts after the first, backoff doubling
    STAC_RETRY_BACKOFF_SECONDS: float = Field(2.0, ge=0)
    # GDAL's HTTP reads of the scenes (/vsicurl/): retries of a failed range request, their delay, timeout.
    SCENE_HTTP_RETRIES: int = Field(3, ge=0)
    SCENE_HTTP_RETRY_DELAY_SECONDS: float = Field(1.0, ge=0)
    SCENE_HTTP_TIMEOUT_SECONDS: int = Field(60, ge=1)
