"""Scenes: images too large to travel in a request body go to the ML service by path (issue 17).

A TIFF entry of more than SCENE_MIN_MB (a Sentinel-1 GRD measurement file is ~800 MB) is extracted from
upload.zip, streamed and CRC-checked, to `results/<user>/work/<token>.tif`; the ML service (POST
/segment/scene) reads it in place from the same folder (its ML_SCENE_DIR) window by window, so neither
process ever holds the scene's bytes, let alone twice (a request body and its decoded copy). The work file
is deleted as soon as the service has answered; one left by a killed worker goes with the user's folder when
the job expires. The answer is the processing-resolution mask, overlay, COG mask and slicks: checked against
the scene's size divided by the decimation the service reports.
"""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path, PurePosixPath

from PIL import TiffImagePlugin

from backend.core.config import MB, settings
from backend.jobs.models import ImageResult
from backend.storage import parts
from backend.storage.layout import UserDir, new_token
from backend.upload.entries import ZipEntry, extract_entry
from backend.worker.ml_client import MLClient, Segmentation
from backend.worker.outputs import checked_outputs

SCENE_SUFFIXES = (".tif", ".tiff")


def is_scene(name: str, record: str | None) -> bool:
    """A TIFF whose uncompressed size is over SCENE_MIN_MB (not a malformed record: read_input says why)."""
    if record is None or not name.lower().endswith(SCENE_SUFFIXES):
        return False
    try:
        return ZipEntry.from_record(record).file_size > settings.SCENE_MIN_MB * MB
    except ValueError:
        return False


def segment_scene(
    ml: MLClient, results_root: Path, folder: UserDir, name: str, record: str, output: str
) -> tuple[ImageResult, parts.Outputs, str | None]:
    """Extract, segment in place, check: the result, its files and the model version; ValueError (the
    image's fault) or MLServiceError (the service's)."""
    folder.work.mkdir(exist_ok=True)
    work = folder.work / f"{new_token()}.tif"
    try:
        with folder.upload.open("rb") as archive, work.open("wb") as dest:
            extract_entry(archive, ZipEntry.from_record(record), dest, settings.MAX_UNCOMPRESSED_MB * MB)
        size = tiff_size(work)
        if size[0] * size[1] > settings.SCENE_MAX_PIXELS:
            raise ValueError(
                f"scene has {size[0]}x{size[1]} pixels, over the limit of {settings.SCENE_MAX_PIXELS}"
            )
        relative = work.resolve().relative_to(results_root.resolve()).as_posix()
        segmentation = ml.segment_scene(relative, PurePosixPath(name).name)
    except OSError as exc:
        raise ValueError(f"cannot extract the scene from the upload: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            work.unlink()
    result, files = checked_outputs(name, output, mask_size(size, segmentation), segmentation)
    return result, files, segmentation.model_version


def tiff_size(path: Path) -> tuple[int, int]:
    """(width, height) from the TIFF's first IFD (no pixel decoded); ValueError if it is not a readable TIFF.

    Pillow's TIFF parser itself, not Image.open, whose bomb guard (179 MP) would refuse every GRD scene:
    the limit here is SCENE_MAX_PIXELS, checked by the caller.
    """
    try:
        with path.open("rb") as file, TiffImagePlugin.TiffImageFile(file) as im:
            width, height = im.size
            return width, height
    except (
        OSError,
        SyntaxError,
        ValueError,
        struct.error,
    ) as exc:  # Pillow says "not a TIFF file" by SyntaxError
        raise ValueError(f"cannot read image: not a readable TIFF ({exc})") from exc


def mask_size(size: tuple[int, int], segmentation: Segmentation) -> tuple[int, int]:
    """The mask's (width, height): the scene's divided by the service's decimation; ValueError otherwise."""
    factor = segmentation.decimation or 1
    expected = (size[0] // factor, size[1] // factor)
    if (segmentation.width, segmentation.height) != expected:
        raise ValueError(
            f"ML service answered a {segmentation.width}x{segmentation.height} mask for a "
            f"{size[0]}x{size[1]} scene at decimation {factor}"
        )
    return expected
