"""What the ML service adds for one image with geo=true: its slicks as GeoJSON, a COG mask, a GeoInfo.

Every image gets `slicks.geojson` (lon/lat when georeferenced, pixel coordinates otherwise: see
ml.geo.geojson); a georeferenced one also gets the COG mask with its own CRS and transform or GCPs.
The land mask (ml.geo.landmask, ~0.8 GB, loaded once on first need) is consulted only for georeferenced
images that have slicks, and only when `drop_on_land` is set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from common.wire import GeoInfo
from ml.geo.cog import write_mask_cog
from ml.geo.geojson import feature_collection
from ml.geo.georef import Georef
from ml.geo.landmask import drop_land
from ml.geo.vectorise import Slick, vectorise
from ml.imaging import Decoded


@dataclass(frozen=True)
class SlickRules:
    """Which connected oil regions become slicks (ML_MIN_SLICK_KM2, ML_MIN_SLICK_PIXELS, ML_DROP_ON_LAND)."""

    min_area_km2: float = 0.01
    min_pixels: int = 16
    drop_on_land: bool = True


@dataclass(frozen=True)
class GeoProducts:
    info: GeoInfo
    slicks_geojson: bytes
    mask_cog: bytes | None  # None when the image is not georeferenced


def geo_products(
    name: str, decoded: Decoded, mask: np.ndarray, prob: np.ndarray, rules: SlickRules
) -> GeoProducts:
    """Vectorise one segmented image and describe where it lies."""
    georef, valid = decoded.georef, decoded.image.valid
    slicks = vectorise(
        mask, prob, valid, georef, min_pixels=rules.min_pixels, min_area_km2=rules.min_area_km2
    )
    cog = write_mask_cog(mask, valid, georef) if georef is not None else None
    return described(name, decoded.georef, decoded.georef_reason, decoded.acquired, slicks, rules, cog)


def described(
    name: str,
    georef: Georef | None,
    georef_reason: str | None,
    acquired: str | None,
    slicks: list[Slick],
    rules: SlickRules,
    cog: bytes | None,
) -> GeoProducts:
    """The products of vectorised slicks: those on land dropped (by `rules`), the GeoJSON, the GeoInfo.

    Apart from geo_products so that a scene (ml.scene.segment) can free its pixel grids before the land
    mask is loaded: both at once would not fit its memory bound.
    """
    on_land: list[Slick] = []
    if georef is not None and rules.drop_on_land and slicks:
        slicks, on_land = drop_land(slicks)
    collection = feature_collection(slicks, image=name, georeferenced=georef is not None, acquired=acquired)
    if georef is not None:
        info = GeoInfo(
            **georef.summary(),
            acquired=acquired,
            slicks=len(slicks),
            slicks_on_land=len(on_land),
            oil_km2=round(sum(s.area_km2 or 0.0 for s in slicks), 6),
        )
    else:
        info = GeoInfo(georeferenced=False, reason=georef_reason, acquired=acquired, slicks=len(slicks))
    return GeoProducts(info, json.dumps(collection, separators=(",", ":")).encode(), cog)
