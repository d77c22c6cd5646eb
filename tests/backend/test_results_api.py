"""GET /api/results/{user_hash}/images and /overlays/{name}, and the web page's files, in process.

Jobs are put in the states under test through the job store against the session's real redis-server, and
their overlays written with the pipeline's own PNG writer; the browser test is in tests/e2e/test_web_page.py.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import slick_samples
from fastapi.testclient import TestClient
from PIL import Image

from backend.api.main import app
from backend.api.schemas import SlickCollection
from backend.core.config import settings
from backend.jobs.keys import PREFIX
from backend.jobs.models import ImageResult, JobState
from backend.jobs.store import JobStore
from backend.storage import parts
from backend.storage.layout import ResultsDir, UserDir, new_token
from common.wire import GeoInfo

TTL = 3600
ROUTES = ("images", "overlays/x.png", "slicks", "slicks?include_pixel=true")
BAD_TOKENS = ["abc", "0" * 31, "A" * 32, "..", "%2e%2e", "0" * 32 + "x"]


@pytest.fixture(scope="module")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("results_api") / "results"


@pytest.fixture(scope="module")
def client(redis_url: str, results_root: Path) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "REDIS_URL", redis_url)
        mp.setattr(settings, "RESULTS_DIR", results_root)
        with TestClient(app) as c:
            yield c


@pytest.fixture
def r(client: TestClient) -> redis.Redis:
    """The API's own Redis client."""
    live: redis.Redis = app.state.redis
    return live


@pytest.fixture
def store(r: redis.Redis) -> JobStore:
    """Jobs as the API's store keeps them, with archives that expire after a second."""
    return JobStore(r, record_ttl=TTL, deadline_s=60, archive_ttl=1)


def make_job(store: JobStore, outputs: dict[str, str], *, folder: bool = True) -> tuple[str, UserDir]:
    """A processing job over `outputs` (input -> output name), with its folder as an upload leaves it."""
    job_id, user_hash = new_token(), new_token()
    store.create_job(job_id, user_hash, outputs, {})
    store.mark_started(job_id)
    directory = ResultsDir(settings.RESULTS_DIR).user(user_hash)
    if folder:
        directory.root.mkdir(parents=True)
    return job_id, directory


def finish(store: JobStore, job_id: str, user_hash: str, state: JobState, expires_in: float) -> None:
    store.transition(job_id, JobState.ARCHIVING, [JobState.PROCESSING])
    store.finish(job_id, user_hash, state, now=time.time())
    store.client.hset(f"{PREFIX}job:{job_id}", "expires_at", time.time() + expires_in)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def record_ok(
    store: JobStore,
    job_id: str,
    folder: UserDir,
    name: str,
    output: str,
    *,
    slicks: list[float] | None = None,
    georeferenced: bool = True,
) -> bytes:
    """What the pipeline leaves for a segmented image: its part on disk and an ok record; the overlay PNG.

    With `slicks` (their areas), the image has a slicks collection and a `geo`, as with geo=true.
    """
    width, height = 48 + len(name), 32
    overlay = png(Image.new("RGB", (width, height), (200, 30, 30)).convert("P"))
    part = parts.part_id([name])
    geojson = slick_samples.encoded(name, slicks, georeferenced=georeferenced) if slicks is not None else None
    outputs = parts.Outputs(output, png(Image.new("L", (width, height))), overlay, slicks_geojson=geojson)
    parts.write_part(folder.part_path(part), [outputs])
    geo = slick_samples.geo(georeferenced, slicks=len(slicks)) if slicks is not None else None
    result = ImageResult(
        name=name,
        output=output,
        status="ok",
        width=width,
        height=height,
        oil_pixels=96,
        oil_fraction=0.0625,
        geo=geo,
    )
    store.images.record_results(
        job_id, [result], model_version="t", user_hash=folder.root.name, parts={output: part}
    )
    return overlay


