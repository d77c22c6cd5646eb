"""ML service settings, read from the environment with the ML_ prefix (e.g. ML_THREADS=4)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.geo.products import SlickRules
from ml.image_errors import DEFAULT_MAX_PIXELS
from ml.inference import DEFAULT_MODEL_PATH, Segmenter
from ml.radiometry import Scale


class Settings(BaseSettings):
    """The environment wins over .env; relative paths resolve against the working directory."""

    model_config = SettingsConfigDict(
        env_prefix="ML_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    PORT: int = Field(default=8002, ge=1, le=65535)
    HOST: str = "127.0.0.1"
    MODEL_PATH: Path = DEFAULT_MODEL_PATH
    # ONNX Runtime intra-op threads in all, split evenly between the RUNNERS model runs at once.
    THREADS: int = Field(default=2, ge=1)
    RUNNERS: int = Field(default=2, ge=1)
    MAX_PIXELS: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
    # How image numbers are read (ml.radiometry): auto = by pixel type (8-bit grey, integer amplitude,
    # float dB when negative values occur, else linear power); a TIFF's `scale` metadata item wins over auto.
    INPUT_SCALE: Scale = Scale.AUTO
    # Slicks (geo=true): connected oil regions of at least this area (georeferenced images) or this many
    # pixels (others); those on land dropped by the GSHHG land mask (~0.8 GB, loaded on first need).
    MIN_SLICK_KM2: float = Field(default=0.01, ge=0)
    MIN_SLICK_PIXELS: int = Field(default=16, ge=1)
    DROP_ON_LAND: bool = True
    TILE_SIZE: int = Field(default=256, ge=32)
    TILE_OVERLAP: int = Field(default=32, ge=0)
    # Tiles per model run (1 and 2 cost the same per tile on single-threaded runners, 4 and more more).
    BATCH_SIZE: int = Field(default=2, ge=1)
    # Mirror views averaged per tile (1, 2 or 4): +0.004 / +0.0065 validation oil IoU for 2x / 4x the model
    # time (ml/models/MODEL_CARD.md); 1 keeps whole scenes within their minute.
    VIEWS: Literal[1, 2, 4] = 1
    # Scenes (POST /segment/scene): files the worker extracted under the shared results folder (the API's
    # and worker's RESULTS_DIR), read in place window by window; at most SCENE_MAX_PIXELS, processed at
    # SCENE_RESOLUTION_M metres a pixel (0 = the file's own), tiles all on land not run (SKIP_LAND_TILES),
    # land along the coasts shown to the model at the level of the sea beside it (HIDE_LAND, also for
    # georeferenced images in a batch; ml/scene/land.py says why).
    SCENE_DIR: Path = Path("results")
    SCENE_MAX_PIXELS: int = Field(default=1_000_000_000, ge=1)
    SCENE_RESOLUTION_M: float = Field(default=20.0, ge=0)
    SKIP_LAND_TILES: bool = True
    HIDE_LAND: bool = True
    # The sea within this many metres of GSHHG's land hidden with it (rounded to whole 8-pixel cells): the
    # land mask and a scene's own coast disagree by about a cell, and a bright sliver of land left beside
    # the sea makes the sea next to it look like a slick. 0 hides the land alone.
    LAND_MARGIN_M: float = Field(default=150.0, ge=0)
    # The fall of backscatter across a scene's columns (incidence angle) removed before its one stretch, so
    # its far range reaches the model at its near range's level; scenes and GeoTIFFs of a batch at least
    # 1024 pixels wide (ml/scene/range_trend.py says why).
    RANGE_TREND: bool = True
    MAX_BODY_MB: int = Field(default=512, ge=1)
    # Files one POST /segment/batch may carry (the worker sends up to IMAGES_PER_TASK).
    MAX_BATCH_IMAGES: int = Field(default=64, ge=1)
    # Requests segmenting at once (they share the runners); more wait. Each holds its image, mask and a
    # float32 HxW map, so this bounds memory; two keep the runners fed while a worker is between requests.
    MAX_CONCURRENT: int = Field(default=2, ge=1)
    # Whether idle ONNX Runtime threads spin-wait for work. Off: on a machine whose cores are shared (with the
    # worker, the API, or other requests' threads) spinning burns the CPU the others need.
    ALLOW_SPINNING: bool = False
    # Added to the service's nice value when run as a server: the model yields the CPU to the API's requests.
    NICE: int = Field(default=10, ge=0, le=19)

    @property
    def runners(self) -> int:
        """RUNNERS, at most one per thread (each runner gets THREADS // RUNNERS of them)."""
        return min(self.RUNNERS, self.THREADS)

    def segmenter(self, model_path: Path | None = None) -> Segmenter:
        """The model as the service runs it (threads, runners, tiling, views), from `model_path` if given."""
        return Segmenter(
            model_path or self.MODEL_PATH,
            self.THREADS,
            self.TILE_SIZE,
            self.TILE_OVERLAP,
            self.BATCH_SIZE,
            self.ALLOW_SPINNING,
            self.runners,
            None,
            self.VIEWS,
        )

    @property
    def slick_rules(self) -> SlickRules:
        return SlickRules(self.MIN_SLICK_KM2, self.MIN_SLICK_PIXELS, self.DROP_ON_LAND)

    @property
    def max_body_bytes(self) -> int:
        return self.MAX_BODY_MB * 1024 * 1024


settings = Settings()
