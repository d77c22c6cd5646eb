"""Dependencies of the ML service's routes: the loaded model, the settings and the request slots."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from ml.inference import Segmenter
from ml.service.config import Settings


async def get_segmenter(request: Request) -> Segmenter:
    """The loaded model, or 503 while it is not (yet) loaded."""
    segmenter: Segmenter | None = request.app.state.segmenter
    if segmenter is None:
        raise HTTPException(status_code=503, detail="model not loaded")
    return segmenter


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_slots(request: Request) -> threading.BoundedSemaphore:
    """At most ML_MAX_CONCURRENT requests segment at once: each holds an image, its mask and a float map."""
    slots: threading.BoundedSemaphore = request.app.state.slots
    return slots


SegmenterDep = Annotated[Segmenter, Depends(get_segmenter)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SlotsDep = Annotated[threading.BoundedSemaphore, Depends(get_slots)]
