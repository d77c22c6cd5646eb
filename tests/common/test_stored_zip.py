"""ml.stored_zip against zipfile and unzip's view of the format: what one writes, the other reads."""

from __future__ import annotations

import io
import os
import time
import zipfile

import pytest

from common import stored_zip

FILES = [
    ("results.json", b'{"images": []}'),
    ("0/mask.png", os.urandom(70_000)),
    ("überlauf/öl.png", b"x" * 10),
    ("empty.png", b""),
]


def test_written_zip_reads_back_with_zipfile_as_is() -> None:
    body = stored_zip.write(FILES)
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.testzip() is None  # every CRC right
        assert zf.namelist() == [name for name, _ in FILES]
        for name, data in FILES:
            assert zf.read(name) == data
        infos = zf.infolist()
    assert all(info.compress_type == zipfile.ZIP_STORED for info in infos)
    assert all(info.external_attr >> 16 == 0o600 for info in infos)
    assert infos[2].flag_bits & 0x800  # the non-ASCII name is marked UTF-8
    written = time.mktime((*infos[0].date_time, 0, 0, -1))
    assert abs(written - time.time()) < 120  # dated now, like zipfile's writestr


def test_reads_what_zipfile_writes_stored_or_deflated() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("stored.png", b"s" * 1000, compress_type=zipfile.ZIP_STORED)
        zf.writestr("deflated.json", b"d" * 1000, compress_type=zipfile.ZIP_DEFLATED)
    assert stored_zip.read(buffer.getvalue()) == {"stored.png": b"s" * 1000, "deflated.json": b"d" * 1000}
    assert stored_zip.read(stored_zip.write(FILES)) == dict(FILES)


def test_a_changed_byte_or_a_cut_body_is_a_bad_zip() -> None:
    body = bytearray(stored_zip.write(FILES))
    at = body.index(FILES[1][1][:64]) + 1000  # inside 0/mask.png's bytes
    body[at] ^= 0xFF
    with pytest.raises(zipfile.BadZipFile, match="CRC"):
        stored_zip.read(bytes(body))
    with pytest.raises(zipfile.BadZipFile):
        stored_zip.read(stored_zip.write(FILES)[:-30])  # end of central directory cut off


def test_sizes_past_the_zip32_limits_go_through_zipfile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stored_zip, "_LIMIT", 50_000)  # stands in for 4 GiB
    body = stored_zip.write(FILES)
    assert stored_zip.read(body) == dict(FILES)
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.testzip() is None
