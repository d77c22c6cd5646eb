"""The /api router: every route module included once."""

from fastapi import APIRouter

from backend.api.routes import download, status, upload

api_router = APIRouter(prefix="/api")
api_router.include_router(upload.router)
api_router.include_router(status.router)
api_router.include_router(download.router)
