"""AUTH_MODE=oidc on real processes: a JWKS served on loopback by a real HTTP server, tokens signed in the
test. Expired, foreign-signed, wrong-audience, wrong-issuer and subject-less tokens get 401; another
subject's job 404; the right subject 200; an admin role sees every job; a rotated key is picked up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import bearer, job_endpoints, scenes_zip, statuses, upload, wait_ended
from oidc_issuer import AUDIENCE, Issuer
from stack_harness import Stack, api_process

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    found = Issuer()
    yield found
    found.server.shutdown()


@pytest.fixture
def oidc_api(long_lived_archives: Stack, issuer: Issuer, tmp_path: Path) -> Iterator[str]:
    env = {
        "AUTH_MODE": "oidc",
        "OIDC_ISSUER": issuer.url,
        "OIDC_AUDIENCE": AUDIENCE,
        "RESULTS_DIR": str(long_lived_archives.results_dir),
    }
    with api_process(long_lived_archives, tmp_path, **env) as (url, _, _):
        yield url


def test_every_endpoint_by_token(oidc_api: str, issuer: Issuer) -> None:
    alice = bearer(issuer.token("auth0|alice"))
    answer = upload(oidc_api, scenes_zip(2), alice)
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert wait_ended(oidc_api, job["job_id"], alice)["state"] == "completed"
    paths = job_endpoints(job["job_id"], job["user_hash"])

    assert set(statuses(oidc_api, paths, alice).values()) == {200}
    assert set(statuses(oidc_api, paths, bearer(issuer.token("auth0|bob"))).values()) == {404}
    admin = bearer(issuer.token("auth0|ops", permissions=["oilspill:admin"]))
    assert set(statuses(oidc_api, paths, admin).values()) == {200}

    refused = {
        "none": {},
        "expired": bearer(issuer.token("auth0|alice", exp=int(time.time()) - 120)),
        "foreign key": bearer(issuer.token("auth0|alice", key=Issuer.new_key())),
        "audience": bearer(issuer.token("auth0|alice", aud="https://elsewhere")),
        "issuer": bearer(issuer.token("auth0|alice", iss="https://evil.example/")),
        "no subject": bearer(issuer.token(None)),
        "not a jwt": bearer("osk_an-api-key"),
    }
    for why, headers in refused.items():
        assert set(statuses(oidc_api, paths, headers).values()) == {401}, why
    expired = httpx.get(oidc_api + paths["status"], headers=refused["expired"])
    assert "expired" in expired.json()["detail"]
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]

    def listed(headers: dict[str, str]) -> set[str]:
        page = httpx.get(f"{oidc_api}/api/tasks", params={"limit": 200}, headers=headers)
        assert page.status_code == 200, page.text
        return {i["job_id"] for i in page.json()["items"]}

    assert listed(alice) == {job["job_id"]}
    assert job["job_id"] in listed(admin) and job["job_id"] not in listed(bearer(issuer.token("auth0|bob")))


def test_a_rotated_key_is_fetched_and_the_jwks_is_cached(oidc_api: str, issuer: Issuer) -> None:
    tasks = f"{oidc_api}/api/tasks"
    assert httpx.get(tasks, headers=bearer(issuer.token("auth0|carol"))).status_code == 200
    fetched = issuer.fetches
    for _ in range(5):
        assert httpx.get(tasks, headers=bearer(issuer.token("auth0|carol"))).status_code == 200
    assert issuer.fetches == fetched  # cached
    issuer.keys["k2"] = Issuer.new_key()  # the issuer rotates: a token signed by a key the API has not seen
    time.sleep(1.1)  # unknown kids trigger a fetch at most once a second
    assert httpx.get(tasks, headers=bearer(issuer.token("auth0|carol", kid="k2"))).status_code == 200
    assert issuer.fetches == fetched + 1
    unknown = httpx.get(tasks, headers=bearer(issuer.token("auth0|carol", kid="k9", key=Issuer.new_key())))
    assert unknown.status_code == 401 and "k9" in unknown.json()["detail"]
