"""The ML service's land endpoint: how much of each area is at sea, by the land mask this service holds.

The worker's search of an area job asks it before reading any scene window (backend.sources.sea), so the
land mask (~0.8 GB, seconds to load) lives in this one long-lived process only. The request holds a slot
like a segmentation: loading the mask counts against the same memory bound (ml.scene.segment releases it
while its grids are held).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from common.wire import SeaFractionRequest, SeaFractionResponse
from ml.geo.sea import sea_fractions, to_geometry
from ml.service.deps import SlotsDep
from ml.service.routes import ERRORS

router = APIRouter(prefix="/land", tags=["land"])


@router.post("/sea-fraction", response_model=SeaFractionResponse, responses=ERRORS)
def sea_fraction(body: SeaFractionRequest, slots: SlotsDep) -> SeaFractionResponse:
    """Share of each area's sample points at sea (GSHHG): 0.0 for an area all on land."""
    geometries = []
    for n, area in enumerate(body.areas):
        try:
            geometries.append(to_geometry(area.model_dump()))
        except ValueError as exc:
            raise HTTPException(422, f"areas.{n}: {exc}") from exc
    with slots:
        answers = sea_fractions(geometries, body.samples)
    return SeaFractionResponse(fractions=[f for f, _ in answers], points=[p for _, p in answers])
