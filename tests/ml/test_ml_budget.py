"""Work limits (ml.budget), skipped constant tiles and cancelled segmentations (ml.cancel).

The service-level test starts a real uvicorn server: only a real client that goes away shows that the
service stops working for it.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image

from ml.budget import check_jpeg_scans, check_work
from ml.cancel import Cancelled, cancellable
from ml.image_errors import ImageError
from ml.imaging import decode
from ml.inference import sliding_window_many
from ml.service.config import Settings
from ml.service.main import create_app


def png(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_strip_costs_its_tiles_not_its_pixels() -> None:
    strip = png(np.zeros((1, 1_000_000), np.uint8))
    assert len(strip) < 5000  # a megapixel in a few kilobytes
    with pytest.raises(ImageError) as info:
        decode(strip)
    assert info.value.status_code == 413 and "strip" in info.value.detail
    check_work(300, 7, 400_000_000)  # small strips (a few tiles) stay allowed
    check_work(25_000, 16_700, 500_000_000)  # a whole Sentinel-1 scene is fine


def test_the_pixel_budget_counts_padding() -> None:
    with pytest.raises(ImageError, match="padded"):
        check_work(1000, 200, 200_000)  # 200,000 pixels, but 256,000 after padding to 256 rows
    check_work(30, 37, 10)  # anything within one tile is one model run


def test_jpegs_with_too_many_scans_are_refused_before_decoding() -> None:
    with pytest.raises(ImageError) as info:
        decode(b"\xff\xd8" + b"\xff\xda\x00\x08" * 30_000)
    assert info.value.status_code == 413 and "30000 scans" in info.value.detail
    check_jpeg_scans(b"\x89PNG" + b"\xff\xda" * 500)  # only JPEGs are counted


def counting_identity(calls: list[int]) -> Callable[[np.ndarray], np.ndarray]:
    def predict(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return batch

    return predict


def test_constant_tiles_are_skipped_and_count_as_no_oil() -> None:
    blank = np.full((600, 600), 128, np.uint8)
    textured = blank.copy()
    textured[:200, :200] = np.random.default_rng(0).integers(0, 255, (200, 200))
    calls: list[int] = []
    out = list(
        sliding_window_many([blank, textured, blank[:5, :5]], counting_identity(calls), skip_constant=True)
    )
    assert [o.shape for o in out] == [(600, 600), (600, 600), (5, 5)]
    assert not out[0].any() and not out[2].any()
    assert 0 < sum(calls) < 9  # of the textured image's 9 tiles only those touching the texture ran
    np.testing.assert_allclose(out[1][:100, :100], textured[:100, :100] / 255, atol=1e-5)


def test_cancelled_runs_are_dropped() -> None:
    futures: list[Future[np.ndarray]] = []

    def submit(batch: np.ndarray) -> Future[np.ndarray]:
        futures.append(Future())
        return futures[-1]

    gone = threading.Event()
    predict = cancellable(submit, gone.is_set)
    predict(np.zeros(1))
    predict(np.zeros(1))
    gone.set()
    with pytest.raises(Cancelled):
        predict(np.zeros(1))
    assert len(futures) == 2 and all(f.cancelled() for f in futures)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings()), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    yield url
    server.should_exit = True
    thread.join(timeout=30)


def test_a_batch_whose_client_gives_up_is_cancelled(served: str) -> None:
    scene = np.random.default_rng(1).integers(0, 255, (3000, 3000), dtype=np.uint8)  # ~200 tiles
    files = [("files", ("big.png", png(scene), "image/png"))]
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{served}/segment/batch", files=files, timeout=httpx.Timeout(30, read=0.5))
    deadline = time.monotonic() + 30
    while httpx.get(f"{served}/health").json()["cancelled"] == 0:
        assert time.monotonic() < deadline, "the abandoned segmentation was not cancelled"
        time.sleep(0.2)
    # The service is free again at once: a small request is answered.
    small = httpx.post(
        f"{served}/segment/batch", files=[("files", ("s.png", png(scene[:256, :256]), "image/png"))]
    )
    assert small.status_code == 200


def test_every_format_has_the_same_pixel_limit() -> None:
    """A JPEG declaring 200 MP is judged by our limit, with our message, not by Pillow's 179 MP default."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (10_000).to_bytes(2, "big") + (20_000).to_bytes(2, "big")
    with pytest.raises(ImageError) as info:
        decode(bytes(data), max_pixels=150_000_000)
    assert info.value.status_code == 413 and "limit of 150000000" in info.value.detail.replace(
        "(limit ", "limit of "
    )
