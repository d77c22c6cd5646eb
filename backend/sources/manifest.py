"""area.json, written by the fetching stage into the job's folder: what was asked, which scenes were found,
which windows were read from each and why some were not, and the scenes not read because inside the bboxes
they cover only land. The archive's scenes.json is this file; the archive writer reads it
(backend.storage.area_archive) to report the scenes and clip the slicks."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from backend.sources.request import AreaJobRequest, BBox
from backend.sources.search import Scene

MANIFEST = "area.json"


class SceneWindow(BaseModel):
    bbox: int = Field(description="Index of the bbox in the request.")
    name: str = Field(description="The window's image name (its masks and slicks are named after it).")
    status: Literal["read", "failed"]
    width: int | None = None
    height: int | None = None
    crs: str | None = None
    warped: bool | None = Field(None, description="Read through a warp of the scene's GCPs (GRD).")
    error: str | None = None


class SceneReport(Scene):
    status: Literal["read", "failed"] = "read"
    error: str | None = Field(None, description="Why the scene could not be read (credentials redacted).")
    bytes_read: int | None = Field(None, description="Bytes downloaded for its windows (GDAL's count).")
    windows: list[SceneWindow] = []


class AreaManifest(BaseModel):
    job_id: str
    request: AreaJobRequest
    collection: str
    datetime_window: tuple[str, str]
    scenes: list[SceneReport]
    sea_check: Literal["done", "off", "unavailable"] = Field(
        "done",
        description="Whether the windows were checked for sea before reading (backend.sources.sea): off "
        "with AREA_SEA_SAMPLES=0, unavailable when the ML service could not answer (all scenes kept).",
    )
    scenes_on_land: list[Scene] = Field(
        [], description="Scenes found whose footprint holds no sea inside the bboxes: not read."
    )

    @property
    def bboxes(self) -> list[BBox]:
        return list(self.request.bboxes)


def write_manifest(folder: Path, manifest: AreaManifest) -> None:
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(manifest.model_dump_json(indent=2))
    tmp.replace(folder / MANIFEST)


def read_manifest(folder: Path) -> AreaManifest:
    return AreaManifest.model_validate_json((folder / MANIFEST).read_text())
