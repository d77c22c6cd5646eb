"""Input conversion (ml.radiometry): each dtype, dB vs linear, nodata, NaN/inf, constant and tiny images."""

from __future__ import annotations

import numpy as np
import pytest

from ml.radiometry import STATS_SAMPLES, Scale, Stretch, convert, infer_scale, to_working

RNG = np.random.default_rng(0)
# A SAR-like scene in dB: sea around -8 dB with speckle, a slick 8 dB darker in the middle.
SEA_DB = (-8 + 1.5 * RNG.standard_normal((64, 96))).astype(np.float32)
SLICK = np.zeros((64, 96), bool)
SLICK[24:40, 30:70] = True
SCENE_DB = np.where(SLICK, SEA_DB - 8, SEA_DB).astype(np.float32)


def encodings() -> dict[str, np.ndarray]:
    """The one scene as different processors write it."""
    power = (10 ** (SCENE_DB / 10)).astype(np.float32)
    amplitude = np.round(np.sqrt(power) * 600).astype(np.uint16)  # DN in the tens to low thousands
    grey = np.clip((SCENE_DB + 25) / 25 * 255, 0, 255).round().astype(np.uint8)  # an 8-bit dB rendering
    return {"db": SCENE_DB, "power": power, "amplitude": amplitude, "grey": grey}


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [
        (np.uint8, Scale.GREY),
        (np.uint16, Scale.AMPLITUDE),
        (np.int16, Scale.AMPLITUDE),
        (np.uint32, Scale.AMPLITUDE),
        (np.int32, Scale.AMPLITUDE),
    ],
)
def test_integer_types_have_their_rule(dtype: type, scale: Scale) -> None:
    assert infer_scale(np.ones((3, 3), dtype)) is scale


def test_floats_are_db_when_negative_else_linear_power() -> None:
    assert infer_scale(SCENE_DB) is Scale.DB
    assert infer_scale(10 ** (SCENE_DB / 10)) is Scale.POWER
    # A -9999 fill value alone does not make a linear image dB.
    filled = (10 ** (SCENE_DB / 10)).astype(np.float32)
    filled[:4] = -9999
    assert infer_scale(filled) is Scale.POWER


def test_every_encoding_of_one_scene_gives_the_same_picture() -> None:
    """dB, linear power and amplitude are the same numbers in dB: identical after the stretch."""
    results = {name: convert(values) for name, values in encodings().items()}
    assert {name: r.scale for name, r in results.items()} == {
        "db": Scale.DB,
        "power": Scale.POWER,
        "amplitude": Scale.AMPLITUDE,
        "grey": Scale.GREY,
    }
    reference = results["db"].gray.astype(int)
    for name, r in results.items():
        assert r.gray.dtype == np.uint8 and r.gray.shape == SCENE_DB.shape
        assert r.valid is None
        # Rounding to DN or to 8 bits moves a few levels, never the picture.
        assert np.abs(r.gray.astype(int) - reference).mean() < 3, name
        assert r.gray[SLICK].mean() < r.gray[~SLICK].mean() - 60, name


def test_gain_and_offset_do_not_change_the_picture() -> None:
    grey = encodings()["grey"]
    base = convert(grey).gray.astype(int)
    brighter = convert((grey.astype(np.float32) * 0.6 + 40).round().astype(np.uint8)).gray.astype(int)
    assert np.abs(brighter - base).mean() < 2.5
    calibrated = convert(10 ** (SCENE_DB / 10) * 3.7).gray.astype(int)  # another calibration constant
    assert np.abs(calibrated - convert(10 ** (SCENE_DB / 10)).gray.astype(int)).max() <= 1


def test_nodata_is_left_out_of_the_statistics_and_marked() -> None:
    amplitude = encodings()["amplitude"].copy()
    plain = convert(amplitude)
    amplitude[:, :30] = 0  # a GRD border
    bordered = convert(amplitude)
    assert bordered.valid is not None
    assert not bordered.valid[:, :30].any() and bordered.valid[:, 30:].all()
    assert bordered.valid_fraction == pytest.approx(66 / 96)
    # The border takes the median's grey level, not black: it looks like open sea to the model.
    assert abs(int(bordered.gray[0, 0]) - int(np.median(bordered.gray[:, 30:]))) <= 3
    # Statistics come from valid pixels only, so the rest of the picture barely moves.
    assert np.abs(bordered.gray[:, 30:].astype(int) - plain.gray[:, 30:].astype(int)).mean() < 8


