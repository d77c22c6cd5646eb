"""API behaviour that needs no worker: token checks, state -> status code mapping, upload refusals.

In-process TestClient against the session's real redis-server; jobs are put in the states under test
directly through the job store. The full upload -> download path is in tests/e2e.
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from backend.api.main import app
from backend.core.config import settings
from backend.jobs.keys import PREFIX
from backend.jobs.models import JobState
from backend.jobs.store import JobStore, connect
from backend.storage.layout import ResultsDir, new_token

TTL = 3600
BAD_TOKENS = ["abc", "0" * 31, "A" * 32, "..", "%2e%2e%2fetc", "0" * 32 + "x"]


@pytest.fixture(scope="module")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api") / "results"


@pytest.fixture(scope="module")
def client(redis_url: str, results_root: Path) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "REDIS_URL", redis_url)
        mp.setattr(settings, "RESULTS_DIR", results_root)
        mp.setattr(settings, "MIN_FREE_DISK_MB", 1)
        with TestClient(app) as c:
            yield c


def make_job(
    store: JobStore, state: JobState, *, archive: bool = False, expires_in: float = 100.0
) -> tuple[str, str]:
    job_id, user_hash = new_token(), new_token()
    store.create_job(job_id, user_hash, {"x.png": "x.png", "y.png": "y.png"}, {})
    if state in (JobState.COMPLETED, JobState.FAILED, JobState.EXPIRED):
        store.transition(job_id, JobState.ARCHIVING, [JobState.QUEUED])
        now = time.time()
        final = JobState.FAILED if state == JobState.FAILED else JobState.COMPLETED
        store.finish(job_id, user_hash, final, now=now)
        store.client.hset(f"{PREFIX}job:{job_id}", "expires_at", now + expires_in)
        if state == JobState.EXPIRED:
            store.mark_expired(job_id, user_hash)
    elif state != JobState.QUEUED:
        store.transition(job_id, state, [JobState.QUEUED])
    if archive:
        folder = ResultsDir(settings.RESULTS_DIR).user(user_hash)
        folder.root.mkdir(parents=True)
        folder.archive.write_bytes(b"PK archive bytes")
    return job_id, user_hash


@pytest.fixture
def r(client: TestClient) -> redis.Redis:
    """The API's own Redis client."""
    live: redis.Redis = app.state.redis
    return live


@pytest.fixture
def store(r: redis.Redis) -> JobStore:
    """Jobs as the API's store keeps them, with archives that expire after a second."""
    return JobStore(r, record_ttl=TTL, deadline_s=60, archive_ttl=1)


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_malformed_tokens_are_404_without_touching_the_disk(
    client: TestClient, results_root: Path, token: str
):
    for path in (f"/api/status/{token}", f"/api/download/{token}", f"/api/archive_time_left/{token}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert isinstance(response.json()["detail"], str)
    assert not results_root.exists()


def test_unknown_tokens_are_404(client: TestClient, results_root: Path) -> None:
    token = new_token()
    for path in (f"/api/status/{token}", f"/api/download/{token}", f"/api/archive_time_left/{token}"):
        response = client.get(path)
        assert response.status_code == 404
        assert "never existed" in response.json()["detail"]
    assert not results_root.exists()


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.PROCESSING, JobState.ARCHIVING])
def test_unfinished_jobs_answer_409_with_their_state(
    client: TestClient, store: JobStore, state: JobState
) -> None:
    job_id, user_hash = make_job(store, state)
    for path in (f"/api/download/{user_hash}", f"/api/archive_time_left/{user_hash}"):
        response = client.get(path)
        assert response.status_code == 409
        assert f"is {state.value} (0 of 2 images processed)" in response.json()["detail"]
    body = client.get(f"/api/status/{job_id}").json()
    assert body["state"] == state.value
    assert (body["total"], body["done"], body["failed"], body["errors"]) == (2, 0, 0, [])
    assert body["finished_at"] is None and body["expires_at"] is None
    assert body["download_url"] == f"/api/download/{user_hash}"


