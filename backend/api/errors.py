"""The OpenAPI document as the exception handlers in backend.main really answer.

FastAPI documents validation errors as its own HTTPValidationError list, but `_validation_error` answers with
an ErrorDetail sentence, and every route that reads Redis may answer 503 (`_queue_unavailable`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ERROR_DETAIL = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}}
UNAVAILABLE = {"description": "The job store (Redis) is unreachable.", "content": ERROR_DETAIL}


def _document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation["responses"]
            if "422" in responses:
                responses["422"]["content"] = ERROR_DETAIL
            responses.setdefault("503", UNAVAILABLE)
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema


def install(app: FastAPI) -> None:
    """Wrap app.openapi so the document it serves describes our error bodies (the edit is idempotent)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return _document_errors(generate())

    app.openapi = openapi  # type: ignore[method-assign]
