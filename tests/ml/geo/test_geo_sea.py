"""ml.geo.sea and POST /land/sea-fraction: the share of an area at sea, on the real GSHHG land mask."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from shapely import intersects_xy
from shapely.geometry import MultiPolygon, Polygon, box, mapping

from ml.geo.landmask import release_default_landmask
from ml.geo.sea import sample_points, sea_fractions, to_geometry
from ml.service.config import Settings
from ml.service.main import create_app

GULF = (51.52, 26.93, 51.55, 26.96)  # the Persian Gulf between Qatar and Iran: all sea
INLAND = (46.70, 24.50, 46.73, 24.53)  # near Riyadh: all land
DOHA = (51.45, 25.25, 51.65, 25.35)  # Qatar's east coast: part land, part sea


@pytest.fixture(scope="module", autouse=True)
def _release_landmask() -> Iterator[None]:
    """The rest of the test session should not carry the land mask's ~0.8 GB."""
    yield
    release_default_landmask()


class HalfLand:
    """A fake land mask: land west of `lon`."""

    def __init__(self, lon: float) -> None:
        self.lon = lon

    def contains_many(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        return np.asarray(lon) < self.lon


def test_points_cover_the_area_edges_and_vertices_included() -> None:
    square = box(0.0, 0.0, 1.0, 1.0)
    points = sample_points(square, 100)
    assert len(points) == 105  # a 10 x 10 grid, its corners on the box's edges, and the ring's 5 vertices
    assert points[:, 0].min() == 0.0 and points[:, 0].max() == 1.0  # a strip of sea on a border counts
    triangle = Polygon([(0, 0), (1, 0), (0, 1)])
    points = sample_points(triangle, 400)
    assert intersects_xy(triangle, points[:, 0], points[:, 1]).all()
    assert 200 <= len(points) <= 240  # about half of a 20 x 20 grid
    # A sliver thinner than the grid's spacing still has points: its vertices.
    sliver = Polygon([(0, 0), (1, 0.001), (1, 0.002), (0, 0.001)])
    assert len(sample_points(sliver, 16)) >= 4


def test_sea_fraction_on_a_fake_mask_one_query_for_all_areas() -> None:
    halves = sea_fractions([box(0, 0, 1, 1), box(0.6, 0, 1, 1), box(-1, 0, 0.2, 1)], 400, HalfLand(0.5))
    (half, n), (sea, _), (land, _) = halves
    assert half == pytest.approx(0.5, abs=0.05) and n >= 400
    assert sea == 1.0 and land == 0.0
    both = MultiPolygon([box(0, 0, 0.1, 1), box(0.9, 0, 1, 1)])
    ((share, _),) = sea_fractions([both], 400, HalfLand(0.5))
    assert share == pytest.approx(0.5, abs=0.05)


def test_sea_fraction_on_the_gshhg_mask() -> None:
    gulf, inland, doha = (f for f, _ in sea_fractions([box(*GULF), box(*INLAND), box(*DOHA)], 1024))
    assert gulf == 1.0 and inland == 0.0
    assert 0.2 < doha < 0.8, doha


def test_bad_geometry_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a GeoJSON polygon"):
        to_geometry({"type": "Polygon", "coordinates": [[[0, 0], [1]]]})
    with pytest.raises(ValueError, match="not WGS 84"):
        to_geometry(mapping(box(0, 100, 1, 101)))
    with pytest.raises(ValueError, match="empty"):
        to_geometry({"type": "Polygon", "coordinates": []})


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def test_endpoint_answers_the_share_at_sea_per_area(client: TestClient) -> None:
    areas = [mapping(box(*GULF)), mapping(box(*INLAND)), mapping(MultiPolygon([box(*GULF), box(*INLAND)]))]
    response = client.post("/land/sea-fraction", json={"areas": areas, "samples": 256})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["fractions"][:2] == [1.0, 0.0]
    assert answer["fractions"][2] == pytest.approx(0.5, abs=0.02)
    assert all(n >= 256 for n in answer["points"])


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"areas": [{"type": "Point", "coordinates": [0, 0]}]}, "areas.0.type"),
        ({"areas": [mapping(box(0, 0, 1, 1)), {"type": "Polygon", "coordinates": [[[0, 0]]]}]}, "areas.1:"),
        ({"areas": [mapping(box(0, 0, 1, 1))], "samples": 5000}, "samples"),
        ({"areas": []}, "areas"),
    ],
)
def test_endpoint_refuses_bad_areas_with_a_422(
    client: TestClient, body: dict[str, object], detail: str
) -> None:
    response = client.post("/land/sea-fraction", json=body)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"], response.json()
