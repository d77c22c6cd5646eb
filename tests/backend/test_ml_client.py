"""Retry policy of the ML client, against an in-memory transport standing in for the remote service."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from backend.worker import ml_client
from backend.worker.ml_client import MLClient, MLServiceError, Segmentation
from ml.outputs import bundle, bundle_batch

Reply = httpx.Response | Exception
BUNDLE = bundle(b"PNG", b"OVERLAY")  # what /segment?overlay=true answers: mask and overlay in one zip


def serve(replies: list[Reply], *, backoff: float = 0.001) -> tuple[MLClient, list[httpx.Request]]:
    """A client of a service that answers with `replies` in order (3 retries); and the requests it gets."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    client = MLClient(
        "http://ml", timeout=5.0, retries=3, backoff=backoff, transport=httpx.MockTransport(handler)
    )
    return client, seen


def test_success_parses_headers_and_sends_multipart() -> None:
    ml, seen = serve(
        [
            httpx.Response(
                200,
                content=BUNDLE,
                headers={"X-Oil-Fraction": "0.25", "X-Oil-Pixels": "16", "X-Model-Version": "m-3"},
            )
        ]
    )
    result = ml.segment(b"image-bytes", "x.tif")
    assert (result.mask_png, result.overlay_png) == (b"PNG", b"OVERLAY")
    assert (result.oil_fraction, result.oil_pixels, result.model_version) == (0.25, 16, "m-3")
    (request,) = seen
    assert (request.url.path, request.url.params["overlay"]) == ("/segment", "true")
    assert request.headers["content-type"].startswith("multipart/form-data")
    body = request.read()
    assert b'name="file"; filename="x.tif"' in body and b"image-bytes" in body


def test_transient_failures_are_retried() -> None:
    ml, seen = serve(
        [
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.Response(503, json={"detail": "model not loaded"}),
            httpx.Response(200, content=BUNDLE, headers={"X-Oil-Fraction": "0"}),
        ]
    )
    assert ml.segment(b"x", "x.png").mask_png == b"PNG"
    assert len(seen) == 4


def test_gives_up_after_the_retries() -> None:
    ml, seen = serve([httpx.Response(500, text="boom") for _ in range(4)])
    with pytest.raises(MLServiceError, match=r"error 500: boom \(gave up after 4 attempts\)"):
        ml.segment(b"x", "x.png")
    assert len(seen) == 4


def test_client_errors_are_not_retried() -> None:
    ml, seen = serve([httpx.Response(413, json={"detail": "image has too many pixels"})])
    with pytest.raises(MLServiceError, match="rejected the image: image has too many pixels") as err:
        ml.segment(b"x", "x.png")
    assert err.value.status_code == 413
    assert len(seen) == 1


def test_a_new_process_gets_its_own_client(monkeypatch: pytest.MonkeyPatch) -> None:
    ml = MLClient("http://127.0.0.1:9", timeout=1.0, retries=0, backoff=0.0)
    first = ml.http
    assert ml.http is first
    monkeypatch.setattr(ml, "_client_pid", -1)  # as seen from a forked pool child
    assert ml.http is not first


def test_after_giving_up_later_calls_fail_fast_until_the_service_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replies: list[Reply] = [httpx.ConnectError("refused")] * 5 + [ok_reply()] * 2
    ml, seen = serve(replies, backoff=10.0)  # window 70 s; the breaker must skip it
    monkeypatch.setattr(ml_client.time, "sleep", lambda _: None)
    with pytest.raises(MLServiceError, match=r"gave up after 4 attempts"):
        ml.segment(b"x", "x.png")
    with pytest.raises(MLServiceError, match=r"1 attempt: the service was already failing"):
        ml.segment(b"x", "x.png")
    assert len(seen) == 5
    assert ml.segment(b"x", "x.png").mask_png == b"PNG"  # one attempt, and it worked: breaker reset
    assert ml.segment(b"x", "x.png").mask_png == b"PNG"
    assert not ml.service_down() and len(seen) == 7


def test_breaker_rearms_full_retries_after_a_quiet_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ml, seen = serve([httpx.ConnectError("refused")] * 4 + [httpx.ConnectError("refused"), ok_reply()])
    with pytest.raises(MLServiceError, match=r"gave up after 4 attempts"):
        ml.segment(b"x", "x.png")
    # Last failure longer ago than the retry window: the service may be restarting, wait for it again.
    monkeypatch.setattr(ml, "_gave_up_at", time.monotonic() - ml.retry_window() - 1)
    assert ml.segment(b"x", "x.png").mask_png == b"PNG"
    assert len(seen) == 6


def test_retry_window_is_the_sum_of_the_backoffs() -> None:
    ml = MLClient("http://ml", timeout=1.0, retries=4, backoff=1.0)
    assert ml.retry_window() == 1 + 2 + 4 + 8


def ok_reply() -> httpx.Response:
    return httpx.Response(200, content=BUNDLE, headers={"X-Oil-Fraction": "0"})


