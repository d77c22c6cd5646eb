"""POST /api/upload: stream a zip to disk, check it and its images, start the segmentation job.

The zip stays in the user's folder (deleted with it at expiry): workers read each image from it at the
location recorded in the job, so nothing is extracted.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from backend.api.deps import CallerDep, MetricsDep, ResultsDep, SettingsDep, StoreDep
from backend.api.schemas import ErrorDetail, Skipped, UploadResponse
from backend.auth.quotas import upload_quota
from backend.core.config import MB, Settings
from backend.jobs.store import JobStore
from backend.storage.layout import ResultsDir, new_token
from backend.storage.reserve import DiskReservations, NoSpace
from backend.upload.errors import TooLarge, UploadError
from backend.upload.scan import ZipLimits, scan_images
from backend.upload.stream import receive_upload
from backend.worker.launch import start_job

router = APIRouter(tags=["jobs"])

# Multipart framing around the file (boundaries, part headers) on top of MAX_UPLOAD_MB.
MULTIPART_OVERHEAD = 64 * 1024

OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A zip of PNG/JPEG/TIFF images.",
                        }
                    },
                }
            }
        },
    }
}


def _limits(settings: Settings) -> ZipLimits:
    return ZipLimits(
        max_uncompressed_bytes=settings.MAX_UNCOMPRESSED_MB * MB,
        max_ratio=settings.MAX_COMPRESSION_RATIO,
        max_entries=settings.MAX_ZIP_ENTRIES,
        max_images=settings.MAX_IMAGES,
    )


def _check_capacity(request: Request, settings: Settings, results: ResultsDir) -> None:
    """Refuse before reading a byte: declared size over the limit (413), disk nearly full (507)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_upload_bytes + MULTIPART_OVERHEAD:
        raise HTTPException(
            413,
            f"The upload is larger than the limit of {settings.MAX_UPLOAD_MB} MB.",
            headers={"Connection": "close"},
        )
    free = results.free_disk_mb()
    if free < settings.MIN_FREE_DISK_MB:
        raise HTTPException(507, f"The server is low on disk space ({free:.0f} MB free); try again later.")


def reservations(store: JobStore, results: ResultsDir, settings: Settings) -> DiskReservations:
    return DiskReservations(
        store.client, results, factor=settings.DISK_RESERVE_FACTOR, floor_mb=settings.MIN_FREE_DISK_MB
    )


def _reserve(disk: DiskReservations, user_hash: str, size: int) -> None:
    try:
        disk.reserve(user_hash, size)
    except NoSpace as exc:
        raise HTTPException(
            507,
            f"Not enough free disk space for this upload and its results ({exc}); try again later.",
            headers={"Connection": "close"},
        ) from exc


def _count_outcome(metrics: MetricsDep) -> Iterator[None]:
    """Count every upload as accepted, rejected (4xx: the client's doing) or error, however it ends."""
    outcome = "error"
    try:
        yield
        outcome = "accepted"
    except (HTTPException, UploadError) as exc:
        outcome = "rejected" if exc.status_code < 500 else "error"
        raise
    finally:
        metrics.count_upload(outcome)


@router.post(
    "/upload",
    name="upload",
    summary="Upload a zip of SAR images",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadResponse,
    openapi_extra=OPENAPI_BODY,
    responses={
        400: {"model": ErrorDetail, "description": "Not a zip, a corrupt zip, or a zip without images."},
        401: {"model": ErrorDetail, "description": "With auth on: no credential, or a refused one."},
        413: {"model": ErrorDetail, "description": "Upload or its contents over the size limits."},
        422: {"model": ErrorDetail, "description": "No form field `file`."},
        429: {
            "model": ErrorDetail,
            "description": "Over a quota (jobs in flight, images or megabytes per day); see Retry-After.",
        },
        503: {"model": ErrorDetail, "description": "The job queue (Redis) is unreachable."},
        507: {"model": ErrorDetail, "description": "Not enough free disk space."},
    },
)
async def upload(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    results: ResultsDep,
    caller: CallerDep,
    _: Annotated[None, Depends(_count_outcome)],
) -> UploadResponse:
    """Stream the zip to disk, check its images (kept in the zip) and queue one segmentation per image."""
    _check_capacity(request, settings, results)
    await run_in_threadpool(store.client.ping)
    user_hash = new_token()
    declared = request.headers.get("content-length", "")
    quota = upload_quota(store.client, caller, settings.max_upload_bytes)  # None with auth off
    if quota is not None:  # before anything is written: a slot among the owner's jobs in flight
        await run_in_threadpool(quota.hold, user_hash, int(declared) if declared.isdigit() else None)
    max_bytes = min(settings.max_upload_bytes, quota.max_upload_bytes if quota else settings.max_upload_bytes)
    folder = results.user(user_hash)
    disk = reservations(store, results, settings)
    try:
        folder.root.mkdir(mode=0o700, parents=True)
        if declared.isdigit():  # before a byte is read: the upload and what its job will write
            await run_in_threadpool(_reserve, disk, user_hash, int(declared))
        try:
            size = await receive_upload(request, folder.upload, max_bytes=max_bytes)
        except TooLarge as exc:  # past the owner's max_upload_mb mid-stream: say it was their quota
            if quota is not None and quota.binds:
                raise quota.too_large() from exc
            raise
        if not declared.isdigit():  # a chunked upload: reserved once its size is known
            await run_in_threadpool(_reserve, disk, user_hash, size)
        scan = await run_in_threadpool(scan_images, folder.upload, _limits(settings))
        if quota is not None:  # the day's images and bytes, or 429 (and all of this undone)
            await run_in_threadpool(quota.charge, size, len(scan.images))
        owner = caller.owner if caller else None
        job_id = await run_in_threadpool(start_job, store, user_hash, scan, owner)
    except BaseException:
        # Whatever went wrong (bad zip, client gone, Redis down, a quota), leave nothing behind;
        # synchronously, because a cancelled request may not get to await again.
        shutil.rmtree(folder.root, ignore_errors=True)
        with contextlib.suppress(Exception):  # the sweeper drops it otherwise (its folder is gone)
            disk.release(user_hash)
        with contextlib.suppress(Exception):  # the slot ages out otherwise (no job: STALE_UPLOAD_SECONDS)
            if quota is not None:
                quota.release()
        raise
    return UploadResponse(
        job_id=job_id,
        user_hash=user_hash,
        images=len(scan.images),
        skipped=[Skipped(name=s.name, reason=s.reason) for s in scan.skipped],
        status_url=request.app.url_path_for("status", job_id=job_id),
        download_url=request.app.url_path_for("download", user_hash=user_hash),
    )