def record_failed(store: JobStore, job_id: str, folder: UserDir, name: str, output: str) -> None:
    result = ImageResult(name=name, output=output, status="failed", error="cannot read image: truncated")
    store.images.record_result(job_id, result, model_version=None, user_hash=folder.root.name)


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_malformed_hashes_are_404_without_touching_the_disk(
    client: TestClient, results_root: Path, token: str
) -> None:
    for path in (f"/api/results/{token}/{route}" for route in ROUTES):
        response = client.get(path)
        assert response.status_code == 404, path
        assert isinstance(response.json()["detail"], str)
    assert not results_root.exists()


def test_unknown_hash_is_404_and_creates_nothing(client: TestClient, results_root: Path) -> None:
    token = new_token()
    for path in (f"/api/results/{token}/{route}" for route in ROUTES):
        response = client.get(path)
        assert response.status_code == 404
        assert "never existed" in response.json()["detail"]
    assert not (results_root / token).exists()


def test_images_grow_while_the_job_runs_and_their_overlays_are_served(
    client: TestClient, store: JobStore
) -> None:
    outputs = {"a/x.png": "a/x.png", "b c#1.jpg": "b c#1.png", "bad.png": "bad.png"}
    job_id, folder = make_job(store, outputs)
    url = f"/api/results/{folder.root.name}/images"
    body = client.get(url).json()
    assert (body["job_id"], body["state"], body["total"], body["done"], body["images"]) == (
        job_id,
        "processing",
        3,
        0,
        [],
    )

    first = record_ok(store, job_id, folder, "a/x.png", "a/x.png")
    body = client.get(url).json()
    assert [i["name"] for i in body["images"]] == ["a/x.png"]
    assert body["images"][0]["overlay_url"] == f"/api/results/{folder.root.name}/overlays/a/x.png"

    second = record_ok(store, job_id, folder, "b c#1.jpg", "b c#1.png")
    record_failed(store, job_id, folder, "bad.png", "bad.png")
    body = client.get(url).json()
    assert (body["done"], body["failed"]) == (2, 1)
    images = {i["name"]: i for i in body["images"]}
    assert list(images) == ["a/x.png", "b c#1.jpg", "bad.png"]
    assert images["bad.png"]["status"] == "failed"
    assert images["bad.png"]["overlay_url"] is None and "truncated" in images["bad.png"]["error"]
    # Characters that mean something in a URL are escaped, and the escaped URL leads back to the file.
    assert images["b c#1.jpg"]["overlay_url"].endswith("/overlays/b%20c%231.png")
    for name, expected in (("a/x.png", first), ("b c#1.jpg", second)):
        image = images[name]
        assert image["oil_fraction"] == 0.0625
        response = client.get(image["overlay_url"])
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert response.content == expected
        with Image.open(io.BytesIO(response.content)) as png:
            assert png.size == (image["width"], image["height"])


def test_overlay_serves_only_this_jobs_overlays(client: TestClient, store: JobStore) -> None:
    outputs = {n: n for n in ("x.png", "later.png", "bad.png", "gone.png", "other.png", "../x.png")}
    job_id, folder = make_job(store, outputs)
    secret = b"PK not an overlay"
    record_ok(store, job_id, folder, "x.png", "x.png")
    record_ok(store, job_id, folder, "gone.png", "gone.png")
    folder.part_path(parts.part_id(["gone.png"])).unlink()  # its part disappeared
    folder.archive.write_bytes(secret)
    # Records as a tampered Redis could hold them: part ids that are not tokens, a part without the entry.
    store.client.hset(f"{PREFIX}job:{job_id}:parts", mapping={"bad.png": "../archive", "../x.png": "../x"})
    store.client.hset(f"{PREFIX}job:{job_id}:parts", "other.png", parts.part_id(["x.png"]))
    base = f"/api/results/{folder.root.name}/overlays"
    names = [
        "extra.png",  # not an output of this job
        "later.png",  # not processed yet
        "gone.png",
        "bad.png",
        "other.png",  # its recorded part does not hold it
        "X.PNG",
        "x.png/",
        "%2e%2e/x.png",
        "..%2Fx.png",
        "%2e%2e%2farchive.zip",
        "%2Fetc%2Fpasswd",
        "",
    ]
    for name in names:
        response = client.get(f"{base}/{name}")
        assert response.status_code == 404, name
        assert response.content != secret
    assert client.get(f"{base}/x.png").status_code == 200
    assert sorted(p.name for p in folder.root.iterdir()) == ["archive.zip", "parts"]  # nothing created