def test_an_answer_that_is_not_the_zip_is_an_error_not_a_retry() -> None:
    ml, seen = serve([httpx.Response(200, content=b"\x89PNG not a zip")])
    with pytest.raises(MLServiceError, match="unreadable answer"):
        ml.segment(b"x", "x.png")
    assert len(seen) == 1


def batch_answer(items: list[dict[str, object]], files: dict[str, bytes]) -> httpx.Response:
    result = {"model_version": "m-4", "images": items}
    return httpx.Response(200, content=bundle_batch(json.dumps(result).encode(), files))


def test_batch_sends_every_file_and_maps_each_outcome() -> None:
    ok = {"status": "ok", "width": 2, "height": 1, "oil_fraction": 0.5, "oil_pixels": 1}
    bad = {"status": "error", "status_code": 400, "detail": "truncated PNG"}
    ml, seen = serve(
        [
            httpx.ConnectError("refused"),  # retried like a single image
            batch_answer(
                [
                    {"index": 0, "filename": "a.png", **ok},
                    {"index": 1, "filename": "b.png", **bad},
                    {"index": 2, "filename": "c.tif", **ok},
                ],
                {"0/mask.png": b"M0", "0/overlay.png": b"O0", "2/mask.png": b"M2", "2/overlay.png": b"O2"},
            ),
        ]
    )
    first, second, third = ml.segment_batch([("a.png", b"A"), ("b.png", b"B"), ("c.tif", b"C")])
    assert isinstance(first, Segmentation) and isinstance(third, Segmentation)
    assert (first.mask_png, first.overlay_png, first.oil_fraction, first.model_version) == (
        b"M0",
        b"O0",
        0.5,
        "m-4",
    )
    assert first.oil_pixels == 1
    assert (third.mask_png, third.overlay_png) == (b"M2", b"O2")
    assert isinstance(second, MLServiceError) and second.status_code == 400
    assert second.detail == "ML service rejected the image: truncated PNG"
    request = seen[-1]
    assert (request.url.path, request.url.params["overlay"]) == ("/segment/batch", "true")
    body = request.read()
    assert body.count(b'name="files"') == 3 and b'filename="c.tif"' in body


def test_batch_answer_for_other_images_is_an_error() -> None:
    ml, _ = serve([batch_answer([{"index": 0, "filename": "a.png", "status": "error", "detail": "x"}], {})])
    with pytest.raises(MLServiceError, match=r"unreadable answer.*1 results for 2 images"):
        ml.segment_batch([("a.png", b"A"), ("b.png", b"B")])


def test_batch_refused_as_a_whole_raises_with_its_status() -> None:
    ml, _ = serve([httpx.Response(413, json={"detail": "70 files in one batch, over the limit of 64"})])
    with pytest.raises(MLServiceError, match="over the limit") as err:
        ml.segment_batch([("a.png", b"A")])
    assert err.value.status_code == 413


def test_batch_asks_for_geo_and_carries_each_images_slicks_and_cog() -> None:
    geo = {"georeferenced": True, "crs": "EPSG:4326", "georeferencing": "gcps", "slicks": 1, "oil_km2": 0.3}
    plain = {"georeferenced": False, "reason": "not a GeoTIFF", "slicks": 0}
    ok = {"status": "ok", "width": 2, "height": 1, "oil_fraction": 0.5, "oil_pixels": 1}
    ml, seen = serve(
        [
            batch_answer(
                [
                    {"index": 0, "filename": "a.tif", **ok, "geo": geo},
                    {"index": 1, "filename": "b.png", **ok, "geo": plain},
                ],
                {
                    "0/mask.png": b"M0",
                    "0/overlay.png": b"O0",
                    "0/slicks.geojson": b'{"type":"FeatureCollection"}',
                    "0/mask.tif": b"II*\x00",
                    "1/mask.png": b"M1",
                    "1/overlay.png": b"O1",
                    "1/slicks.geojson": b"{}",
                },
            )
        ]
    )
    first, second = ml.segment_batch([("a.tif", b"A"), ("b.png", b"B")])
    assert isinstance(first, Segmentation) and isinstance(second, Segmentation)
    assert first.geo is not None and (first.geo.crs, first.geo.georeferencing, first.geo.oil_km2) == (
        "EPSG:4326",
        "gcps",
        0.3,
    )
    assert (first.slicks_geojson, first.mask_tif) == (b'{"type":"FeatureCollection"}', b"II*\x00")
    assert second.geo is not None and second.geo.reason == "not a GeoTIFF"
    assert (second.slicks_geojson, second.mask_tif) == (b"{}", None)
    assert seen[0].url.params["geo"] == "true"


def test_an_answer_without_geo_leaves_the_geo_fields_empty() -> None:
    """An ML service from before slicks (no geo, no entries): the images still segment."""
    ok = {"status": "ok", "width": 2, "height": 1, "oil_fraction": 0.5, "oil_pixels": 1}
    ml, _ = serve(
        [batch_answer([{"index": 0, "filename": "a.png", **ok}], {"0/mask.png": b"M", "0/overlay.png": b"O"})]
    )
    (only,) = ml.segment_batch([("a.png", b"A")])
    assert isinstance(only, Segmentation)
    assert (only.geo, only.slicks_geojson, only.mask_tif) == (None, None, None)
