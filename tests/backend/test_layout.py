from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backend.storage import layout
from backend.storage.layout import ResultsDir


def test_tokens_are_128_bit_lowercase_hex_and_fresh() -> None:
    tokens = {layout.new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(layout.is_token(t) and len(t) == 32 for t in tokens)


@pytest.mark.parametrize(
    "value",
    ["", "abc", "0" * 31, "0" * 33, "A" * 32, "g" * 32, "../" + "0" * 29, "0" * 32 + "\n", " " + "0" * 31],
)
def test_is_token_rejects_malformed(value: str) -> None:
    assert not layout.is_token(value)


def test_user_folders_refuse_non_tokens(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        ResultsDir(tmp_path).user("../etc")
    folder = ResultsDir(tmp_path).user("a" * 32)
    assert folder.root == tmp_path / ("a" * 32)
    assert folder.part_path("b" * 32) == tmp_path / ("a" * 32) / "parts" / ("b" * 32 + ".zip")


@pytest.mark.parametrize("bad", ["../" + "b" * 29, "b" * 31, "B" * 32, "", "b" * 32 + "/x", "b" * 33])
def test_part_path_takes_only_part_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        ResultsDir(tmp_path).user("a" * 32).part_path(bad)


def test_output_names_keep_folders_and_replace_extension() -> None:
    names = ["a/x.jpg", "b/x.jpg", "scene.tif", "deep/er/t.TIFF"]
    assert layout.output_names(names) == {
        "a/x.jpg": "a/x.png",
        "b/x.jpg": "b/x.png",
        "scene.tif": "scene.png",
        "deep/er/t.TIFF": "deep/er/t.png",
    }


def test_output_names_keep_extension_when_inputs_differ_only_by_it() -> None:
    out = layout.output_names(["x.jpg", "x.png", "y.png", "d/x.tif"])
    assert out == {"x.jpg": "x.jpg.png", "x.png": "x.png.png", "y.png": "y.png", "d/x.tif": "d/x.png"}


def test_output_names_are_unique_even_for_pathological_inputs() -> None:
    names = ["x.jpg", "x.png", "x.jpg.png", "X.JPG", "x.JPG", "a.png", "a.png.png"]
    out = layout.output_names(names)
    assert set(out) == set(names)
    assert len({o.casefold() for o in out.values()}) == len(names)
    assert all(o.endswith(".png") for o in out.values())
    assert layout.output_names(reversed(names)) == out  # deterministic whatever the order


def test_delete_user_is_idempotent(tmp_path: Path) -> None:
    token = layout.new_token()
    folder = ResultsDir(tmp_path).user(token)
    folder.parts.mkdir(parents=True)
    (folder.parts / ("b" * 32 + ".zip")).write_bytes(b"x")
    assert ResultsDir(tmp_path).delete_user(token) is True
    assert not folder.root.exists()
    assert ResultsDir(tmp_path).delete_user(token) is False


def test_free_disk_of_a_folder_not_created_yet(tmp_path: Path) -> None:
    free = ResultsDir(tmp_path / "not" / "yet").free_disk_mb()
    assert free > 0
    assert not (tmp_path / "not").exists()


def test_users_lists_only_token_folders_with_newest_mtime(tmp_path: Path) -> None:
    token = layout.new_token()
    (tmp_path / token).mkdir()
    (tmp_path / "not-a-token").mkdir()
    (tmp_path / ("b" * 32)).write_text("a file, not a folder")
    old = time.time() - 7200
    os.utime(tmp_path / token, (old, old))
    assert [(h, round(m)) for h, m in ResultsDir(tmp_path).users()] == [(token, round(old))]
    (tmp_path / token / "upload.zip").write_bytes(b"")  # an upload in progress makes the folder young
    (mtime,) = [m for _, m in ResultsDir(tmp_path).users()]
    assert mtime > time.time() - 60
    assert list(ResultsDir(tmp_path / "missing").users()) == []


def test_output_names_one_scheme_for_collisions_across_extensions_and_case() -> None:
    # The README's example: a.png, a.jpg, a.tif and A.PNG all in one zip (the upload keeps A.PNG's name).
    out = layout.output_names(["a.png", "a.jpg", "a.tif", "A.PNG", "b.tif"])
    assert out == {
        "A.PNG": "A.PNG.png",
        "a.jpg": "a.jpg.png",
        "a.png": "a.png~2.png",
        "a.tif": "a.tif.png",
        "b.tif": "b.png",
    }
