"""receive_upload through a real Starlette app: limits while streaming, malformed bodies, no stray files."""

import asyncio
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.types import Message
from upload_app import create_app  # sibling module: pytest puts this test folder on sys.path

from backend.upload.stream import FORM_OVERHEAD_BYTES

BOUNDARY = "----hostile-boundary-7MA4YWxkTrZu0gW"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, data: bytes, filename: str | None = "upload.zip") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (
        (
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + b"\r\n"
    )


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def dest_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "user"
    folder.mkdir()
    return folder


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty temp dir that tempfile (and so any spooling upload parser) would use."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def client(dest_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(dest_dir, max_bytes=1 << 20)) as test_client:
        yield test_client


def payload(size: int) -> bytes:
    """Random bytes peppered with near-boundaries, which a sloppy parser would cut at.

    Each near-boundary is followed by a byte that is not the boundary's last one: left random, 1 in 256 of
    them completed the real boundary and made the body malformed for real.
    """
    near = f"\r\n--{BOUNDARY[:-1]}".encode() + bytes([ord(BOUNDARY[-1]) ^ 1])
    data = bytearray(os.urandom(size))
    for at in range(0, size - len(near), 9973):
        data[at : at + len(near)] = near
    return bytes(data)


def test_works_with_an_ordinary_client_form(client: TestClient, dest_dir: Path) -> None:
    data = payload(50_000)
    response = client.post("/upload", files={"file": ("x.zip", data, "application/zip")}, data={"a": "b"})
    assert response.status_code == 200
    assert (dest_dir / "upload.bin").read_bytes() == data


def test_empty_file_field_is_accepted_as_zero_bytes(client: TestClient, dest_dir: Path) -> None:
    response = client.post("/upload", content=body(part("file", b"")), headers={"content-type": CONTENT_TYPE})
    assert response.json() == {"size": 0}
    assert (dest_dir / "upload.bin").read_bytes() == b""


def drive(app: Starlette, pieces: Iterator[bytes], disconnect: bool = False) -> tuple[int, dict[str, str]]:
    """Call the ASGI app with a body that arrives piece by piece (TestClient reads the whole body first)."""
    status, payload_parts = 0, []

    async def receive() -> Message:
        piece = next(pieces, None)
        if piece is None:
            return {"type": "http.disconnect"} if disconnect else {"type": "http.request", "body": b""}
        return {"type": "http.request", "body": piece, "more_body": True}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            payload_parts.append(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/upload",
        "raw_path": b"/upload",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", CONTENT_TYPE.encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    return status, json.loads(b"".join(payload_parts))


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 65536, 10**7])
def test_streams_the_file_field_exactly_whatever_the_chunking(
    dest_dir: Path, spool_dir: Path, chunk_size: int
) -> None:
    data = payload(3_000_000 if chunk_size > 1 else 20_000)
    raw = body(part("note", b"ignored", None), part("file", data), part("after", b"also ignored", None))
    status, response = drive(create_app(dest_dir, max_bytes=10 << 20), chunks(raw, chunk_size))
    assert (status, response) == (200, {"size": len(data)})
    assert (dest_dir / "upload.bin").read_bytes() == data
    assert list(spool_dir.iterdir()) == []


def test_oversized_upload_is_cut_off_mid_stream(dest_dir: Path, spool_dir: Path) -> None:
    max_bytes, chunk = 1 << 20, 64 << 10
    dest = dest_dir / "upload.bin"
    sent, largest = 0, 0

    def stream() -> Iterator[bytes]:
        nonlocal sent, largest
        yield part("file", b"")[:-2]  # headers only; the data follows
        for _ in range(320):  # 20 MiB offered in total
            largest = max(largest, dest.stat().st_size if dest.exists() else 0)
            sent += chunk
            yield os.urandom(chunk)
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    status, response = drive(create_app(dest_dir, max_bytes=max_bytes), stream())
    assert status == 413
    assert "limit" in response["detail"]
    assert sent <= max_bytes + chunk
    assert largest <= max_bytes + chunk
    assert not dest.exists()
    assert list(spool_dir.iterdir()) == []


