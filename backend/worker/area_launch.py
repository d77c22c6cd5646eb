"""Starting an area job: the API's door to the worker for POST /api/area-jobs (uploads: launch.start_job)."""

from __future__ import annotations

from backend.core.logging import job_event
from backend.jobs.areas import AreaRecords
from backend.jobs.store import JobStore
from backend.sources.request import AreaJobRequest
from backend.storage.layout import new_token
from backend.worker.area_tasks import run_area_job


def start_area_job(store: JobStore, user_hash: str, request: AreaJobRequest, owner: str | None = None) -> str:
    """Record a queued area job and send its first task; a job whose task cannot be sent is forgotten."""
    job_id = new_token()
    AreaRecords(store).create(job_id, user_hash, request, owner)
    owned = {"owner": owner} if owner else {}  # a key's name or a token's subject, never the credential
    job_event("area_requested", job_id, source=request.data_source, bboxes=len(request.bboxes), **owned)
    try:
        run_area_job.delay(job_id)
    except BaseException:
        store.delete_job(job_id, user_hash)
        raise
    return job_id
