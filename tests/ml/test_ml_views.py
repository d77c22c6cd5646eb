"""Mirror views (ML_VIEWS): the mean of the model's answers on mirrored tiles, each mapped back."""

from __future__ import annotations

import numpy as np
import pytest

from ml.inference import DEFAULT_MODEL_PATH
from ml.runners import ModelRunners, session


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    rng = np.random.default_rng(3)
    tiles = rng.gamma(2.0, 0.2, size=(2, 1, 64, 64)).clip(0, 1).astype(np.float32)
    tiles[:, :, 10:30, 5:40] *= 0.2  # a dark, asymmetric patch: the mirrored answers differ
    return tiles


@pytest.mark.parametrize("views", [2, 4])
def test_views_average_the_mirrored_answers(batch: np.ndarray, views: int) -> None:
    plain = session(DEFAULT_MODEL_PATH, 1)
    name = plain.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(plain.run(None, {name: np.ascontiguousarray(x)})[0])

    expected = [run(batch), run(batch[..., ::-1])[..., ::-1]]
    if views == 4:
        expected += [run(batch[..., ::-1, :])[..., ::-1, :], run(batch[..., ::-1, ::-1])[..., ::-1, ::-1]]
    runners, one_view = (
        ModelRunners(DEFAULT_MODEL_PATH, count=1, views=views),
        ModelRunners(DEFAULT_MODEL_PATH, 1),
    )
    try:
        got, single = runners.run(batch), one_view.run(batch)
    finally:
        runners.close()
        one_view.close()
    assert got.shape == batch.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, np.mean(expected, axis=0), atol=1e-5)
    assert not np.allclose(got, single, atol=1e-4)  # the views changed the answer


def test_views_other_than_1_2_4_are_refused() -> None:
    with pytest.raises(ValueError, match="views must be 1, 2 or 4"):
        ModelRunners(DEFAULT_MODEL_PATH, count=1, views=3)
