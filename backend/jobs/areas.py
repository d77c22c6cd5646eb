"""The records of area jobs (POST /api/area-jobs) in Redis, beside those every job has (backend.jobs.store).

An area job is a job of kind "area" whose images, one GeoTIFF window per scene and bbox, are known only
once its scenes are found and read: it is created with no images, its request and stage progress in
job:<id>:area, and its inputs and their entries (in the upload.zip the fetching stage writes) are added
before its chord is sent. From then on it is segmented, archived and expired like an upload.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import cast

from pydantic import BaseModel, Field

from backend.jobs.keys import hash_fields, job_key, touch
from backend.jobs.models import ACTIVE_STATES, JobState
from backend.jobs.store import JobStore
from backend.sources.request import AreaJobRequest

AREA = ":area"


class AreaProgress(BaseModel):
    """Where an area job stands: the stages' counters and, once it failed as a whole, why."""

    data_source: str
    scenes_found: int | None = Field(
        None, description="Scenes the search kept to read, at sea (null while searching)."
    )
    scenes_on_land: int = Field(
        0,
        description="Scenes found that cover only land inside the bboxes: not fetched, not in scenes_found.",
    )
    sea_check: str | None = Field(
        None, description="done, off (AREA_SEA_SAMPLES=0) or unavailable (the ML service did not answer)."
    )
    scenes_fetched: int = Field(0, description="Scenes whose windows have been read (or failed) so far.")
    scenes_failed: int = Field(0, description="Scenes that could not be read (their windows are in errors).")
    windows: int = Field(0, description="Windows read: one per scene and bbox it touches.")
    bytes_read: int | None = Field(
        0, description="Bytes downloaded over HTTP for the windows (GDAL's count); null if not measurable."
    )
    reason: str | None = Field(None, description="Why the job failed as a whole (search failed, no scene).")


class AreaRecords:
    """The area side of a JobStore."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.client = store.client

    def create(self, job_id: str, user_hash: str, request: AreaJobRequest, owner: str | None = None) -> float:
        """A queued area job with no images yet; returns created_at. `owner` as for an upload (auth on)."""
        pipe = self.client.pipeline()
        fields = {"request": request.model_dump_json(), "data_source": request.data_source}
        now = self.store.add_queued_job(pipe, job_id, user_hash, 0, owner, kind="area", parts={AREA: fields})
        pipe.execute()
        return now

    def request(self, job_id: str) -> AreaJobRequest | None:
        raw = cast(str | None, self.client.hget(job_key(job_id, AREA), "request"))
        return None if raw is None else AreaJobRequest.model_validate_json(raw)

    def progress(self, job_id: str) -> AreaProgress | None:
        fields = cast(dict[str, str], self.client.hgetall(job_key(job_id, AREA)))
        if not fields:
            return None
        fields.pop("request", None)
        data: dict[str, str | None] = {k: v or None for k, v in fields.items()}  # "" was stored for null
        return AreaProgress.model_validate(data)

    def update(self, job_id: str, **fields: int | str | None) -> None:
        """Set stage counters (None: stored as empty, read back as null)."""
        mapping = {k: "" if v is None else v for k, v in fields.items()}
        self.client.hset(job_key(job_id, AREA), mapping=hash_fields({k: str(v) for k, v in mapping.items()}))

    def add_images(
        self, job_id: str, user_hash: str, outputs: Mapping[str, str], entries: Mapping[str, str]
    ) -> None:
        """The job's images, found and read: input name -> output name, -> ZipEntry record in upload.zip."""
        pipe = self.client.pipeline()
        if outputs:
            pipe.hset(job_key(job_id, ":inputs"), mapping=hash_fields(outputs))
        if entries:
            pipe.hset(job_key(job_id, ":entries"), mapping=hash_fields(entries))
        pipe.hset(job_key(job_id), "total", len(outputs))
        touch(pipe, job_id, user_hash, self.store.record_ttl)
        pipe.execute()

    def fail(self, job_id: str, user_hash: str, reason: str) -> float | None:
        """Close an active job as failed with `reason` (nothing to archive); expires_at, or None if it had
        moved on (another delivery closed it)."""
        self.update(job_id, reason=reason)
        if not self.store.transition(job_id, JobState.ARCHIVING, ACTIVE_STATES):
            return None
        return self.store.finish(job_id, user_hash, JobState.FAILED, now=time.time())
