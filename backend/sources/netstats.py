"""Bytes GDAL downloaded over HTTP, from its network statistics (CPL_VSIL_NETWORK_STATS_ENABLED=YES).

rasterio does not expose VSINetworkStatsGetAsSerializedJSON, so it is called through ctypes in the GDAL
library rasterio's wheel bundles (the one already loaded in this process). Where that library cannot be
found the count is None ("unknown"), never an estimate.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import json
import os
from typing import Any

import rasterio


@functools.cache
def _gdal() -> ctypes.CDLL | None:
    folder = os.path.join(os.path.dirname(rasterio.__file__), os.pardir, "rasterio.libs")
    found = sorted(glob.glob(os.path.join(folder, "libgdal*.so*")))
    try:
        lib = ctypes.CDLL(found[0]) if found else ctypes.CDLL("libgdal.so")
        lib.VSINetworkStatsGetAsSerializedJSON.restype = ctypes.c_void_p
        lib.VSINetworkStatsGetAsSerializedJSON.argtypes = [ctypes.c_void_p]
        lib.VSIFree.argtypes = [ctypes.c_void_p]
        lib.VSINetworkStatsReset.restype = None
        lib.VSICurlClearCache.restype = None
    except (OSError, AttributeError):
        return None
    return lib


def reset() -> None:
    lib = _gdal()
    if lib is not None:
        lib.VSINetworkStatsReset()


def clear_cache() -> None:
    """Forget /vsicurl/'s cached blocks and file sizes (a benchmark's reads must not reuse earlier ones)."""
    lib = _gdal()
    if lib is not None:
        lib.VSICurlClearCache()


def downloaded_bytes() -> int | None:
    """Bytes downloaded by GDAL's network file systems since the last reset (None: not measurable)."""
    lib = _gdal()
    if lib is None:
        return None
    pointer = lib.VSINetworkStatsGetAsSerializedJSON(None)
    if not pointer:
        return 0
    try:
        stats: dict[str, Any] = json.loads(ctypes.string_at(pointer).decode())
    finally:
        lib.VSIFree(pointer)
    methods = stats.get("methods", {})
    return sum(int(m.get("downloaded_bytes", 0)) for m in methods.values() if isinstance(m, dict))
