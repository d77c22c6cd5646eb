"""GET /metrics: Prometheus text format of the counters every process keeps in Redis (backend.ops.metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from backend.api.deps import MetricsDep, RedisDep
from backend.api.schemas import ErrorDetail
from backend.ops import monitor

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    name="metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_PLAIN_0_0_4: {}},
            "description": "Prometheus text format (OpenMetrics if the Accept header asks for it).",
        },
        503: {"model": ErrorDetail, "description": "Redis, where the counters live, is unreachable."},
    },
)
def prometheus_metrics(request: Request, redis: RedisDep, metrics: MetricsDep) -> Response:
    """Uploads, jobs, images, segmentation latency, archive bytes, deletions, active jobs, queue depth."""
    body, content_type = metrics.render(monitor.queue_depths(redis), request.headers.get("accept", ""))
    return Response(body, headers={"Content-Type": content_type})
