"""Response models of the ML service (the mask itself is a PNG body, not JSON)."""

from __future__ import annotations

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
    batch_size: int
    threads: int
    threshold: float
    validation: dict[str, float]


class ErrorDetail(BaseModel):
    """Body of every 4xx/5xx answer, FastAPI's usual shape."""

    detail: str
