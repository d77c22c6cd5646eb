"""A minimal Starlette app around receive_upload, for the streaming tests (in-process and under uvicorn)."""

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from backend.upload.errors import UploadError
from backend.upload.stream import receive_upload, upload_error_response


def create_app(dest_dir: Path, max_bytes: int, field: str = "file") -> Starlette:
    """POST /upload streams `field` to dest_dir/upload.bin; GET /ping shows the app still serves."""

    async def upload(request: Request) -> JSONResponse:
        dest = dest_dir / "upload.bin"
        try:
            size = await receive_upload(request, dest, max_bytes=max_bytes, field=field)
        except UploadError as error:
            dest.unlink(missing_ok=True)
            return upload_error_response(error)
        return JSONResponse({"size": size})

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/upload", upload, methods=["POST"]), Route("/ping", ping)])


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory`: UPLOAD_TEST_DIR and UPLOAD_TEST_MAX_BYTES configure it."""
    return create_app(Path(os.environ["UPLOAD_TEST_DIR"]), int(os.environ["UPLOAD_TEST_MAX_BYTES"]))
