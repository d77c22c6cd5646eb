"""GET /api/account's counting and per-owner quota overrides, on the session's real redis-server: the
owner's overrides win over a key's own and the defaults, today's use moves with holds and charges, and a
too-large upload's 413 names max_upload_mb and the limit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from starlette.datastructures import Headers

from backend.auth import account, identify, quotas
from backend.auth.keys import KeyStore
from backend.auth.overrides import OwnerQuotas
from backend.auth.principal import Principal, QuotaOverrides, Quotas
from backend.auth.settings import AuthSettings
from backend.jobs.models import JobState
from backend.jobs.store import JobStore, connect
from backend.storage.layout import new_token

MB = 1024 * 1024


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """Database 5 of the session's redis-server, emptied: this module's keys and jobs only."""
    found = connect(redis_url.rsplit("/", 1)[0] + "/5")
    found.flushdb()
    yield found
    found.close()


def settings() -> AuthSettings:
    return AuthSettings(AUTH_MODE="api-key", QUOTA_IMAGES_PER_DAY=100, QUOTA_JOBS_IN_FLIGHT=4)


def test_an_owners_overrides_win_over_the_keys_own_and_the_defaults(client: redis.Redis) -> None:
    key = KeyStore(client).create("alice", quotas=QuotaOverrides(images_per_day=7, mb_per_day=9))
    headers = Headers({"authorization": f"Bearer {key}"})

    def quotas_now() -> Quotas:
        found = identify.authenticate(headers, client, settings())
        assert found is not None
        return found.quotas

    assert (quotas_now().images_per_day, quotas_now().mb_per_day, quotas_now().jobs_in_flight) == (7, 9, 4)
    owners = OwnerQuotas(client)
    assert owners.set("alice", QuotaOverrides(images_per_day=3, jobs_in_flight=1)).mb_per_day is None
    assert (quotas_now().images_per_day, quotas_now().mb_per_day, quotas_now().jobs_in_flight) == (3, 9, 1)
    assert owners.set("alice", QuotaOverrides(max_upload_mb=2)).images_per_day == 3  # others kept
    assert owners.get("bob") == QuotaOverrides()  # per owner
    assert owners.clear("alice") and not owners.clear("alice")
    assert (quotas_now().images_per_day, quotas_now().max_upload_mb) == (7, 2048)


def test_the_account_counts_what_the_quotas_count(client: redis.Redis) -> None:
    caller = Principal(
        owner="carol",
        quotas=Quotas(jobs_in_flight=3, images_per_day=10, mb_per_day=2, max_upload_mb=1),
        via="oidc",
    )
    empty = account.account(client, caller, "oidc")
    assert empty.usage is not None and empty.remaining is not None
    assert (empty.usage.jobs_in_flight, empty.usage.images_today, empty.usage.mb_today) == (0, 0, 0)
    assert (empty.owner, empty.via, empty.admin, empty.auth) == ("carol", "oidc", False, True)
    assert 0 < empty.usage.resets_in_seconds <= 86400

    quota, user_hash = quotas.UploadQuota(client, caller), new_token()
    quota.hold(user_hash, 10)
    quota.charge(MB // 2, 4)
    store = JobStore(client, record_ttl=60, deadline_s=60, archive_ttl=5)
    store.create_job(new_token(), user_hash, {"a.png": "a.png"}, {}, owner="carol")
    busy = account.account(client, caller, "oidc")
    assert busy.usage is not None and busy.remaining is not None
    assert (busy.usage.jobs_in_flight, busy.usage.images_today, busy.usage.mb_today) == (1, 4, 0.5)
    assert (busy.remaining.jobs_in_flight, busy.remaining.images_today, busy.remaining.mb_today) == (
        2,
        6,
        1.5,
    )

    job = store.job_for_user(user_hash)
    assert job is not None
    store.transition(job, JobState.COMPLETED, [JobState.QUEUED])
    done = account.account(client, caller, "oidc")
    assert done.usage is not None and done.usage.jobs_in_flight == 0 and done.usage.images_today == 4

    off = account.account(client, None, "none")
    assert not off.auth and off.owner is None and off.message and "AUTH_MODE=none" in off.message


def test_a_too_large_upload_names_max_upload_mb_and_its_limit(client: redis.Redis) -> None:
    caller = Principal(
        owner="dan",
        quotas=Quotas(jobs_in_flight=3, images_per_day=10, mb_per_day=50, max_upload_mb=5),
        via="api-key",
    )
    refused = quotas.UploadQuota(client, caller, 2048 * MB).too_large()
    assert refused.status_code == 413 and "max_upload_mb" in refused.detail and "5 MB" in refused.detail
    assert "Retry-After" not in (refused.headers or {})  # waiting never lets it in
    assert quotas.UploadQuota(client, caller, 2048 * MB).binds
    assert not quotas.UploadQuota(client, caller, 4 * MB).binds  # MAX_UPLOAD_MB is the smaller limit
