"""Response models of the ML service (the mask itself is a PNG body, not JSON)."""

from __future__ import annotations

from pydantic import BaseModel


class Health(BaseModel):
    """Readiness: answered with 200 only once the model is loaded."""

    status: str
    model_version: str | None = None
    cancelled: int = 0  # batch segmentations stopped because their client went away, since start


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
    input_scale: str  # ML_INPUT_SCALE: how image numbers are read (auto = by pixel type)
    validation: dict[str, float]
