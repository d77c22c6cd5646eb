"""Accounts on the session's real redis-server: the key store (hashed keys, revoke, last use), credentials
from headers, the owner checks, quotas (jobs in flight, the day's images and bytes, undone on failure) and
the lanes owners are given."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from fastapi import HTTPException
from starlette.datastructures import Headers

from backend.auth import access, identify, keys, quotas
from backend.auth.keys import KeyRefused, KeyStore
from backend.auth.principal import Principal, QuotaOverrides, Quotas
from backend.auth.settings import AuthSettings
from backend.jobs.models import JobState
from backend.jobs.store import JobStore, connect
from backend.storage.layout import new_token
from backend.worker import lanes


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """Database 4 of the session's redis-server, emptied: this module's keys, jobs and lanes only."""
    found = connect(redis_url.rsplit("/", 1)[0] + "/4")
    found.flushdb()
    yield found
    found.close()


def principal(owner: str = "alice", *, in_flight: int = 2, images: int = 10, mb: int = 1) -> Principal:
    limits = Quotas(jobs_in_flight=in_flight, images_per_day=images, mb_per_day=mb, max_upload_mb=1)
    return Principal(owner=owner, quotas=limits, via="api-key")


def test_keys_are_stored_hashed_found_by_the_key_and_revoked(client: redis.Redis) -> None:
    store = KeyStore(client)
    key = store.create("alice", quotas=QuotaOverrides(images_per_day=7))
    assert key.startswith(keys.KEY_PREFIX) and len(key) > 40
    dump = {k: client.hgetall(k) for k in client.scan_iter("*")}
    assert key not in repr(dump) and keys.digest(key) in repr(dump)
    found = store.lookup(key)
    assert found is not None and found.name == "alice" and found.quotas.images_per_day == 7
    assert found.last_used is not None and store.list()[0].last_used == pytest.approx(found.last_used)
    with pytest.raises(KeyRefused):
        store.create("alice")
    with pytest.raises(KeyRefused):
        store.create("no spaces")
    assert store.lookup(key + "x") is None and store.lookup("garbage") is None
    assert store.revoke("alice") and not store.revoke("alice")
    assert store.lookup(key) is None and store.list() == []
    assert client.keys("*apikey:*") == []  # not brought back by a late last-use write


def test_credentials_from_either_header_and_401s(client: redis.Redis) -> None:
    settings = AuthSettings(AUTH_MODE="api-key", QUOTA_JOBS_IN_FLIGHT=3)
    key = KeyStore(client).create("bob", admin=True)
    for headers in (
        {"authorization": f"Bearer {key}"},
        {"x-api-key": key},
        {"authorization": f"bearer  {key}"},
    ):
        found = identify.authenticate(Headers(headers), client, settings)
        assert found is not None and found.owner == "bob" and found.admin and found.quotas.jobs_in_flight == 3
    for headers, words in (
        ({}, "needs an API key"),
        ({"authorization": "Bearer osk_x"}, "unknown or has been revoked"),
    ):
        with pytest.raises(HTTPException) as refused:
            identify.authenticate(Headers(headers), client, settings)
        assert refused.value.status_code == 401 and words in refused.value.detail
        assert (refused.value.headers or {})["WWW-Authenticate"].startswith("Bearer")
    assert identify.authenticate(Headers({}), client, AuthSettings(AUTH_MODE="none")) is None


def test_another_owners_job_is_a_404_like_a_missing_one(client: redis.Redis) -> None:
    store = JobStore(client, record_ttl=60, deadline_s=60, archive_ttl=5)
    job_id, user_hash = new_token(), new_token()
    store.create_job(job_id, user_hash, {"a.png": "a.png"}, {}, owner="alice")
    access.check_job(client, principal("alice"), job_id)
    access.check_user_hash(client, principal("alice"), user_hash)
    access.check_job(client, principal("root").model_copy(update={"admin": True}), job_id)
    for check, key in ((access.check_job, job_id), (access.check_user_hash, user_hash)):
        with pytest.raises(HTTPException) as refused:
            check(client, principal("bob"), key)
        assert refused.value.status_code == 404
    assert [j.job_id for j in store.index.recent_jobs(offset=0, count=10, owner="alice")] == [job_id]
    assert store.index.recent_jobs(offset=0, count=10, owner="bob") == []


def test_jobs_in_flight_free_up_when_their_jobs_end(client: redis.Redis) -> None:
    store = JobStore(client, record_ttl=60, deadline_s=60, archive_ttl=5)
    caller = principal(in_flight=2)
    held = []
    for _ in range(2):
        quota, user_hash = quotas.UploadQuota(client, caller), new_token()
        quota.hold(user_hash, 10)
        store.create_job(new_token(), user_hash, {"a.png": "a.png"}, {}, owner="alice")
        held.append(user_hash)
    with pytest.raises(HTTPException) as refused:
        quotas.UploadQuota(client, caller).hold(new_token(), 10)
    assert refused.value.status_code == 429 and "jobs in flight" in refused.value.detail
    assert (refused.value.headers or {})["Retry-After"] == str(quotas.IN_FLIGHT_RETRY_SECONDS)
    finished = store.job_for_user(held[0])
    assert finished is not None
    store.transition(finished, JobState.COMPLETED, [JobState.QUEUED])
    quotas.UploadQuota(client, caller).hold(new_token(), 10)  # the finished job's slot is free again
    # An upload that fails gives its slot back.
    with pytest.raises(HTTPException):
        quotas.UploadQuota(client, caller).hold(new_token(), 10)
    client.zrem(quotas.inflight_key("alice"), held[1])
    failing = quotas.UploadQuota(client, caller)
    failing.hold(new_token(), 10)
    failing.release()
    quotas.UploadQuota(client, caller).hold(new_token(), 10)


def test_the_days_images_and_bytes_are_charged_once_and_refunded(client: redis.Redis) -> None:
    caller = principal(images=10, mb=1)
    first = quotas.UploadQuota(client, caller)
    first.charge(600_000, 6)
    with pytest.raises(HTTPException) as refused:
        quotas.UploadQuota(client, caller).charge(1000, 5)
    detail = refused.value.detail
    assert refused.value.status_code == 429 and "images per day" in detail and "6 of 10" in detail
    retry = int((refused.value.headers or {})["Retry-After"])
    assert (
        0 < retry <= 86400 and abs(retry - (quotas.next_midnight(time.time()).timestamp() - time.time())) < 5
    )
    with pytest.raises(HTTPException) as refused:
        quotas.UploadQuota(client, caller).charge(600_000, 1)
    assert "megabytes per day" in refused.value.detail
    with pytest.raises(HTTPException) as refused:
        quotas.UploadQuota(client, caller).hold(new_token(), 600_000)  # the declared size, before reading
    assert "megabytes per day" in refused.value.detail
    with pytest.raises(HTTPException) as too_big:
        quotas.UploadQuota(client, caller).hold(new_token(), 2 * 1024 * 1024)
    assert too_big.value.status_code == 413 and "max_upload_mb" in too_big.value.detail
    first.release()
    quotas.UploadQuota(client, caller).charge(600_000, 10)  # the refund made room


def test_owners_get_lanes_of_their_own_and_share_only_when_all_are_busy(client: redis.Redis) -> None:
    assert lanes.pick_lane(client, "alice", 0) is None  # FAIR_LANES=0: the default queue
    alice = lanes.pick_lane(client, "alice", 3)
    assert lanes.pick_lane(client, "alice", 3) == alice  # claimed for a while after a job is sent
    bob = lanes.pick_lane(client, "bob", 3)
    assert bob != alice
    assert alice is not None and bob is not None
    client.rpush(alice, "m1", "m2")
    client.rpush(bob, "m1")
    carol = lanes.pick_lane(client, "carol", 3)
    assert carol not in (alice, bob)
    assert carol is not None
    client.rpush(carol, "m1", "m2", "m3")
    assert lanes.pick_lane(client, "dave", 3) == bob  # all busy: the shortest lane
    client.delete(alice, bob, carol, lanes.LANE_CLAIMS)
    assert lanes.pick_lane(client, "erin", 3) == lanes.lane_name(0)  # idle lanes are free again
    assert [q.name for q in lanes.task_queues(2)] == ["celery", lanes.lane_name(0), lanes.lane_name(1)]


@pytest.mark.parametrize(
    "env",
    [
        {"AUTH_MODE": "oidc"},
        {
            "AUTH_MODE": "oidc",
            "OIDC_ISSUER": "https://id.example/",
            "OIDC_AUDIENCE": "a",
            "OIDC_ALGORITHMS": "HS256",
        },
        {
            "AUTH_MODE": "oidc",
            "OIDC_ISSUER": "https://id.example/",
            "OIDC_AUDIENCE": "a",
            "OIDC_ALGORITHMS": "none",
        },
        {"AUTH_MODE": "basic"},
    ],
)
def test_a_misconfigured_auth_mode_stops_at_start(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        AuthSettings(**env)  # type: ignore[arg-type]