def test_nan_inf_and_declared_nodata_are_nodata() -> None:
    db = SCENE_DB.copy()
    db[0, :10] = np.nan
    db[1, :10] = np.inf
    db[2, :10] = -np.inf
    db[3, :10] = -9999.0  # below DB_NODATA_BELOW
    db[4, :10] = -42.0  # the caller's nodata value
    result = convert(db, nodata=-42.0)
    assert result.valid is not None
    assert not result.valid[:5, :10].any()
    assert result.valid[5:].all() and result.valid[:5, 10:].all()


def test_zero_and_negative_power_are_nodata() -> None:
    power = (10 ** (SCENE_DB / 10)).astype(np.float32)
    power[:3] = 0
    result = convert(power, Scale.POWER)
    assert result.valid is not None and not result.valid[:3].any() and result.valid[3:].all()


def test_a_mask_adds_to_nodata() -> None:
    mask = np.ones(SCENE_DB.shape, bool)
    mask[-5:] = False
    result = convert(encodings()["grey"], mask=mask)
    assert result.valid is not None and not result.valid[-5:].any()
    with pytest.raises(ValueError, match="shape"):
        convert(SCENE_DB, mask=np.ones((2, 2), bool))


def test_all_nodata_is_an_answer_not_an_error() -> None:
    result = convert(np.full((5, 7), np.nan, np.float32))
    assert result.valid is not None and not result.valid.any()
    assert result.gray.shape == (5, 7) and result.valid_fraction == 0.0
    assert not convert(np.zeros((4, 4), np.uint16)).valid.any()  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [0, 17, 255])
def test_constant_image_is_mid_grey(value: int) -> None:
    result = convert(np.full((9, 9), value, np.uint8))
    assert (result.gray == 128).all() and result.valid is None


@pytest.mark.parametrize(
    "image",
    [np.array([[7]], np.uint8), np.array([[300]], np.uint16), np.array([[-12.5]], np.float32)],
)
def test_one_pixel_images(image: np.ndarray) -> None:
    result = convert(image)
    assert result.gray.shape == (1, 1) and result.valid is None


def test_forced_scale_wins_and_auto_must_be_resolved() -> None:
    grey_as_float = encodings()["grey"].astype(np.float32)
    assert convert(grey_as_float).scale is Scale.POWER
    forced = convert(grey_as_float, Scale.GREY)
    assert forced.scale is Scale.GREY
    np.testing.assert_array_equal(forced.gray, convert(encodings()["grey"]).gray)
    with pytest.raises(ValueError, match="resolved"):
        to_working(SCENE_DB, Scale.AUTO)


def test_bad_shapes_and_types_are_refused() -> None:
    with pytest.raises(ValueError, match="one band"):
        convert(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="unsupported"):
        convert(np.zeros((2, 2), np.complex64))


def test_large_images_take_their_statistics_from_a_sample() -> None:
    """Above STATS_SAMPLES pixels the percentiles come from a regular grid: same stretch, bounded cost."""
    side = int(np.sqrt(STATS_SAMPLES)) + 200
    tiled = (-8 + 1.5 * np.random.default_rng(1).standard_normal((side, side))).astype(np.float32)
    tiled[: side // 3, : side // 2] -= 8  # a slick
    full = Stretch.fit(tiled)
    result = convert(tiled)
    assert full is not None
    sampled = Stretch.fit(tiled[::2, ::2])
    assert sampled is not None and abs(sampled.low - full.low) < 0.1 and abs(sampled.high - full.high) < 0.1
    assert result.gray.shape == tiled.shape


def test_one_bit_images_are_black_and_white() -> None:
    result = convert(SLICK)
    assert set(np.unique(result.gray)) <= {0, 255}


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_histogram_percentiles_equal_numpys(dtype: type) -> None:
    """8/16-bit images take their statistics from a histogram: the same stretch as percentiles of pixels."""
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    image = rng.integers(max(info.min, -500), min(info.max, 3000), (37, 53)).astype(dtype)
    scale = infer_scale(image)
    expected = Stretch.fit(to_working(image, scale))
    assert expected is not None
    got = convert(image).gray
    np.testing.assert_array_equal(got, expected.apply(to_working(image, scale)))
