"""The Celery application: broker and results in Redis, late acks, the sweeper on beat."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend
from celery.signals import setup_logging, worker_init

from backend.core.config import settings
from backend.core.logging import configure_logging
from backend.worker.lanes import task_queues
from common.priority import lower_process_priority


class RedisResults(RedisBackend):
    """Celery's Redis result backend without the pub/sub subscription to every task a process sends.

    Celery subscribes the sender to each task's result channel so that AsyncResult.get() needs no polling.
    Nothing here waits on a task's result (the workers count the chord, the API reads the job's records),
    so the subscriptions only cost the API a SUBSCRIBE and an UNSUBSCRIBE per chord member.
    """

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None


celery_app = Celery(
    "oilspill",
    broker=settings.redis_url,
    backend=f"{__name__}:RedisResults+{settings.redis_url}",
    include=["backend.worker.tasks", "backend.worker.area_tasks"],
)
celery_app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # A task is acknowledged after it ran, so a worker dying mid-image hands it to another worker;
    # backend.worker.segment bounds the redeliveries (MAX_DELIVERIES) so a poison image cannot loop.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=settings.WORKER_CONCURRENCY,
    # The default queue and one per owner lane, consumed in turn (backend/worker/lanes.py).
    task_queues=task_queues(settings.FAIR_LANES),
    # Unacked messages (running tasks, ETA timers) of a dead worker return after the visibility timeout (see
    # the setting). Kombu looks for them every interval x throttle seconds (100 s by default): scan every
    # ~10 s instead, so a crashed worker's images are redelivered soon after the timeout.
    broker_transport_options={
        "visibility_timeout": settings.VISIBILITY_TIMEOUT_SECONDS,
        "unacked_restore_interval": max(1, min(10, settings.VISIBILITY_TIMEOUT_SECONDS // 4)),
        "unacked_restore_throttle": 1,
    },
    # Storing a result (and counting it for the chord) waits out a Redis restart like the job store does.
    result_backend_transport_options={"retry_policy": {"timeout": max(5.0, settings.REDIS_RETRY_SECONDS)}},
    broker_connection_retry_on_startup=True,
    task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
    worker_hijack_root_logger=False,
    beat_schedule={
        "sweep": {"task": "backend.tasks.sweep", "schedule": settings.SWEEP_INTERVAL_SECONDS},
    },
)


@setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Use our log format in workers and beat instead of Celery's."""
    configure_logging(settings.LOG_LEVEL, settings.LOG_JSON)


@worker_init.connect
def _lower_priority(**_: Any) -> None:
    """Segmenting is batch work: let the API's requests run first (the pool children inherit this)."""
    lower_process_priority(settings.WORKER_NICE)
