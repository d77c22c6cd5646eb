"""The ML service over HTTP (FastAPI TestClient, real lifespan, real ONNX model)."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import zipfile
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ml.outputs import overlay_rgb
from ml.radiometry import convert
from ml.service.config import Settings
from ml.service.main import create_app

Encoder = Callable[..., bytes]
Scene = Callable[..., tuple[np.ndarray, np.ndarray]]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def post(client: TestClient, data: bytes, name: str = "scene.png") -> httpx.Response:
    return client.post("/segment", files={"file": (name, data, "application/octet-stream")})


def mask_of(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.mode == "L"
        return np.asarray(image)


def test_health_and_model_card(client: TestClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    card = client.get("/model").json()
    weights = Settings().MODEL_PATH.read_bytes()
    assert card["sha256"] == hashlib.sha256(weights).hexdigest()
    assert card["version"] == health.json()["model_version"]
    assert card["sha256"][:12] in card["version"]
    assert (card["tile_size"], card["tile_overlap"]) == (256, 32)
    assert {"oil_iou", "background_iou", "miou"} <= set(card["validation"])


def test_health_is_503_until_the_model_is_loaded() -> None:
    unstarted = TestClient(create_app(Settings()))  # no `with`: the lifespan never runs
    assert unstarted.get("/health").status_code == 503
    assert unstarted.get("/health").json() == {"detail": "model not loaded"}


@pytest.mark.parametrize("fmt", ["PNG", "TIFF16"])
def test_finds_the_slick_and_little_of_the_sea(
    client: TestClient, scene: Scene, encoder: Encoder, fmt: str
) -> None:
    image, slick = scene(256, 256, seed=7)
    data = (
        encoder(Image.fromarray(image.astype(np.uint16) * 257), "TIFF") if fmt == "TIFF16" else encoder(image)
    )
    response = post(client, data)
    oil = mask_of(response) == 255
    recall = (oil & slick).sum() / slick.sum()
    false_positive_rate = (oil & ~slick).sum() / (~slick).sum()
    assert recall >= 0.7, f"found only {recall:.2f} of the slick"
    assert false_positive_rate <= 0.1, f"flagged {false_positive_rate:.2f} of the sea"
    assert float(response.headers["X-Oil-Fraction"]) == pytest.approx(oil.mean(), abs=1e-5)
    assert int(response.headers["X-Oil-Pixels"]) == oil.sum()
    assert response.headers["X-Model-Version"] == client.get("/model").json()["version"]


@pytest.mark.parametrize("size", [(1, 1), (7, 300), (257, 513), (1250, 650)])  # (width, height)
def test_mask_keeps_odd_sizes(
    client: TestClient, scene: Scene, encoder: Encoder, size: tuple[int, int]
) -> None:
    width, height = size
    image, _ = scene(height, width, seed=1)
    mask = mask_of(post(client, encoder(image)))
    assert mask.shape == (height, width)
    assert set(np.unique(mask)) <= {0, 255}


def test_large_scene_is_segmented_seamlessly(client: TestClient, scene: Scene, encoder: Encoder) -> None:
    """A slick spanning many tiles comes back whole (tiling and blending through the real model)."""
    image, slick = scene(650, 1250, seed=2)
    oil = mask_of(post(client, encoder(image))) == 255
    assert (oil & slick).sum() / slick.sum() >= 0.7
    assert (oil & ~slick).sum() / (~slick).sum() <= 0.1


def test_overlay_comes_zipped_with_the_same_mask(client: TestClient, scene: Scene, encoder: Encoder) -> None:
    image, _ = scene(190, 333, seed=5)
    alone = mask_of(post(client, encoder(image)))
    response = client.post(
        "/segment", params={"overlay": "true"}, files={"file": ("s.png", encoder(image), "image/png")}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert float(response.headers["X-Oil-Fraction"]) == pytest.approx((alone == 255).mean(), abs=1e-5)
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        mask_png, overlay_png = zf.read("mask.png"), zf.read("overlay.png")
    with Image.open(io.BytesIO(mask_png)) as mask, Image.open(io.BytesIO(overlay_png)) as overlay:
        np.testing.assert_array_equal(np.asarray(mask), alone)
        assert (overlay.mode, overlay.size) == ("P", (333, 190))
        np.testing.assert_array_equal(
            np.asarray(overlay.convert("RGB")), overlay_rgb(convert(image).gray, alone)
        )


@pytest.mark.parametrize(
    ("mode", "fmt"), [("I;16", "TIFF"), ("RGBA", "PNG"), ("L", "JPEG"), ("RGB", "JPEG"), ("RGB", "TIFF")]
)
def test_formats_and_modes(client: TestClient, scene: Scene, encoder: Encoder, mode: str, fmt: str) -> None:
    image, _ = scene(190, 333, seed=3)
    if mode == "I;16":
        pil = Image.fromarray(image.astype(np.uint16) * 257)
    else:
        pil = Image.fromarray(image).convert(mode)
    assert pil.mode == mode
    assert mask_of(post(client, encoder(pil, fmt), f"x.{fmt.lower()}")).shape == (190, 333)


def test_bad_inputs_get_their_status_and_the_service_keeps_serving(
    client: TestClient, scene: Scene, encoder: Encoder, bomb_png: bytes
) -> None:
    good = encoder(scene(64, 64)[0])
    cases = {
        "not an image": (b"just some text, certainly not a picture", 400),
        "truncated png": (
            encoder(np.random.default_rng(0).integers(0, 256, (300, 300), np.uint8))[:2000],
            400,
        ),
        "empty": (b"", 400),
        "bomb": (bomb_png, 413),
    }
    for label, (data, status) in cases.items():
        t0 = time.perf_counter()
        response = post(client, data)
        assert response.status_code == status, label
        assert isinstance(response.json()["detail"], str), label
        assert time.perf_counter() - t0 < 2.0, label
    missing = client.post("/segment", data={"other": "x"})
    assert missing.status_code == 422
    assert "file" in missing.json()["detail"]
    assert mask_of(post(client, good)).shape == (64, 64)
    assert client.get("/health").status_code == 200


def test_limits_are_configurable(scene: Scene, encoder: Encoder) -> None:
    image = scene(100, 100)[0]
    with TestClient(create_app(Settings(MAX_BODY_MB=1, MAX_PIXELS=9_999))) as small:
        too_many = post(small, encoder(image))
        assert too_many.status_code == 413
        assert "10000 pixels" in too_many.json()["detail"]
        too_big = post(small, b"\0" * (1024 * 1024 + 1))
        assert too_big.status_code == 413
        assert "over the limit" in too_big.json()["detail"]

        def chunked() -> Iterator[bytes]:
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
            for _ in range(20):
                yield b"\0" * 65536
            yield b"\r\n--b--\r\n"

        streamed = small.post(
            "/segment", content=chunked(), headers={"content-type": "multipart/form-data; boundary=b"}
        )
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413
        assert "over the limit" in streamed.json()["detail"]
        assert mask_of(post(small, encoder(image[:99, :99]))).shape == (99, 99)


def test_inference_does_not_block_the_event_loop(client: TestClient, scene: Scene, encoder: Encoder) -> None:
    data = encoder(scene(1400, 1400, seed=4)[0])
    done = threading.Event()

    def segment() -> None:
        mask_of(post(client, data))
        done.set()

    worker = threading.Thread(target=segment)
    worker.start()
    time.sleep(0.2)  # the 1400x1400 scene (49 tiles) takes well over a second
    assert client.get("/health").status_code == 200
    answered_during_inference = not done.is_set()
    worker.join(timeout=60)
    assert done.is_set()
    assert answered_during_inference, "/health waited for the segmentation to finish"


def post_batch(client: TestClient, files: list[tuple[str, bytes]], overlay: bool = True) -> httpx.Response:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return client.post("/segment/batch", params={"overlay": str(overlay).lower()}, files=parts)


def test_batch_gives_each_image_the_mask_it_gets_alone(
    client: TestClient, scene: Scene, encoder: Encoder
) -> None:
    images = [scene(256, 256, seed=7)[0], scene(61, 97, seed=8)[0], scene(300, 410, seed=9)[0]]
    files = [(f"img{i}.png", encoder(image)) for i, image in enumerate(images)]
    files.insert(1, ("broken.png", encoder(images[0])[:300]))
    response = post_batch(client, files)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        result = json.loads(zf.read("results.json"))
        assert result["model_version"] == response.headers["X-Model-Version"]
        items = result["images"]
        assert [(i["index"], i["filename"], i["status"]) for i in items] == [
            (0, "img0.png", "ok"),
            (1, "broken.png", "error"),
            (2, "img1.png", "ok"),
            (3, "img2.png", "ok"),
        ]
        assert items[1]["status_code"] == 400 and "truncated" in items[1]["detail"]
        assert "1/mask.png" not in zf.namelist()
        for item, image in zip([items[0], items[2], items[3]], images, strict=True):
            alone = mask_of(post(client, encoder(image)))
            with Image.open(io.BytesIO(zf.read(f"{item['index']}/mask.png"))) as mask:
                np.testing.assert_array_equal(np.asarray(mask), alone)
            with Image.open(io.BytesIO(zf.read(f"{item['index']}/overlay.png"))) as overlay:
                assert (overlay.mode, overlay.size) == ("P", alone.shape[::-1])
            assert (item["height"], item["width"]) == alone.shape
            assert item["oil_fraction"] == pytest.approx((alone == 255).mean(), abs=1e-6)
            assert item["oil_pixels"] == (alone == 255).sum()


def test_batch_limits(scene: Scene, encoder: Encoder) -> None:
    data = encoder(scene(32, 32)[0])
    with TestClient(create_app(Settings(MAX_BATCH_IMAGES=3))) as small:
        too_many = post_batch(small, [(f"{i}.png", data) for i in range(4)])
        assert too_many.status_code == 413 and "over the limit of 3" in too_many.json()["detail"]
        none = small.post("/segment/batch", data={"other": "x"})
        assert none.status_code == 422 and "files" in none.json()["detail"]
        without_overlay = post_batch(small, [("a.png", data)] * 3, overlay=False)
        with zipfile.ZipFile(io.BytesIO(without_overlay.content)) as zf:
            assert sorted(zf.namelist()) == ["0/mask.png", "1/mask.png", "2/mask.png", "results.json"]


def sar_encodings(scene: Scene, encoder: Encoder, seed: int) -> tuple[dict[str, bytes], np.ndarray]:
    """One synthetic scene as four processors would write it, and its slick."""
    image, slick = scene(256, 256, seed=seed)
    db = (image.astype(np.float32) / 255 * 25 - 25).astype(np.float32)  # read the grey levels as dB
    power = (10 ** (db / 10)).astype(np.float32)
    amplitude = np.round(np.sqrt(power) * 800).astype(np.uint16)
    return {
        "8-bit PNG": encoder(image),
        "16-bit amplitude TIFF": encoder(Image.fromarray(amplitude), "TIFF"),
        "float32 dB TIFF": encoder(Image.fromarray(db), "TIFF"),
        "float32 linear TIFF": encoder(Image.fromarray(power), "TIFF"),
    }, slick


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_masks_agree_whatever_processor_wrote_the_image(
    client: TestClient, scene: Scene, encoder: Encoder
) -> None:
    encodings, slick = sar_encodings(scene, encoder, seed=11)
    masks = {name: mask_of(post(client, data, "x.tif")) == 255 for name, data in encodings.items()}
    reference = masks["8-bit PNG"]
    for name, oil in masks.items():
        assert (oil & slick).sum() / slick.sum() >= 0.7, f"{name}: found too little of the slick"
        assert (oil & ~slick).sum() / (~slick).sum() <= 0.1, f"{name}: flagged too much sea"
        assert iou(oil, reference) >= 0.9, f"{name} disagrees with the 8-bit PNG"


def test_nodata_border_is_never_oil_and_is_reported(
    client: TestClient, scene: Scene, encoder: Encoder
) -> None:
    image, _ = scene(256, 256, seed=4)
    amplitude = image.astype(np.uint16) * 4 + 10
    amplitude[:, :80] = 0  # a GRD border
    amplitude[:, :80][image[:, :80] < 60] = 0
    data = encoder(Image.fromarray(amplitude), "TIFF")
    assert (mask_of(post(client, data, "b.tif"))[:, :80] == 0).all()
    response = client.post("/segment/batch", files=[("files", ("b.tif", data, "image/tiff"))])
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        (item,) = json.loads(zf.read("results.json"))["images"]
    assert item["scale"] == "amplitude"
    assert item["valid_fraction"] == pytest.approx(176 / 256)


def utm_geotiff(values: np.ndarray, nodata: float | None = None) -> bytes:
    """A GeoTIFF in UTM 39N, 10 m pixels, its corner near 27.0 N 52.0 E (the Persian Gulf)."""
    import rasterio
    from rasterio.io import MemoryFile

    height, width = values.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": values.dtype}
    transform = rasterio.Affine(10.0, 0.0, 600_000.0, 0.0, -10.0, 2_990_000.0)
    with MemoryFile() as memfile:
        with memfile.open(**profile, crs="EPSG:32639", transform=transform, nodata=nodata) as dst:
            dst.write(values, 1)
            dst.update_tags(ACQUISITION_START_TIME="2024-05-02T02:41:07.123Z")
        return bytes(memfile.read())


def test_geo_batch_gives_slicks_in_lonlat_and_an_aligned_cog(
    client: TestClient, scene: Scene, encoder: Encoder
) -> None:
    import rasterio
    from rasterio.io import MemoryFile

    image, slick = scene(256, 256, seed=11)
    amplitude = (image.astype(np.uint16) * 4 + 10).astype(np.uint16)
    amplitude[:, :40] = 0  # a nodata border
    files = [
        ("files", ("scene.tif", utm_geotiff(amplitude, nodata=0), "image/tiff")),
        ("files", ("tile.png", encoder(image), "image/png")),
    ]
    response = client.post("/segment/batch", params={"geo": "true"}, files=files)
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        items = json.loads(zf.read("results.json"))["images"]
        geo_slicks = json.loads(zf.read("0/slicks.geojson"))
        pixel_slicks = json.loads(zf.read("1/slicks.geojson"))
        cog = zf.read("0/mask.tif")
        mask = np.asarray(Image.open(io.BytesIO(zf.read("0/mask.png"))))
        assert "1/mask.tif" not in zf.namelist()  # a PNG has no georeference to carry
    geo, plain = items[0]["geo"], items[1]["geo"]
    assert geo["georeferenced"] and geo["crs"] == "EPSG:32639" and geo["georeferencing"] == "affine"
    assert geo["pixel_size_m"] == pytest.approx([10, 10], rel=0.01)
    assert geo["acquired"] == "2024-05-02T02:41:07.123000Z"
    west, south, east, north = geo["bounds"]
    assert 51.9 < west < east < 52.1 and 26.9 < south < north < 27.1
    assert geo["slicks"] == len(geo_slicks["features"]) >= 1
    biggest = geo_slicks["features"][0]["properties"]
    truth_km2 = (slick & (np.arange(256) >= 40)[None, :]).sum() * 100 / 1e6
    assert biggest["area_km2"] == pytest.approx(truth_km2, rel=0.25)  # what the model found, not the truth
    assert geo["oil_km2"] == pytest.approx(sum(f["properties"]["area_km2"] for f in geo_slicks["features"]))
    assert not plain["georeferenced"] and plain["reason"] == "not a GeoTIFF" and plain["oil_km2"] is None
    assert pixel_slicks["georeferenced"] is False and pixel_slicks["features"]
    with MemoryFile(cog) as memfile, memfile.open() as src:
        assert src.crs == rasterio.crs.CRS.from_epsg(32639)
        assert src.transform == rasterio.Affine(10.0, 0.0, 600_000.0, 0.0, -10.0, 2_990_000.0)
        assert src.profile["tiled"] and (src.width, src.height) == (256, 256)
        np.testing.assert_array_equal(src.read(1), mask)
        assert not src.read_masks(1)[:, :40].any() and src.read_masks(1)[:, 40:].all()


def coastal_geotiff(size: int = 512) -> bytes:
    """uint16 amplitude over Qatar's northern tip at 20 m: speckled sea, brighter textured land where GSHHG
    has it (so land hiding has land beside sea to hide)."""
    import rasterio
    from pyproj import Transformer
    from rasterio.io import MemoryFile

    from ml.geo.landmask import on_land

    x0, y0 = Transformer.from_crs("EPSG:4326", "EPSG:32639", always_xy=True).transform(51.17, 26.20)
    transform = rasterio.Affine(20.0, 0.0, round(x0), 0.0, -20.0, round(y0))
    step = 16
    cols, rows = np.meshgrid(np.arange(0, size, step) + step / 2, np.arange(0, size, step) + step / 2)
    x, y = transform * (cols.ravel(), rows.ravel())
    lon, lat = Transformer.from_crs("EPSG:32639", "EPSG:4326", always_xy=True).transform(x, y)
    land = on_land(np.asarray(lon), np.asarray(lat)).reshape(cols.shape)
    land = np.repeat(np.repeat(land, step, axis=0), step, axis=1)
    rng = np.random.default_rng(21)
    values = 300 * np.sqrt(rng.gamma(4.0, 0.25, (size, size))) * np.where(land, 3.0, 1.0)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint16"}
    with MemoryFile() as memfile:
        with memfile.open(**profile, crs="EPSG:32639", transform=transform) as dst:
            dst.write(values.astype(np.uint16) + 1, 1)
        return bytes(memfile.read())


def test_one_image_alone_or_in_a_batch_reaches_the_model_alike_on_a_coast(client: TestClient) -> None:
    from ml.imaging import decode
    from ml.scene.land import land_cells
    from ml.service.batch import model_view

    data = coastal_geotiff()
    decoded = decode(data)
    assert decoded.georef is not None
    cells = land_cells(decoded.georef, 512, 512).cells
    assert cells.any() and not cells.all()  # land and sea: there is land to hide
    assert not np.array_equal(model_view(decoded, None, Settings()), decoded.image.gray)
    alone = mask_of(post(client, data, "coast.tif"))
    response = client.post("/segment/batch", files=[("files", ("coast.tif", data, "image/tiff"))])
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        batched = np.asarray(Image.open(io.BytesIO(zf.read("0/mask.png"))))
    assert np.array_equal(alone, batched)
