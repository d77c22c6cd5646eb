"""GeoTIFF scenes through the real stack: slick polygons in lon/lat with their areas, COG masks aligned with
the inputs, the job's slicks.geojson and GET .../slicks, the report's georeference, the CLI's slick table.

The scenes are made here with rasterio, on the recipe of test_radiometry_e2e (speckled sea, a dark ellipse):
UTM (EPSG:32639, 10 m) near 27.0 N 51.5 E, EPSG:4326, a GCP-only uint16 like a Sentinel-1 GRD with a 0
border, float32 dB with a nodata border, a plain PNG, and the same slick inland at Riyadh (dropped as land).
The model's mask is the truth for the polygons: each slick's area is compared with its oil pixels in the
archive's PNG mask times the pixel's geodesic area.
"""

from __future__ import annotations

import csv
import io
import json
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Geod, Transformer
from rasterio.control import GroundControlPoint
from rasterio.errors import NotGeoreferencedWarning
from rasterio.features import shapes
from rasterio.io import MemoryFile
from shapely.geometry import Point, Polygon, shape
from test_radiometry_e2e import make_scene

from backend.api.schemas import SlickCollection
from backend.cli import main as cli
from backend.storage.layout import new_token

if TYPE_CHECKING:
    from stack_harness import Stack

pytestmark = pytest.mark.e2e

GEOD = Geod(ellps="WGS84")
SIZE = 256
ACQUIRED_TAG = "2024-05-02T02:41:07.123Z"
ACQUIRED = "2024-05-02T02:41:07.123000Z"
UTM = rasterio.Affine(10.0, 0.0, 549_600.0, 0.0, -10.0, 2_986_540.0)  # its corner at ~27.0 N 51.5 E
LONLAT = rasterio.Affine(0.0001, 0.0, 51.8, 0.0, -0.0001, 26.8)  # ~10 m pixels, at sea
DB_UTM = rasterio.Affine(20.0, 0.0, 629_000.0, 0.0, -20.0, 2_943_000.0)  # 20 m, ~26.6 N 52.3 E
RIYADH = rasterio.Affine(0.0001, 0.0, 46.70, 0.0, -0.0001, 24.70)  # inland
GCP_ORIGIN, GCP_ANGLE = (51.2, 27.2), np.deg2rad(12.0)  # a GRD's first pixel, and its track's rotation

