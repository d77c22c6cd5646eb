"""How a source's API and assets are reached, and keeping its credentials out of everything that is kept.

Three kinds of access (SourceConfig.access): plain HTTPS; Planetary Computer, whose asset URLs are signed
with a short-lived SAS token (the planetary-computer package) just before GDAL opens them; a bearer token
read from the environment at the moment of use, sent to the STAC API and by GDAL to the asset server.
A signed URL or a token is a credential: `redact` strips query strings and known secrets from any text
(GDAL's error messages quote the URL they failed on) before it reaches a record, a report or a log.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import urlsplit

from backend.sources.config import SourceConfig

_URL = re.compile(r"(?:/vsicurl/)?https?://[^\s'\"]+")
_QUERY = re.compile(r"\?[^\s'\"]*")  # what is left of a query string GDAL quotes without its URL


class AccessError(Exception):
    """The source cannot be used as configured (its token variable is unset, its asset URL is not HTTP)."""


def token(source: SourceConfig) -> str | None:
    """The bearer token of a source with access=bearer (read now, never stored)."""
    if source.access != "bearer" or source.token_env is None:
        return None
    value = os.environ.get(source.token_env, "")
    if not value:
        raise AccessError(f"the source's token variable {source.token_env} is not set")
    return value


def api_headers(source: SourceConfig) -> dict[str, str]:
    """Headers for the STAC API's requests."""
    bearer = token(source)
    return {"Authorization": f"Bearer {bearer}"} if bearer else {}


def asset_url(source: SourceConfig, href: str) -> str:
    """The URL GDAL opens for an asset: checked to be http(s) (a catalogue must not make GDAL read a local
    file or another protocol), signed for Planetary Computer."""
    if urlsplit(href).scheme not in ("http", "https"):
        raise AccessError(f"the asset is not an http(s) URL: {describe(href)}")
    if source.access == "planetary_computer":
        import planetary_computer  # only workers reading such a source need it

        signed: str = planetary_computer.sign(href)
        return signed
    return href


def gdal_headers(source: SourceConfig) -> dict[str, str]:
    """GDAL config options carrying the source's token (GDAL_HTTP_HEADERS, GDAL >= 3.6)."""
    bearer = token(source)
    return {"GDAL_HTTP_HEADERS": f"Authorization: Bearer {bearer}"} if bearer else {}


def describe(href: str) -> str:
    """An asset URL as it may be shown: scheme, host and path, never its query (signatures live there)."""
    parts = urlsplit(href.removeprefix("/vsicurl/"))
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def redact(text: str, source: SourceConfig | None = None) -> str:
    """`text` with every URL's query and user info removed and the source's token, if any, masked."""
    cleaned = _QUERY.sub("", _URL.sub(lambda m: describe(m.group(0)), text))
    if source is not None and source.access == "bearer" and source.token_env:
        secret = os.environ.get(source.token_env, "")
        if secret:
            cleaned = cleaned.replace(secret, "***")
    return cleaned


class RedactURLs(logging.Filter):
    """Rewrites a record's message through `redact`: GDAL's errors, relayed by rasterio's logger, quote the
    signed URL they failed on."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def redact_library_logs() -> None:
    """Install RedactURLs on the loggers that may quote asset URLs (idempotent)."""
    for name in ("rasterio._env", "rasterio", "rasterio._base", "urllib3.connectionpool", "pystac_client"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactURLs) for f in logger.filters):
            logger.addFilter(RedactURLs())