def test_expired_results_are_410_and_nothing_is_recreated(client: TestClient, store: JobStore) -> None:
    overdue_id, overdue = make_job(store, {"x.png": "x.png"})
    record_ok(store, overdue_id, overdue, "x.png", "x.png")
    finish(store, overdue_id, overdue.root.name, JobState.COMPLETED, expires_in=-1)  # sweeper not there yet
    gone_id, gone = make_job(store, {"x.png": "x.png"})
    record_ok(store, gone_id, gone, "x.png", "x.png")
    finish(store, gone_id, gone.root.name, JobState.COMPLETED, expires_in=100)
    ResultsDir(settings.RESULTS_DIR).delete_user(gone.root.name)  # files gone before the record says so
    expired_id, expired = make_job(store, {"x.png": "x.png"}, folder=False)
    finish(store, expired_id, expired.root.name, JobState.COMPLETED, expires_in=-1)
    store.mark_expired(expired_id, expired.root.name)
    for folder in (overdue, gone, expired):
        for path in ROUTES:
            response = client.get(f"/api/results/{folder.root.name}/{path}")
            assert response.status_code == 410, (folder, path)
            assert "expired" in response.json()["detail"]
    assert not gone.root.exists() and not expired.root.exists()


def test_a_failed_job_lists_its_errors(client: TestClient, store: JobStore) -> None:
    job_id, folder = make_job(store, {"a.png": "a.png"})
    record_failed(store, job_id, folder, "a.png", "a.png")
    finish(store, job_id, folder.root.name, JobState.FAILED, expires_in=100)
    body = client.get(f"/api/results/{folder.root.name}/images").json()
    assert body["state"] == "failed"
    assert [(i["name"], i["status"], i["overlay_url"]) for i in body["images"]] == [("a.png", "failed", None)]


def test_slicks_are_merged_while_the_job_runs_then_read_from_the_archive(
    client: TestClient, store: JobStore
) -> None:
    outputs = {
        "b/gulf.tif": "b/gulf.png",
        "a/tile.png": "a/tile.png",
        "bad.png": "bad.png",
        "old.png": "old.png",
    }
    job_id, folder = make_job(store, outputs)
    url = f"/api/results/{folder.root.name}/slicks"
    empty = client.get(url)
    assert empty.status_code == 200 and empty.headers["content-type"] == "application/geo+json"
    assert empty.json() == {"type": "FeatureCollection", "features": []}

    record_ok(store, job_id, folder, "b/gulf.tif", "b/gulf.png", slicks=[0.5, 0.2])
    record_ok(store, job_id, folder, "a/tile.png", "a/tile.png", slicks=[30.0], georeferenced=False)
    record_ok(store, job_id, folder, "old.png", "old.png")  # segmented before slicks: no collection
    record_failed(store, job_id, folder, "bad.png", "bad.png")
    body = client.get(url).json()
    SlickCollection.model_validate(body)  # what /docs says is what comes
    assert [f["id"] for f in body["features"]] == ["b/gulf.tif#1", "b/gulf.tif#2"]
    assert body["not_georeferenced"] == ["a/tile.png"]
    every = client.get(url, params={"include_pixel": "true"}).json()
    assert [f["id"] for f in every["features"]] == ["a/tile.png#1", "b/gulf.tif#1", "b/gulf.tif#2"]
    assert "not_georeferenced" not in every

    images = {i["name"]: i for i in client.get(f"/api/results/{folder.root.name}/images").json()["images"]}
    assert images["b/gulf.tif"]["geo"] == slick_samples.geo(True, slicks=2).model_dump()
    assert images["a/tile.png"]["geo"]["georeferenced"] is False
    assert images["a/tile.png"]["geo"]["reason"] == "not a GeoTIFF"
    assert images["bad.png"]["geo"] is None and images["old.png"]["geo"] is None

    # Archived: the archive's slicks.geojson, as written (here one that differs, to tell where it came from).
    archived = {"type": "FeatureCollection", "features": [], "not_georeferenced": ["from the archive"]}
    with zipfile.ZipFile(folder.archive, "w") as zf:
        zf.writestr("slicks.geojson", json.dumps(archived))
        zf.writestr("slicks/a/tile.geojson", slick_samples.encoded("a/tile.png", [7.0], georeferenced=False))
    finish(store, job_id, folder.root.name, JobState.COMPLETED, expires_in=100)
    assert client.get(url).json() == archived
    every = client.get(url, params={"include_pixel": "true"}).json()
    assert [f["id"] for f in every["features"]] == ["a/tile.png#1"]  # from the archive's slicks/ too
    assert every["features"][0]["properties"]["area_px"] == 7
    assert sorted(p.name for p in folder.root.iterdir()) == ["archive.zip", "parts"]  # nothing created


