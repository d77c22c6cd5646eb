"""Progress per ML request: a chord member records its images' outcomes after each request, in one Redis
transaction each, so `done` moves while the member runs instead of jumping at its end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from test_segment import start

from backend.worker import segment
from backend.worker.context import WorkerContext
from backend.worker.ml_client import MLServiceError


def test_a_member_records_each_request_as_it_is_done_in_one_transaction_each(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"{i}.png" for i in range(5)]
    job_id, _ = start(ctx, {name: encode(make_sar(20, 30), "PNG") for name in names})
    monkeypatch.setattr(segment, "PROGRESS_PIXELS", 2 * 20 * 30)  # two images a request
    seen_before: list[int] = []  # images recorded when each request goes out

    def segment_batch(images: list[tuple[str, bytes]]) -> list[object]:
        job = ctx.store.get_job(job_id)
        assert job is not None
        seen_before.append(job.done + job.failed)
        return [MLServiceError("down (test)")] * len(images)

    transactions: list[list[str]] = []
    record = ctx.store.images.record_results

    def counted(job: str, results: list[Any], **kwargs: Any) -> None:
        transactions.append([res.name for res in results])
        record(job, results, **kwargs)

    monkeypatch.setattr(ctx.ml, "segment_batch", segment_batch)
    monkeypatch.setattr(ctx.store.images, "record_results", counted)
    out = segment.process_images(ctx, job_id, names)
    assert seen_before == [0, 2, 4]
    assert transactions == [["0.png", "1.png"], ["2.png", "3.png"], ["4.png"]]  # each image once
    assert [o["status"] for o in out] == ["failed"] * 5
    job = ctx.store.get_job(job_id)
    assert job is not None and job.failed == 5


def test_small_images_still_go_in_one_request(
    ctx: WorkerContext,
    make_sar: Callable[..., np.ndarray],
    encode: Callable[[np.ndarray, str], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tiles of 256 x 256: a member of 32 is far below PROGRESS_PIXELS, so throughput is as before."""
    names = [f"{i}.png" for i in range(32)]
    job_id, _ = start(ctx, {name: encode(make_sar(256, 256), "PNG") for name in names})
    requests: list[int] = []

    def segment_batch(images: list[tuple[str, bytes]]) -> list[object]:
        requests.append(len(images))
        return [MLServiceError("down (test)")] * len(images)

    monkeypatch.setattr(ctx.ml, "segment_batch", segment_batch)
    segment.process_images(ctx, job_id, names)
    assert requests == [32]
