"""Hostile uploads through POST /api/upload of a real API process (uvicorn) against the session's Redis.

For every case: a 4xx JSON error naming the problem (or a 202 that lists the entry as skipped), nothing
written outside RESULTS_DIR, no user folder left behind, and the next upload still accepted. The API runs
on its own Redis database and port, with small limits, so no worker ever picks up what it queues.
"""

import io
import os
import stat
import struct
import subprocess
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image

from backend.jobs.keys import PREFIX
from backend.upload.entries import ZipEntry, read_entry
from scripts import processes

ROOT = Path(__file__).resolve().parents[2]
MB = 1 << 20
LIMITS = {
    "MAX_UPLOAD_MB": "4",
    "MAX_UNCOMPRESSED_MB": "16",
    "MAX_COMPRESSION_RATIO": "100",
    "MAX_ZIP_ENTRIES": "50",
    "MAX_IMAGES": "10",
    "MIN_FREE_DISK_MB": "1",
}


@dataclass
class Api:
    url: str
    results: Path
    redis_url: str
    workdir: Path  # the process's cwd and TMPDIR: must stay empty

    def post(self, data: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
        if isinstance(data, bytes):
            return httpx.post(self.url + "/api/upload", files={"file": ("up.zip", data)}, timeout=60)
        return httpx.post(self.url + "/api/upload", content=data, headers=headers, timeout=60)

    def folders(self) -> set[str]:
        return {path.name for path in self.results.iterdir()} if self.results.exists() else set()


def zip_of(*entries: tuple[str | zipfile.ZipInfo, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def api(
    redis_url: str, free_port: Callable[[], int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    base = tmp_path_factory.mktemp("upload-api")
    workdir, results = base / "cwd", base / "results"
    workdir.mkdir()
    db_url = redis_url.rsplit("/", 1)[0] + "/7"  # nobody consumes this database's queues
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ML_", "CELERY"))}
    env |= LIMITS | {"REDIS_URL": db_url, "RESULTS_DIR": str(results), "TMPDIR": str(workdir)}
    env |= {"PYTHONPATH": str(ROOT), "ML_SERVICE_URL": "http://127.0.0.1:9"}
    command = processes.api("127.0.0.1", port, log_level="warning")
    log = (base / "api.log").open("wb")
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"API did not start:\n{(base / 'api.log').read_text()}")
            time.sleep(0.3)
        yield Api(url=url, results=results, redis_url=db_url, workdir=workdir)
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
        redis.Redis.from_url(db_url).flushdb()


@pytest.fixture(scope="module")
def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (32, 32), 90).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_still_serves(api: Api, png: bytes) -> None:
    before = api.folders()
    response = api.post(zip_of(("ok.png", png)))
    assert response.status_code == 202, response.text
    assert response.json()["images"] == 1
    assert len(api.folders() - before) == 1


def lying_zip(png: bytes) -> bytes:
    data = bytearray(zip_of(("first.png", png), ("liar.png", png + bytes(3000))))
    central = data.index(b"PK\x01\x02")
    central = data.index(b"PK\x01\x02", central + 1)
    struct.pack_into("<L", data, central + 24, 40)
    return bytes(data)


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


REFUSED: dict[str, tuple[Callable[[bytes], bytes], int, str]] = {
    "not a zip": (lambda png: b"MZ this is an executable, not a zip" * 50, 400, "not a zip"),
    "empty file": (lambda png: b"", 400, "empty"),
    "empty zip": (lambda png: zip_of(), 400, "empty"),
    "truncated zip": (lambda png: zip_of(("a.png", png), ("b.png", png))[:-40], 400, "truncated"),
    "only non-images": (lambda png: zip_of(("a.txt", b"x"), ("b.exe", b"MZ")), 400, "no images"),
    "nested zip only": (lambda png: zip_of(("in.zip", zip_of(("a.png", png)))), 400, "nested zip"),
    "only hostile names": (lambda png: zip_of(("../../x.png", png), ("/etc/y.png", png)), 400, "traversal"),
    "ratio bomb": (lambda png: zip_of(("bomb.png", png + bytes(8 * MB))), 413, "ratio"),
    "total too big": (
        lambda png: zip_of(*((f"{i}.png", png + os.urandom(MB)) for i in range(3)), ("z", bytes(15 * MB))),
        413,
        "expand",
    ),
    "too many entries": (lambda png: zip_of(*((f"{i}.txt", b"") for i in range(51))), 413, "entries"),
    "too many images": (lambda png: zip_of(*((f"{i}.png", png) for i in range(11))), 413, "images"),
    "lying directory": (lying_zip, 400, "liar.png"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_hostile_upload_is_refused_cleanly(api: Api, png: bytes, case: str) -> None:
    build, status_code, detail = REFUSED[case]
    before = api.folders()
    response = api.post(build(png))
    assert response.status_code == status_code, response.text
    assert detail in response.json()["detail"]
    assert api.folders() == before
    assert list(api.workdir.iterdir()) == []


def test_hostile_entries_are_skipped_and_nothing_escapes(api: Api, png: bytes) -> None:
    data = zip_of(
        ("../../escape.png", png),
        ("C:\\Windows\\evil.png", png),
        (symlink("link.png"), b"/etc/passwd"),
        ("__MACOSX/._ok.png", b"\x00\x05\x16\x07"),
        ("inner.zip", zip_of(("x.png", png))),
        ("empty.png", b""),
        ("text.png", b"not an image"),
        ("a/same.png", png),
        ("b/same.png", png),
        ("B/SAME.png", png),
    )
    before = api.folders()
    response = api.post(data)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["images"] == 3
    skipped = {entry["name"]: entry["reason"] for entry in body["skipped"]}
    assert set(skipped) == {
        "../../escape.png",
        "C:\\Windows\\evil.png",
        "link.png",
        "__MACOSX/._ok.png",
        "inner.zip",
        "empty.png",
        "text.png",
    }
    (user,) = api.folders() - before
    assert [p.name for p in (api.results / user).iterdir()] == ["upload.zip"]  # nothing extracted
    store = redis.Redis.from_url(api.redis_url, decode_responses=True)
    records = store.hgetall(f"{PREFIX}job:{body['job_id']}:entries")
    assert sorted(records) == ["B/SAME.png", "a/same.png", "b/same.png"]
    with (api.results / user / "upload.zip").open("rb") as file:
        for record in records.values():
            assert read_entry(file, ZipEntry.from_record(record), max_bytes=MB) == png
    assert not any(path.is_symlink() for path in api.results.rglob("*"))
    assert not (api.results.parent / "escape.png").exists()
    assert list(api.workdir.iterdir()) == []


def test_missing_field_is_422(api: Api, png: bytes) -> None:
    before = api.folders()
    response = httpx.post(api.url + "/api/upload", files={"upload": ("a.zip", zip_of(("a.png", png)))})
    assert response.status_code == 422
    assert "file" in response.json()["detail"]
    assert api.folders() == before


def test_oversized_stream_is_cut_off_and_the_service_keeps_serving(api: Api, png: bytes) -> None:
    offered, limit = 0, int(LIMITS["MAX_UPLOAD_MB"]) * MB

    def endless() -> Iterator[bytes]:
        nonlocal offered
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n\r\n'
        block = os.urandom(256 << 10)
        while offered < 50 * limit:
            offered += len(block)
            yield block

    before = api.folders()
    try:
        response = api.post(endless(), **{"content-type": "multipart/form-data; boundary=b"})
        assert response.status_code == 413
        assert "limit" in response.json()["detail"]
    except httpx.TransportError:
        pass  # the server closed the connection while the client was still sending: also a cut-off
    assert offered < 10 * limit, "the server kept reading after the limit"
    assert api.folders() == before
    assert_still_serves(api, png)


def test_after_all_that_a_normal_upload_still_works(api: Api, png: bytes) -> None:
    assert_still_serves(api, png)
