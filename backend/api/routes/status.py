"""GET /api/status/{job_id}: progress of one job."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request

from backend import job_images, jobs
from backend.api.deps import RedisDep, ValidJobId
from backend.schemas import ErrorDetail, ImageError, JobStatus

router = APIRouter(tags=["jobs"])


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


@router.get(
    "/status/{job_id}",
    name="status",
    summary="Progress of a job",
    response_model=JobStatus,
    responses={404: {"model": ErrorDetail, "description": "No such job (or its record has aged out)."}},
)
def job_status(job_id: ValidJobId, redis: RedisDep, request: Request) -> JobStatus:
    """State, counters and per-image errors; `done` grows while the job runs."""
    job = jobs.get_job(redis, job_id)
    if job is None:
        raise HTTPException(404, "No such job: it never existed, or its record expired.")
    return JobStatus(
        job_id=job.job_id,
        state=job.state,
        total=job.total,
        done=job.done,
        failed=job.failed,
        errors=[ImageError(name=n, error=e) for n, e in sorted(job_images.errors(redis, job_id).items())],
        created_at=datetime.fromtimestamp(job.created_at, UTC),
        finished_at=_when(job.finished_at),
        expires_at=_when(job.expires_at),
        download_url=request.app.url_path_for("download", user_hash=job.user_hash),
    )
