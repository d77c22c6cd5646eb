"""Property test: random hostile zips never write outside dest_dir and never produce clashing names."""

import stat
import tempfile
import unicodedata
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from backend.upload_stream import UploadError
from backend.zip_extract import ZipLimits, extract_images

FOLDERS = ["scenes", "2021", "..", ".", "", "a", "A", "__MACOSX", ".git", "C:", "c:\\", " ", "x.png", "日本"]
FOLDERS += ["z" * 250, "e\u0301", "é"]
FILES = ["x.png", "X.PNG", "x.jpg", "y.tif", "b.JPEG", "é.png", "e\u0301.png", "ﬁle.png", "file.png"]
FILES += [".hidden.png", "name with spaces.jpeg", "z" * 250 + ".png", "日本語.tiff", "a.png.", "inner.zip"]
FILES += [".."]
SEPARATORS = st.sampled_from(["/", "\\", "//", "/./"])
STRUCTURED = st.builds(
    lambda folders, file, sep: sep.join([*folders, file]),
    st.lists(st.sampled_from(FOLDERS), max_size=3),
    st.sampled_from(FILES),
    SEPARATORS,
)
HOSTILE_TEXT = st.lists(
    st.sampled_from([*"./\\:aAb é\u0301ﬁ\x01\x1f\x7f\u202e", "..", "png"]), max_size=40
).map("".join)
NAMES = st.one_of(
    STRUCTURED,
    STRUCTURED,
    st.tuples(st.sampled_from(["", "/", "../", "C:\\"]), STRUCTURED).map("".join),
    st.tuples(HOSTILE_TEXT, st.sampled_from([".png", ".JPG", ".tif", ""])).map("".join),
    st.text(min_size=1, max_size=300).filter(lambda name: "\x00" not in name),
)
KINDS = st.sampled_from(["png", "jpeg", "tiff", "random", "empty", "signature", "symlink", "directory"])
HOSTILE_ENTRIES = st.lists(st.tuples(NAMES, KINDS, st.binary(max_size=64)), max_size=8)
# Valid images under benign but clashing names (case, NFC/NFD, compatibility forms, long names), so that
# every example also exercises writing files and de-duplication, not only rejection.
GOOD_FILES = [("x.png", "png"), ("X.PNG", "png"), ("x.jpg", "jpeg"), ("y.tif", "tiff"), ("é.png", "png")]
GOOD_FILES += [("e\u0301.png", "png"), ("ﬁle.png", "png"), ("file.png", "png"), ("日本語.tiff", "tiff")]
GOOD_FILES += [("name with spaces.jpeg", "jpeg"), ("z" * 250 + ".png", "png"), ("x (2).png", "png")]
GOOD_ENTRIES = st.lists(
    st.builds(
        lambda folders, file: ("/".join([*folders, file[0]]), file[1], b""),
        st.lists(st.sampled_from(["scenes", "a", "A", "日本", "e\u0301", "é", "z" * 250]), max_size=2),
        st.sampled_from(GOOD_FILES),
    ),
    min_size=1,
    max_size=4,
)
ENTRIES = st.tuples(GOOD_ENTRIES, HOSTILE_ENTRIES).flatmap(lambda pair: st.permutations(pair[0] + pair[1]))
LIMITS = ZipLimits(max_uncompressed_bytes=1 << 20, max_ratio=100.0, max_entries=10, max_images=8)
DEPTH = 8  # dest_dir lies this deep below the snapshot root, deeper than the '..' runs generated above


def build(entries: list[tuple[str, str, bytes]], images: dict[str, bytes], path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are part of the test
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, kind, noise in entries:
                info = zipfile.ZipInfo(name + "/" if kind == "directory" else name)
                if kind == "symlink":
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                data = {"random": noise, "empty": b"", "signature": b"\x89PNG\r\n\x1a\n" + noise}.get(
                    kind, images.get(kind, b"../../../../etc/passwd")
                )
                archive.writestr(info, data)


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() and not path.is_symlink() else None
        for path in root.rglob("*")
    }


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=ENTRIES)
def test_random_hostile_zips_stay_inside_dest(
    entries: list[tuple[str, str, bytes]], make_image: Callable[..., bytes]
) -> None:
    images = {"png": make_image("PNG"), "jpeg": make_image("JPEG"), "tiff": make_image("TIFF")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        upload = root / "upload.zip"
        build(entries, images, upload)
        dest = root.joinpath(*[f"level{i}" for i in range(DEPTH)], "images")
        before = snapshot(root)
        ancestors = {str(parent.relative_to(root)) for parent in dest.parents if root in parent.parents}
        try:
            result = extract_images(upload, dest, LIMITS)
        except UploadError as error:
            event(f"refused {error.status_code}: {error.detail[:22]}")
            assert 400 <= error.status_code < 500
            assert error.detail
            assert not dest.exists()
            assert set(snapshot(root)) - set(before) <= ancestors
            assert all(snapshot(root)[name] == content for name, content in before.items())
            return

        event(f"extracted {min(len(result.images), 3)}+ images, skipped {min(len(result.skipped), 3)}+")
        after = snapshot(root)
        changed = {name for name in after if before.get(name, b"missing") != after[name]}
        dest_rel = str(dest.relative_to(root))
        assert all(name in ancestors or name.startswith(dest_rel + "/") for name in changed - {dest_rel})
        assert all(name in after for name in before)

        resolved = dest.resolve()
        written = {path for path in dest.rglob("*") if path.is_file()}
        assert not any(path.is_symlink() for path in dest.rglob("*"))
        assert {image.path for image in result.images} == written
        for image in result.images:
            assert image.path.resolve().is_relative_to(resolved)
            assert image.path == resolved / image.name
            assert image.path.read_bytes()[:2] in (b"\x89P", b"\xff\xd8", b"II", b"MM")
        keys = [unicodedata.normalize("NFKC", image.name).casefold() for image in result.images]
        assert len(set(keys)) == len(keys)
        assert len(result.images) + len(result.skipped) == len(entries)
