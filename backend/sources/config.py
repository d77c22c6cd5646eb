"""Data sources of area jobs, configured by name: a STAC API, a collection, an asset key and how to reach it.

A source's credentials are never stored with it: a bearer token is read from the environment variable the
source names (`token_env`) when a request is made, and Planetary Computer's signed URLs are made just before
a scene is read and never leave the worker's memory (see backend.sources.access).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

Access = Literal["https", "planetary_computer", "bearer"]
PLANETARY_COMPUTER_STAC = "https://planetarycomputer.microsoft.com/api/stac/v1"


class SourceConfig(BaseModel):
    """One entry of AREA_SOURCES (the key is the name a request's `data_source` gives)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stac_url: HttpUrl = Field(description="The STAC API's landing page (it must conform to item-search).")
    collection: str = Field(min_length=1, description="e.g. sentinel-1-grd (GCPs) or sentinel-1-rtc (COGs).")
    asset: str = Field("vv", min_length=1, description="The asset key of the VV band.")
    access: Access = Field(
        "https",
        description="How assets and the API are reached: plain HTTPS, Planetary Computer URL signing "
        "(the planetary-computer package), or `Authorization: Bearer $<token_env>` on every request.",
    )
    token_env: str | None = Field(
        None, pattern=r"^[A-Z_][A-Z0-9_]*$", description="For access=bearer: the variable holding the token."
    )
    description: str = ""

    @model_validator(mode="after")
    def _token_named(self) -> SourceConfig:
        if self.access == "bearer" and not self.token_env:
            raise ValueError("a source with access=bearer needs token_env (the variable holding the token)")
        return self


DEFAULT_SOURCES: dict[str, SourceConfig] = {
    "planetary-computer-grd": SourceConfig(
        stac_url=HttpUrl(PLANETARY_COMPUTER_STAC),
        collection="sentinel-1-grd",
        asset="vv",
        access="planetary_computer",
        description="Sentinel-1 IW GRD (uint16 amplitude, GCP-georeferenced COGs), Planetary Computer.",
    ),
    "planetary-computer-rtc": SourceConfig(
        stac_url=HttpUrl(PLANETARY_COMPUTER_STAC),
        collection="sentinel-1-rtc",
        asset="vv",
        access="planetary_computer",
        description="Sentinel-1 RTC gamma0 (float32 linear power, projected COGs), Planetary Computer.",
    ),
}
