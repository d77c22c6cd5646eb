"""Property test: scanning random hostile zips writes nothing, and accepted images have distinct names.

Each accepted image must also read back from its recorded entry, starting with an image signature.
"""

import stat
import tempfile
import unicodedata
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from backend.storage.layout import output_names
from backend.upload.entries import read_entry
from backend.upload.errors import UploadError
from backend.upload.scan import ZipLimits, scan_images

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
# every example also exercises accepting entries and de-duplication, not only rejection.
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
DEPTH = 8  # the zip lies this deep below the snapshot root, deeper than the '..' runs generated above


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


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    """Every path under root: size, mtime and, for plain files, content."""
    found = {}
    for path in root.rglob("*"):
        stat_result = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        found[str(path.relative_to(root))] = (stat_result.st_size, stat_result.st_mtime_ns, content)
    return found


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=ENTRIES)
def test_random_hostile_zips_write_nothing_and_names_stay_distinct(
    entries: list[tuple[str, str, bytes]], make_image: Callable[..., bytes]
) -> None:
    images = {"png": make_image("PNG"), "jpeg": make_image("JPEG"), "tiff": make_image("TIFF")}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        upload = root.joinpath(*[f"level{i}" for i in range(DEPTH)], "upload.zip")
        upload.parent.mkdir(parents=True)
        build(entries, images, upload)
        before = snapshot(root)
        try:
            result = scan_images(upload, LIMITS)
        except UploadError as error:
            event(f"refused {error.status_code}: {error.detail[:22]}")
            assert 400 <= error.status_code < 500
            assert error.detail
            assert snapshot(root) == before
            return

        event(f"accepted {min(len(result.images), 3)}+ images, skipped {min(len(result.skipped), 3)}+")
        assert snapshot(root) == before
        with upload.open("rb") as file:
            for image in result.images:
                assert read_entry(file, image.entry, max_bytes=1 << 20)[:2] in (
                    b"\x89P",
                    b"\xff\xd8",
                    b"II",
                    b"MM",
                )
        names = [image.name for image in result.images]
        assert len(set(names)) == len(names)
        outputs = output_names(names).values()
        keys = [unicodedata.normalize("NFKC", name).casefold() for name in outputs]
        assert len(set(keys)) == len(keys)
        with zipfile.ZipFile(upload) as archive:  # folder records are left out, neither images nor skipped
            folders = sum(
                i.filename.endswith("/") or (i.filename.endswith("\\") and not i.file_size)
                for i in archive.infolist()
            )
        assert len(result.images) + len(result.skipped) == len(entries) - folders
