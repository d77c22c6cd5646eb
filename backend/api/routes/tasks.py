"""GET /api/tasks: recent jobs, newest first, without their user hashes: every job for operators (and, with
auth on, admin keys or roles), the caller's own jobs for everyone else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from backend.api.deps import StoreDep, tasks_scope
from backend.api.schemas import ErrorDetail
from backend.jobs.models import Job, JobState
from backend.ops.schemas import TaskList, TaskSummary

router = APIRouter(
    tags=["operations"],
    responses={
        401: {
            "model": ErrorDetail,
            "description": "AUTH_MODE none: the operator token (OPS_TOKEN or OPS_TOKEN_FILE) is missing or "
            "wrong. Otherwise: no API key or bearer token, or a refused one.",
        },
        429: {"model": ErrorDetail, "description": "Too many failed token attempts from this address."},
    },
)


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def _summary(request: Request, job: Job) -> TaskSummary:
    return TaskSummary(
        job_id=job.job_id,
        state=job.state,
        total=job.total,
        done=job.done,
        failed=job.failed,
        created_at=datetime.fromtimestamp(job.created_at, UTC),
        finished_at=_when(job.finished_at),
        expires_at=_when(job.expires_at),
        status_url=request.app.url_path_for("status", job_id=job.job_id),
        owner=job.owner,
        kind=job.kind,
    )


@router.get(
    "/tasks",
    name="tasks",
    summary="List recent jobs",
    response_model=TaskList,
    responses={
        422: {"model": ErrorDetail, "description": "limit outside 1..200, negative offset or unknown state."},
        503: {"model": ErrorDetail, "description": "The job store (Redis) is unreachable."},
    },
)
def list_tasks(
    request: Request,
    store: StoreDep,
    owner: Annotated[str | None, Depends(tasks_scope)],
    limit: Annotated[int, Query(ge=1, le=200, description="Jobs per page.")] = 50,
    offset: Annotated[int, Query(ge=0, description="Jobs to skip (of those matching `state`).")] = 0,
    state: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
) -> TaskList:
    """Jobs newest first, with their image counts and expiry; records age out after JOB_RECORD_TTL_SECONDS."""
    found = store.index.recent_jobs(offset=offset, count=limit + 1, state=state, owner=owner)
    return TaskList(
        items=[_summary(request, job) for job in found[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if len(found) > limit else None,
    )
