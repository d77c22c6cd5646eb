"""Celery task of area jobs: search and fetch (backend.worker.area), then the uploads' chord.

Its name follows the other tasks' (`backend.tasks.*`). acks_late as every task: a worker that dies while
fetching leaves the message to be redelivered, and the stages start again from the search.
"""

from __future__ import annotations

import logging
import time

import redis
from celery.exceptions import Reject

from backend.core.celery_app import celery_app
from backend.core.config import settings
from backend.sources.access import redact
from backend.worker import area
from backend.worker.lanes import pick_lane
from backend.worker.launch import send_chord
from backend.worker.tasks import _context, delete_results

log = logging.getLogger(__name__)


@celery_app.task(name="backend.tasks.run_area_job", ignore_result=True)
def run_area_job(job_id: str) -> None:
    """Searching and fetching; then processing and archiving by the chord (segment_images, finalize_job)."""
    ctx = _context()
    try:
        outcome = area.run(ctx, job_id, settings)
    except redis.RedisError as exc:  # not the job's fault: back to the queue, the stages start again
        log.warning("job %s: Redis failed during the area stages (%s); requeued", job_id, exc)
        raise Reject(exc, requeue=True) from exc
    except Exception as exc:  # the job must end, not wait for its deadline
        log.exception("job %s: the area stages failed", job_id)
        outcome = area.fail(ctx, job_id, f"internal error: {type(exc).__name__}: {redact(str(exc))[:300]}")
    if outcome.sizes:  # on its owner's lane, as an upload's images: fair shares between owners
        job = ctx.store.get_job(job_id)
        owner = job.owner if job is not None else None
        send_chord(job_id, outcome.sizes, pick_lane(ctx.store.client, owner or job_id, settings.FAIR_LANES))
    elif outcome.expires_at is not None:
        delete_results.apply_async((job_id,), countdown=max(0.0, outcome.expires_at - time.time()))