PixelToLonLat = Callable[[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Scene:
    name: str
    data: bytes
    to_lonlat: PixelToLonLat | None  # pixel (col, row) corner -> lon/lat; None: not georeferenced
    crs: str | None
    transform: rasterio.Affine | None = None
    gcps: tuple[GroundControlPoint, ...] = ()
    border: tuple[slice, slice] | None = None  # the nodata pixels


def amplitude(grey: np.ndarray) -> np.ndarray:
    """The grey levels read as dB, as GRD amplitude numbers (uint16)."""
    db = grey.astype(np.float32) / 255 * 25 - 25
    return np.round(np.sqrt(10 ** (db / 10)) * 800).astype(np.uint16)


def geotiff(
    values: np.ndarray, *, nodata: float | None = None, tags: dict[str, str] | None = None, **georef: Any
) -> bytes:
    profile = {
        "driver": "GTiff",
        "width": SIZE,
        "height": SIZE,
        "count": 1,
        "dtype": values.dtype,
        "nodata": nodata,
    }
    gcps = georef.pop("gcps", None)
    with warnings.catch_warnings(), MemoryFile() as memfile:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with memfile.open(**profile, **georef) as dst:
            if gcps:
                dst.gcps = (list(gcps), rasterio.crs.CRS.from_epsg(4326))
            dst.write(values, 1)
            if tags:
                dst.update_tags(**tags)
        return bytes(memfile.read())


def affine_lonlat(transform: rasterio.Affine, crs: str) -> PixelToLonLat:
    project = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def to_lonlat(col: float, row: float) -> tuple[float, float]:
        x, y = transform @ (col, row)
        lon, lat = project.transform(x, y)
        return float(lon), float(lat)

    return to_lonlat


def gcp_lonlat(col: float, row: float) -> tuple[float, float]:
    """The GRD's georeference: 10 m pixels along a track rotated by GCP_ANGLE (linear, so GDAL fits it)."""
    lon0, lat0 = GCP_ORIGIN
    east = 10 * (col * np.cos(GCP_ANGLE) + row * np.sin(GCP_ANGLE))
    north = 10 * (col * np.sin(GCP_ANGLE) - row * np.cos(GCP_ANGLE))
    return lon0 + east / (111_320 * np.cos(np.deg2rad(lat0))), lat0 + north / 110_574


def scenes() -> list[Scene]:
    grey = {
        name: make_scene(SIZE, seed)[0]
        for seed, name in enumerate(("utm", "lonlat", "grd", "db", "png", "land"), 30)
    }
    gcps = tuple(
        GroundControlPoint(row=r, col=c, x=gcp_lonlat(c, r)[0], y=gcp_lonlat(c, r)[1], z=0.0)
        for r in (0, SIZE / 2, SIZE)
        for c in (0, SIZE / 2, SIZE)
    )
    grd = amplitude(grey["grd"])
    grd[:, :48] = 0  # the GRD's nodata border (DN 0), untagged as in real GRD files
    db = (grey["db"].astype(np.float32) / 255 * 25 - 25).astype(np.float32)
    db[:40, :] = -9999.0
    utm_tags = {"ACQUISITION_START_TIME": ACQUIRED_TAG}
    return [
        Scene(
            "gulf/utm.tif",
            geotiff(amplitude(grey["utm"]), crs="EPSG:32639", transform=UTM, tags=utm_tags),
            affine_lonlat(UTM, "EPSG:32639"),
            "EPSG:32639",
            transform=UTM,
        ),
        Scene(
            "a/scene.tif",
            geotiff(amplitude(grey["lonlat"]), crs="EPSG:4326", transform=LONLAT),
            affine_lonlat(LONLAT, "EPSG:4326"),
            "EPSG:4326",
            transform=LONLAT,
        ),
        Scene(
            "grd/measurement/s1a-iw-grd-vv.tiff",
            geotiff(grd, gcps=gcps, tags=utm_tags),
            gcp_lonlat,
            "EPSG:4326",
            gcps=gcps,
            border=(slice(None), slice(0, 48)),
        ),
        Scene(
            "b/scene.tif",
            geotiff(db, nodata=-9999.0, crs="EPSG:32639", transform=DB_UTM),
            affine_lonlat(DB_UTM, "EPSG:32639"),
            "EPSG:32639",
            transform=DB_UTM,
            border=(slice(0, 40), slice(None)),
        ),
        Scene("plain.png", png(grey["png"]), None, None),
        Scene(
            "land/riyadh.tif",
            geotiff(amplitude(grey["land"]), crs="EPSG:4326", transform=RIYADH),
            affine_lonlat(RIYADH, "EPSG:4326"),
            "EPSG:4326",
            transform=RIYADH,
        ),
    ]


def png(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    return buffer.getvalue()


def stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def pixel_area_km2(to_lonlat: PixelToLonLat, col: float, row: float) -> float:
    """Geodesic area of the pixel whose corner is (col, row)."""
    corners = [to_lonlat(col + dc, row + dr) for dc, dr in ((0, 0), (1, 0), (1, 1), (0, 1))]
    area, _ = GEOD.polygon_area_perimeter([c[0] for c in corners], [c[1] for c in corners])
    return abs(area) / 1e6


def regions(mask: np.ndarray) -> list[Polygon]:
    """The mask's oil regions (4-connected, as the service vectorises), pixel coordinates, largest first."""
    found = [shape(geom) for geom, _ in shapes(mask, mask=mask > 0, connectivity=4)]
    return sorted(found, key=lambda p: -p.area)


def geodesic_km2(geometry: dict[str, Any]) -> float:
    area, _ = GEOD.geometry_area_perimeter(shape(geometry))
    return abs(area) / 1e6


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    return code, capsys.readouterr().out


def test_geotiffs_give_lonlat_slicks_aligned_cog_masks_and_the_jobs_slicks(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = scenes()
    by_name = {s.name: s for s in made}
    upload = tmp_path / "scenes.zip"
    with zipfile.ZipFile(upload, "w") as zf:
        for s in made:
            zf.writestr(s.name, s.data)

    # Upload, follow and download with the CLI: it prints the slick table at the end.
    started = time.monotonic()
    out = tmp_path / "results.zip"
    code, printed = run_cli(
        capsys, "--api", stack.api_url, "upload", str(upload), "--wait", "--out", str(out), "--poll", "0.5"
    )
    elapsed = time.monotonic() - started
    assert code == 0, f"{printed}\n{stack.log_tail('worker')}\n{stack.log_tail('ml')}"
    job_id, user_hash = printed.split()[1].rstrip(":"), printed.split("user hash ")[1].split()[0]
    base = f"{stack.api_url}/api/results/{user_hash}"
    # At once: the test stack deletes archives 6 s after the job ends.
    served = httpx.get(f"{base}/slicks", timeout=30)
    every = httpx.get(f"{base}/slicks", params={"include_pixel": "true"}, timeout=30)
    listed = httpx.get(f"{base}/images", timeout=30)
    by_job = run_cli(capsys, "--api", stack.api_url, "slicks", job_id)
    for response in (served, every, listed):
        assert response.status_code == 200, response.text
    assert served.headers["content-type"] == "application/geo+json"

    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        merged = json.loads(archive.read("slicks.geojson"))
        per_image = {s.name: json.loads(archive.read(f"slicks/{stem(s.name)}.geojson")) for s in made}
        masks = {
            s.name: np.asarray(Image.open(io.BytesIO(archive.read(f"masks/{stem(s.name)}.png"))))
            for s in made
        }
        cogs = {s.name: archive.read(f"masks/{stem(s.name)}.tif") for s in made if s.crs}
        report = {image["name"]: image for image in json.loads(archive.read("report.json"))["images"]}
        report_rows = {
            row["name"]: row for row in csv.DictReader(io.StringIO(archive.read("report.csv").decode()))
        }
        slick_rows = list(csv.DictReader(io.StringIO(archive.read("slicks.csv").decode())))
    assert all(image["status"] == "ok" for image in report.values()), report
    assert "masks/plain.tif" not in names and {f"overlays/{stem(s.name)}.png" for s in made} <= names

    # COG masks: the input's CRS and transform (or GCPs), the PNG mask's values, nodata kept as a mask.
    for s in made:
        if not s.crs:
            continue
        with MemoryFile(cogs[s.name]) as memfile, memfile.open() as cog:
            assert (cog.width, cog.height, cog.dtypes[0]) == (SIZE, SIZE, "uint8"), s.name
            assert cog.profile["tiled"], s.name
            np.testing.assert_array_equal(cog.read(1), masks[s.name], err_msg=s.name)
            if s.gcps:
                gcps, gcp_crs = cog.gcps
                assert gcp_crs == rasterio.crs.CRS.from_epsg(4326) and cog.crs is None
                got = sorted((g.col, g.row, round(g.x, 9), round(g.y, 9)) for g in gcps)
                assert got == sorted((g.col, g.row, round(g.x, 9), round(g.y, 9)) for g in s.gcps)
            else:
                assert cog.crs == rasterio.crs.CRS.from_user_input(s.crs) and cog.transform == s.transform, (
                    s.name
                )
            valid = cog.read_masks(1)
            if s.border is not None:
                assert not valid[s.border].any() and not masks[s.name][s.border].any(), s.name
                assert np.count_nonzero(valid) == SIZE * SIZE - valid[s.border].size, s.name
            else:
                assert valid.all(), s.name

    # Each image's slicks, named after its path in the zip; areas from the model's own mask.
    figures: dict[str, dict[str, float]] = {}
    for s in made:
        collection = per_image[s.name]
        features = collection["features"]
        assert collection["image"] == s.name and collection["georeferenced"] is bool(s.to_lonlat)
        assert [f["id"] for f in features] == [f"{s.name}#{n}" for n in range(1, len(features) + 1)]
        assert {f["properties"]["image"] for f in features} <= {s.name}
        geo = report[s.name]["geo"]
        assert geo["slicks"] == len(features)
        if s.name == "land/riyadh.tif":
            assert features == [] and geo["slicks_on_land"] == 1, geo
            continue
        assert features, f"{s.name}: no slick found"
        biggest, region = features[0], regions(masks[s.name])[0]
        props = biggest["properties"]
        assert props["pixels"] == round(region.area), s.name  # the polygon is the mask's region
        if s.to_lonlat is None:
            assert props["area_km2"] is None and props["area_px"] == round(region.area)
            continue
        c = region.centroid
        truth_km2 = region.area * pixel_area_km2(s.to_lonlat, c.x, c.y)
        area_error = props["area_km2"] / truth_km2 - 1
        outline_error = geodesic_km2(biggest["geometry"]) / truth_km2 - 1
        lon, lat = props["centroid"]
        want_lon, want_lat = s.to_lonlat(c.x, c.y)
        figures[s.name] = {
            "area_km2": props["area_km2"],
            "area_error": area_error,
            "outline_error": outline_error,
        }
        assert abs(area_error) <= 0.02, (s.name, props["area_km2"], truth_km2)
        assert abs(outline_error) <= 0.02, (s.name, outline_error)
        assert abs(lon - want_lon) < 2e-4 and abs(lat - want_lat) < 2e-4, (
            s.name,
            props["centroid"],
            (want_lon, want_lat),
        )
        assert geo["oil_km2"] == pytest.approx(sum(f["properties"]["area_km2"] for f in features), abs=1e-5)
        if s.border is not None:  # next to nodata (the ellipse reaches the GRD's border) or not
            rows, cols = s.border
            box = Polygon.from_bounds(cols.start or 0, rows.start or 0, cols.stop or SIZE, rows.stop or SIZE)
            assert props["touches_nodata"] is (region.distance(box) == 0), s.name
    print(f"\ngeo e2e: {len(made)} images in {elapsed:.1f} s (upload to download); areas: {figures}")

    # UTM: every vertex of the outline within a pixel of the mask's region.
    utm = per_image["gulf/utm.tif"]["features"][0]["geometry"]["coordinates"]
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32639", always_xy=True)
    region = regions(masks["gulf/utm.tif"])[0]
    for ring in utm:
        for lon, lat in ring:
            col, row = ~UTM @ to_utm.transform(lon, lat)
            assert region.boundary.distance(Point(col, row)) <= 1.0, (col, row)

    # The job's slicks.geojson: RFC 7946, georeferenced slicks only, the PNG named instead; the API serves it.
    georeferenced = [f for s in made if s.to_lonlat for f in per_image[s.name]["features"]]
    assert merged["type"] == "FeatureCollection" and merged["not_georeferenced"] == ["plain.png"]
    assert sorted(f["id"] for f in merged["features"]) == sorted(f["id"] for f in georeferenced)
    assert len({f["id"] for f in merged["features"]}) == len(merged["features"])  # a/ and b/scene.tif apart
    assert all(
        -180 <= x <= 180 and -90 <= y <= 90
        for f in merged["features"]
        for ring in f["geometry"]["coordinates"]
        for x, y in ring
    )
    assert served.json() == merged
    SlickCollection.model_validate(served.json())
    pixel_ids = [f["id"] for f in per_image["plain.png"]["features"]]
    assert sorted(f["id"] for f in every.json()["features"]) == sorted(
        [*(f["id"] for f in georeferenced), *pixel_ids]
    )
    assert len(slick_rows) == len(georeferenced) + len(pixel_ids)

    # report.json/csv and /images: where each image lies.
    utm_geo = report["gulf/utm.tif"]["geo"]
    assert (utm_geo["georeferenced"], utm_geo["crs"], utm_geo["georeferencing"], utm_geo["acquired"]) == (
        True,
        "EPSG:32639",
        "affine",
        ACQUIRED,
    )
    assert utm_geo["pixel_size_m"] == pytest.approx([10, 10], rel=0.01)
    west, south, east, north = utm_geo["bounds"]
    assert west == pytest.approx(51.5, abs=0.002) and north == pytest.approx(27.0, abs=0.002)
    assert east - west == pytest.approx(0.0258, rel=0.05) and north - south == pytest.approx(0.0231, rel=0.05)
    grd_geo = report["grd/measurement/s1a-iw-grd-vv.tiff"]["geo"]
    assert (grd_geo["georeferencing"], grd_geo["crs"], grd_geo["acquired"]) == ("gcps", "EPSG:4326", ACQUIRED)
    assert grd_geo["pixel_size_m"] == pytest.approx([10, 10], rel=0.02)
    assert report["b/scene.tif"]["geo"]["pixel_size_m"] == pytest.approx([20, 20], rel=0.01)
    assert (
        report["b/scene.tif"]["scale"] == "db"
        and report["grd/measurement/s1a-iw-grd-vv.tiff"]["scale"] == "amplitude"
    )
    plain = report["plain.png"]["geo"]
    assert (plain["georeferenced"], plain["reason"], plain["crs"], plain["oil_km2"]) == (
        False,
        "not a GeoTIFF",
        None,
        None,
    )
    row = report_rows["gulf/utm.tif"]
    assert (row["georeferenced"], row["crs"], row["slicks"], float(row["west"])) == (
        "true",
        "EPSG:32639",
        str(utm_geo["slicks"]),
        west,
    )
    assert (report_rows["plain.png"]["georeferenced"], report_rows["plain.png"]["georef_reason"]) == (
        "false",
        "not a GeoTIFF",
    )
    assert {i["name"]: i["geo"] for i in listed.json()["images"]} == {
        name: image["geo"] for name, image in report.items()
    }

    # The CLI's table, after upload --wait and by job id: every slick, largest first.
    assert by_job[0] == 0
    for text in (printed, by_job[1]):
        lines = text.splitlines()
        table = lines[[line.startswith("image ") for line in lines].index(True) :]
        assert table[1].split()[0] in figures  # a georeferenced slick (km²) comes first
        rows = [line for line in table[1:] if line.split()[0] in by_name]
        assert len(rows) == len(georeferenced) + len(pixel_ids)
        assert "km²" in table[1] and table[len(rows)].split()[0] == "plain.png"

    # 404 for a hash that never was; 410 once the archive has expired.
    assert httpx.get(f"{stack.api_url}/api/results/{new_token()}/slicks", timeout=10).status_code == 404
    deadline = time.monotonic() + 30
    while (gone := httpx.get(f"{base}/slicks", timeout=10)).status_code != 410:
        assert gone.status_code == 200 and time.monotonic() < deadline, gone.text
        time.sleep(0.5)
    assert "expired" in gone.json()["detail"]
