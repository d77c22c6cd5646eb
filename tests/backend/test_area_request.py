"""POST /api/area-jobs refusals: each a 422 whose detail names the field that is wrong.

In-process TestClient on the session's redis-server; nothing is queued (every request here is refused
before a job exists). The accepted path runs in tests/e2e/test_area_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.api.main import app
from backend.core.config import Settings, settings
from backend.sources.config import SourceConfig
from backend.sources.request import AreaJobRequest, bbox_km2, check_request

SEA = [51.52, 26.93, 51.55, 26.96]
SOURCES = {"test": SourceConfig(stac_url="http://127.0.0.1:9/", collection="sentinel-1-grd")}  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def client(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "REDIS_URL", redis_url)
        mp.setattr(settings, "RESULTS_DIR", tmp_path_factory.mktemp("area") / "results")
        mp.setattr(settings, "AREA_SOURCES", SOURCES)
        with TestClient(app) as c:
            yield c


def body(**changes: Any) -> dict[str, Any]:
    return {"bboxes": [SEA], "date": "2026-06-01", "temporal_tolerance": 3, "data_source": "test"} | changes


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"bboxes": [[51.5, 26.9, 51.4, 27.0]]}, "bboxes[0]: min_lon must be below max_lon"),
        ({"bboxes": [SEA, [51.5, 27.0, 51.6, 26.9]]}, "bboxes[1]: min_lat must be below max_lat"),
        ({"bboxes": [[181, 26.9, 182, 27.0]]}, "bboxes[0]: longitudes must lie in -180..180"),
        ({"bboxes": [[51.5, -91, 51.6, 27.0]]}, "bboxes[0]: latitudes must lie in -90..90"),
        ({"bboxes": [[51.5, 26.9, 51.6]]}, "bboxes.0"),
        ({"bboxes": []}, "bboxes"),
        ({"bboxes": [SEA, [50.0, 26.0, 51.0, 27.0]]}, "bboxes[1]: 11045 km2, over MAX_AREA_KM2 = 2500 km2"),
        (
            {"temporal_tolerance": 16},
            "temporal_tolerance: a window of 33 days (date +- 16) is over the limit",
        ),
        ({"temporal_tolerance": -1}, "temporal_tolerance"),
        ({"data_source": "elsewhere"}, "data_source: unknown source 'elsewhere' (configured: test)"),
        ({"date": "2026-13-01"}, "date"),
        ({"max_scenes": 11}, "max_scenes: 11 is over the limit of 10"),
        ({"bboxes": [SEA] * 11}, "bboxes: 11 boxes, over the limit of 10"),
    ],
)
def test_refusals_name_the_field(client: TestClient, changes: dict[str, Any], expected: str) -> None:
    response = client.post("/api/area-jobs", json=body(**changes))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("Invalid request: ") and expected in detail, detail


def test_the_window_spans_the_tolerance_in_whole_utc_days() -> None:
    request = AreaJobRequest.model_validate(body(temporal_tolerance=1))
    start, end = request.window()
    assert (start.isoformat(), end.isoformat()) == (
        "2026-05-31T00:00:00+00:00",
        "2026-06-02T23:59:59.999999+00:00",
    )


def test_bbox_area_is_geodesic() -> None:
    # 0.1 x 0.1 degrees at 27 N: 11.13 km x 9.91 km (cos 27 deg), about 110 km2, not 0.01 "square degrees".
    assert bbox_km2((51.5, 26.95, 51.6, 27.05)) == pytest.approx(110.4, rel=0.01)


def test_accepted_within_the_limits() -> None:
    request = AreaJobRequest.model_validate(body(bboxes=[[51.5, 26.95, 51.6, 27.05]], temporal_tolerance=3))
    check_request(request, Settings(AREA_SOURCES=SOURCES, MAX_AREA_KM2=120, AREA_MAX_WINDOW_DAYS=7))
    with pytest.raises(ValueError, match="over MAX_AREA_KM2 = 100 km2"):
        check_request(request, Settings(AREA_SOURCES=SOURCES, MAX_AREA_KM2=100, AREA_MAX_WINDOW_DAYS=7))
    with pytest.raises(ValueError, match="window of 7 days"):
        check_request(request, Settings(AREA_SOURCES=SOURCES, MAX_AREA_KM2=120, AREA_MAX_WINDOW_DAYS=6))
