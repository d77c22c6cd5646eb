"""AUTH_MODE=oidc: bearer JWTs of one issuer, verified against its JWKS, as InstaGeo does with Auth0.

The JWKS is fetched on first use, kept OIDC_JWKS_CACHE_SECONDS, and fetched again at once when a token
names a `kid` it lacks (the issuer rotated its keys), at most once per REFRESH_FLOOR_SECONDS, so tokens
with made-up kids cannot make us hammer the issuer. Signature, `iss`, `aud`, `exp` (and `nbf`, `iat`) are
checked; the subject is the owner.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import jwt

from backend.auth.settings import AuthSettings

REFRESH_FLOOR_SECONDS = 1.0
FETCH_TIMEOUT_SECONDS = 5.0


class TokenRejected(Exception):
    """A JWT that does not open the service; the message says why, for the 401's detail."""


class JwksCache:
    """The issuer's signing keys by kid."""

    def __init__(self, url: str, ttl: float) -> None:
        self.url = url
        self.ttl = ttl
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched = float("-inf")
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        try:
            response = httpx.get(self.url, timeout=FETCH_TIMEOUT_SECONDS)
            response.raise_for_status()
            found = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            raise TokenRejected(f"the issuer's keys (JWKS) could not be fetched: {exc}") from exc
        self._keys = {key.key_id: key for key in found.keys if key.key_id}
        self._fetched = time.monotonic()

    def key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            age = time.monotonic() - self._fetched
            if age > self.ttl or (kid not in self._keys and age > REFRESH_FLOOR_SECONDS):
                self._fetch()
            found = self._keys.get(kid)
        if found is None:
            raise TokenRejected(f"the token's key id {kid!r} is not one of the issuer's keys")
        return found


class OidcVerifier:
    """Checks tokens of OIDC_ISSUER for OIDC_AUDIENCE."""

    def __init__(self, settings: AuthSettings) -> None:
        self.issuer = settings.OIDC_ISSUER
        self.audience = settings.OIDC_AUDIENCE
        # Issuer, audience and asymmetric algorithms are checked when the settings load (AuthSettings).
        self.algorithms = [a.strip() for a in settings.OIDC_ALGORITHMS.split(",") if a.strip()]
        self.leeway = settings.OIDC_LEEWAY_SECONDS
        url = settings.OIDC_JWKS_URL or self.issuer.rstrip("/") + "/.well-known/jwks.json"
        self.jwks = JwksCache(url, settings.OIDC_JWKS_CACHE_SECONDS)

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of `token`; TokenRejected saying what is wrong with it otherwise."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise TokenRejected("the bearer token is not a JWT") from exc
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise TokenRejected("the token has no key id (kid)")
        key = self.jwks.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected(f"the token is not for this service (audience {self.audience!r})") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRejected(f"the token is not from the issuer {self.issuer!r}") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"the token is invalid: {exc}") from exc
        return claims
