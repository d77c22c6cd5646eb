"""Where an image's pixels are on Earth: a CRS with either an affine transform or ground control points.

Pixel coordinates are GDAL's continuous (col, row): (0, 0) is the top-left corner of the top-left pixel and
(0.5, 0.5) its centre, the convention `rasterio.features.shapes` polygons come in. Coordinates on Earth are
returned as lon/lat on WGS 84 (EPSG:4326, longitude first, as in GeoJSON).

Two kinds of georeferencing, exactly one per `Georef`:
- affine (`transform`, the six coefficients a, b, c, d, e, f of `affine.Affine`): x = a*col + b*row + c,
  y = d*col + e*row + f in `crs`, then PROJ to lon/lat. Projected COGs, RTC products, most GeoTIFFs.
- GCPs (`gcps`, (col, row, x, y, z) tuples in `crs`), as Sentinel-1 GRD measurement TIFFs carry (a grid of a
  few hundred, in EPSG:4326) with an identity geotransform that must never be read as a georeference. Mapped
  through GDAL's GCP transformer (`rasterio.transform.GCPTransformer`): a least-squares polynomial whose order
  GDAL picks from the number of GCPs (2nd order from 10 GCPs: smooth, no ringing between noisy GCPs). When
  that polynomial misses a GCP by more than `GCP_POLYNOMIAL_TOLERANCE_PX` (a whole GRD scene, ~250 km, bends
  more than a quadratic), a thin-plate spline through the GCPs is used instead: exact at every GCP, and a
  GRD's GCPs are computed from the orbit, not picked by hand, so they are not noisy (`gcp_method` tells).

`georef_from_dataset` builds one from an open rasterio dataset, or returns None with the reason (no
georeferencing, a transform without CRS, a CRS PROJ cannot take to lon/lat, too few GCPs) instead of raising,
so a broken or unknown CRS degrades the image to "not georeferenced" instead of failing it.

A `Georef` is a small frozen value that travels as JSON (`to_json` / `from_json`): the ML service can return
it and the worker rebuild it. Scenes crossing the antimeridian are not handled (their footprint spans the
globe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError, ProjError
from rasterio._err import CPLE_BaseError
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS as RioCRS
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.transform import GCPTransformer
from shapely.geometry import Polygon

GEOD = Geod(ellps="WGS84")
_LONLAT = CRS.from_epsg(4326)
MIN_GCPS = 3
GCP_POLYNOMIAL_TOLERANCE_PX = 0.25

Gcp = tuple[float, float, float, float, float]
"""One ground control point: (col, row, x, y, z), pixel position and its coordinates in the Georef's CRS."""


