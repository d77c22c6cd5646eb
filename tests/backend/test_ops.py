"""Operator endpoints without a worker: /api/tasks, /metrics, health with all down, OpenAPI, logging.

In-process TestClient against database 3 of the session's redis-server (emptied first, so the job index holds
only this module's jobs). Health/queues with live workers and the CLI against a real stack: tests/e2e.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from stack_harness import OPS_HEADERS, OPS_TOKEN

from backend.api.main import app
from backend.core.config import settings
from backend.core.logging import configure_logging
from backend.jobs.keys import ACTIVE_INDEX, CREATED_INDEX, PREFIX
from backend.jobs.models import ImageResult, JobState
from backend.jobs.store import JobStore, connect
from backend.ops import monitor
from backend.ops.metrics import METRICS_KEY, Metrics
from backend.storage.layout import new_token

TTL = 3600
DEAD_REDIS = "redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="module")
def client(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    ops_url = redis_url.rsplit("/", 1)[0] + "/3"
    redis.Redis.from_url(ops_url).flushdb()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "REDIS_URL", ops_url)
        mp.setattr(settings, "RESULTS_DIR", tmp_path_factory.mktemp("ops") / "results")
        mp.setattr(settings, "MIN_FREE_DISK_MB", 1)
        mp.setattr(settings, "OPS_TOKEN", OPS_TOKEN)
        with TestClient(app, headers=OPS_HEADERS) as c:
            yield c


@pytest.fixture
def r(client: TestClient) -> redis.Redis:
    """The API's own Redis client."""
    live: redis.Redis = app.state.redis
    return live


@pytest.fixture
def store(r: redis.Redis) -> JobStore:
    return JobStore(r, record_ttl=TTL, deadline_s=60, archive_ttl=1)


def make_job(store: JobStore, state: JobState = JobState.QUEUED, images: int = 2) -> tuple[str, str]:
    job_id, user_hash = new_token(), new_token()
    outputs = {f"x{i}.png": f"x{i}.png" for i in range(images)}
    store.create_job(job_id, user_hash, outputs, {})
    if state != JobState.QUEUED:
        store.transition(job_id, state, [JobState.QUEUED], finished_at=time.time())
    return job_id, user_hash


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# --- /api/tasks ---------------------------------------------------------------------------------------------


def test_tasks_newest_first_with_counts_and_without_user_hashes(client: TestClient, store: JobStore) -> None:
    made = [make_job(store, images=n) for n in (1, 2, 3)]
    job_id, _ = made[1]
    result = ImageResult(name="x0.png", output="x0.png", status="ok")
    store.images.record_result(job_id, result, model_version=None, user_hash=made[1][1])
    response = client.get("/api/tasks", params={"limit": 3})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["job_id"] for i in items] == [job for job, _ in reversed(made)]
    assert [(i["total"], i["done"], i["failed"]) for i in items] == [(3, 0, 0), (2, 1, 0), (1, 0, 0)]
    assert items[0]["status_url"] == f"/api/status/{made[2][0]}" and items[0]["state"] == "queued"
    for _, user_hash in made:
        assert user_hash not in response.text
    assert all("user_hash" not in item for item in items)


def test_tasks_pages_and_state_filter(client: TestClient, store: JobStore, r: redis.Redis) -> None:
    archiving = [make_job(store, JobState.ARCHIVING)[0] for _ in range(3)]
    make_job(store)  # newest, queued: filtered out below
    first = client.get("/api/tasks", params={"state": "archiving", "limit": 2}).json()
    assert [i["job_id"] for i in first["items"]] == archiving[::-1][:2] and first["next_offset"] == 2
    rest = client.get("/api/tasks", params={"state": "archiving", "limit": 2, "offset": 2}).json()
    assert [i["job_id"] for i in rest["items"]] == archiving[:1] and rest["next_offset"] is None
    everything = client.get("/api/tasks", params={"limit": 200}).json()
    assert everything["next_offset"] is None and len(everything["items"]) == r.zcard(CREATED_INDEX)
    skipped = client.get("/api/tasks", params={"limit": 1, "offset": 1}).json()["items"]
    assert skipped[0]["job_id"] == archiving[-1]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=x", "offset=-1", "state=done", "state=QUEUED"]
)
def test_tasks_rejects_bad_parameters(client: TestClient, query: str) -> None:
    response = client.get(f"/api/tasks?{query}")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Invalid request: query.")


