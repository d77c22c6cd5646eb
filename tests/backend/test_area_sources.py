"""The sources' parts without the stack: credentials kept out, the search (pystac-client against the test
STAC API, a real loopback process), windowed reads over HTTP, and slicks clipped to the bboxes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from area_samples import (
    BBOX_1,
    BBOX_2,
    SCENE_CORRUPT,
    SCENE_GRD,
    SCENE_MISSING,
    SCENE_UTM,
    source,
    stac_server,
)
from pyproj import Geod
from shapely.geometry import box, mapping, shape
from stac_server import PRIVATE, PRIVATE_TOKEN
from stack_harness import free_port

from backend.sources import netstats
from backend.sources.access import AccessError, api_headers, asset_url, gdal_headers, redact
from backend.sources.config import SourceConfig
from backend.sources.request import AreaJobRequest
from backend.sources.search import SearchFailed, search_scenes
from backend.sources.window import SceneReadError, gdal_options, read_windows
from backend.storage.area_archive import clip_collections

OPTIONS = gdal_options(retries=0, retry_delay=0, timeout=10, extra={})


@pytest.fixture(scope="module")
def stac(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    with stac_server(tmp_path_factory.mktemp("stac")) as served:
        yield served


def request(**changes: object) -> AreaJobRequest:
    fields = {"bboxes": [BBOX_1, BBOX_2], "date": "2026-06-01", "temporal_tolerance": 1, "data_source": "t"}
    return AreaJobRequest.model_validate(fields | changes)


def test_redact_drops_queries_user_info_and_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "'/vsicurl/https://u:p@host/a/b.tif?st=1&sig=abc' failed; b.tif?sig=abc: TIFFReadDirectory: bad"
    assert redact(text) == "'https://host/a/b.tif' failed; b.tif TIFFReadDirectory: bad"
    monkeypatch.setenv("S1_TOKEN", "tok-123456")
    bearer = SourceConfig(stac_url="https://x/", collection="c", access="bearer", token_env="S1_TOKEN")  # type: ignore[arg-type]
    assert redact("Authorization: Bearer tok-123456", bearer) == "Authorization: Bearer ***"
    assert api_headers(bearer) == {"Authorization": "Bearer tok-123456"}
    assert gdal_headers(bearer) == {"GDAL_HTTP_HEADERS": "Authorization: Bearer tok-123456"}
    monkeypatch.delenv("S1_TOKEN")
    with pytest.raises(AccessError, match="S1_TOKEN is not set"):
        api_headers(bearer)


def test_assets_must_be_http() -> None:
    plain = SourceConfig(stac_url="https://x/", collection="c")  # type: ignore[arg-type]
    for href in ("/etc/passwd", "file:///etc/passwd", "ftp://host/a.tif", "/vsizip/a.zip/b.tif"):
        with pytest.raises(AccessError, match="not an http"):
            asset_url(plain, href)
    assert asset_url(plain, "https://host/a.tif?x=1") == "https://host/a.tif?x=1"
    with pytest.raises(ValueError, match="token_env"):
        SourceConfig(stac_url="https://x/", collection="c", access="bearer")  # type: ignore[arg-type]


def test_search_keeps_iw_vv_scenes_closest_in_time_first(stac: tuple[str, dict[str, int]]) -> None:
    url, _ = stac
    config = SourceConfig.model_validate(source(url))
    scenes = search_scenes(config, request(), max_items=50, timeout=5, retries=0, backoff=0)
    # The EW and HH-only items are left out; closest to 2026-06-01 12:00 first.
    assert [s.item_id for s in scenes] == [SCENE_UTM, SCENE_GRD, SCENE_CORRUPT, SCENE_MISSING]
    assert [s.bboxes for s in scenes] == [[0], [1], [0], [0]]
    # All of them, whatever max_scenes: backend.sources.sea keeps max_scenes of those at sea.
    assert (
        len(search_scenes(config, request(max_scenes=2), max_items=50, timeout=5, retries=0, backoff=0)) == 4
    )
    assert (
        search_scenes(config, request(date="2026-07-01"), max_items=50, timeout=5, retries=0, backoff=0) == []
    )
    other = config.model_copy(update={"collection": "sentinel-1-rtc"})
    assert search_scenes(other, request(), max_items=50, timeout=5, retries=0, backoff=0) == []


def test_search_retries_an_unreachable_catalogue_then_says_why() -> None:
    down = SourceConfig.model_validate(source(f"http://127.0.0.1:{free_port()}"))
    waits: list[float] = []
    with pytest.raises(
        SearchFailed, match=r"unreachable after 3 attempts: no answer \(.*Connection refused"
    ) as failed:
        search_scenes(down, request(), max_items=5, timeout=2, retries=2, backoff=0.5, sleep=waits.append)
    assert waits == [0.5, 1.0]
    assert "127.0.0.1" in str(failed.value)


def test_windows_are_read_by_range_requests(stac: tuple[str, dict[str, int]]) -> None:
    url, sizes = stac
    netstats.reset()
    [window, outside] = read_windows(
        f"{url}/files/utm.tif", [BBOX_1, BBOX_2], max_pixels=10**6, options=OPTIONS
    )
    assert isinstance(outside, str) and "does not cover" in outside
    assert not isinstance(window, str)
    # 0.03 x 0.03 degrees at 27 N is ~2.98 x 3.33 km: ~300 x 334 pixels of 10 m, in the scene's own grid.
    assert (window.width, window.height, window.crs, window.warped) == (299, 334, "EPSG:32639", False)
    read = netstats.downloaded_bytes()
    assert read is not None and 0 < read < sizes["utm.tif"] / 2
    netstats.reset()
    [grd] = read_windows(f"{url}/files/grd.tif", [BBOX_2], max_pixels=10**6, options=OPTIONS)
    assert not isinstance(grd, str) and grd.warped and grd.crs == "EPSG:32639"
    assert abs(grd.width * grd.height - 300 * 330) < 0.15 * 300 * 330
    with pytest.raises(SceneReadError, match="over AREA_SCENE_MAX_PIXELS = 50000"):
        read_windows(f"{url}/files/utm.tif", [BBOX_1], max_pixels=50_000, options=OPTIONS)
    with pytest.raises(SceneReadError, match="404"):
        read_windows(f"{url}/files/missing.tif", [BBOX_1], max_pixels=10**6, options=OPTIONS)
    with pytest.raises(SceneReadError, match="TIFF"):
        read_windows(f"{url}/files/corrupt.tif", [BBOX_1], max_pixels=10**6, options=OPTIONS)


def test_slicks_are_clipped_to_the_bboxes(tmp_path: Path) -> None:
    geod = Geod(ellps="WGS84")
    bbox = (51.0, 27.0, 51.1, 27.1)
    inside = box(51.02, 27.02, 51.04, 27.04)
    across = box(51.09, 27.02, 51.12, 27.04)  # a third outside, east
    outside = box(51.2, 27.02, 51.3, 27.04)
    u_shape = (
        box(50.95, 27.05, 51.2, 27.06)
        .union(box(50.95, 27.0, 50.99, 27.06))
        .union(box(51.15, 27.0, 51.2, 27.06))
    )

    def feature(n: int, geometry: object) -> dict[str, object]:
        return {
            "type": "Feature",
            "id": f"a.tif#{n}",
            "geometry": mapping(geometry),
            "properties": {"id": n, "area_km2": 1.0},
        }

    [clipped] = clip_collections(
        [
            {
                "type": "FeatureCollection",
                "features": [
                    feature(1, inside),
                    feature(2, across),
                    feature(3, outside),
                    feature(4, u_shape),
                ],
            }
        ],
        [bbox],
    )
    by_id = {f["id"]: f for f in clipped["features"]}
    assert set(by_id) == {"a.tif#1", "a.tif#2", "a.tif#4"}
    assert by_id["a.tif#1"]["properties"] == {"id": 1, "area_km2": 1.0}  # untouched
    cut = by_id["a.tif#2"]
    assert cut["properties"]["clipped"] is True
    assert shape(cut["geometry"]).equals(box(51.09, 27.02, 51.1, 27.04))
    expected = abs(geod.geometry_area_perimeter(box(51.09, 27.02, 51.1, 27.04))[0]) / 1e6
    assert cut["properties"]["area_km2"] == pytest.approx(expected)
    assert shape(by_id["a.tif#4"]["geometry"]).equals(box(51.0, 27.05, 51.1, 27.06))


def test_a_bearer_source_sends_its_token_to_the_api_and_to_gdal(
    stac: tuple[str, dict[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = stac
    private = SourceConfig.model_validate(
        source(f"{url}{PRIVATE}") | {"access": "bearer", "token_env": "TEST_STAC_TOKEN"}
    )
    monkeypatch.setenv("TEST_STAC_TOKEN", "wrong-token")
    with pytest.raises(SearchFailed, match="answered 401") as refused:
        search_scenes(private, request(), max_items=50, timeout=5, retries=2, backoff=0, sleep=pytest.fail)
    assert "wrong-token" not in str(refused.value)  # a 4xx is final: no retry (sleep would fail the test)
    monkeypatch.setenv("TEST_STAC_TOKEN", PRIVATE_TOKEN)
    scenes = search_scenes(private, request(), max_items=50, timeout=5, retries=0, backoff=0)
    utm = next(s for s in scenes if s.item_id == SCENE_UTM)
    assert utm.href == f"{url}{PRIVATE}/files/utm.tif"
    with pytest.raises(SceneReadError, match="401"):
        read_windows(utm.href, [BBOX_1], max_pixels=10**6, options=OPTIONS)
    options = gdal_options(retries=0, retry_delay=0, timeout=10, extra=gdal_headers(private))
    [window] = read_windows(utm.href, [BBOX_1], max_pixels=10**6, options=options)
    assert not isinstance(window, str) and window.width == 299