@dataclass(frozen=True)
class Georef:
    """An image's georeferencing: `crs_wkt` plus exactly one of `transform` (affine) or `gcps`."""

    width: int
    height: int
    crs_wkt: str
    epsg: int | None = None
    transform: tuple[float, float, float, float, float, float] | None = None
    gcps: tuple[Gcp, ...] = field(default=())

    def __post_init__(self) -> None:
        if (self.transform is None) == (not self.gcps):
            raise ValueError("a Georef has either an affine transform or GCPs, not both or neither")
        if self.gcps and len(self.gcps) < MIN_GCPS:
            raise ValueError(f"{len(self.gcps)} GCPs: at least {MIN_GCPS} are needed")
        if self.width <= 0 or self.height <= 0:
            raise ValueError("width and height must be positive")

    @property
    def is_affine(self) -> bool:
        """True for an affine transform, False for GCPs (then edges are densified before mapping)."""
        return self.transform is not None

    @property
    def crs_name(self) -> str:
        """'EPSG:32639' when the CRS has a code, else the CRS's own name (for reports)."""
        return f"EPSG:{self.epsg}" if self.epsg is not None else CRS.from_wkt(self.crs_wkt).name

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the fields only: the cached PROJ and GDAL transformers are rebuilt on first use."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    @cached_property
    def _to_lonlat(self) -> Transformer:
        return Transformer.from_crs(CRS.from_wkt(self.crs_wkt), _LONLAT, always_xy=True)

    @cached_property
    def _gcp(self) -> tuple[GCPTransformer, str]:
        points = self.rasterio_gcps()
        polynomial = GCPTransformer(points)
        if _residual_px(polynomial, self.gcps) <= GCP_POLYNOMIAL_TOLERANCE_PX:
            return polynomial, "polynomial"
        polynomial.close()
        return GCPTransformer(points, tps=True), "tps"

    @property
    def gcp_method(self) -> str | None:
        """'polynomial' or 'tps' (thin-plate spline) for GCPs, None for an affine transform."""
        return self._gcp[1] if self.gcps else None

    def pixel_to_crs(self, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Continuous pixel (col, row) arrays -> x, y arrays in `crs`."""
        cols = np.asarray(cols, dtype=np.float64)
        rows = np.asarray(rows, dtype=np.float64)
        if self.transform is not None:
            a, b, c, d, e, f = self.transform
            return a * cols + b * rows + c, d * cols + e * rows + f
        xs, ys = self._gcp[0].xy(rows.ravel(), cols.ravel(), offset="ul")
        return np.asarray(xs, np.float64).reshape(cols.shape), np.asarray(ys, np.float64).reshape(cols.shape)

    def pixel_to_lonlat(self, cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Continuous pixel (col, row) arrays -> lon, lat arrays (degrees, WGS 84)."""
        xs, ys = self.pixel_to_crs(cols, rows)
        if self.epsg == 4326:
            return xs, ys
        lon, lat = self._to_lonlat.transform(xs, ys)
        return np.asarray(lon, np.float64), np.asarray(lat, np.float64)

    def footprint(self, points_per_side: int = 16) -> Polygon:
        """The image outline in lon/lat, each side densified so projection or GCP curvature is followed."""
        t = np.linspace(0.0, 1.0, points_per_side, endpoint=False)
        w, h = float(self.width), float(self.height)
        cols = np.concatenate([t * w, np.full_like(t, w), w - t * w, np.zeros_like(t)])
        rows = np.concatenate([np.zeros_like(t), t * h, np.full_like(t, h), h - t * h])
        lon, lat = self.pixel_to_lonlat(cols, rows)
        return Polygon(np.column_stack([lon, lat]))

    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the footprint, degrees."""
        west, south, east, north = self.footprint().bounds
        return float(west), float(south), float(east), float(north)

    def pixel_size_m(self) -> tuple[float, float]:
        """Approximate (along-row, along-column) pixel size in metres at the image centre, geodesic."""
        c, r = self.width / 2.0, self.height / 2.0
        lon, lat = self.pixel_to_lonlat(np.array([c, c + 1.0, c]), np.array([r, r, r + 1.0]))
        _, _, dx = GEOD.inv(lon[0], lat[0], lon[1], lat[1])
        _, _, dy = GEOD.inv(lon[0], lat[0], lon[2], lat[2])
        return float(dx), float(dy)

    def summary(self) -> dict[str, Any]:
        """What report.json says about the image's georeferencing."""
        dx, dy = self.pixel_size_m()
        return {
            "georeferenced": True,
            "crs": self.crs_name,
            "georeferencing": "affine" if self.is_affine else "gcps",
            "bounds": [round(v, 7) for v in self.bounds()],
            "pixel_size_m": [round(dx, 3), round(dy, 3)],
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `Georef.from_json` inverts it exactly."""
        return {
            "width": self.width,
            "height": self.height,
            "crs_wkt": self.crs_wkt,
            "epsg": self.epsg,
            "transform": list(self.transform) if self.transform is not None else None,
            "gcps": [list(g) for g in self.gcps] or None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Georef:
        """Rebuild a Georef from `to_json`'s dict (ValueError/KeyError/TypeError when malformed)."""
        transform = data.get("transform")
        gcps = data.get("gcps") or ()
        return cls(
            width=int(data["width"]),
            height=int(data["height"]),
            crs_wkt=str(data["crs_wkt"]),
            epsg=None if data.get("epsg") is None else int(data["epsg"]),
            transform=None if transform is None else _six(transform),
            gcps=tuple(_gcp(g) for g in gcps),
        )

    def rasterio_crs(self) -> RioCRS:
        """The CRS as rasterio wants it for writing (see ml.geo.cog)."""
        return RioCRS.from_wkt(self.crs_wkt)

    def rasterio_transform(self) -> Affine | None:
        """The affine transform as `affine.Affine`, None for GCP georeferencing."""
        return None if self.transform is None else Affine(*self.transform)

    def rasterio_gcps(self) -> list[GroundControlPoint]:
        """The GCPs as rasterio's GroundControlPoint list (empty for affine georeferencing)."""
        return [GroundControlPoint(row=r, col=c, x=x, y=y, z=z) for c, r, x, y, z in self.gcps]


def _six(values: Any) -> tuple[float, float, float, float, float, float]:
    a, b, c, d, e, f = (float(v) for v in values)
    return a, b, c, d, e, f


def _gcp(values: Any) -> Gcp:
    col, row, x, y, *rest = (float(v) for v in values)
    return col, row, x, y, rest[0] if rest else 0.0


def _crs_from_rasterio(crs: RioCRS | None) -> tuple[str, int | None] | str:
    """(wkt, epsg) of a CRS usable for lon/lat, or a string saying why not."""
    if crs is None:
        return "no CRS"
    try:
        wkt = crs.to_wkt()
        proj_crs = CRS.from_wkt(wkt)
        if not (proj_crs.is_geographic or proj_crs.is_projected):
            return f"CRS {proj_crs.name!r} is neither geographic nor projected"
        x, y = Transformer.from_crs(proj_crs, _LONLAT, always_xy=True).transform(0.0, 0.0)
        del x, y
        epsg = proj_crs.to_epsg(min_confidence=90)
    except (CRSError, ProjError, ValueError) as exc:
        return f"unusable CRS: {exc}"
    return wkt, epsg


def georef_from_dataset(src: DatasetReader) -> tuple[Georef | None, str | None]:
    """(Georef, None) for a georeferenced dataset, else (None, reason); bad georeferencing never raises."""
    gcps, gcp_crs = src.gcps
    if gcps:
        if len(gcps) < MIN_GCPS:
            return None, f"{len(gcps)} ground control points: at least {MIN_GCPS} are needed"
        crs_or_reason = _crs_from_rasterio(gcp_crs)
        if isinstance(crs_or_reason, str):
            return None, f"ground control points with {crs_or_reason}"
        points = tuple((g.col, g.row, g.x, g.y, g.z or 0.0) for g in gcps)
        candidate = Georef(src.width, src.height, crs_or_reason[0], crs_or_reason[1], gcps=points)
    else:
        transform: Affine = src.transform
        if transform.is_identity:
            return None, "no georeferencing (identity transform, no ground control points)"
        crs_or_reason = _crs_from_rasterio(src.crs)
        if isinstance(crs_or_reason, str):
            return None, f"geotransform with {crs_or_reason}"
        if transform.is_degenerate:
            return None, "degenerate geotransform (zero pixel size)"
        six = _six(transform[:6])
        candidate = Georef(src.width, src.height, crs_or_reason[0], crs_or_reason[1], transform=six)
    return _checked(candidate)


def _residual_px(transformer: GCPTransformer, gcps: tuple[Gcp, ...]) -> float:
    """Largest miss of the transformer at its own GCPs, in pixels (at the pixel size near the first GCP)."""
    cols = np.array([g[0] for g in gcps])
    rows = np.array([g[1] for g in gcps])
    xs, ys = transformer.xy(rows, cols, offset="ul")
    miss = np.hypot(np.asarray(xs) - [g[2] for g in gcps], np.asarray(ys) - [g[3] for g in gcps])
    (x0, x1, x2), (y0, y1, y2) = transformer.xy(
        np.array([rows[0], rows[0], rows[0] + 1.0]), np.array([cols[0], cols[0] + 1.0, cols[0]]), offset="ul"
    )
    pixel = min(float(np.hypot(x1 - x0, y1 - y0)), float(np.hypot(x2 - x0, y2 - y0)))
    return float(miss.max()) / pixel if pixel > 0 else float("inf")


def _checked(georef: Georef) -> tuple[Georef | None, str | None]:
    """Refuse a georeference whose footprint does not map to finite lon/lat inside the valid range."""
    try:
        lon, lat = georef.footprint(points_per_side=4).exterior.xy
    except (ProjError, ValueError, RuntimeError, RasterioError, CPLE_BaseError) as exc:
        return None, f"pixels cannot be mapped to lon/lat: {exc}"
    lon_a, lat_a = np.asarray(lon), np.asarray(lat)
    if not (np.isfinite(lon_a).all() and np.isfinite(lat_a).all()):
        return None, "pixels map to non-finite lon/lat"
    if np.abs(lat_a).max() > 90.0 + 1e-6 or np.abs(lon_a).max() > 540.0:
        return None, "pixels map outside the range of lon/lat"
    dx, dy = georef.pixel_size_m()
    if not (math.isfinite(dx) and math.isfinite(dy) and dx > 0 and dy > 0):
        return None, "zero or non-finite pixel size on the ground"
    return georef, None
