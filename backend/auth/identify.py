"""From a request's credential to its Principal, or a 401 that says what was missing or wrong.

A credential comes as `Authorization: Bearer <key or JWT>` or, for API keys, `X-API-Key: <key>`. Every
refusal is a 401 with `WWW-Authenticate: Bearer` (RFC 6750), whatever the reason, so a client can tell a
missing credential from a refused one only by the words of `detail`, never by probing.
"""

from __future__ import annotations

from typing import Any

import redis
from fastapi import HTTPException
from starlette.datastructures import Headers

from backend.auth.keys import KeyStore
from backend.auth.oidc import OidcVerifier, TokenRejected
from backend.auth.overrides import OwnerQuotas
from backend.auth.principal import Principal
from backend.auth.settings import AuthSettings

REALM = 'Bearer realm="oilspill"'
# The OpenAPI entry of the routes that need a credential with auth on (backend/api/routes/__init__.py).
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "AUTH_MODE api-key or oidc: no credential, or a wrong, revoked or expired one "
        "(`WWW-Authenticate: Bearer`).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}},
    }
}


def unauthorized(detail: str, *, invalid: bool) -> HTTPException:
    challenge = f'{REALM}, error="invalid_token"' if invalid else REALM
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


def credential(headers: Headers) -> str | None:
    """The bearer token or X-API-Key of a request, else None."""
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key", "").strip() or None


_verifiers: dict[tuple[str, str, str], OidcVerifier] = {}


def _verifier(settings: AuthSettings) -> OidcVerifier:
    """One per issuer and audience, so the JWKS cache lives as long as the process."""
    name = (settings.OIDC_ISSUER, settings.OIDC_AUDIENCE, settings.OIDC_JWKS_URL)
    if name not in _verifiers:
        _verifiers[name] = OidcVerifier(settings)
    return _verifiers[name]


def _by_key(key: str, client: redis.Redis, settings: AuthSettings) -> Principal:
    found = KeyStore(client).lookup(key)
    if found is None:
        raise unauthorized("The API key is unknown or has been revoked.", invalid=True)
    quotas = OwnerQuotas(client).get(found.name).before(found.quotas).over(settings)
    return Principal(owner=found.name, admin=found.admin, quotas=quotas, via="api-key")


def _roles(claims: dict[str, Any], claim: str) -> set[str]:
    value = claims.get(claim)
    if isinstance(value, str):
        return set(value.split())
    return {str(v) for v in value} if isinstance(value, list) else set()


def _by_token(token: str, client: redis.Redis, settings: AuthSettings) -> Principal:
    try:
        claims = _verifier(settings).claims(token)
    except TokenRejected as exc:
        raise unauthorized(f"The bearer token was refused: {exc}.", invalid=True) from exc
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise unauthorized("The bearer token was refused: it names no subject (sub).", invalid=True)
    admin = settings.OIDC_ADMIN_ROLE in _roles(claims, settings.OIDC_ROLES_CLAIM)
    quotas = OwnerQuotas(client).get(subject).over(settings)  # `oilspill keys quota SUBJECT`, else QUOTA_*
    return Principal(owner=subject, admin=admin, quotas=quotas, via="oidc")


def authenticate(headers: Headers, client: redis.Redis, settings: AuthSettings) -> Principal | None:
    """The caller; None when AUTH_MODE is none (everyone is welcome, as before accounts existed)."""
    if settings.AUTH_MODE == "none":
        return None
    given = credential(headers)
    if given is None:
        what = (
            "an API key" if settings.AUTH_MODE == "api-key" else "a bearer token from the identity provider"
        )
        how = (
            "`Authorization: Bearer <key>` or `X-API-Key: <key>`"
            if settings.AUTH_MODE == "api-key"
            else ("`Authorization: Bearer <token>`")
        )
        raise unauthorized(f"This endpoint needs {what}: send {how}.", invalid=False)
    if settings.AUTH_MODE == "api-key":
        return _by_key(given, client, settings)
    return _by_token(given, client, settings)
