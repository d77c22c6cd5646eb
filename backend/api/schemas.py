"""Pydantic models of the API's requests and answers (the operator endpoints': backend.ops.schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from backend.jobs.areas import AreaProgress
from backend.jobs.models import ImageGeo, JobState


class ErrorDetail(BaseModel):
    detail: str = Field(examples=["Job 0123... is still processing (3 of 10 images done)."])


class Skipped(BaseModel):
    name: str
    reason: str


class UploadResponse(BaseModel):
    job_id: str
    user_hash: str
    images: int = Field(description="Images queued for segmentation.")
    skipped: list[Skipped] = Field(description="Zip entries that are not processed, with the reason.")
    status_url: str
    download_url: str


class ImageError(BaseModel):
    name: str
    error: str


class JobStatus(BaseModel):
    job_id: str
    state: JobState
    total: int
    done: int = Field(description="Images segmented successfully so far.")
    failed: int
    errors: list[ImageError]
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None = Field(description="When the archive and all files are deleted.")
    download_url: str
    kind: Literal["upload", "area"] = "upload"
    area: AreaProgress | None = Field(
        None, description="Area jobs: scenes found, fetched and failed, bytes read, why it failed."
    )


class TimeLeft(BaseModel):
    user_hash: str
    seconds_left: float
    expires_at: datetime


class ImageSummary(BaseModel):
    """One processed image as the web page's gallery shows it."""

    name: str = Field(description="Path of the image inside the uploaded zip.")
    output: str = Field(description="Name of its mask under masks/ and overlay under overlays/.")
    status: Literal["ok", "failed"]
    width: int | None = None
    height: int | None = None
    oil_fraction: float | None = Field(None, description="Share of the image's pixels classified as oil.")
    error: str | None = None
    overlay_url: str | None = Field(None, description="Where to fetch the overlay PNG; null for failures.")
    geo: ImageGeo | None = Field(
        None, description="Where the image lies and its slick counts; null for failures."
    )


class ResultImages(BaseModel):
    """The images of an upload processed so far; grows while the job runs."""

    job_id: str
    user_hash: str
    state: JobState
    total: int
    done: int
    failed: int
    images: list[ImageSummary] = Field(description="Processed images (ok and failed), sorted by name.")


class PolygonGeometry(BaseModel):
    """A GeoJSON Polygon: an exterior ring (counter-clockwise) and holes (clockwise), each closed."""

    type: Literal["Polygon"]
    coordinates: list[list[list[float]]] = Field(
        description="Rings of [lon, lat] positions (WGS 84); [col, row] pixels for an image without "
        "georeferencing (only with include_pixel=true)."
    )


class SlickProperties(BaseModel):
    """What analysts report of one slick (the columns of slicks.csv, which flattens the centroids)."""

    id: int = Field(description="1..n within its image, largest first.")
    image: str = Field(description="Path of the image inside the uploaded zip.")
    georeferenced: bool
    area_km2: float | None = Field(description="Geodesic area (WGS 84) of the slick's oil pixels.")
    perimeter_km: float | None = Field(description="Geodesic perimeter of the outline.")
    length_km: float | None = Field(description="Long side of the outline's oriented bounding rectangle.")
    width_km: float | None = Field(description="Its short side.")
    centroid: list[float] = Field(description="[lon, lat] of the outline's centroid ([col, row] if pixel).")
    confidence: float = Field(description="Median model probability over the slick's pixels.")
    confidence_max: float = Field(description="Maximum model probability over them.")
    pixels: int = Field(description="Oil pixels in the slick.")
    area_px: int = Field(description="Area in pixels (= pixels).")
    perimeter_px: float
    length_px: float
    centroid_px: list[float] = Field(description="[col, row] of the centroid, in pixels.")
    touches_nodata: bool = Field(
        description="Next to nodata or the image edge: the slick may go on where the image shows nothing, "
        "so its area is a lower bound."
    )
    acquired: str | None = Field(description="The image's acquisition time (ISO 8601 UTC), if tagged.")


class SlickFeature(BaseModel):
    type: Literal["Feature"]
    id: str = Field(description='"<image>#<n>": unique within the job.', examples=["scenes/a.tif#1"])
    geometry: PolygonGeometry
    properties: SlickProperties


class SlickCollection(BaseModel):
    """A job's slicks: an RFC 7946 FeatureCollection in lon/lat (WGS 84), the images in the report's order."""

    type: Literal["FeatureCollection"]
    features: list[SlickFeature]
    not_georeferenced: list[str] | None = Field(
        None,
        description="Images whose slicks are in pixel coordinates and so left out (absent when none; "
        "their slicks are slicks/<name>.geojson in the archive, or come with include_pixel=true).",
    )
