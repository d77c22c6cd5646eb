"""Fixtures for the ml.geo tests (the helpers themselves are in geo_samples.py)."""

from __future__ import annotations

import pytest
import rasterio
from geo_samples import UTM_TRANSFORM


@pytest.fixture
def utm_transform() -> rasterio.Affine:
    """10 m pixels in UTM 39N, the top-left corner near 27.03 N 51.99 E."""
    return UTM_TRANSFORM