def test_client_disconnect_mid_upload_is_400_and_cleaned_up(dest_dir: Path) -> None:
    raw = part("file", payload(3 << 20))
    status, response = drive(create_app(dest_dir, max_bytes=10 << 20), chunks(raw, 65536), disconnect=True)
    assert status == 400
    assert "disconnected" in response["detail"]
    assert not (dest_dir / "upload.bin").exists()


def test_declared_content_length_over_the_limit_is_refused_before_reading(
    client: TestClient, dest_dir: Path
) -> None:
    raw = body(part("file", bytes(2 << 20)))
    response = client.post("/upload", content=raw, headers={"content-type": CONTENT_TYPE})
    assert response.status_code == 413
    assert not (dest_dir / "upload.bin").exists()


def test_file_just_at_the_limit_is_accepted(client: TestClient) -> None:
    raw = body(part("file", bytes(1 << 20)))
    response = client.post("/upload", content=raw, headers={"content-type": CONTENT_TYPE})
    assert response.json() == {"size": 1 << 20}
    raw = body(part("file", bytes((1 << 20) + 1)))
    assert client.post("/upload", content=raw, headers={"content-type": CONTENT_TYPE}).status_code == 413


def test_missing_field_is_422(client: TestClient) -> None:
    raw = body(part("files", b"PK\x05\x06" + bytes(18)), part("note", b"x", None))
    response = client.post("/upload", content=raw, headers={"content-type": CONTENT_TYPE})
    assert response.status_code == 422
    assert response.json() == {"detail": "missing form field 'file'"}


def test_custom_field_name(dest_dir: Path) -> None:
    with TestClient(create_app(dest_dir, max_bytes=1000, field="archive")) as client:
        raw = body(part("file", b"wrong"), part("archive", b"right"))
        response = client.post("/upload", content=raw, headers={"content-type": CONTENT_TYPE})
    assert response.json() == {"size": 5}
    assert (dest_dir / "upload.bin").read_bytes() == b"right"


@pytest.mark.parametrize(
    ("content_type", "raw", "detail"),
    [
        ("application/zip", b"PK\x05\x06" + bytes(18), "expected a multipart/form-data body"),
        ("application/json", b'{"file": "x"}', "expected a multipart/form-data body"),
        ("multipart/form-data", body(part("file", b"x")), "without a boundary"),
        (CONTENT_TYPE, b"this is not multipart at all\r\n" * 100, "malformed"),
        (CONTENT_TYPE, b"", "truncated"),
        (CONTENT_TYPE, body(part("file", b"abc"))[:-30], "truncated"),
        (CONTENT_TYPE, f"--{BOUNDARY}\r\nno-colon-header\r\n\r\nx".encode(), "malformed"),
        (CONTENT_TYPE, body(part("file", b"a"), part("file", b"b")), "more than one 'file' field"),
        (
            CONTENT_TYPE,
            f"--{BOUNDARY}\r\n".encode() + b"".join(b"X-H%d: v\r\n" % i for i in range(50)) + b"\r\nx",
            "malformed",
        ),
        (f"multipart/form-data; boundary={'b' * 300}", b"--" + b"b" * 300, "malformed"),
    ],
)
def test_malformed_requests_are_400(
    client: TestClient, dest_dir: Path, content_type: str, raw: bytes, detail: str
) -> None:
    response = client.post("/upload", content=raw, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]
    assert not (dest_dir / "upload.bin").exists()
    assert client.get("/ping").status_code == 200


def test_other_fields_are_bounded(dest_dir: Path) -> None:
    raw = body(part("note", bytes(FORM_OVERHEAD_BYTES + 1), None), part("file", b"x"))
    status, response = drive(create_app(dest_dir, max_bytes=1 << 20), chunks(raw, 65536))
    assert status == 413
    assert "other form fields" in response["detail"]


def test_symlink_at_dest_is_not_followed(client: TestClient, dest_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (dest_dir / "upload.bin").symlink_to(victim)
    with pytest.raises(OSError):
        client.post("/upload", content=body(part("file", b"evil")), headers={"content-type": CONTENT_TYPE})
    assert victim.read_bytes() == b"precious"
