"""The robustness benchmark's re-encodings (ml.training.robustness), without ../shared: tiles made here."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ml.training.robustness import UNTOUCHED, VARIANTS, _scene_stretch


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _tile() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    grey = rng.integers(110, 170, (64, 64)).astype(np.uint8)
    truth = np.zeros((64, 64), bool)
    truth[10:40, 10:40] = True  # 22 % oil
    grey[truth] = rng.integers(20, 60, int(truth.sum()))
    return grey, truth


def test_the_scene_stretch_clips_the_slick_to_black_and_spreads_the_sea() -> None:
    grey, truth = _tile()
    data, valid = _scene_stretch(grey, truth)
    out = _decoded(data)
    assert valid is None and out.shape == grey.shape
    assert (out[truth] == 0).all()
    sea = out[~truth]
    assert np.percentile(sea, 1) <= 3 and np.percentile(sea, 99) >= 252


def test_a_tile_of_almost_only_oil_is_left_as_it_is() -> None:
    grey, _ = _tile()
    truth = np.ones(grey.shape, bool)
    truth[0, :10] = False
    assert np.array_equal(_decoded(_scene_stretch(grey, truth)[0]), grey)


def test_every_variant_takes_the_tile_and_its_truth() -> None:
    grey, truth = _tile()
    assert np.array_equal(_decoded(VARIANTS[UNTOUCHED](grey, truth)[0]), grey)
    for name, encode in VARIANTS.items():
        data, valid = encode(grey, truth)
        assert data[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"II*\x00", b"MM\x00*"), name
        assert valid is None or valid.shape == grey.shape
