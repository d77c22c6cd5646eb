"""Area jobs' records and their first stages on the session's real redis-server: created with no images,
progress and reasons read back, left alone by the sweeper until their images are known, closed as failed
by the search's failures and by the deadline."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import NoReturn

import pytest
from stack_harness import free_port

from backend.core.config import Settings
from backend.jobs.areas import AreaRecords
from backend.jobs.models import JobState
from backend.sources.config import SourceConfig
from backend.sources.request import AreaJobRequest
from backend.sources.search import Scene
from backend.storage.layout import new_token
from backend.worker import area, expiry, finalize
from backend.worker.context import WorkerContext

REQUEST = AreaJobRequest.model_validate(
    {"bboxes": [[51.52, 26.93, 51.55, 26.96]], "date": "2026-06-01", "data_source": "down"}
)


def new_area_job(ctx: WorkerContext) -> tuple[str, str]:
    job_id, user_hash = new_token(), new_token()
    AreaRecords(ctx.store).create(job_id, user_hash, REQUEST)
    return job_id, user_hash


def test_created_without_images_and_progress_read_back(ctx: WorkerContext) -> None:
    job_id, user_hash = new_area_job(ctx)
    job = ctx.store.get_job(job_id)
    assert job is not None and (job.kind, job.state, job.total, job.user_hash) == (
        "area",
        "queued",
        0,
        user_hash,
    )
    records = AreaRecords(ctx.store)
    assert records.request(job_id) == REQUEST
    progress = records.progress(job_id)
    assert progress is not None and (progress.data_source, progress.scenes_found, progress.reason) == (
        "down",
        None,
        None,
    )
    records.update(job_id, scenes_found=3, scenes_fetched=1, bytes_read=None)
    progress = records.progress(job_id)
    assert progress is not None and (progress.scenes_found, progress.scenes_fetched, progress.bytes_read) == (
        3,
        1,
        None,
    )


def test_the_sweeper_leaves_an_area_job_alone_until_its_images_are_known(ctx: WorkerContext) -> None:
    job_id, _ = new_area_job(ctx)
    for state in (JobState.QUEUED, JobState.SEARCHING, JobState.FETCHING):
        ctx.store.transition(job_id, state, [JobState.QUEUED, JobState.SEARCHING])
        assert job_id not in expiry._stalled_jobs(ctx, set()), state


def test_the_deadline_closes_an_area_job_stuck_in_fetching(ctx: WorkerContext) -> None:
    job_id, _ = new_area_job(ctx)
    ctx.store.transition(job_id, JobState.FETCHING, [JobState.QUEUED])
    assert finalize.finalize(ctx, job_id, force=True) is not None
    assert ctx.store.get_job(job_id).state == JobState.FAILED  # type: ignore[union-attr]


def test_a_catalogue_that_does_not_answer_fails_the_job_with_the_reason(ctx: WorkerContext) -> None:
    down = SourceConfig(stac_url=f"http://127.0.0.1:{free_port()}/", collection="sentinel-1-grd")  # type: ignore[arg-type]
    settings = Settings(AREA_SOURCES={"down": down}, STAC_RETRIES=1, STAC_RETRY_BACKOFF_SECONDS=0)
    job_id, _ = new_area_job(ctx)
    outcome = area.run(ctx, job_id, settings)
    assert outcome.sizes is None and outcome.expires_at is not None and outcome.expires_at > time.time()
    job, progress = ctx.store.get_job(job_id), AreaRecords(ctx.store).progress(job_id)
    assert job is not None and job.state == JobState.FAILED
    assert progress is not None and progress.reason is not None
    assert (
        progress.reason.startswith("search failed: STAC API http://127.0.0.1:")
        and "after 2 attempts" in progress.reason
    )
    assert area.run(ctx, job_id, settings).expires_at is None  # a redelivery of a closed job does nothing


def test_a_source_no_longer_configured_fails_the_job(ctx: WorkerContext) -> None:
    job_id, _ = new_area_job(ctx)
    area.run(ctx, job_id, Settings(AREA_SOURCES={}))
    progress = AreaRecords(ctx.store).progress(job_id)
    assert progress is not None and progress.reason == "the source 'down' is no longer configured"


def test_window_names_are_safe_folders() -> None:
    assert area.window_name("S1A_IW_GRDH_1SDV_2026", 0) == "S1A_IW_GRDH_1SDV_2026/bbox1.tif"
    assert area.window_name("../../etc/passwd", 1) == "etc_passwd/bbox2.tif"
    assert area.window_name("..", 2) == "scene/bbox3.tif"


def test_a_scene_that_breaks_the_reader_fails_alone_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(url: str, *_: object, **__: object) -> NoReturn:
        raise RuntimeError(f"unexpected {url}")

    monkeypatch.setattr(area, "read_windows", broken)
    scene = Scene(
        item_id="S1A_X",
        datetime="2026-06-01T00:00:00Z",
        footprint={"type": "Polygon", "coordinates": []},
        href="https://host/a.tif?sig=secret",
        bboxes=[0],
    )
    plain = SourceConfig(stac_url="https://host/", collection="c")  # type: ignore[arg-type]
    with zipfile.ZipFile(tmp_path / "w.zip", "w") as zf:
        report = area._read_scene(scene, plain, REQUEST, 10**6, {}, zf)
    assert report.status == "failed" and report.windows[0].status == "failed"
    assert report.error == "cannot read the scene: RuntimeError: unexpected https://host/a.tif"
