"""The records kept in Redis: a job's state and counters, and the outcome of each of its images."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.wire import GeoInfo


class JobState(StrEnum):
    QUEUED = "queued"
    SEARCHING = "searching"  # area jobs: asking the STAC catalogue for scenes (backend.worker.area)
    FETCHING = "fetching"  # area jobs: reading the scenes' windows over HTTP
    PROCESSING = "processing"
    ARCHIVING = "archiving"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"


ACTIVE_STATES = frozenset(
    {JobState.QUEUED, JobState.SEARCHING, JobState.FETCHING, JobState.PROCESSING, JobState.ARCHIVING}
)


class Job(BaseModel):
    """The job record (hash job:<id>), with the done/failed counts of its sets."""

    job_id: str
    user_hash: str
    state: JobState
    total: int
    done: int
    failed: int
    created_at: float
    finished_at: float | None = None
    expires_at: float | None = None
    model_version: str | None = None
    owner: str | None = None  # the API key's name or the JWT's subject; None when made with auth off
    kind: Literal["upload", "area"] = "upload"  # area: bboxes and a date (POST /api/area-jobs)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


GEO_DESCRIPTIONS = {
    "georeferenced": "Whether the image has a usable georeference (a GeoTIFF's CRS and transform or GCPs).",
    "reason": 'Why it is not georeferenced (e.g. "not a GeoTIFF"); null when it is.',
    "crs": 'The image\'s CRS: "EPSG:<code>", or its WKT when it has no EPSG code.',
    "georeferencing": "How pixels map to the CRS: an affine transform or ground control points (GCPs).",
    "bounds": "Footprint in lon/lat (WGS 84): [west, south, east, north].",
    "pixel_size_m": "Pixel size in metres at the image centre: [along a row, along a column].",
    "acquired": "Acquisition time (ISO 8601, UTC) from the file's tags; null when none.",
    "slicks": "Slicks kept: above the minimum area and, when georeferenced, at sea.",
    "slicks_on_land": "Slicks dropped because they lie on land (GSHHG land mask).",
    "oil_km2": "Geodesic area of the kept slicks in km²; null when not georeferenced.",
}


def _describe_geo(schema: dict[str, Any]) -> None:
    for name, prop in schema.get("properties", {}).items():
        if name in GEO_DESCRIPTIONS:
            prop["description"] = GEO_DESCRIPTIONS[name]


class ImageGeo(GeoInfo):
    """Where an image lies and what was found in it: the ML service's GeoInfo, documented (same fields)."""

    model_config = ConfigDict(json_schema_extra=_describe_geo)


class ImageResult(BaseModel):
    """What one segmentation task produced; a row of report.csv and an entry of report.json."""

    name: str = Field(description="Path of the image inside the uploaded zip.")
    output: str = Field(description="Name of its mask under masks/ and overlay under overlays/.")
    status: Literal["ok", "failed"]
    width: int | None = None
    height: int | None = None
    oil_pixels: int | None = None
    oil_fraction: float | None = None
    scale: str | None = Field(None, description="How the numbers were read: grey, amplitude, power or db.")
    valid_fraction: float | None = Field(None, description="Share of pixels holding data (not nodata).")
    geo: ImageGeo | None = Field(
        None,
        description="Georeference and slicks of the image (null for a failed image, or one segmented "
        "before slicks were vectorised). Its slick polygons are slicks/<output stem>.geojson in the "
        "archive; a georeferenced image also has masks/<output stem>.tif.",
    )
    error: str | None = None
