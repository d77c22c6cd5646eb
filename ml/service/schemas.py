"""Response models of the ML service (the mask itself is a PNG body, not JSON)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    """Readiness: answered with 200 only once the model is loaded."""

    status: str
    model_version: str | None = None


class ModelCard(BaseModel):
    """The served weights and how images are tiled for them."""

    name: str
    version: str
    sha256: str
    epoch: str | None
    tile_size: int
    tile_overlap: int
    batch_size: int  # tiles per model run
    threads: int  # ONNX Runtime intra-op threads in all
    runners: int  # model runs at once, each on threads // runners of them
    threshold: float
    validation: dict[str, float]


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
    status_code: int | None = None  # the 4xx that POST /segment would have answered for this image alone
    detail: str | None = None


class BatchResult(BaseModel):
    """`results.json` of a batch answer: one item per uploaded file, in upload order."""

    model_version: str
    images: list[BatchItem]
