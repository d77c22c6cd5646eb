"""Client of the ML service's POST /segment, /segment/batch, /segment/scene and /land/sea-fraction: one
MLClient per worker process, on one pooled httpx.Client (on urllib3: backend.worker.ml_transport), with
retries and backoff.

Connection errors, timeouts and 5xx are retried (the service may be restarting or overloaded); a 4xx is
final (the image itself is the problem), so it is raised at once with the service's own explanation.

The retries span retry_window() seconds: an ML service restarting within it costs no image. Once a call has
given up, later calls of this client try once only while the failures go on (a circuit breaker): a service
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
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from backend.core.config import Settings
from backend.worker.ml_transport import Urllib3Transport
from common import stored_zip
from common.wire import (
    MASK_ENTRY,
    MODEL_VERSION_HEADER,
    OIL_FRACTION_HEADER,
    OIL_PIXELS_HEADER,
    OVERLAY_ENTRY,
    RESULTS_ENTRY,
    BatchResult,
    ErrorDetail,
    GeoInfo,
    SceneRequest,
    SeaFractionRequest,
    SeaFractionResponse,
    geo_mask_entry,
    mask_entry,
    overlay_entry,
    slicks_entry,
)

log = logging.getLogger("backend.ml_client")  # the module's name before it moved, for log filters


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
    scale: str | None = None  # how the service read the numbers (grey, amplitude, power, db)
    valid_fraction: float | None = None  # share of pixels holding data (the rest was nodata)
    geo: GeoInfo | None = None  # where the image lies, its slick counts (batch answers with geo=true)
    slicks_geojson: bytes | None = None  # its slicks, a GeoJSON FeatureCollection (named as sent)
    mask_tif: bytes | None = None  # COG mask with the input's georeference; georeferenced images only
    width: int | None = None  # of the mask (a scene's: at its processing resolution)
    height: int | None = None
    decimation: int | None = None  # input pixels per mask pixel along each axis (scenes)


class MLClient:
    """The ML service at `base_url`: `retries` more attempts after the first, backoff doubling from `backoff`.

    The HTTP client is created on first use and again in a forked process (no socket is shared across the
    worker's prefork), unless `transport` is given (tests: httpx.MockTransport).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._transport = transport
        self._client: httpx.Client | None = None
        self._client_pid: int | None = None
        self._gave_up_at: float | None = None  # monotonic time of the last failure of a call that gave up

    @classmethod
    def from_settings(cls, settings: Settings) -> MLClient:
        return cls(
            settings.ML_SERVICE_URL,
            timeout=settings.ML_TIMEOUT_SECONDS,
            retries=settings.ML_RETRIES,
            backoff=settings.ML_RETRY_BACKOFF_SECONDS,
        )

    @property
    def http(self) -> httpx.Client:
        """The process's HTTP client, created on first use (after the prefork)."""
        if self._client is None or self._client_pid != os.getpid():
            transport = self._transport or Urllib3Transport(
                self.base_url, timeout=self.timeout, connect_timeout=10.0, connections=2
            )
            self._client = httpx.Client(base_url=self.base_url, transport=transport)
            self._client_pid = os.getpid()
        return self._client

    def retry_window(self) -> float:
        """Seconds the retries of one image span (backoff doubling from `backoff`, +-20 %)."""
        return self.backoff * ((1 << self.retries) - 1)

    def service_down(self) -> bool:
        """Whether an earlier call gave up less than a retry window ago (no success since)."""
        return self._gave_up_at is not None and time.monotonic() - self._gave_up_at < self.retry_window()

    def segment(self, data: bytes, filename: str) -> Segmentation:
        """Segment one encoded image; raises MLServiceError once retries are spent or on a 4xx."""
        response = self._call(lambda: self._post(data, filename), filename)
        mask_png, overlay_png = _unbundle(response.content)
        return Segmentation(
            mask_png=mask_png,
            overlay_png=overlay_png,
            oil_fraction=float(response.headers.get(OIL_FRACTION_HEADER, "nan")),
            model_version=response.headers.get(MODEL_VERSION_HEADER),
            oil_pixels=_int_or_none(response.headers.get(OIL_PIXELS_HEADER)),
        )

    def segment_batch(self, images: Sequence[tuple[str, bytes]]) -> list[Segmentation | MLServiceError]:
        """Segment several encoded images in one POST /segment/batch: one outcome per image, in order.

        It asks for geo=true: each Segmentation also carries the image's `geo`, its slicks GeoJSON and,
        when georeferenced, its COG mask (what the single-image POST /segment cannot give).

        An image the service could not decode gets its own MLServiceError; the whole call raises
        MLServiceError only when the request failed as a whole (retries spent, or a 4xx such as a batch over
        the service's limits, which the caller can answer by sending the images one by one).
        """
        label = f"batch of {len(images)} ({images[0][0]}, ...)" if images else "empty batch"
        response = self._call(lambda: self._post_batch(images), label)
        return _batch_outcomes(response.content, len(images))

    def segment_scene(self, path: str, filename: str) -> Segmentation:
        """Segment a scene file the service reads in place (`path` relative to the shared results folder):
        POST /segment/scene, whose answer is a batch answer of one image; MLServiceError as segment_batch."""
        body = SceneRequest(path=path, filename=filename).model_dump()
        response = self._call(lambda: self.http.post("/segment/scene", json=body), filename)
        (outcome,) = _batch_outcomes(response.content, 1)
        if isinstance(outcome, MLServiceError):
            raise outcome
        return outcome

    def sea_fractions(self, areas: Sequence[dict[str, Any]], samples: int) -> list[float]:
        """Share at sea of each GeoJSON polygon (lon/lat) by the service's land mask, in order: POST
        /land/sea-fraction; MLServiceError as the other calls (an area search keeps its scenes: fail open)."""
        body = SeaFractionRequest.model_validate({"areas": areas, "samples": samples}).model_dump()
        label = f"sea check of {len(areas)} windows"
        response = self._call(lambda: self.http.post("/land/sea-fraction", json=body), label, "the areas")
        try:
            answer = SeaFractionResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise MLServiceError(f"ML service returned an unreadable answer ({exc})") from exc
        if len(answer.fractions) != len(areas):
            raise MLServiceError(f"{len(answer.fractions)} sea fractions for {len(areas)} areas")
        return answer.fractions

    def _post(self, data: bytes, filename: str) -> httpx.Response:
        """POST /segment?overlay=true: the service renders the overlay too; the worker decodes no image."""
        files = {"file": (filename, data, _content_type(filename))}
        return self.http.post("/segment", params={"overlay": "true"}, files=files)

    def _post_batch(self, images: Sequence[tuple[str, bytes]]) -> httpx.Response:
        files = [("files", (name, data, _content_type(name))) for name, data in images]
        params = {"overlay": "true", "geo": "true"}
        return self.http.post("/segment/batch", params=params, files=files)

    def _call(
        self, send: Callable[[], httpx.Response], label: str, subject: str = "the image"
    ) -> httpx.Response:
        """The 200 answer of `send()`, retried on transport errors and 5xx; MLServiceError otherwise."""
        down = self.service_down()
        attempts = 1 if down else self.retries + 1
        problem = ""
        for attempt in range(attempts):
            try:
                response = send()
            except httpx.TransportError as exc:
                problem = f"ML service unreachable ({type(exc).__name__}: {exc})"
            else:
                if response.status_code < 500:
                    self._gave_up_at = None  # it answered: the service is up
                if response.status_code == 200:
                    return response
                detail = _error_detail(response)
                if response.status_code < 500:
                    raise MLServiceError(
                        f"ML service rejected {subject}: {detail}", status_code=response.status_code
                    )
                problem = f"ML service error {response.status_code}: {detail}"
            if attempt + 1 < attempts:
                delay = self.backoff * 2**attempt * random.uniform(0.8, 1.2)
                log.warning(
                    "segment %s: %s; retry %d/%d in %.1fs", label, problem, attempt + 1, attempts - 1, delay
                )
                time.sleep(delay)
        self._gave_up_at = time.monotonic()
        if down:
            raise MLServiceError(f"{problem} (1 attempt: the service was already failing for earlier images)")
        raise MLServiceError(f"{problem} (gave up after {attempts} attempts)")


def _batch_outcomes(content: bytes, count: int) -> list[Segmentation | MLServiceError]:
    """One outcome per image of a batch answer (a stored zip); MLServiceError if it is unreadable."""
    try:
        files = stored_zip.read(content)
        result = BatchResult.model_validate_json(files[RESULTS_ENTRY])
        if [item.index for item in result.images] != list(range(count)):
            raise ValueError(f"{len(result.images)} results for {count} images")
        outcomes: list[Segmentation | MLServiceError] = []
        for item in result.images:
            if item.status != "ok":
                detail = f"ML service rejected the image: {item.detail}"
                outcomes.append(MLServiceError(detail, status_code=item.status_code))
                continue
            outcomes.append(
                Segmentation(
                    mask_png=files[mask_entry(item.index)],
                    overlay_png=files[overlay_entry(item.index)],
                    oil_fraction=item.oil_fraction if item.oil_fraction is not None else float("nan"),
                    model_version=result.model_version,
                    oil_pixels=item.oil_pixels,
                    scale=item.scale,
                    valid_fraction=item.valid_fraction,
                    geo=item.geo,
                    slicks_geojson=files.get(slicks_entry(item.index)),
                    mask_tif=files.get(geo_mask_entry(item.index)),
                    width=item.width,
                    height=item.height,
                    decimation=item.decimation,
                )
            )
        return outcomes
    except (
        zipfile.BadZipFile,
        KeyError,
        ValueError,
    ) as exc:  # pydantic's ValidationError is a ValueError
        raise MLServiceError(f"ML service returned an unreadable answer ({exc})") from exc


def _error_detail(response: httpx.Response) -> str:
    try:
        return ErrorDetail.model_validate_json(response.content).detail
    except ValidationError:
        return response.text[:200] or response.reason_phrase


def _content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _unbundle(body: bytes) -> tuple[bytes, bytes]:
    """(mask PNG, overlay PNG) from the service's zip; MLServiceError if the answer is not that zip."""
    try:
        files = stored_zip.read(body)
        return files[MASK_ENTRY], files[OVERLAY_ENTRY]
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise MLServiceError(f"ML service returned an unreadable answer ({exc})") from exc


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