def test_completed_job_serves_its_archive_without_touching_the_expiry(
    client: TestClient, store: JobStore
) -> None:
    job_id, user_hash = make_job(store, JobState.COMPLETED, archive=True)
    before = client.get(f"/api/archive_time_left/{user_hash}").json()
    assert 0 < before["seconds_left"] <= 100
    for _ in range(2):
        response = client.get(f"/api/download/{user_hash}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/zip"
        assert f'filename="oilspill-{job_id}.zip"' in response.headers["content-disposition"]
        assert response.content == b"PK archive bytes"
    after = client.get(f"/api/archive_time_left/{user_hash}").json()
    assert after["expires_at"] == before["expires_at"] and after["seconds_left"] <= before["seconds_left"]
    status = client.get(f"/api/status/{job_id}").json()
    assert status["state"] == "completed" and status["finished_at"] and status["expires_at"]


def test_expired_jobs_answer_410(client: TestClient, store: JobStore) -> None:
    _, gone = make_job(store, JobState.EXPIRED)
    _, overdue = make_job(store, JobState.COMPLETED, archive=True, expires_in=-1)  # sweeper not there yet
    _, lost = make_job(store, JobState.COMPLETED)  # archive file missing
    for user_hash in (gone, overdue, lost):
        response = client.get(f"/api/download/{user_hash}")
        assert response.status_code == 410, user_hash
        assert "expired" in response.json()["detail"]
    assert client.get(f"/api/archive_time_left/{gone}").status_code == 410
    assert client.get(f"/api/archive_time_left/{overdue}").status_code == 410


def test_failed_job_answers_409_and_lists_errors(client: TestClient, store: JobStore) -> None:
    _, user_hash = make_job(store, JobState.FAILED)
    response = client.get(f"/api/download/{user_hash}")
    assert response.status_code == 409 and "failed" in response.json()["detail"]


def folders(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()} if root.exists() else set()


def test_missing_field_is_422_with_a_sentence(client: TestClient, results_root: Path) -> None:
    before = folders(results_root)
    response = client.post("/api/upload", files={"other": ("a.zip", b"x")})
    assert response.status_code == 422
    assert "file" in response.json()["detail"]
    assert folders(results_root) == before


def test_not_a_zip_is_400_and_leaves_nothing(client: TestClient, results_root: Path) -> None:
    before = folders(results_root)
    response = client.post("/api/upload", files={"file": ("a.zip", b"this is not a zip" * 100)})
    assert response.status_code == 400
    assert isinstance(response.json()["detail"], str)
    assert folders(results_root) == before


def test_zip_without_images_is_400(client: TestClient, results_root: Path) -> None:
    before = folders(results_root)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("notes.txt", "hello")
    response = client.post("/api/upload", files={"file": ("a.zip", buffer.getvalue())})
    assert response.status_code == 400
    assert folders(results_root) == before


def test_declared_size_over_the_limit_is_413(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "MAX_UPLOAD_MB", 1)
    response = client.post("/api/upload", files={"file": ("a.zip", b"\0" * (1024 * 1024 + 70_000))})
    assert response.status_code == 413
    assert "1 MB" in response.json()["detail"]


def test_low_disk_is_507(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "MIN_FREE_DISK_MB", 10**12)
    response = client.post("/api/upload", files={"file": ("a.zip", b"PK")})
    assert response.status_code == 507
    assert "disk space" in response.json()["detail"]


def test_redis_down_is_503(client: TestClient, free_port: Callable[[], int]) -> None:
    state = app.state
    live, state.redis = state.redis, connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        responses = [
            client.post("/api/upload", files={"file": ("a.zip", b"PK")}),
            client.get(f"/api/status/{new_token()}"),
        ]
    finally:
        state.redis = live
    for response in responses:
        assert response.status_code == 503
        assert "Redis" in response.json()["detail"]


def test_openapi_documents_the_multipart_body_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    upload = spec["paths"]["/api/upload"]["post"]
    schema = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": "A zip of PNG/JPEG/TIFF images.",
    }
    assert {"202", "400", "413", "422", "503", "507"} <= set(upload["responses"])
    for path in ("/api/status/{job_id}", "/api/download/{user_hash}", "/api/archive_time_left/{user_hash}"):
        operation = spec["paths"][path]["get"]
        assert operation["summary"] and "404" in operation["responses"]


def test_status_wait_answers_as_soon_as_the_job_ends(client: TestClient, store: JobStore) -> None:
    job_id, user_hash = make_job(store, JobState.PROCESSING)

    def finish_later() -> None:
        time.sleep(0.3)
        store.transition(job_id, JobState.ARCHIVING, [JobState.PROCESSING])
        store.finish(job_id, user_hash, JobState.COMPLETED, now=time.time())

    finisher = threading.Thread(target=finish_later)
    started = time.monotonic()
    finisher.start()
    response = client.get(f"/api/status/{job_id}", params={"wait": 20})
    elapsed = time.monotonic() - started
    finisher.join()
    assert response.status_code == 200
    assert response.json()["state"] == "completed"
    assert 0.25 < elapsed < 5  # woken by the end, not by the 20 s


def test_status_wait_gives_the_progress_after_the_wait_while_the_job_runs(
    client: TestClient, store: JobStore
) -> None:
    job_id, _ = make_job(store, JobState.PROCESSING)
    started = time.monotonic()
    response = client.get(f"/api/status/{job_id}", params={"wait": 0.3})
    assert 0.25 < time.monotonic() - started < 5
    assert response.json()["state"] == "processing"
    done_id, _ = make_job(store, JobState.COMPLETED)
    started = time.monotonic()
    assert client.get(f"/api/status/{done_id}", params={"wait": 20}).json()["state"] == "completed"
    assert time.monotonic() - started < 5  # already ended: no wait
    assert client.get(f"/api/status/{new_token()}", params={"wait": 20}).status_code == 404
    too_long = client.get(f"/api/status/{job_id}", params={"wait": 61})
    assert too_long.status_code == 422
    assert "wait" in too_long.json()["detail"]
