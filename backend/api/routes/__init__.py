"""The routes, one module per resource; `api_router` gathers them under /api (GET /metrics: at the root)."""

from fastapi import APIRouter

from backend.api.routes import (
    account,
    area_jobs,
    download,
    health,
    map,
    queues,
    results,
    status,
    tasks,
    upload,
)
from backend.auth.identify import UNAUTHORIZED

api_router = APIRouter(prefix="/api")
api_router.include_router(upload.router, responses=UNAUTHORIZED)
api_router.include_router(area_jobs.router, responses=UNAUTHORIZED)
api_router.include_router(status.router, responses=UNAUTHORIZED)
api_router.include_router(account.router, responses=UNAUTHORIZED)
api_router.include_router(download.router, responses=UNAUTHORIZED)
api_router.include_router(results.router, responses=UNAUTHORIZED)
api_router.include_router(map.router)
api_router.include_router(tasks.router)
api_router.include_router(health.router)
api_router.include_router(queues.router)
