"""POST /api/area-jobs: ask for an area and a date instead of uploading a file.

The request is checked here (shape by pydantic, limits and source names against the settings: 422 saying
which field), the job recorded and its first task sent; the worker searches the source's STAC catalogue,
reads the scenes' windows and segments them like an upload (backend.worker.area). Progress, stage by stage,
is GET /api/status/{job_id}; the archive is GET /api/download/{user_hash}, as for an upload.
"""

from __future__ import annotations

import contextlib
import shutil

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from backend.api.deps import CallerDep, ResultsDep, SettingsDep, StoreDep
from backend.api.schemas import ErrorDetail
from backend.auth.quotas import upload_quota
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


class AreaSource(BaseModel):
    """A configured data source, as a client may pick it (no URL, no credential)."""

    name: str
    collection: str
    description: str


@router.get(
    "/area-jobs/sources",
    name="area_sources",
    summary="The data sources an area job may name",
    response_model=list[AreaSource],
)
async def list_sources(settings: SettingsDep) -> list[AreaSource]:
    """The names of AREA_SOURCES, for `data_source`; sorted."""
    return [
        AreaSource(name=name, collection=source.collection, description=source.description)
        for name, source in sorted(settings.AREA_SOURCES.items())
    ]


@router.post(
    "/area-jobs",
    name="area_jobs",
    summary="Ask for slicks in bounding boxes around a date",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AreaJobResponse,
    responses={
        401: {"model": ErrorDetail, "description": "With auth on: no credential, or a refused one."},
        429: {"model": ErrorDetail, "description": "Over the owner's jobs in flight; see Retry-After."},
        422: {
            "model": ErrorDetail,
            "description": "A bbox out of range, inverted or over MAX_AREA_KM2, a date window over "
            "AREA_MAX_WINDOW_DAYS, too many scenes or bboxes, or an unknown data_source.",
        },
        503: {"model": ErrorDetail, "description": "The job queue (Redis) is unreachable."},
    },
)
async def create_area_job(
    body: AreaJobRequest,
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    results: ResultsDep,
    caller: CallerDep,
) -> AreaJobResponse:
    """Queue an area job: searching, fetching, processing, archiving (see GET /api/status)."""
    try:
        check_request(body, settings)
    except ValueError as exc:
        raise HTTPException(422, f"Invalid request: {exc}") from exc
    user_hash = new_token()
    quota = upload_quota(store.client, caller)  # None with auth off
    if quota is not None:  # a slot among the owner's jobs in flight, as an upload takes
        await run_in_threadpool(quota.hold, user_hash, None)
    # The job's folder from the start, as an upload's: its results read as "none yet", never as expired.
    folder = results.user(user_hash)
    try:
        folder.root.mkdir(mode=0o700, parents=True)
        owner = caller.owner if caller else None
        job_id = await run_in_threadpool(start_area_job, store, user_hash, body, owner)
    except BaseException:
        shutil.rmtree(folder.root, ignore_errors=True)
        with contextlib.suppress(Exception):  # the slot ages out otherwise (no job: STALE_UPLOAD_SECONDS)
            if quota is not None:
                quota.release()
        raise
    start, end = body.window()
    return AreaJobResponse(
        job_id=job_id,
        user_hash=user_hash,
        data_source=body.data_source,
        datetime_window=(start.isoformat(), end.isoformat()),
        status_url=request.app.url_path_for("status", job_id=job_id),
        download_url=request.app.url_path_for("download", user_hash=user_hash),
    )
