"""bench.scene tells the slicks found on the drawn ones from the false ones (no stack needed here)."""

from __future__ import annotations

import csv
import io

from bench.scene import false_slicks
from bench.scene_file import Slick

FIELDS = ["id", "area_km2", "confidence", "centroid_col", "centroid_row"]


def _table(rows: list[tuple[float, float]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    for n, (col, row) in enumerate(rows, 1):
        writer.writerow([n, 0.5, 0.6, col, row])
    return out.getvalue()


def test_a_slick_on_a_drawn_one_or_its_fragment_is_no_false_alarm() -> None:
    drawn = [Slick(2000, 1000, 400, 60, 0), Slick(6000, 3000, 300, 50, 90)]
    # Mask pixels at half the scene's resolution: centroids at (col, row) / 2.
    found = [
        (1000, 500),  # the first drawn slick's centre
        (1000 + 180, 500),  # a fragment near its end (col 2360 of 1600-2400)
        (3000, 1500 + 160),  # the second, rotated: long along the rows
        (1000, 500 + 55),  # just past the first one's side (row 1110, b = 60): within its half-width
        (1000, 500 + 120),  # 240 scene pixels off its axis: a false alarm
        (4000, 4000),  # open sea far from both
    ]
    false = false_slicks(_table(found), drawn, factor=2.0)
    assert [row["id"] for row in false] == ["5", "6"]


def test_no_slicks_found_means_none_false() -> None:
    assert false_slicks("", [Slick(10, 10, 5, 2)], 1.0) == []
    assert false_slicks(_table([]), [Slick(10, 10, 5, 2)], 1.0) == []
