from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from backend.jobs.keys import PREFIX
from backend.jobs.models import ImageResult, JobState
from backend.jobs.store import JobStore, connect
from backend.storage.layout import new_token, output_names
from scripts import processes

TTL = 3600  # the record TTL of the `store` fixture (conftest.py)


def new_job(store: JobStore, names: tuple[str, ...] = ("a/x.jpg", "b/x.jpg")) -> tuple[str, str]:
    job_id, user_hash = new_token(), new_token()
    entries = {name: f"{i * 100}:10:20:8:{i}:0" for i, name in enumerate(names)}
    store.create_job(job_id, user_hash, output_names(names), entries)
    return job_id, user_hash


def ok(name: str) -> ImageResult:
    return ImageResult(name=name, output=name, status="ok", width=1, height=1, oil_pixels=0, oil_fraction=0.0)


def test_create_and_get(store: JobStore, r: redis.Redis) -> None:
    job_id, user_hash = new_job(store)
    job = store.get_job(job_id)
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
    assert store.job_for_user(user_hash) == job_id
    assert store.images.batch_inputs(job_id, ["b/x.jpg", "nope.png"]) == (  # only names of the job
        {"b/x.jpg": "b/x.png"},
        {"b/x.jpg": "100:10:20:8:1:0"},
    )
    assert store.images.batch_inputs(job_id, []) == ({}, {})
    assert 0 < r.ttl(f"{PREFIX}job:{job_id}:entries") <= TTL
    assert 0 < r.ttl(f"{PREFIX}job:{job_id}") <= TTL
    assert 0 < r.ttl(f"{PREFIX}user:{user_hash}") <= TTL
    assert store.get_job(new_token()) is None


def test_transition_is_compare_and_set(store: JobStore, r: redis.Redis) -> None:
    job_id, _ = new_job(store)
    assert store.mark_started(job_id) is True
    assert store.mark_started(job_id) is False  # only the first task logs "started"
    assert not store.transition(job_id, JobState.COMPLETED, [JobState.ARCHIVING])
    assert store.transition(job_id, JobState.ARCHIVING, [JobState.PROCESSING], note="x")
    assert r.hget(f"{PREFIX}job:{job_id}", "note") == "x"
    assert not store.transition(new_token(), JobState.ARCHIVING, [JobState.QUEUED])


def test_repeated_results_count_once_and_a_retry_can_turn_failed_into_ok(
    store: JobStore, r: redis.Redis
) -> None:
    job_id, user_hash = new_job(store)
    failed = ImageResult(name="a/x.jpg", output="a/x.png", status="failed", error="boom")
    for _ in range(3):
        store.images.record_result(job_id, failed, model_version=None, user_hash=user_hash)
    job = store.get_job(job_id)
    assert job is not None and (job.done, job.failed) == (0, 1)
    assert store.images.errors(job_id) == {"a/x.jpg": "boom"}
    store.images.record_result(job_id, ok("a/x.jpg"), model_version="m-1", user_hash=user_hash)
    store.images.record_result(job_id, ok("a/x.jpg"), model_version=None, user_hash=user_hash)
    job = store.get_job(job_id)
    assert job is not None and (job.done, job.failed, job.model_version) == (1, 0, "m-1")
    assert store.images.errors(job_id) == {}
    assert set(store.images.results(job_id)) == {"a/x.jpg"}
    assert 0 < r.ttl(f"{PREFIX}job:{job_id}:done") <= TTL


def test_errors_read_only_the_failed_records(store: JobStore, r: redis.Redis) -> None:
    """The status endpoint calls errors() on every poll: its cost follows the failures, not the job size."""
    names = tuple(f"img{i}.png" for i in range(50))
    job_id, user_hash = new_job(store, names)
    for name in names[1:]:
        store.images.record_result(job_id, ok(name), model_version=None, user_hash=user_hash)
    failed = ImageResult(name=names[0], output=names[0], status="failed", error="unreadable")
    store.images.record_result(job_id, failed, model_version=None, user_hash=user_hash)
    r.hset(f"{PREFIX}job:{job_id}:results", names[1], "not json: never parsed by errors()")
    assert store.images.errors(job_id) == {names[0]: "unreadable"}


def test_count_delivery(store: JobStore) -> None:
    job_id, _ = new_job(store)
    assert [store.images.count_delivery(job_id, "a/x.jpg") for _ in range(3)] == [1, 2, 3]
    assert store.images.count_delivery(job_id, "b/x.jpg") == 1


def test_finish_indexes_expiry_once(store: JobStore) -> None:
    job_id, user_hash = new_job(store)
    now = time.time()
    assert store.finish(job_id, user_hash, JobState.COMPLETED, now=now) is None
    store.transition(job_id, JobState.ARCHIVING, [JobState.QUEUED])
    expires_at = store.finish(job_id, user_hash, JobState.COMPLETED, now=now)
    assert expires_at == now + 5
    assert store.finish(job_id, user_hash, JobState.COMPLETED, now=now) is None
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.COMPLETED and job.expires_at == expires_at
    assert user_hash not in store.due_for_expiry(now + 4)
    assert user_hash in store.due_for_expiry(now + 5)
    assert job_id not in store.overdue_jobs(now + 3600)
    assert store.mark_expired(job_id, user_hash) is True
    assert store.mark_expired(job_id, user_hash) is False
    assert user_hash not in store.due_for_expiry(now + 5)
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.EXPIRED


def test_failed_job_stays_failed_when_its_files_expire(store: JobStore) -> None:
    job_id, user_hash = new_job(store)
    store.transition(job_id, JobState.ARCHIVING, [JobState.QUEUED])
    store.finish(job_id, user_hash, JobState.FAILED, now=time.time())
    assert store.mark_expired(job_id, user_hash) is False
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.FAILED


def test_overdue_and_postpone(store: JobStore) -> None:
    job_id, _ = new_job(store)
    now = time.time()
    assert job_id not in store.overdue_jobs(now)
    assert job_id in store.overdue_jobs(now + 61)
    store.postpone_deadline(job_id, now + 200)
    assert job_id not in store.overdue_jobs(now + 61)


def test_lock(store: JobStore) -> None:
    name = f"test-{new_token()}"
    assert store.acquire_lock(name, ttl=10)
    assert not store.acquire_lock(name, ttl=10)
    store.release_lock(name)
    assert store.acquire_lock(name, ttl=10)


def test_delete_job_forgets_everything(store: JobStore, r: redis.Redis) -> None:
    job_id, user_hash = new_job(store)
    store.delete_job(job_id, user_hash)
    assert store.get_job(job_id) is None and store.job_for_user(user_hash) is None
    assert job_id not in store.overdue_jobs(time.time() + 3600)
    assert r.keys(f"{PREFIX}job:{job_id}*") == []


def test_connect_gives_up_after_retry_seconds(free_port: Callable[[], int]) -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0", retry_seconds=1.0)  # nothing listens there
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert 0.9 < time.monotonic() - started < 5


def test_connect_rides_out_a_redis_that_comes_back_within_retry_seconds(
    free_port: Callable[[], int], tmp_path: Path
) -> None:
    port = free_port()
    client = connect(f"redis://127.0.0.1:{port}/0", retry_seconds=20)
    argv = processes.redis_server(port, tmp_path)
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
