"""GET /api/results/{user_hash}/images, .../overlays/{name} and .../slicks: results while they come in, for
the web page and its map.

All only read: nothing is created on disk, and an overlay is served only if it is an output of this upload's
job with a recorded part (a token-named zip directly in results/<user_hash>/parts) that holds it. The
slicks are merged from the recorded parts while the job runs, and are the archive's slicks.geojson once
it is archived.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from backend.api.deps import ResultsDep, StoreDep, ValidUserHash
from backend.api.errors import ERROR_DETAIL
from backend.api.schemas import ErrorDetail, ImageSummary, ResultImages, SlickCollection
from backend.jobs.models import Job, JobState
from backend.jobs.store import JobStore
from backend.storage import parts, slicks
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
                geo=res.geo,
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


class GeoJSONResponse(JSONResponse):
    media_type = "application/geo+json"  # RFC 7946's media type


# The errors are JSON, not GeoJSON: their content spelt out, or FastAPI files them under the route's type.
SLICKS_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": response["description"], "content": ERROR_DETAIL}
    for code, response in RESPONSES.items()
}


@router.get(
    "/slicks",
    name="result_slicks",
    summary="The job's slicks (GeoJSON)",
    response_model=SlickCollection,
    response_class=GeoJSONResponse,
    responses=SLICKS_ERRORS,
)
def result_slicks(
    user_hash: ValidUserHash,
    store: StoreDep,
    folders: ResultsDep,
    include_pixel: Annotated[
        bool,
        Query(
            description="Also the slicks of images without georeferencing, in pixel coordinates (then not "
            "RFC 7946: tell them by `georeferenced: false`)."
        ),
    ] = False,
) -> Response:
    """Every slick found so far as one FeatureCollection, a Feature per slick with its area, length,
    centroid and confidence; grows as the job runs. Once the job is archived, the archive's slicks.geojson."""
    folder = folders.user(user_hash)
    job = _live_job(store, folder, user_hash)
    results = store.images.results(job.job_id)
    ordered = [results[name] for name in sorted(results)]
    archived = job.state == JobState.COMPLETED and folder.archive.is_file()
    body = slicks.archived_geojson(folder.archive) if archived and not include_pixel else None
    if body is None:
        if archived:
            collections = slicks.from_archive(folder.archive, ordered)
        else:
            collections = slicks.from_parts(folder, ordered, store.images.parts(job.job_id))
        body = slicks.merged_geojson(collections, include_pixel=include_pixel)
    return Response(body, media_type=GeoJSONResponse.media_type, headers={"Cache-Control": "no-store"})