def test_slicks_of_a_failed_job_are_an_empty_collection(client: TestClient, store: JobStore) -> None:
    job_id, folder = make_job(store, {"a.png": "a.png"})
    record_failed(store, job_id, folder, "a.png", "a.png")
    finish(store, job_id, folder.root.name, JobState.FAILED, expires_in=100)
    response = client.get(f"/api/results/{folder.root.name}/slicks")
    assert response.status_code == 200
    assert response.json() == {"type": "FeatureCollection", "features": []}


def test_tampered_part_records_give_no_slicks_and_no_error(client: TestClient, store: JobStore) -> None:
    job_id, folder = make_job(store, {"x.tif": "x.png", "y.tif": "y.png"})
    record_ok(store, job_id, folder, "x.tif", "x.png", slicks=[0.5])
    record_ok(store, job_id, folder, "y.tif", "y.png", slicks=[0.5])
    store.client.hset(f"{PREFIX}job:{job_id}:parts", mapping={"x.png": "../archive"})
    folder.part_path(parts.part_id(["y.tif"])).write_bytes(b"PK\x03\x04 not a zip")
    response = client.get(f"/api/results/{folder.root.name}/slicks")
    assert response.status_code == 200 and response.json()["features"] == []


def test_openapi_documents_the_results_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    images = paths["/api/results/{user_hash}/images"]["get"]
    overlay = paths["/api/results/{user_hash}/overlays/{name}"]["get"]
    slicks = paths["/api/results/{user_hash}/slicks"]["get"]
    for operation in (images, overlay, slicks):
        assert operation["summary"] and {"200", "404", "410"} <= set(operation["responses"])
    assert "image/png" in overlay["responses"]["200"]["content"]
    collection = slicks["responses"]["200"]["content"]["application/geo+json"]["schema"]["$ref"]
    assert collection.endswith("/SlickCollection")
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    properties = schemas["SlickProperties"]["properties"]
    assert all(properties[name].get("description") for name in ("area_km2", "length_km", "confidence"))
    # every field of an image's geo (the ML service's GeoInfo) is described
    geo = schemas["ImageGeo"]["properties"]
    assert set(geo) == set(GeoInfo.model_fields) and all(field.get("description") for field in geo.values())
    assert "geo" in schemas["ImageSummary"]["properties"]
    assert "/" not in paths  # the page is not part of the API


def test_the_web_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (("app.js", "javascript"), ("gallery.js", "javascript"), ("style.css", "text/css")):
        assert f"/static/{asset}" in page.text
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert client.get("/static/%2e%2e/main.py").status_code == 404
