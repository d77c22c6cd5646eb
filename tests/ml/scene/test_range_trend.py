"""ml.scene.range_trend and the converter that applies it: a scene's far range brought to its near's level.

Synthetic working values in dB (a sea that falls linearly across the columns, speckle, nodata borders, land,
a wide slick) and a GRD-like uint16 amplitude scene through ml.scene.convert; no model, no files.
"""

from __future__ import annotations

import warnings

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.io import MemoryFile

from ml.geo.georef import Georef
from ml.imaging import decode
from ml.radiometry import Scale, convert
from ml.scene.convert import WindowConverter
from ml.scene.land import LandCells
from ml.scene.range_trend import range_correction

HEIGHT, WIDTH = 320, 4000
UTM = rasterio.Affine(10.0, 0.0, 549_600.0, 0.0, -10.0, 2_986_540.0)


def sea_db(fall_db: float, seed: int = 0) -> np.ndarray:
    """A sea at -18 dB at near range falling linearly by `fall_db` to the far range, with dB speckle."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, -fall_db, WIDTH, dtype=np.float32)
    return (-18.0 + ramp[None, :] + rng.normal(0, 1.5, (HEIGHT, WIDTH))).astype(np.float32)


def block_medians(working: np.ndarray, columns: slice) -> float:
    block = working[:, columns]
    return float(np.median(block[np.isfinite(block)]))


def test_a_fall_across_the_columns_is_removed_and_the_level_kept() -> None:
    working = sea_db(6.0)
    working[:, :300] = np.nan  # a GRD's fill border
    correction = range_correction(working)
    assert correction is not None and correction.shape == (WIDTH,)
    flat = working + correction
    near, far = block_medians(flat, slice(300, 800)), block_medians(flat, slice(3500, 4000))
    assert abs(near - far) < 0.2
    assert abs(block_medians(working, slice(300, None)) - block_medians(flat, slice(300, None))) < 0.3
    assert block_medians(working, slice(300, 800)) - block_medians(working, slice(3500, 4000)) > 4


def test_land_and_a_wide_slick_do_not_bend_the_curve() -> None:
    working = sea_db(6.0, seed=1)
    working[: int(HEIGHT * 0.7), :600] += 9.0  # bright land over most rows of the near range's columns
    working[: int(HEIGHT * 0.8), 2000:2200] -= 10.0  # a slick longer than the scene's sampled rows
    correction = range_correction(working)
    assert correction is not None
    flat = working + correction
    sea = [block_medians(flat[int(HEIGHT * 0.8) :], slice(c, c + 200)) for c in range(0, WIDTH, 200)]
    assert max(sea) - min(sea) < 0.6  # the open sea's rows: level across the whole width


def test_a_coast_with_more_land_than_sea_is_fitted_on_its_sea_alone() -> None:
    # Land on 3/4 of the rows of the far 60 % of the columns, brighter inland (hills): a fit on the blocks'
    # medians follows the land there, whose rise is not the sea's fall.
    working = sea_db(6.0, seed=3)
    land = np.zeros(working.shape, bool)
    land[: int(HEIGHT * 0.75), 1600:] = True
    hills = np.zeros(WIDTH, np.float32)
    hills[1600:] = np.linspace(3.0, 15.0, WIDTH - 1600)
    working[land] += np.broadcast_to(hills, land.shape)[land]
    valid = np.ones(working.shape, bool)
    sea_rows = slice(int(HEIGHT * 0.75), None)
    spans = {}
    for known in (None, land):
        converter = WindowConverter.fit(working, valid, Scale.DB, None, range_trend=True, land=known)
        gray, _ = converter.convert(working, valid)
        sea = [float(np.median(gray[sea_rows, c : c + 400])) for c in range(0, WIDTH, 400)]
        spans[known is None] = max(sea) - min(sea)
    assert spans[True] > 30  # fitted on the land: the sea beside it pushed tens of grey levels down
    assert spans[False] < 6


def test_narrow_empty_and_flat_images_are_left_as_they_are() -> None:
    assert range_correction(sea_db(6.0)[:, :800]) is None  # a few km of range: nothing to fit
    assert range_correction(np.full((HEIGHT, WIDTH), np.nan, np.float32)) is None
    sparse = np.full((HEIGHT, WIDTH), np.nan, np.float32)
    sparse[:, :100] = -18.0  # data in too few blocks of columns
    assert range_correction(sparse) is None
    flat = range_correction(np.full((HEIGHT, WIDTH), -18.0, np.float32))
    assert flat is not None and np.abs(flat).max() < 1e-4


def grd_amplitude(far_gain: float) -> tuple[np.ndarray, np.ndarray]:
    """uint16 amplitude numbers as in a GRD: 4-look speckle, a linear fall to `far_gain`, 0 = fill."""
    rng = np.random.default_rng(2)
    gain = np.linspace(1.0, far_gain, WIDTH)[None, :]
    values = (400 * gain * np.sqrt(rng.gamma(4.0, 0.25, (HEIGHT, WIDTH)))).astype(np.uint16) + 1
    values[:, :200] = 0
    return values, values > 0


def test_the_converter_shows_the_far_range_at_the_near_ranges_grey_level() -> None:
    values, valid = grd_amplitude(far_gain=0.5)  # -6 dB
    thirds = slice(200, 1400), slice(2800, 4000)
    levels = {}
    for trend in (False, True):
        converter = WindowConverter.fit(values, valid, Scale.AMPLITUDE, 0, range_trend=trend)
        gray, ok = converter.convert(values, valid)
        assert np.array_equal(ok, valid)
        levels[trend] = [float(np.median(gray[:, third])) for third in thirds]
    assert levels[False][0] - levels[False][1] > 40  # one stretch: the far range tens of levels darker
    assert abs(levels[True][0] - levels[True][1]) < 4


def test_windows_of_a_scene_agree_with_the_scene_converted_at_once() -> None:
    values, valid = grd_amplitude(far_gain=0.6)
    converter = WindowConverter.fit(values, valid, Scale.AMPLITUDE, 0, range_trend=True)
    assert converter.correction is not None
    whole, _ = converter.convert(values, valid)
    bands = [converter.convert(values[r : r + 64], valid[r : r + 64])[0] for r in range(0, HEIGHT, 64)]
    assert np.array_equal(np.concatenate(bands), whole)  # one stretch, one curve: no seams between strips
    assert np.all(whole[:, :200] == converter.stretch.fill)  # type: ignore[union-attr]


def tiff_bytes(values: np.ndarray, **georeference: object) -> bytes:
    """A uint16 TIFF in memory, 0 declared as nodata (as a GRD's fill), georeferenced if given crs etc."""
    height, width = values.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": values.dtype}
    profile.update(georeference)
    with warnings.catch_warnings(), MemoryFile() as memfile:
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with memfile.open(**profile, nodata=0) as dst:
            dst.write(values, 1)
        return bytes(memfile.read())


def test_a_batchs_geotiff_is_converted_as_the_same_scene_would_be() -> None:
    values, valid = grd_amplitude(far_gain=0.5)
    data = tiff_bytes(values)
    corrected = decode(data, range_trend=True).image
    converter = WindowConverter.fit(values, valid, Scale.AMPLITUDE, 0, range_trend=True)
    assert np.array_equal(corrected.gray, converter.convert(values, valid)[0])  # one sample: the whole image
    assert corrected.valid is not None and np.array_equal(corrected.valid, valid)
    near, far = (float(np.median(corrected.gray[:, c])) for c in (slice(200, 1400), slice(2800, 4000)))
    assert abs(near - far) < 4
    as_before = decode(data).image  # the setting off: ml.radiometry's one stretch, far range darker
    assert np.array_equal(as_before.gray, convert(values, Scale.AMPLITUDE, 0).gray)
    narrow = tiff_bytes(values[:, :1000])  # too narrow for a trend: converted as it always was
    assert np.array_equal(decode(narrow, range_trend=True).image.gray, decode(narrow).image.gray)


def test_a_batchs_geotiff_has_its_trend_fitted_off_the_land_it_is_given() -> None:
    values, valid = grd_amplitude(far_gain=0.5)
    land = LandCells(np.zeros((-(-HEIGHT // 8), WIDTH // 8), bool), 8)
    land.cells[: land.cells.shape[0] * 3 // 4, 200:] = True  # 3/4 of the rows of the far 60 %
    bright = land.pixels(0, HEIGHT, WIDTH) & valid
    values[bright] = np.minimum(values[bright].astype(np.int64) * 6, 65535).astype(np.uint16)
    asked: list[tuple[int, int]] = []

    def land_of(georef: Georef, height: int, width: int) -> LandCells:
        asked.append((height, width))
        return land

    data = tiff_bytes(values, crs="EPSG:32639", transform=UTM)
    image = decode(data, range_trend=True, land_of=land_of).image
    assert asked == [(HEIGHT, WIDTH)]
    expected = WindowConverter.fit(values, valid, Scale.AMPLITUDE, 0, range_trend=True, land=bright)
    assert np.array_equal(image.gray, expected.convert(values, valid)[0])
    assert not np.array_equal(image.gray, decode(data, range_trend=True).image.gray)  # the land counted


def test_the_stretch_of_a_coast_is_fitted_on_its_sea_when_its_land_is_known() -> None:
    values, valid = grd_amplitude(far_gain=1.0)
    land = np.zeros(values.shape, bool)
    land[:, 2400:] = True  # bright land on 40 % of the image, as on a coastal GeoTIFF
    values[land] = np.minimum(values[land].astype(np.int64) * 3, 65535).astype(np.uint16)
    sea = valid & ~land
    for trend in (False, True):
        with_land = WindowConverter.fit(values, valid, Scale.AMPLITUDE, 0, range_trend=trend)
        on_sea = WindowConverter.fit(values, valid, Scale.AMPLITUDE, 0, range_trend=trend, land=land)
        darkened = float(np.median(with_land.convert(values, valid)[0][sea]))
        level = float(np.median(on_sea.convert(values, valid)[0][sea]))
        assert darkened < 90 < 110 < level  # the land's stretch shows the sea dark, as a slick
        alone = WindowConverter.fit(values[:, :2400], valid[:, :2400], Scale.AMPLITUDE, 0)
        assert (
            abs(level - float(np.median(alone.convert(values[:, :2400], valid[:, :2400])[0][sea[:, :2400]])))
            <= 2
        )