def test_expired_records_leave_the_index(client: TestClient, store: JobStore, r: redis.Redis) -> None:
    gone, kept = make_job(store)[0], make_job(store)[0]
    newest = make_job(store)[0]
    r.delete(f"{PREFIX}job:{gone}", f"{PREFIX}job:{newest}")  # as if their TTL had run out
    items = client.get("/api/tasks", params={"limit": 2}).json()["items"]
    assert items[0]["job_id"] == kept and gone not in [i["job_id"] for i in items]
    assert r.zscore(CREATED_INDEX, newest) is None  # dropped on the way
    assert r.zscore(CREATED_INDEX, gone) is None
    # The sweeper's pass: entries older than the record TTL are dropped once their record is gone.
    stale = make_job(store)[0]
    r.delete(f"{PREFIX}job:{stale}")
    assert store.index.prune(older_than=time.time() - TTL) == 0
    assert store.index.prune(older_than=time.time()) == 1
    assert r.zscore(CREATED_INDEX, stale) is None and r.zscore(CREATED_INDEX, kept) is not None


# --- /metrics -------------------------------------------------------------------------------------------


def test_metrics_render_counters_histogram_and_gauges(client: TestClient, r: redis.Redis) -> None:
    before = metric_values(client.get("/metrics").text)
    Metrics(r).count_image("ok")
    Metrics(r).count_image("ok")
    Metrics(r).count_image("failed")
    Metrics(r).count_job(JobState.COMPLETED)
    Metrics(r).add_archive_bytes(12345)
    Metrics(r).count_deletion("expired")
    for seconds in (0.07, 0.1, 3.0, 500.0):
        Metrics(r).observe_segmentation(seconds)
    r.lpush("celery", "a", "b")
    r.lpush("celery\x06\x169", "c")  # kombu's list for priority 9 of the same queue
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    after = metric_values(response.text)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before.get(key, 0.0)

    assert delta("oilspill_images_segmented_total", status="ok") == 2
    assert delta("oilspill_images_segmented_total", status="failed") == 1
    assert delta("oilspill_jobs_finished_total", state="completed") == 1
    assert delta("oilspill_jobs_finished_total", state="failed") == 0
    assert delta("oilspill_archive_bytes_total") == 12345
    assert delta("oilspill_deletions_total", reason="expired") == 1
    assert delta("oilspill_uploads_total", outcome="accepted") == 0
    assert delta("oilspill_segmentation_seconds_bucket", le="0.05") == 0
    assert delta("oilspill_segmentation_seconds_bucket", le="0.1") == 2  # 0.1 itself is <= 0.1
    assert delta("oilspill_segmentation_seconds_bucket", le="5.0") == 3
    assert delta("oilspill_segmentation_seconds_bucket", le="+Inf") == 4
    assert delta("oilspill_segmentation_seconds_count") == 4
    assert delta("oilspill_segmentation_seconds_sum") == pytest.approx(503.17)
    assert after[("oilspill_queue_waiting", (("queue", "celery"),))] == 3
    assert after[("oilspill_jobs_active", ())] == r.zcard(ACTIVE_INDEX) > 0
    depths = monitor.queue_depths(r)  # the default queue, and every owner lane (empty here)
    assert depths.pop("celery") == 3 and len(depths) == settings.FAIR_LANES and not any(depths.values())
    r.delete("celery", "celery\x06\x169")


