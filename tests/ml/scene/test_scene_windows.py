"""ml.scene: the windowed path agrees with the whole-image path; a scene file is opened as safely as bytes.

No model here: stand-in predictors make the tiling exact to compare (ml.scene.strips against
ml.inference.sliding_window_many), and files are written by rasterio into tmp_path.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning

from ml.geo.georef import Georef
from ml.image_errors import ImageError
from ml.inference import sliding_window_many
from ml.radiometry import Scale, convert
from ml.scene.convert import WindowConverter
from ml.scene.source import Scene, decimation, open_scene, resolve_inside, scaled
from ml.scene.strips import TileCounts, strip_probabilities

UTM = rasterio.Affine(10.0, 0.0, 549_600.0, 0.0, -10.0, 2_986_540.0)  # ~27.0 N 51.5 E, at sea


def textured(batch: np.ndarray) -> np.ndarray:
    """A stand-in model whose output depends on every pixel's position in its tile (so blending shows)."""
    ramp = np.linspace(0.2, 0.8, batch.shape[-1], dtype=np.float32)
    return batch * ramp[None, None, None, :] + 0.1 * batch.mean(axis=(2, 3), keepdims=True)


@pytest.mark.parametrize(("height", "width"), [(700, 1100), (256, 256), (300, 200), (1000, 257)])
def test_strips_blend_exactly_like_the_whole_image(height: int, width: int) -> None:
    rng = np.random.default_rng(height + width)
    gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
    gray[: height // 3, : width // 2] = 77  # a constant (nodata-like) region: its tiles are skipped by both
    valid = np.ones_like(gray, bool)
    expected = next(sliding_window_many([gray], textured, 256, 32, 2, skip_constant=True))
    counts = TileCounts()
    bands = list(
        strip_probabilities(
            lambda r0, r1: (gray[r0:r1], valid[r0:r1]),
            height,
            width,
            textured,
            tile=256,
            overlap=32,
            batch_size=2,
            counts=counts,
        )
    )
    got = np.concatenate([band.prob for band in bands])
    assert [band.row0 for band in bands] == sorted({band.row0 for band in bands})
    assert got.shape == (height, width)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert np.array_equal(np.concatenate([band.gray for band in bands]), gray)
    assert 0 < counts.run <= counts.total


def test_skipped_tiles_are_never_run_and_count_as_no_oil() -> None:
    gray = np.random.default_rng(0).integers(0, 256, (600, 600), dtype=np.uint8)
    seen: list[int] = []

    def predict(batch: np.ndarray) -> np.ndarray:
        seen.append(len(batch))
        return np.ones_like(batch)

    counts = TileCounts()
    bands = strip_probabilities(
        lambda r0, r1: (gray[r0:r1], np.ones((r1 - r0, 600), bool)),
        600,
        600,
        predict,
        skip=lambda y, x: y == 0 and x == 0,
        counts=counts,
    )
    prob = np.concatenate([band.prob for band in bands])
    assert counts.total == 9 and counts.run == 8 and sum(seen) == 8
    assert prob[:100, :100].max() == 0  # only the skipped tile covers the corner
    assert prob[-100:, -100:].min() == pytest.approx(1.0)


def test_window_conversion_matches_the_whole_image_conversion() -> None:
    rng = np.random.default_rng(1)
    dn = rng.integers(50, 3000, (400, 500)).astype(np.uint16)
    dn[:, :60] = 0  # nodata border
    whole = convert(dn, Scale.AMPLITUDE)
    converter = WindowConverter.fit(dn, np.ones_like(dn, bool), Scale.AMPLITUDE, None)
    gray, valid = converter.convert(dn[100:300], np.ones((200, 500), bool))
    assert whole.valid is not None
    assert np.array_equal(valid, whole.valid[100:300])
    assert np.array_equal(gray, whole.gray[100:300])
    dbs = (10 * np.log10(dn.astype(np.float32) ** 2 + 1)).astype(np.float32) - 60
    floats = WindowConverter.fit(dbs, np.ones_like(dn, bool), Scale.DB, None)
    assert np.array_equal(floats.convert(dbs, np.ones_like(dn, bool))[0], convert(dbs, Scale.DB).gray)


def write(path: Path, values: np.ndarray, **profile: object) -> Path:
    height, width = values.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(
            path, "w", driver="GTiff", width=width, height=height, count=1, dtype=values.dtype, **profile
        ) as dst:
            dst.write(values, 1)
    return path


def test_a_scene_is_read_decimated_with_its_georeference_scaled(tmp_path: Path) -> None:
    values = np.arange(400 * 600, dtype=np.uint16).reshape(400, 600) % 1000 + 1
    path = write(tmp_path / "s.tif", values, crs="EPSG:32639", transform=UTM, tiled=True)
    with open_scene(path, max_pixels=10**6, resolution_m=40) as scene:
        assert (scene.factor, scene.height, scene.width) == (4, 100, 150)
        assert scene.georef is not None and scene.georef.transform == (
            40.0,
            0.0,
            549_600.0,
            0.0,
            -40.0,
            2_986_540.0,
        )
        rows, valid = scene.read(10, 20)
        assert rows.shape == (10, 150) and valid.all()
        block = values[40:44, 8:12].astype(np.float64).mean()
        assert abs(float(rows[0, 2]) - block) <= 1  # GDAL's average of the 4 x 4 pixels
    with open_scene(path, max_pixels=10**6, resolution_m=0) as scene:
        assert (scene.factor, scene.height) == (1, 400)


def test_without_declared_nodata_the_decimated_pixels_next_to_the_fill_are_nodata(tmp_path: Path) -> None:
    values = np.full((64, 64), 400, np.uint16)
    values[:, :13] = 0  # a GRD's fill, no nodata value declared: pixel 6 of the 2 x 2 grid averages 0 and 400
    path = write(tmp_path / "grd.tif", values, crs="EPSG:32639", transform=UTM)
    with open_scene(path, max_pixels=10**6, resolution_m=20) as scene:
        rows, valid = scene.read(0, 32)
    assert rows[0, 6] == 200 and rows[0, 7] == 400  # GDAL's average darkened the edge pixel
    assert not valid[:, :7].any() and valid[:, 7:].all()


def decimated_read(scene: Scene, max_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """What the stretch was fitted on before `Scene.sample`: GDAL's nearest read of the whole file."""
    src = scene.src
    step = max(1, int(np.ceil(np.sqrt(src.width * src.height / max_pixels))))
    shape = (max(1, src.height // step), max(1, src.width // step))
    values = src.read(scene.band, out_shape=shape, resampling=Resampling.nearest)
    return values, src.read_masks(scene.band, out_shape=shape, resampling=Resampling.nearest) != 0


def test_the_stretch_sample_is_the_processing_pixels_the_model_is_fed(tmp_path: Path) -> None:
    # Speckled sea at 10 m, processed at 20 m: the file's own pixels spread wider than their 2 x 2 averages.
    rng = np.random.default_rng(3)
    values = (300 * np.sqrt(rng.gamma(4.0, 0.25, (640, 480)))).astype(np.uint16) + 1
    values[:, :40] = 0  # a GRD's fill border, no nodata value declared
    path = write(tmp_path / "grd.tif", values, crs="EPSG:32639", transform=UTM, tiled=True)
    with open_scene(path, max_pixels=10**6, resolution_m=20) as scene:
        grid, grid_valid = scene.read(0, scene.height)
        sample, sample_valid = scene.sample(20_000)
        nearest, nearest_valid = decimated_read(scene, 20_000)
    assert 20_000 <= sample.size <= 20_000 + 16 * 240 and sample.shape[1] == 240
    assert sample.shape[0] % 16 == 0 and not sample_valid[:, :20].any()  # the border and its edge are out
    fed = np.percentile(grid[grid_valid], [1, 99])
    fitted = np.percentile(sample[sample_valid], [1, 99])
    wider = np.percentile(nearest[nearest_valid], [1, 99])
    assert np.allclose(fitted, fed, rtol=0.03)
    assert wider[1] > fed[1] * 1.1 and wider[0] < fed[0] * 0.9  # what the stretch was fitted on before


def test_the_stretch_sample_ignores_a_files_overviews(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    values = (300 * np.sqrt(rng.gamma(4.0, 0.25, (512, 512)))).astype(np.uint16) + 1
    path = write(tmp_path / "ov.tif", values, tiled=True)  # no georeference: processed as it is
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "r+") as dst:
            dst.build_overviews([4, 8], Resampling.average)
    with open_scene(path, max_pixels=10**6, resolution_m=20) as scene:
        assert scene.factor == 1
        sample, sample_valid = scene.sample(20_000)
        averaged, _ = decimated_read(scene, 20_000)
    fed = np.percentile(values, [1, 99])
    assert np.allclose(np.percentile(sample[sample_valid], [1, 99]), fed, rtol=0.03)
    assert np.percentile(averaged, 99) < fed[1] * 0.9  # an overview's averages: a stretch too narrow


def test_the_sample_says_which_rows_it_holds(tmp_path: Path) -> None:
    values = np.repeat(np.arange(1, 501, dtype=np.uint16)[:, None], 300, axis=1)  # each row holds its number
    path = write(tmp_path / "rows.tif", values, tiled=True)
    with open_scene(path, max_pixels=10**6, resolution_m=20) as scene:
        sample, _ = scene.sample(20_000)
        rows = scene.sample_rows(20_000)
    assert rows.size == sample.shape[0] and np.array_equal(sample[:, 0], rows + 1)
    assert rows[0] == 0 and rows[-1] == 499  # bands spread from the first row to the last


def test_a_scene_without_georeference_opens_without_gdals_warning(tmp_path: Path) -> None:
    path = write(tmp_path / "plain.tif", np.full((64, 64), 40, np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NotGeoreferencedWarning)  # raised, not printed, if it escapes
        with open_scene(path, max_pixels=10**6, resolution_m=20) as scene:
            assert scene.georef is None and scene.factor == 1


def test_gcps_are_scaled_with_the_grid() -> None:
    gcps = ((0.0, 0.0, 51.0, 27.0, 0.0), (400.0, 0.0, 51.1, 27.0, 0.0), (0.0, 300.0, 51.0, 26.9, 0.0))
    georef = Georef(400, 300, "EPSG:4326", 4326, gcps=gcps)
    half = scaled(georef, 2, 200, 150)
    assert half.gcps[1][:2] == (200.0, 0.0) and half.gcps[2][:2] == (0.0, 150.0)
    assert decimation(None, 20) == 1 and decimation(georef, 0) == 1


def test_paths_outside_the_scene_folder_and_non_tiffs_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "results"
    root.mkdir()
    secret = write(tmp_path / "secret.tif", np.ones((64, 64), np.uint8))
    (root / "link.tif").symlink_to(secret)
    for relative in ("../secret.tif", str(secret), "link.tif", "missing.tif", "."):
        with pytest.raises(ImageError) as caught:
            resolve_inside(root, relative)
        assert caught.value.status_code == 400, relative
    vrt = root / "x.tif"  # a VRT renamed .tif would make GDAL read the file it names
    vrt.write_text(f'<VRTDataset rasterXSize="64" rasterYSize="64"><!-- {secret} --></VRTDataset>')
    with pytest.raises(ImageError) as caught, open_scene(vrt, max_pixels=10**6, resolution_m=0):
        pass
    assert caught.value.status_code == 400 and "TIFF" in caught.value.detail
    big = write(root / "big.tif", np.ones((300, 400), np.uint8))
    with pytest.raises(ImageError) as caught, open_scene(big, max_pixels=100_000, resolution_m=0):
        pass
    assert caught.value.status_code == 413
