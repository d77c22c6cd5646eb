"""The backend <-> ML service contract: answer models, header names and the entry names of batch answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

OIL = 255  # mask value of an oil pixel; 0 is no oil

# Headers of a `POST /segment` answer.
OIL_FRACTION_HEADER = "X-Oil-Fraction"
OIL_PIXELS_HEADER = "X-Oil-Pixels"
MODEL_VERSION_HEADER = "X-Model-Version"

# Entries of the stored zips: `POST /segment?overlay=true` holds MASK_ENTRY and OVERLAY_ENTRY; a batch
# answer holds RESULTS_ENTRY first, then `<index>/mask.png` (and `<index>/overlay.png`) per image done.
MASK_ENTRY = "mask.png"
OVERLAY_ENTRY = "overlay.png"
RESULTS_ENTRY = "results.json"
# With geo=true, every image that worked also has `<index>/slicks.geojson` (its slicks: lon/lat when the input
# is georeferenced, else pixel coordinates), and a georeferenced one `<index>/mask.tif` (a COG mask).
SLICKS_ENTRY = "slicks.geojson"
GEO_MASK_ENTRY = "mask.tif"
# A scene too large to send (POST /segment/scene) is extracted by the worker under the shared results folder
# and named by its path relative to that folder (ML_SCENE_DIR on the service's side).


class SceneRequest(BaseModel):
    """Body of POST /segment/scene: where the scene file lies, and its name for the slicks."""

    path: str  # relative to the shared results folder
    filename: str


def mask_entry(index: int) -> str:
    return f"{index}/{MASK_ENTRY}"


def overlay_entry(index: int) -> str:
    return f"{index}/{OVERLAY_ENTRY}"


def slicks_entry(index: int) -> str:
    return f"{index}/{SLICKS_ENTRY}"


def geo_mask_entry(index: int) -> str:
    return f"{index}/{GEO_MASK_ENTRY}"


class GeoInfo(BaseModel):
    """Where an image lies and what was found in it (a batch item's `geo`, with geo=true)."""

    georeferenced: bool
    reason: str | None = None  # why not, when not ("no georeferencing in the file", "unusable CRS ...")
    crs: str | None = None  # "EPSG:32639", or the CRS's WKT when it has no EPSG code
    georeferencing: Literal["affine", "gcps"] | None = None
    bounds: list[float] | None = None  # lon/lat [west, south, east, north] of the footprint
    pixel_size_m: list[float] | None = None  # [along a row, along a column] at the image centre
    acquired: str | None = None  # ISO 8601 UTC, from the file's tags
    slicks: int = 0  # slicks kept (above the minimum area, at sea)
    slicks_on_land: int = 0  # slicks dropped by the land mask
    oil_km2: float | None = None  # geodesic area of the kept slicks; None when not georeferenced


class ErrorDetail(BaseModel):
    """Body of every 4xx/5xx answer, FastAPI's usual shape."""

    detail: str


class BatchItem(BaseModel):
    """One image of a POST /segment/batch: its mask (and overlay) are `<index>/mask.png` in the zip."""

    index: int
    filename: str
    status: Literal["ok", "error"]
    width: int | None = None
    height: int | None = None
    oil_fraction: float | None = None
    oil_pixels: int | None = None  # counted before encoding, so the caller needs not decode the mask
    valid_fraction: float | None = None  # share of pixels holding data (the rest is nodata: never oil)
    scale: str | None = None  # how the numbers were read (ml.radiometry.Scale): grey, amplitude, power, db
    geo: GeoInfo | None = None  # with geo=true
    # Scenes (POST /segment/scene): input pixels per mask pixel along each axis (the processing resolution;
    # the mask, overlay and COG mask are width x height at that resolution), and the model's tiles: all of
    # the scene's, and those run (the others were nodata or land).
    decimation: int | None = None
    tiles: int | None = None
    tiles_run: int | None = None
    status_code: int | None = None  # the 4xx that POST /segment would have answered for this image alone
    detail: str | None = None


class BatchResult(BaseModel):
    """`results.json` of a batch answer: one item per uploaded file, in upload order."""

    model_version: str
    images: list[BatchItem]


# POST /land/sea-fraction: which windows of an area job touch the sea, asked before any pixel is read.
MAX_SEA_AREAS = 2000
MAX_SEA_SAMPLES = 4096


class SeaArea(BaseModel):
    """A GeoJSON Polygon or MultiPolygon in WGS 84 lon/lat: a scene's footprint within one bbox."""

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any] = Field(description="GeoJSON coordinates: rings of [lon, lat] positions.")


class SeaFractionRequest(BaseModel):
    """Body of POST /land/sea-fraction."""

    areas: list[SeaArea] = Field(min_length=1, max_length=MAX_SEA_AREAS)
    samples: int = Field(
        1024,
        ge=1,
        le=MAX_SEA_SAMPLES,
        description="Grid points per area (about: the grid is square, and the area's vertices are added).",
    )


class SeaFractionResponse(BaseModel):
    """Per area, in order: the share of its sample points at sea by the GSHHG shoreline, and their number."""

    fractions: list[float]
    points: list[int]
