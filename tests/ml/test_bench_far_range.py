"""bench.far_range segments GRD-like scenes made in code through the service's scene path and scores them.

The bench's own figures are not asserted at its default sizes; here a small scene checks that the scoring
sees what it claims: the served model finds the -10 dB slicks (as the end-to-end scene test requires) and
marks almost none of the sea around them, whether the far range is as bright as the near range or 6 dB
darker, and the printed lines carry the figures.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from bench import far_range
from bench.scene_file import SceneSpec
from ml.inference import Segmenter
from ml.service.config import Settings


@pytest.mark.parametrize("db", [0.0, 6.0])
def test_the_served_model_finds_the_slicks_and_not_the_far_range(db: float, tmp_path: Path) -> None:
    config = Settings(SKIP_LAND_TILES=False)
    segmenter = Segmenter(config.MODEL_PATH, threads=2, runners=2)
    spec = SceneSpec(
        3000,
        4000,
        far_range.scene_slicks(3000, 4000),
        land=False,
        overviews=False,
        far_range_gain=10 ** (-db / 20),
    )
    try:
        figures = far_range.far_range_figures(spec, segmenter, config, tmp_path)
    finally:
        segmenter.close()
    assert figures["recall"] > 0.6, figures
    assert max(figures["near"], figures["middle"], figures["far"]) < 0.02, figures
    assert list(tmp_path.iterdir()) == []  # the scene file is removed


def test_a_share_counts_marked_pixels_among_the_chosen_ones() -> None:
    mask = np.array([[True, False], [True, True]])
    where = np.array([[True, True], [False, False]])
    assert far_range.marked_share(mask, where) == 0.5
    assert far_range.marked_share(mask, np.zeros_like(where)) == 0.0


def test_main_prints_a_line_per_darkening(capsys: pytest.CaptureFixture[str]) -> None:
    far_range.main(["--db", "3", "--height", "1200", "--width", "1600"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("model ")
    assert re.match(
        r"far range -3 dB: false alarms [0-9.]+% of the sea \(near .*far [0-9.]+%\), slicks found", lines[1]
    )
