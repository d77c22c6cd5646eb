"""POST /api/area-jobs: ask for an area and a date instead of uploading a file.

The request is checked here (shape by pydantic, limits and source names against the settings: 422 saying
which field), the job recorded and its first task sent; the worker searches the source's STAC catalogue,
reads the scenes' windows and segments them like an upload (backend.worker.area). Progress, stage by stage,
is GET /api/status/{job_id}; the archive is GET /api/download/{user_hash}, as for an upload.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from backend.api.deps import SettingsDep, StoreDep
from backend.api.schemas import ErrorDetail
from backend.sources.request import AreaJobRequest, check_request
from backend.storage.layout import new_token
from backend.worker.area_launch import start_area_job

router = APIRouter(tags=["jobs"])


class AreaJobResponse(BaseModel):
    job_id: str
    user_hash: str = Field(description="The download key, as for an upload: keep it private.")
    data_source: str
    datetime_window: tuple[str, str] = Field(description="The interval searched (ISO 8601, UTC).")
    status_url: str
    download_url: str


@router.post(
    "/area-jobs",
    name="area_jobs",
    summary="Ask for slicks in bounding boxes around a date",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AreaJobResponse,
    responses={
        422: {
            "model": ErrorDetail,
            "description": "A bbox out of range, inverted or over MAX_AREA_KM2, a date window over "
            "AREA_MAX_WINDOW_DAYS, too many scenes or bboxes, or an unknown data_source.",
        },
        503: {"model": ErrorDetail, "description": "The job queue (Redis) is unreachable."},
    },
)
async def create_area_job(
    body: AreaJobRequest, request: Request, settings: SettingsDep, store: StoreDep
) -> AreaJobResponse:
    """Queue an area job: searching, fetching, processing, archiving (see GET /api/status)."""
    try:
        check_request(body, settings)
    except ValueError as exc:
        raise HTTPException(422, f"Invalid request: {exc}") from exc
    user_hash = new_token()
    job_id = await run_in_threadpool(start_area_job, store, user_hash, body)
    start, end = body.window()
    return AreaJobResponse(
        job_id=job_id,
        user_hash=user_hash,
        data_source=body.data_source,
        datetime_window=(start.isoformat(), end.isoformat()),
        status_url=request.app.url_path_for("status", job_id=job_id),
        download_url=request.app.url_path_for("download", user_hash=user_hash),
    )
