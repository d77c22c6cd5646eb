"""bench.ml_parts times the ML service's pieces and its batch answer against the bare model, in-process.

Its batch answers are checked inside the bench (a failed item raises), so a run that prints is one that did
the work; the figures themselves are not asserted.
"""

from __future__ import annotations

import re

import pytest

from bench import ml_parts


def test_ml_parts_prints_each_piece_and_the_ratios_last(capsys: pytest.CaptureFixture[str]) -> None:
    ml_parts.main(["-n", "3", "--rounds", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    pieces = [line for line in lines if line.startswith("one thread, cpu ms/image, ")]
    assert [line.split(", ")[2].split(":")[0] for line in pieces] == [
        "decode (PNG + conversion)",
        "mask",
        "mask PNG",
        "overlay PNG",
        "slicks (vectorise + GeoJSON)",
    ]
    assert all(float(line.rsplit(": ", 1)[1]) >= 0 for line in pieces)
    ratios = lines[-3:]
    assert all(line.startswith("ratio bare model/batch answer") for line in ratios), lines
    assert all(0 < float(re.findall(r"[0-9.]+$", line)[0]) < 10 for line in ratios)
