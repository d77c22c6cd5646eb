"""Celery task of area jobs: search and fetch (backend.worker.area), then the uploads' chord.

Its name follows the other tasks' (`backend.tasks.*`). acks_late as every task: a worker that dies while
fetching leaves the message to be redelivered, and the stages start again from the search.
"""

from __future__ import annotations

import time

from backend.core.celery_app import celery_app
from backend.core.config import settings
from backend.worker import area
from backend.worker.launch import send_chord
from backend.worker.tasks import _context, delete_results


@celery_app.task(name="backend.tasks.run_area_job", ignore_result=True)
def run_area_job(job_id: str) -> None:
    """Searching and fetching; then processing and archiving by the chord (segment_images, finalize_job)."""
    outcome = area.run(_context(), job_id, settings)
    if outcome.sizes:
        send_chord(job_id, outcome.sizes)
    elif outcome.expires_at is not None:
        delete_results.apply_async((job_id,), countdown=max(0.0, outcome.expires_at - time.time()))
