"""Pydantic models of the API's requests and answers (the operator endpoints': backend.ops.schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from backend.jobs.models import JobState


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


class ResultImages(BaseModel):
    """The images of an upload processed so far; grows while the job runs."""

    job_id: str
    user_hash: str
    state: JobState
    total: int
    done: int
    failed: int
    images: list[ImageSummary] = Field(description="Processed images (ok and failed), sorted by name.")
