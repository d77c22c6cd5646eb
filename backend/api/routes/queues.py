"""GET /api/queues/status: messages waiting per queue and what each worker holds."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from backend.api.deps import RedisDep, operator_access
from backend.api.schemas import ErrorDetail
from backend.ops import monitor
from backend.ops.schemas import QueueDepth, QueueStatus, WorkerTasks

router = APIRouter(
    tags=["operations"],
    dependencies=[Depends(operator_access)],
    responses={
        401: {
            "model": ErrorDetail,
            "description": "The operator token (OPS_TOKEN or OPS_TOKEN_FILE) is missing or wrong.",
        },
        429: {"model": ErrorDetail, "description": "Too many failed token attempts from this address."},
    },
)


@router.get(
    "/queues/status",
    name="queues_status",
    summary="Queue depths and worker load",
    response_model=QueueStatus,
    responses={503: {"model": ErrorDetail, "description": "The broker (Redis) is unreachable."}},
)
async def queues_status(redis: RedisDep) -> QueueStatus:
    """Waiting messages are counted live; each worker's active/reserved/scheduled tasks are cached."""
    depths = await run_in_threadpool(monitor.queue_depths, redis)
    loads = await run_in_threadpool(monitor.worker_loads.get)
    return QueueStatus(
        queues=[QueueDepth(name=name, waiting=waiting) for name, waiting in depths.items()],
        workers=[WorkerTasks(**load.model_dump()) for load in loads.workers],
        workers_error=loads.error,
        workers_checked_at=datetime.fromtimestamp(loads.checked_at, UTC),
    )
