"""backend.storage.parts: one stored zip per ML request, read back by the archive and the overlay route."""

from __future__ import annotations

import errno
import os
import zipfile
from pathlib import Path

import pytest

from backend.storage import parts
from backend.storage.layout import is_token

ITEMS = [
    parts.Outputs("a/x.png", b"mask-a", b"overlay-a"),
    parts.Outputs("b.png", b"mask-b", b"overlay-b" * 1000),
]


def test_part_ids_are_deterministic_tokens() -> None:
    first = parts.part_id(["a.png", "b.png"])
    assert is_token(first)
    assert parts.part_id(["a.png", "b.png"]) == first  # a redelivery overwrites its own part
    assert parts.part_id(["b.png", "a.png"]) != first
    assert parts.part_id(["a.png\0b.png"]) != parts.part_id(["a.png", "b.png"])
    assert parts.part_id(['a.png", "b.png']) != parts.part_id(["a.png", "b.png"])
    assert parts.part_id(["a.png"]) != parts.part_id(["a.png", "b.png"])
    assert is_token(parts.part_id(["\udcff odd name.png"]))  # undecodable names from zips


def test_write_part_stores_each_file_under_its_archive_name(tmp_path: Path) -> None:
    path = tmp_path / "parts" / "p.zip"
    parts.write_part(path, iter(ITEMS))
    assert [p.name for p in path.parent.iterdir()] == ["p.zip"]  # no temporary file left
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["masks/a/x.png", "overlays/a/x.png", "masks/b.png", "overlays/b.png"]
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
        assert zf.read("overlays/b.png") == b"overlay-b" * 1000


def test_a_failed_write_leaves_no_part_and_no_temporary_file(tmp_path: Path) -> None:
    def items() -> object:
        yield ITEMS[0]
        raise OSError("disk full (test)")

    path = tmp_path / "p.zip"
    with pytest.raises(OSError, match="disk full"):
        parts.write_part(path, items())
    assert list(tmp_path.iterdir()) == []


