"""The backend <-> ML service contract: answer models, header names and the entry names of batch answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

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


def mask_entry(index: int) -> str:
    return f"{index}/{MASK_ENTRY}"


def overlay_entry(index: int) -> str:
    return f"{index}/{OVERLAY_ENTRY}"


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
    status_code: int | None = None  # the 4xx that POST /segment would have answered for this image alone
    detail: str | None = None


class BatchResult(BaseModel):
    """`results.json` of a batch answer: one item per uploaded file, in upload order."""

    model_version: str
    images: list[BatchItem]
