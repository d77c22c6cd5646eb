"""GET /api/results/{user_hash}/images and .../overlays/{name}: results while they come in, for the web page.

Both only read: nothing is created on disk, and an overlay is served only if it is an output of this upload's
job with a recorded part (a token-named zip directly in results/<user_hash>/parts) that holds it.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse

from backend.api.deps import ResultsDep, StoreDep, ValidUserHash
from backend.api.schemas import ErrorDetail, ImageSummary, ResultImages
from backend.jobs.models import Job, JobState
from backend.jobs.store import JobStore
from backend.storage import parts
from backend.storage.layout import UserDir

router = APIRouter(prefix="/results/{user_hash}", tags=["results"])

EXPIRED = "These results have expired and were deleted; upload the images again."
NO_OVERLAY = "No such overlay: it is not an output of this upload, or its image is not processed (yet)."

RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "No job ever had this user hash."},
    410: {"model": ErrorDetail, "description": "The results have expired and were deleted."},
}


def _live_job(store: JobStore, folder: UserDir, user_hash: str) -> Job:
    """The job behind a user hash while its files may still be read, else the matching 404/410."""
    job_id = store.job_for_user(user_hash)
    job = store.get_job(job_id) if job_id else None
    if job is None:
        raise HTTPException(404, "No results for this user hash: it never existed, or its record expired.")
    expired = job.expires_at is not None and job.expires_at <= time.time()
    if job.state == JobState.EXPIRED or expired or not (job.active or folder.root.is_dir()):
        raise HTTPException(410, EXPIRED)
    return job


@router.get(
    "/images",
    name="result_images",
    summary="Images processed so far",
    response_model=ResultImages,
    responses=RESPONSES,
)
def result_images(
    user_hash: ValidUserHash, store: StoreDep, folders: ResultsDep, request: Request
) -> ResultImages:
    """Every image with a result (ok or failed), its oil fraction and overlay URL; grows as the job runs."""
    job = _live_job(store, folders.user(user_hash), user_hash)
    results = store.images.results(job.job_id)
    images = []
    for name in sorted(results):
        res = results[name]
        url = None
        if res.status == "ok":
            url = request.app.url_path_for("overlay", user_hash=user_hash, name=quote(res.output, safe="/"))
        images.append(
            ImageSummary(
                name=res.name,
                output=res.output,
                status=res.status,
                width=res.width,
                height=res.height,
                oil_fraction=res.oil_fraction,
                error=res.error,
                overlay_url=url,
            )
        )
    return ResultImages(
        job_id=job.job_id,
        user_hash=user_hash,
        state=job.state,
        total=job.total,
        done=job.done,
        failed=job.failed,
        images=images,
    )


@router.get(
    "/overlays/{name:path}",
    name="overlay",
    summary="One overlay image",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The image with oil in translucent red."},
        404: {"model": ErrorDetail, "description": "Unknown user hash, or not an overlay of this upload."},
        410: {"model": ErrorDetail, "description": "The results have expired and were deleted."},
    },
)
def overlay(user_hash: ValidUserHash, name: str, store: StoreDep, folders: ResultsDep) -> StreamingResponse:
    """The overlay PNG `name` (as under overlays/ in the archive), read from the part that holds it."""
    folder = folders.user(user_hash)
    job = _live_job(store, folder, user_hash)
    part = store.images.parts(job.job_id, [name]).get(name) if name.endswith(".png") else None
    try:
        found = parts.open_overlay(folder.part_path(part), name) if part else None
    except ValueError:  # not a part id: a tampered record
        found = None
    if found is None:
        raise HTTPException(404, NO_OVERLAY)
    size, chunks = found
    # An overlay never changes under its URL (a user hash names one upload), so the browser may keep it.
    headers = {"Cache-Control": "private, max-age=3600, immutable", "Content-Length": str(size)}
    return StreamingResponse(chunks, media_type="image/png", headers=headers)
