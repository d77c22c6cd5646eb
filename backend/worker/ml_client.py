"""Client of the ML service's POST /segment and /segment/batch: one pooled httpx.Client per worker process
(on urllib3: backend.ml_transport), retries with backoff.

Connection errors, timeouts and 5xx are retried (the service may be restarting or overloaded); a 4xx is
final (the image itself is the problem), so it is raised at once with the service's own explanation.

The retries span retry_window() seconds: an ML service restarting within it costs no image. Once a call has
given up, later calls of this process try once only while the failures go on (a circuit breaker): a service
dead for good then fails the rest of a job in seconds, not one retry window per image. A success, or a spell
of one retry window without a failure, restores the full retries.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import random
import time
import zipfile
from collections.abc import Callable, Sequence

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from backend.core.config import settings
from backend.ml_transport import Urllib3Transport
from backend.schemas import ErrorDetail
from ml import stored_zip
from ml.service.schemas import BatchResult

log = logging.getLogger(__name__)

_client: httpx.Client | None = None
_client_pid: int | None = None
_gave_up_at: float | None = None  # monotonic time of the last failure of a call that gave up


class MLServiceError(Exception):
    """The image could not be segmented; `detail` says why in words a user understands."""

    def __init__(self, detail: str, *, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code


class Segmentation(BaseModel):
    model_config = ConfigDict(frozen=True)

    mask_png: bytes
    overlay_png: bytes
    oil_fraction: float
    model_version: str | None
    oil_pixels: int | None = None  # the service's count; None if it did not send one


def get_client() -> httpx.Client:
    """The process's client, created on first use (after the prefork, so no socket is shared across forks)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        transport = Urllib3Transport(
            settings.ML_SERVICE_URL, timeout=settings.ML_TIMEOUT_SECONDS, connect_timeout=10.0, connections=2
        )
        _client = httpx.Client(base_url=settings.ML_SERVICE_URL, transport=transport)
        _client_pid = os.getpid()
    return _client


def _error_detail(response: httpx.Response) -> str:
    try:
        return ErrorDetail.model_validate_json(response.content).detail
    except ValidationError:
        return response.text[:200] or response.reason_phrase


def _post(data: bytes, filename: str) -> httpx.Response:
    """POST /segment?overlay=true: the service renders the overlay too; the worker never decodes the image."""
    files = {"file": (filename, data, _content_type(filename))}
    return get_client().post("/segment", params={"overlay": "true"}, files=files)


def _post_batch(images: Sequence[tuple[str, bytes]]) -> httpx.Response:
    files = [("files", (name, data, _content_type(name))) for name, data in images]
    return get_client().post("/segment/batch", params={"overlay": "true"}, files=files)


def _content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _unbundle(body: bytes) -> tuple[bytes, bytes]:
    """(mask PNG, overlay PNG) from the service's zip; MLServiceError if the answer is not that zip."""
    try:
        files = stored_zip.read(body)
        return files["mask.png"], files["overlay.png"]
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise MLServiceError(f"ML service returned an unreadable answer ({exc})") from exc


def retry_window() -> float:
    """Seconds the retries of one image span (backoff doubling from ML_RETRY_BACKOFF_SECONDS, +-20 %)."""
    return settings.ML_RETRY_BACKOFF_SECONDS * (2**settings.ML_RETRIES - 1)


def _service_down() -> bool:
    """Whether an earlier call gave up less than a retry window ago (no success since)."""
    return _gave_up_at is not None and time.monotonic() - _gave_up_at < retry_window()


def segment(data: bytes, filename: str) -> Segmentation:
    """Segment one encoded image; raises MLServiceError once retries are spent or on a 4xx."""
    response = _call(lambda: _post(data, filename), filename)
    mask_png, overlay_png = _unbundle(response.content)
    return Segmentation(
        mask_png=mask_png,
        overlay_png=overlay_png,
        oil_fraction=float(response.headers.get("X-Oil-Fraction", "nan")),
        model_version=response.headers.get("X-Model-Version"),
        oil_pixels=_int_or_none(response.headers.get("X-Oil-Pixels")),
    )


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def segment_batch(images: Sequence[tuple[str, bytes]]) -> list[Segmentation | MLServiceError]:
    """Segment several encoded images in one POST /segment/batch: one outcome per image, in order.

    An image the service could not decode gets its own MLServiceError; the whole call raises MLServiceError
    only when the request failed as a whole (retries spent, or a 4xx such as a batch over the service's
    limits, which the caller can answer by sending the images one by one).
    """
    label = f"batch of {len(images)} ({images[0][0]}, ...)" if images else "empty batch"
    response = _call(lambda: _post_batch(images), label)
    try:
        files = stored_zip.read(response.content)
        result = BatchResult.model_validate_json(files["results.json"])
        if [item.index for item in result.images] != list(range(len(images))):
            raise ValueError(f"{len(result.images)} results for {len(images)} images")
        outcomes: list[Segmentation | MLServiceError] = []
        for item in result.images:
            if item.status != "ok":
                detail = f"ML service rejected the image: {item.detail}"
                outcomes.append(MLServiceError(detail, status_code=item.status_code))
                continue
            outcomes.append(
                Segmentation(
                    mask_png=files[f"{item.index}/mask.png"],
                    overlay_png=files[f"{item.index}/overlay.png"],
                    oil_fraction=item.oil_fraction if item.oil_fraction is not None else float("nan"),
                    model_version=result.model_version,
                    oil_pixels=item.oil_pixels,
                )
            )
        return outcomes
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise MLServiceError(f"ML service returned an unreadable answer ({exc})") from exc


def _call(send: Callable[[], httpx.Response], label: str) -> httpx.Response:
    """The 200 answer of `send()`, retried on transport errors and 5xx; MLServiceError otherwise."""
    global _gave_up_at
    down = _service_down()
    attempts = 1 if down else settings.ML_RETRIES + 1
    problem = ""
    for attempt in range(attempts):
        try:
            response = send()
        except httpx.TransportError as exc:
            problem = f"ML service unreachable ({type(exc).__name__}: {exc})"
        else:
            if response.status_code < 500:
                _gave_up_at = None  # it answered: the service is up
            if response.status_code == 200:
                return response
            detail = _error_detail(response)
            if response.status_code < 500:
                raise MLServiceError(
                    f"ML service rejected the image: {detail}", status_code=response.status_code
                )
            problem = f"ML service error {response.status_code}: {detail}"
        if attempt + 1 < attempts:
            delay = settings.ML_RETRY_BACKOFF_SECONDS * 2**attempt * random.uniform(0.8, 1.2)
            log.warning(
                "segment %s: %s; retry %d/%d in %.1fs", label, problem, attempt + 1, attempts - 1, delay
            )
            time.sleep(delay)
    _gave_up_at = time.monotonic()
    if down:
        raise MLServiceError(f"{problem} (1 attempt: the service was already failing for earlier images)")
    raise MLServiceError(f"{problem} (gave up after {attempts} attempts)")