def test_metrics_speak_openmetrics_when_asked(client: TestClient) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_upload_outcomes_are_counted(
    client: TestClient, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def uploads(outcome: str) -> int:
        return int(r.hget(METRICS_KEY, f"uploads:{outcome}") or 0)

    rejected, error = uploads("rejected"), uploads("error")
    response = client.post("/api/upload", files={"file": ("x.zip", b"not a zip")})
    assert response.status_code == 400
    assert uploads("rejected") == rejected + 1
    monkeypatch.setattr(settings, "MIN_FREE_DISK_MB", 10**12)
    assert client.post("/api/upload", files={"file": ("x.zip", b"PK")}).status_code == 507
    assert (uploads("rejected"), uploads("error")) == (rejected + 1, error + 1)


def test_metric_labels_are_checked_and_recording_never_raises(free_port: Callable[[], int]) -> None:
    dead = connect(DEAD_REDIS.format(port=free_port()))
    with pytest.raises(ValueError, match="images"):
        Metrics(dead).count_image("skipped")
    Metrics(dead).count_image("ok")  # Redis down: logged, not raised
    Metrics(dead).observe_segmentation(1.0)


# --- Redis down ----------------------------------------------------------------------------------------


def test_ops_endpoints_answer_503_when_redis_is_down(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, free_port: Callable[[], int]
) -> None:
    monkeypatch.setattr(settings, "ML_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    state = app.state
    live, state.redis = state.redis, connect(DEAD_REDIS.format(port=free_port()))
    try:
        check_everything_down(client)
    finally:
        state.redis = live


def check_everything_down(client: TestClient) -> None:
    for path in ("/api/tasks", "/metrics", "/api/queues/status"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert "Redis" in response.json()["detail"]
    response = client.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["redis"]["status"] == "error" and "ConnectionError" in body["redis"]["error"]
    assert body["ml_service"]["status"] == "error" and body["ml_service"]["response_ms"] >= 0
    assert body["workers"] == {
        "status": "error",
        "error": "not checked: Redis is unreachable",
        "response_ms": None,
        "answered_by": None,
        "checked_at": None,
    }


# --- caching of worker broadcasts --------------------------------------------------------------------------


def test_cached_broadcasts_run_once_per_period_even_when_requested_together() -> None:
    calls: list[float] = []

    def slow() -> int:
        calls.append(time.monotonic())
        time.sleep(0.2)
        return len(calls)

    cache = monitor.Cached(slow, lambda: 0.5)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [1] * 8 and len(calls) == 1
    time.sleep(0.55)
    assert cache.get() == 2


# --- OpenAPI ---------------------------------------------------------------------------------------------


def test_every_operation_is_documented_with_our_error_bodies(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(spec)
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            responses = operation["responses"]
            assert any(code.startswith("2") and responses[code].get("content") for code in responses), where
            assert "503" in responses, where
            for code, response in responses.items():
                if code[0] in "45":
                    schema = response["content"]["application/json"]["schema"]["$ref"]
                    assert schema.rsplit("/", 1)[1] in ("ErrorDetail", "HealthReport"), (where, code)


# --- logging --------------------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    access = logging.getLogger("uvicorn.access")
    saved_access = (access.handlers[:], access.propagate)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    access.handlers[:], access.propagate = saved_access


def test_log_json_covers_uvicorn_and_log_level_filters_it(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    access = logging.getLogger("uvicorn.access")
    access.addHandler(logging.StreamHandler(sys.stdout))  # what uvicorn's dictConfig installs
    access.propagate = False
    configure_logging("INFO", json_lines=True)
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/api/tasks", "1.1", 200)
    captured = capsys.readouterr()
    assert captured.out == ""
    line = json.loads(captured.err)
    assert line["logger"] == "uvicorn.access" and "GET /api/tasks" in line["message"]
    configure_logging("WARNING", json_lines=True)
    access.info("hidden")
    logging.getLogger("backend.jobs").warning("shown")
    assert [json.loads(x)["message"] for x in capsys.readouterr().err.splitlines()] == ["shown"]
