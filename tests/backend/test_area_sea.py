"""backend.sources.sea: which scenes' windows are read, by the ML service's sea fractions (here a fake
`ask`, and MLClient.sea_fractions against an in-memory transport); failing open when it cannot answer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from shapely.geometry import box, mapping, shape

from backend.cli import area as area_cli
from backend.sources.request import AreaJobRequest
from backend.sources.sea import CHUNK, pick_sea_scenes, window_area
from backend.sources.search import Scene
from backend.worker.ml_client import MLClient, MLServiceError

SEA, LAND = (10.0, 0.0, 11.0, 1.0), (20.0, 0.0, 21.0, 1.0)  # sea is west of 15 degrees in the fake


def request(max_scenes: int = 5) -> AreaJobRequest:
    return AreaJobRequest.model_validate(
        {"bboxes": [SEA, LAND], "date": "2026-06-01", "data_source": "t", "max_scenes": max_scenes}
    )


def scene(item_id: str, bboxes: list[int]) -> Scene:
    footprint = box(9.5, -0.5, 21.5, 1.5) if bboxes == [0, 1] else box(*(SEA if bboxes == [0] else LAND))
    return Scene(item_id=item_id, datetime=None, footprint=dict(mapping(footprint)), bboxes=bboxes)


class Ask:
    """The service's answer: sea where the area's centre lies west of 15 degrees; each call recorded."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def __call__(self, areas: list[dict[str, Any]], samples: int) -> list[float]:
        self.calls.append(areas)
        return [1.0 if shape(a).centroid.x < 15 else 0.0 for a in areas]


def test_windows_on_land_are_dropped_and_scenes_all_on_land_reported() -> None:
    scenes = [scene("land", [1]), scene("both", [0, 1]), scene("sea", [0])]
    ask = Ask()
    split = pick_sea_scenes(scenes, request(), ask, samples=64, limit=5)
    assert split.check == "done" and split.problem is None
    assert [(s.item_id, s.bboxes, s.bboxes_on_land) for s in split.kept] == [
        ("both", [0], [1]),
        ("sea", [0], []),
    ]
    assert [(s.item_id, s.bboxes, s.bboxes_on_land) for s in split.on_land] == [("land", [], [1])]
    # One request for the four windows, each the footprint within its bbox.
    (areas,) = ask.calls
    assert [shape(a).bounds for a in areas] == [LAND, SEA, LAND, SEA]


def test_scenes_on_land_take_no_place_among_max_scenes_and_checking_stops_there() -> None:
    scenes = [scene(f"land{n}", [1]) for n in range(CHUNK)] + [
        scene(f"sea{n}", [0]) for n in range(CHUNK * 2)
    ]
    ask = Ask()
    split = pick_sea_scenes(scenes, request(max_scenes=2), ask, samples=64, limit=2)
    assert [s.item_id for s in split.kept] == ["sea0", "sea1"]
    assert len(split.on_land) == CHUNK
    assert len(ask.calls) == 2  # the third chunk was not asked about


def test_service_down_keeps_every_scene_and_says_why() -> None:
    def down(areas: list[dict[str, Any]], samples: int) -> list[float]:
        raise MLServiceError("ML service unreachable (ConnectError: refused) (gave up after 1 attempts)")

    scenes = [scene("land", [1]), scene("sea", [0])]
    split = pick_sea_scenes(scenes, request(), down, samples=64, limit=5)
    assert split.check == "unavailable" and "unreachable" in (split.problem or "")
    assert [s.item_id for s in split.kept] == ["land", "sea"] and split.on_land == []


def test_a_footprint_that_cannot_be_cut_keeps_the_scenes() -> None:
    broken = Scene(
        item_id="broken", datetime=None, footprint={"type": "Polygon", "coordinates": [[[10, 0]]]}, bboxes=[0]
    )
    split = pick_sea_scenes([broken, scene("land", [1])], request(), Ask(), samples=64, limit=5)
    assert split.check == "unavailable" and "ValueError" in (split.problem or ""), split.problem
    assert [s.item_id for s in split.kept] == ["broken", "land"]


def test_check_off_asks_nothing() -> None:
    def never(areas: list[dict[str, Any]], samples: int) -> list[float]:
        raise AssertionError("asked")

    split = pick_sea_scenes([scene("a", [1]), scene("b", [1])], request(), never, samples=0, limit=1)
    assert (split.check, [s.item_id for s in split.kept]) == ("off", ["a"])


def test_a_footprint_touching_a_bbox_at_its_edge_is_a_thin_polygon() -> None:
    area = shape(window_area(box(11.0, 0.0, 12.0, 1.0), SEA))
    assert area.geom_type == "Polygon" and 0 < area.area < 1e-5
    assert shape(window_area(box(10.5, 0.5, 12.0, 2.0), SEA)).bounds == (10.5, 0.5, 11.0, 1.0)


def test_ml_client_posts_the_areas_and_reads_the_fractions() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.url.path == "/land/sea-fraction"
        return httpx.Response(200, json={"fractions": [0.25, 0.0], "points": [64, 64]})

    ml = MLClient("http://ml", timeout=5, retries=0, backoff=0, transport=httpx.MockTransport(handler))
    areas = [dict(mapping(box(*SEA))), dict(mapping(box(*LAND)))]
    assert ml.sea_fractions(areas, 64) == [0.25, 0.0]
    assert seen[0]["samples"] == 64 and [a["type"] for a in seen[0]["areas"]] == ["Polygon", "Polygon"]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (httpx.Response(200, json={"fractions": [1.0], "points": [64]}), "1 sea fractions for 2 areas"),
        (httpx.Response(200, content=b"not json"), "unreadable answer"),
        (httpx.Response(422, json={"detail": "areas.1: bad"}), "rejected the areas: areas.1: bad"),
        (httpx.Response(503, json={"detail": "busy"}), "ML service error 503"),
    ],
)
def test_ml_client_sea_fractions_errors(reply: httpx.Response, message: str) -> None:
    ml = MLClient(
        "http://ml", timeout=5, retries=0, backoff=0, transport=httpx.MockTransport(lambda r: reply)
    )
    with pytest.raises(MLServiceError, match=message):
        ml.sea_fractions([dict(mapping(box(*SEA))), dict(mapping(box(*LAND)))], 64)


def test_cli_summary_counts_the_scenes_on_land(capsys: pytest.CaptureFixture[str]) -> None:
    status = {
        "state": "completed",
        "total": 2,
        "done": 2,
        "failed": 0,
        "errors": [],
        "area": {
            "scenes_found": 2,
            "scenes_fetched": 2,
            "scenes_failed": 0,
            "scenes_on_land": 3,
            "bytes_read": None,
        },
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=status))
    with httpx.Client(base_url="http://api", transport=transport) as client:
        area_cli.follow(client, "j1", poll=0)
    assert "2 scenes found, 2 read, 0 failed, 3 on land (not read)" in capsys.readouterr().out