def test_complete_and_open_overlay(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    parts.write_part(path, ITEMS)
    assert parts.complete(path, ["a/x.png", "b.png"])
    assert not parts.complete(path, ["a/x.png", "c.png"])
    assert not parts.complete(tmp_path / "missing.zip", ["a/x.png"])
    found = parts.open_overlay(path, "b.png")
    assert found is not None
    size, chunks = found
    assert size == 9000 and b"".join(chunks) == b"overlay-b" * 1000
    assert parts.open_overlay(path, "c.png") is None
    assert parts.open_overlay(tmp_path / "missing.zip", "b.png") is None
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not a zip")
    assert parts.open_overlay(tmp_path / "junk.zip", "b.png") is None
    assert not parts.complete(tmp_path / "junk.zip", ["b.png"])


def test_copy_outputs_copies_the_named_images_only(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    parts.write_part(path, ITEMS)
    with zipfile.ZipFile(tmp_path / "archive.zip", "w") as archive:
        parts.copy_outputs(archive, path, ["b.png"])
    with zipfile.ZipFile(tmp_path / "archive.zip") as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["masks/b.png", "overlays/b.png"]
        assert zf.read("masks/b.png") == b"mask-b"
        assert zf.getinfo("overlays/b.png").compress_type == zipfile.ZIP_STORED


def test_copied_entries_and_written_ones_make_one_valid_archive(tmp_path: Path) -> None:
    """Entries copied as they lie, from two parts, then a deflated report: every CRC and offset checks out."""
    parts.write_part(tmp_path / "p1.zip", ITEMS)
    parts.write_part(tmp_path / "p2.zip", [parts.Outputs("c.png", b"mask-c" * 500, b"overlay-c")])
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        parts.copy_outputs(zf, tmp_path / "p1.zip", ["b.png", "a/x.png"])  # not in the part's order
        parts.copy_outputs(zf, tmp_path / "p2.zip", ["c.png"])
        zf.writestr("report.json", "{}" * 100, compress_type=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == [
            "masks/b.png",
            "overlays/b.png",
            "masks/a/x.png",
            "overlays/a/x.png",
            "masks/c.png",
            "overlays/c.png",
            "report.json",
        ]
        assert zf.read("masks/c.png") == b"mask-c" * 500
        assert zf.read("overlays/b.png") == b"overlay-b" * 1000
        assert zf.read("report.json") == b"{}" * 100


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_whole_parts_copy_in_one_go_after_other_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: bool
) -> None:
    """A part wanted whole is copied as one block (by the kernel, or in chunks where it cannot)."""
    calls: list[int] = []
    real = os.copy_file_range

    def copy_file_range(src: int, dst: int, count: int, offset_src: int, offset_dst: int) -> int:
        calls.append(count)
        if not kernel_copy:
            raise OSError(errno.EXDEV, "cross-device")
        return real(src, dst, min(count, 1000), offset_src, offset_dst)  # short copies: the loop goes on

    monkeypatch.setattr(os, "copy_file_range", copy_file_range)
    parts.write_part(tmp_path / "p1.zip", ITEMS)
    parts.write_part(tmp_path / "p2.zip", [parts.Outputs("c.png", b"mask-c" * 500, b"overlay-c")])
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("first.txt", b"before the parts")
        parts.copy_outputs(zf, tmp_path / "p1.zip", [item.output for item in ITEMS])
        parts.copy_outputs(zf, tmp_path / "p2.zip", ["c.png"])
    assert calls  # the one-block path was taken
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == [
            "first.txt",
            *(name for item in ITEMS for name in (f"masks/{item.output}", f"overlays/{item.output}")),
            "masks/c.png",
            "overlays/c.png",
        ]
        for item in ITEMS:
            assert zf.read(f"overlays/{item.output}") == item.overlay_png
        assert zf.read("masks/c.png") == b"mask-c" * 500


GEO_ITEMS = [
    parts.Outputs("a/x.png", b"mask-a", b"overlay-a", slicks_geojson=b'{"a":1}', mask_tif=b"II*\x00cog-a"),
    parts.Outputs("b.jpg.png", b"mask-b", b"overlay-b", slicks_geojson=b'{"b":1}'),  # not georeferenced
]


def test_a_part_holds_cog_masks_and_slicks_beside_the_pngs(tmp_path: Path) -> None:
    path = tmp_path / "p.zip"
    parts.write_part(path, GEO_ITEMS)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [
            "masks/a/x.png",
            "overlays/a/x.png",
            "masks/a/x.tif",
            "slicks/a/x.geojson",
            "masks/b.jpg.png",
            "overlays/b.jpg.png",
            "slicks/b.jpg.geojson",
        ]
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    assert parts.entry_names("a/x~1.png") == (
        "masks/a/x~1.png",
        "overlays/a/x~1.png",
        "masks/a/x~1.tif",
        "slicks/a/x~1.geojson",
    )
    assert parts.complete(path, ["a/x.png", "b.jpg.png"])


@pytest.mark.parametrize("wanted", [["a/x.png", "b.jpg.png"], ["b.jpg.png"], ["b.jpg.png", "a/x.png"]])
def test_copy_outputs_copies_the_cog_and_slicks_where_there(tmp_path: Path, wanted: list[str]) -> None:
    """Whole (one block) or by entry, a part's optional files go along; old PNG-only parts still copy."""
    parts.write_part(tmp_path / "geo.zip", GEO_ITEMS)
    parts.write_part(tmp_path / "old.zip", [parts.Outputs("c.png", b"mask-c", b"overlay-c")])
    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        parts.copy_outputs(zf, tmp_path / "geo.zip", wanted)
        parts.copy_outputs(zf, tmp_path / "old.zip", ["c.png"])
    by_output = {item.output: dict(item.entries()) for item in GEO_ITEMS}
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == [name for out in wanted for name in by_output[out]] + [
            "masks/c.png",
            "overlays/c.png",
        ]
        for out in wanted:
            for name, data in by_output[out].items():
                assert zf.read(name) == data
