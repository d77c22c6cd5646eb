"""Zip entry name sanitising and de-duplication (backend.upload.names)."""

import unicodedata
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.upload.names import (
    MAX_COMPONENT_BYTES,
    MAX_DEPTH,
    NameRegistry,
    Rejected,
    collision_key,
    sanitize_entry_name,
    shorten_component,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("x.png", "x.png"),
        ("a/b/x.jpg", "a/b/x.jpg"),
        ("a\\b\\x.tif", "a/b/x.tif"),
        ("./a//b/./x.png", "a/b/x.png"),
        ("my scan 01.png", "my scan 01.png"),
        ("ünïcödé/日本語.png", "ünïcödé/日本語.png"),
        ("x.png. . ", "x.png"),
        ("folder /x.png", "folder/x.png"),
        ("a..b/x..png", "a..b/x..png"),
    ],
)
def test_accepts_and_normalises(raw: str, expected: str) -> None:
    assert sanitize_entry_name(raw) == PurePosixPath(expected)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("../../x.png", "traversal"),
        ("a/../../x.png", "traversal"),
        ("a/../x.png", "traversal"),
        ("..\\..\\x.png", "traversal"),
        ("a\\..\\..\\x.png", "traversal"),
        ("/etc/x.png", "absolute"),
        ("//server/share/x.png", "absolute"),
        ("\\x.png", "absolute"),
        ("\\\\server\\share\\x.png", "absolute"),
        ("C:\\Windows\\x.png", "drive"),
        ("c:/x.png", "drive"),
        ("C:x.png", "drive"),
        ("x.png:stream", "':'"),
        ("__MACOSX/._x.png", "__MACOSX"),
        ("a/__MACOSX/x.png", "__MACOSX"),
        (".hidden.png", "hidden"),
        ("a/.git/x.png", "hidden"),
        (".../x.png", "hidden"),
        ("x\x00.png", "control"),
        ("x\n.png", "control"),
        ("x\x1b[31m.png", "control"),
        ("x\x85.png", "control"),
        ("", "empty"),
        ("/", "absolute"),
        ("./", "empty"),
        ("a/ /x.png", "spaces"),
        ("/".join(["d"] * (MAX_DEPTH + 1)) + "/x.png", "deeper"),
        ("/".join(["d" * 150] * 8) + "/x.png", "longer"),
    ],
)
def test_rejects_with_reason(raw: str, reason: str) -> None:
    verdict = sanitize_entry_name(raw)
    assert isinstance(verdict, Rejected), verdict
    assert reason in verdict.reason


def test_nfd_names_become_nfc() -> None:
    nfd = unicodedata.normalize("NFD", "café.png")
    assert nfd != "café.png"
    assert sanitize_entry_name(nfd) == PurePosixPath("café.png")


def test_long_component_is_shortened_keeping_extension_and_uniqueness() -> None:
    first = sanitize_entry_name("é" * 300 + "A.png")
    second = sanitize_entry_name("é" * 300 + "B.png")
    assert isinstance(first, PurePosixPath)
    assert isinstance(second, PurePosixPath)
    assert first != second
    for path in (first, second):
        assert len(path.name.encode()) <= MAX_COMPONENT_BYTES
        assert path.suffix == ".png"
        path.name.encode().decode("utf-8")  # no split multi-byte character


def test_shorten_component_leaves_short_names_and_cuts_long_extensions() -> None:
    assert shorten_component("x.png") == "x.png"
    cut = shorten_component("x." + "e" * 300)
    assert len(cut.encode()) <= MAX_COMPONENT_BYTES
    assert shorten_component("y" * 500) != shorten_component("y" * 501)


@given(st.text(max_size=300))
def test_any_name_is_rejected_or_safe(raw: str) -> None:
    verdict = sanitize_entry_name(raw)
    if isinstance(verdict, Rejected):
        assert verdict.reason
        return
    assert not verdict.is_absolute()
    assert ".." not in verdict.parts
    assert all(part and not part.startswith(".") and "\\" not in part for part in verdict.parts)
    assert all(len(part.encode()) <= MAX_COMPONENT_BYTES for part in verdict.parts)


def test_registry_keeps_names_of_the_zip_and_numbers_only_repeats() -> None:
    registry = NameRegistry()
    names = ("a/x.png", "A/X.PNG", "a/x.png", "b/x.png", "a/x.png")
    claimed = [registry.claim(PurePosixPath(name)) for name in names]
    assert claimed == [
        PurePosixPath("a/x.png"),
        PurePosixPath("A/X.PNG"),  # another entry of the zip: its name is kept (outputs are kept apart)
        PurePosixPath("a/x (2).png"),
        PurePosixPath("b/x.png"),
        PurePosixPath("a/x (3).png"),
    ]


def test_registry_keeps_compatibility_forms_and_avoids_taken_numbers() -> None:
    registry = NameRegistry()
    assert registry.claim(PurePosixPath("x (2).png")) == PurePosixPath("x (2).png")
    assert registry.claim(PurePosixPath("x.png")) == PurePosixPath("x.png")
    assert registry.claim(PurePosixPath("x.png")) == PurePosixPath("x (3).png")
    assert registry.claim(PurePosixPath("ﬁle.png")) == PurePosixPath("ﬁle.png")
    assert registry.claim(PurePosixPath("file.png")) == PurePosixPath("file.png")


def test_registry_file_and_folder_with_the_same_name() -> None:
    registry = NameRegistry()
    assert registry.claim(PurePosixPath("a.png/x.png")) == PurePosixPath("a.png/x.png")
    assert registry.claim(PurePosixPath("A.PNG")) == PurePosixPath("A (2).PNG")
    assert registry.claim(PurePosixPath("b.png")) == PurePosixPath("b.png")
    verdict = registry.claim(PurePosixPath("B.png/y.png"))
    assert isinstance(verdict, Rejected)
    assert "same name as an earlier file" in verdict.reason


def test_collision_key_folds_case_and_compatibility_forms() -> None:
    assert collision_key(PurePosixPath("Straße/X.png")) == collision_key(PurePosixPath("STRASSE/x.PNG"))
    assert collision_key(PurePosixPath("a/x.png")) != collision_key(PurePosixPath("b/x.png"))
