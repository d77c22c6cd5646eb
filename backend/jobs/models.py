"""The records kept in Redis: a job's state and counters, and the outcome of each of its images."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class JobState(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    ARCHIVING = "archiving"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"


ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.PROCESSING, JobState.ARCHIVING})


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

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


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
    error: str | None = None
