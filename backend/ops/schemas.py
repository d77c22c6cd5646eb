"""Pydantic models of the operator endpoints: /api/tasks, /api/health, /api/queues/status."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from backend.jobs.models import JobState


class TaskSummary(BaseModel):
    """One job as operators see it: no user hash (that would hand out its download link)."""

    job_id: str
    state: JobState
    total: int = Field(description="Images in the job.")
    done: int = Field(description="Images segmented successfully.")
    failed: int
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None = Field(description="When the archive and all files are (or were) deleted.")
    status_url: str
    owner: str | None = Field(None, description="The API key's name or token subject; null with auth off.")
    kind: Literal["upload", "area"] = Field("upload", description="An upload, or an area job (bboxes, date).")


class TaskList(BaseModel):
    items: list[TaskSummary] = Field(description="Newest first.")
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last page.")


class ComponentHealth(BaseModel):
    status: Literal["ok", "error"]
    error: str | None = Field(None, examples=["ConnectionError: Error 111 connecting to 127.0.0.1:6379."])
    response_ms: float | None = Field(description="How long the check took; null if it was skipped.")


class WorkersHealth(ComponentHealth):
    answered_by: str | None = Field(None, description="The first worker that answered the ping.")
    checked_at: datetime | None = Field(None, description="Worker pings are cached for a few seconds.")


class HealthReport(BaseModel):
    status: Literal["ok", "unavailable"] = Field(description="ok when every component is ok (HTTP 200).")
    redis: ComponentHealth
    ml_service: ComponentHealth
    workers: WorkersHealth
    disk: ComponentHealth = Field(description="ok while RESULTS_DIR has more than MIN_FREE_DISK_MB free.")


class QueueDepth(BaseModel):
    name: str
    waiting: int = Field(description="Messages not yet taken by a worker (reserved and ETA tasks excluded).")


class WorkerTasks(BaseModel):
    name: str
    active: int = Field(description="Tasks executing now.")
    reserved: int = Field(description="Tasks prefetched by the worker, waiting for a free process.")
    scheduled: int = Field(description="Tasks with an ETA/countdown held by the worker (expiry timers).")


class QueueStatus(BaseModel):
    queues: list[QueueDepth]
    workers: list[WorkerTasks] = Field(description="Every worker that answered the inspection.")
    workers_error: str | None = Field(None, description="Why no worker is listed, if none is.")
    workers_checked_at: datetime = Field(description="Worker inspections are cached for a few seconds.")
