"""Scenes that touch the sea: each window (a scene's footprint within a bbox) checked before it is read.

The search keeps every IW/VV scene whose footprint touches a bbox, even where the part inside the bbox is
all land. The GSHHG land mask that tells (ml.geo.landmask) costs ~0.8 GB and seconds to load, too much for
every worker process, so the ML service, which holds it, is asked (POST /land/sea-fraction, through
MLClient.sea_fractions): a window with no sample point at sea is not read (its bbox moves to the scene's
`bboxes_on_land`); a scene with no window left is not fetched at all, counted and reported (scenes.json's
`scenes_on_land`). Scenes are checked closest in time first, a chunk at a time, until `max_scenes` are kept:
scenes on land take no place among them.

If the service cannot answer (or a catalogue's footprint cannot be cut by a bbox), the scenes not yet
checked are kept (fail open) and the reason is returned for the job's log: slicks on land are dropped later
anyway, so the cost is only the reading. The service's request waits for one of its segmentation slots
(ML_MAX_CONCURRENT: loading the mask counts against the same memory bound), within ML_TIMEOUT_SECONDS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shapely.errors import GEOSException
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

from backend.sources.request import AreaJobRequest
from backend.sources.search import Scene
from backend.worker.ml_client import MLServiceError

CHUNK = 50  # scenes per request to the service
Ask = Callable[[list[dict[str, Any]], int], list[float]]  # MLClient.sea_fractions


@dataclass
class SeaSplit:
    """The scenes to read (their windows at sea only), those all on land, and how the check went."""

    kept: list[Scene] = field(default_factory=list)
    on_land: list[Scene] = field(default_factory=list)
    check: Literal["done", "off", "unavailable"] = "done"
    problem: str | None = None  # why the service could not answer (check == "unavailable")


def window_area(footprint: BaseGeometry, bbox: tuple[float, float, float, float]) -> dict[str, Any]:
    """The footprint within the bbox as a GeoJSON polygon; a footprint that only touches the bbox's edge
    gives a line, sent as a thin polygon around it."""
    part = footprint.intersection(box(*bbox))
    if part.geom_type not in ("Polygon", "MultiPolygon"):
        polygons = [g for g in getattr(part, "geoms", []) if g.geom_type == "Polygon"]
        part = polygons[0] if len(polygons) == 1 else part.buffer(1e-6)
    return dict(mapping(part))


def pick_sea_scenes(
    scenes: Sequence[Scene], request: AreaJobRequest, ask: Ask, *, samples: int, limit: int
) -> SeaSplit:
    """The first `limit` scenes with a window at sea, in the given order; samples = 0 turns the check off."""
    if samples <= 0:
        return SeaSplit(kept=list(scenes[:limit]), check="off")
    split = SeaSplit()
    for start in range(0, len(scenes), CHUNK):
        if len(split.kept) >= limit:
            break
        chunk = scenes[start : start + CHUNK]
        windows = [(n, k) for n, scene in enumerate(chunk) for k in scene.bboxes]
        try:
            footprints = [shape(scene.footprint) for scene in chunk]
            areas = [window_area(footprints[n], request.bboxes[k]) for n, k in windows]
            fractions = ask(areas, samples)
        except MLServiceError as exc:
            split.check, split.problem = "unavailable", exc.detail
        except (ValueError, TypeError, GEOSException) as exc:  # a footprint shapely cannot cut
            split.check, split.problem = "unavailable", f"{type(exc).__name__}: {str(exc)[:200]}"
        if split.problem is not None:
            split.kept.extend(scenes[start:])
            break
        sea = {(n, k) for (n, k), share in zip(windows, fractions, strict=True) if share > 0}
        for n, scene in enumerate(chunk):
            if len(split.kept) >= limit:
                break
            at_sea = [k for k in scene.bboxes if (n, k) in sea]
            land = [k for k in scene.bboxes if (n, k) not in sea]
            checked = scene.model_copy(update={"bboxes": at_sea, "bboxes_on_land": land})
            (split.kept if at_sea else split.on_land).append(checked)
    split.kept = split.kept[:limit]  # those kept unchecked after a failure
    return split
