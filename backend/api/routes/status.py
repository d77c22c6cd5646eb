"""GET /api/status/{job_id}: progress of one job."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from backend.api.deps import AsyncRedisDep, StoreDep, ValidJobId
from backend.api.schemas import ErrorDetail, ImageError, JobStatus
from backend.core.config import settings
from backend.jobs.areas import AreaRecords
from backend.jobs.store import JobStore
from backend.jobs.wait import MAX_WAIT_SECONDS, TooManyWaiters, WaiterSlots, wait_until_ended

router = APIRouter(tags=["jobs"])
waiters = WaiterSlots(settings.STATUS_MAX_WAITERS)


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


@router.get(
    "/status/{job_id}",
    name="status",
    summary="Progress of a job",
    response_model=JobStatus,
    responses={
        404: {"model": ErrorDetail, "description": "No such job (or its record has aged out)."},
        429: {
            "model": ErrorDetail,
            "description": "Too many long polls waiting; retry, or ask without `wait`.",
        },
    },
)
async def job_status(
    job_id: ValidJobId,
    store: StoreDep,
    events: AsyncRedisDep,
    request: Request,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Long poll: answer as soon as the job has ended (completed, failed or expired), "
            "or after this many seconds with its progress. 0 answers at once.",
        ),
    ] = 0,
) -> JobStatus:
    """State, counters and per-image errors; `done` grows while the job runs."""
    if wait:
        try:
            with waiters.slot():
                await wait_until_ended(events, job_id, wait)
        except TooManyWaiters:
            raise HTTPException(
                429,
                f"Too many long polls are waiting on this API process ({waiters.limit}); retry in a few "
                "seconds, or ask without `wait`.",
                headers={"Retry-After": "2"},
            ) from None
    return await run_in_threadpool(_status, store, job_id, request.app.url_path_for)


def _status(store: JobStore, job_id: str, url_path_for: Callable[..., object]) -> JobStatus:
    job = store.get_job(job_id)
    if job is None:
        raise HTTPException(404, "No such job: it never existed, or its record expired.")
    return JobStatus(
        job_id=job.job_id,
        state=job.state,
        total=job.total,
        done=job.done,
        failed=job.failed,
        errors=[ImageError(name=n, error=e) for n, e in sorted(store.images.errors(job_id).items())],
        created_at=datetime.fromtimestamp(job.created_at, UTC),
        finished_at=_when(job.finished_at),
        expires_at=_when(job.expires_at),
        download_url=str(url_path_for("download", user_hash=job.user_hash)),
        kind=job.kind,
        area=AreaRecords(store).progress(job_id) if job.kind == "area" else None,
    )
