"""GET /api/download/{user_hash} and /api/archive_time_left/{user_hash}: the finished archive and its expiry.

Both only read: a download never rebuilds the archive nor moves its expiry, and nothing is created on disk.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from backend.api.deps import ResultsDep, StoreDep, ValidUserHash
from backend.api.schemas import ErrorDetail, TimeLeft
from backend.jobs.models import Job, JobState
from backend.jobs.store import JobStore

router = APIRouter(tags=["results"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "No job ever had this user hash."},
    409: {"model": ErrorDetail, "description": "The job has not finished (or failed): no archive."},
    410: {"model": ErrorDetail, "description": "The archive has expired and was deleted."},
}


def _completed_job(store: JobStore, user_hash: str) -> Job:
    """The job behind a user hash if its archive is servable now, else the matching 404/409/410."""
    job_id = store.job_for_user(user_hash)
    job = store.get_job(job_id) if job_id else None
    if job is None:
        raise HTTPException(404, "No results for this user hash: it never existed, or its record expired.")
    if job.state == JobState.EXPIRED or (job.expires_at is not None and job.expires_at <= time.time()):
        raise HTTPException(410, "These results have expired and were deleted; upload the images again.")
    if job.state == JobState.FAILED:
        raise HTTPException(
            409,
            f"Job {job.job_id} failed: no image could be segmented, so there is no "
            "archive. Its status lists the errors.",
        )
    if job.state != JobState.COMPLETED:
        raise HTTPException(
            409,
            f"Job {job.job_id} is {job.state.value} ({job.done + job.failed} of "
            f"{job.total} images processed); try again when it is completed.",
        )
    return job


@router.get(
    "/download/{user_hash}",
    name="download",
    summary="Download the results archive",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/zip": {}},
            "description": "masks/, overlays/, report.json, report.csv",
        },
        **RESPONSES,
    },
)
def download(user_hash: ValidUserHash, store: StoreDep, results: ResultsDep) -> FileResponse:
    """The zip of masks, overlays and reports, streamed from disk."""
    job = _completed_job(store, user_hash)
    archive = results.user(user_hash).archive
    try:
        stat = os.stat(archive)
    except FileNotFoundError:
        raise HTTPException(
            410, "These results have expired and were deleted; upload the images again."
        ) from None
    return FileResponse(
        archive, media_type="application/zip", filename=f"oilspill-{job.job_id}.zip", stat_result=stat
    )


@router.get(
    "/archive_time_left/{user_hash}",
    name="archive_time_left",
    summary="Time left before the archive is deleted",
    response_model=TimeLeft,
    responses=RESPONSES,
)
def archive_time_left(user_hash: ValidUserHash, store: StoreDep) -> TimeLeft:
    """Seconds until the archive and all files of this upload are deleted."""
    job = _completed_job(store, user_hash)
    expires_at = job.expires_at or 0.0
    return TimeLeft(
        user_hash=user_hash,
        seconds_left=round(max(0.0, expires_at - time.time()), 3),
        expires_at=datetime.fromtimestamp(expires_at, UTC),
    )
