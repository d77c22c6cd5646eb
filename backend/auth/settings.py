"""The settings of accounts, quotas and fair scheduling: a base of backend.core.config.Settings, so the
service still has one settings object; they live here beside the code that reads them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings

AuthMode = Literal["none", "api-key", "oidc"]
SYMMETRIC_ALGORITHMS = {"none", "HS256", "HS384", "HS512"}  # a public JWKS key is no HMAC secret


class AuthSettings(BaseSettings):
    """AUTH_*, OIDC_*, QUOTA_* and FAIR_LANES; documented in the README's settings table."""

    # none: anyone who reaches the API may upload and a user hash alone opens its results (loopback use);
    # api-key: keys made by `oilspill keys create`; oidc: bearer JWTs of OIDC_ISSUER.
    AUTH_MODE: AuthMode = "none"
    # With auth on, results/download/archive_time_left still answer to the user hash alone (a link can be
    # passed on, but anyone holding it reads the results); status and the job list still need a credential.
    AUTH_SHAREABLE_LINKS: bool = False

    OIDC_ISSUER: str = ""
    OIDC_AUDIENCE: str = ""
    OIDC_JWKS_URL: str = ""  # empty: <OIDC_ISSUER>/.well-known/jwks.json (Auth0's place)
    OIDC_ALGORITHMS: str = "RS256"  # comma-separated; never "none" or an HMAC algorithm
    OIDC_JWKS_CACHE_SECONDS: int = Field(300, ge=0)
    OIDC_LEEWAY_SECONDS: float = Field(10.0, ge=0)
    # A token whose claim OIDC_ROLES_CLAIM (a list or a space-separated string) holds OIDC_ADMIN_ROLE sees
    # every job in GET /api/tasks and opens every job.
    OIDC_ROLES_CLAIM: str = "permissions"
    OIDC_ADMIN_ROLE: str = "oilspill:admin"

    # Per owner, with auth on (an API key may override each): jobs queued or running at once, images and
    # upload bytes accepted per UTC day, and the largest single upload.
    QUOTA_JOBS_IN_FLIGHT: int = Field(4, ge=1)
    QUOTA_IMAGES_PER_DAY: int = Field(50_000, ge=1)
    QUOTA_MB_PER_DAY: int = Field(20_480, ge=1)
    QUOTA_MAX_UPLOAD_MB: int = Field(2048, ge=1)

    # Worker queues ("lanes") the images of different owners are spread over; the worker takes from them in
    # turn (backend/worker/lanes.py). 0: one queue, first come first served (the old behaviour).
    FAIR_LANES: int = Field(16, ge=0, le=256)

    @model_validator(mode="after")
    def _oidc_complete(self) -> AuthSettings:
        """A misconfigured issuer stops every process at start, not each request with a 500."""
        if self.AUTH_MODE == "oidc":
            if not self.OIDC_ISSUER or not self.OIDC_AUDIENCE:
                raise ValueError("AUTH_MODE=oidc needs OIDC_ISSUER and OIDC_AUDIENCE")
            algorithms = {a.strip() for a in self.OIDC_ALGORITHMS.split(",") if a.strip()}
            if not algorithms or algorithms & SYMMETRIC_ALGORITHMS:
                raise ValueError(f"OIDC_ALGORITHMS must be asymmetric, not {self.OIDC_ALGORITHMS!r}")
        return self
