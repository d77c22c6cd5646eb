"""API keys in Redis, stored by the SHA-256 of the key only: the clear key is printed once, at creation.

Keys are 256 random bits, so a plain hash is enough (no slow KDF: nothing to brute-force), and it lets a
request find its key in one lookup. Redis is already where every job lives; keys survive a restart as the
jobs do, with Redis's append-only file (make run's embedded Redis and compose's run with `appendonly yes`).

Keys (under backend.jobs.keys.PREFIX):
  apikey:<sha256 hex>  hash   name, created_at, last_used, admin, quota overrides (empty: default)
  apikeys              hash   name -> sha256 hex (names are unique among live keys; revoke deletes both)

The key's name is the owner its jobs record, so a key replaced by a new one of the same name (revoke, then
create) keeps access to that owner's jobs.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import cast

import redis
from pydantic import BaseModel, Field

from backend.auth.principal import QuotaOverrides
from backend.jobs.keys import PREFIX

KEY_PREFIX = "osk_"
INDEX = f"{PREFIX}apikeys"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
QUOTA_FIELDS = tuple(QuotaOverrides.model_fields)
LAST_USED_RESOLUTION_SECONDS = 60  # last_used is rewritten at most this often per key


class ApiKey(BaseModel):
    """A key as listed: never the key itself."""

    name: str
    created_at: float
    last_used: float | None = None
    admin: bool = False
    quotas: QuotaOverrides = Field(default_factory=QuotaOverrides)


class KeyRefused(Exception):
    """A key that cannot be created or revoked, with the reason in words."""


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _record_key(hexdigest: str) -> str:
    return f"{PREFIX}apikey:{hexdigest}"


def _parse(fields: dict[str, str]) -> ApiKey:
    quotas = QuotaOverrides.model_validate({f: int(fields[f]) for f in QUOTA_FIELDS if fields.get(f)})
    last = fields.get("last_used")
    return ApiKey(
        name=fields["name"],
        created_at=float(fields["created_at"]),
        last_used=float(last) if last else None,
        admin=fields.get("admin") == "1",
        quotas=quotas,
    )


class KeyStore:
    """Create, list, revoke and look up API keys in one Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def create(self, name: str, *, admin: bool = False, quotas: QuotaOverrides | None = None) -> str:
        """A new key for `name`; returns the key itself, which is not kept anywhere."""
        if not NAME.match(name):
            raise KeyRefused("a key name is 1-64 letters, digits or . _ @ -, starting with a letter or digit")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        hexdigest = digest(key)
        if not self.client.hsetnx(INDEX, name, hexdigest):
            raise KeyRefused(f"a key named {name!r} exists; revoke it first")
        overrides = (quotas or QuotaOverrides()).model_dump()
        fields = {"name": name, "created_at": repr(time.time()), "admin": "1" if admin else "0"}
        fields |= {f: str(v) for f, v in overrides.items() if v is not None}
        self.client.hset(_record_key(hexdigest), mapping=fields)  # type: ignore[arg-type]
        return key

    def revoke(self, name: str) -> bool:
        """Delete the key named `name`: requests with it get 401 from now on. False if there was none."""
        hexdigest = cast(str | None, self.client.hget(INDEX, name))
        if hexdigest is None:
            return False
        pipe = self.client.pipeline()
        pipe.delete(_record_key(hexdigest))
        pipe.hdel(INDEX, name)
        pipe.execute()
        return True

    def list(self) -> list[ApiKey]:
        digests = cast(dict[str, str], self.client.hgetall(INDEX))
        pipe = self.client.pipeline(transaction=False)
        for hexdigest in digests.values():
            pipe.hgetall(_record_key(hexdigest))
        return sorted((_parse(f) for f in pipe.execute() if f), key=lambda k: k.created_at)

    def lookup(self, key: str) -> ApiKey | None:
        """The live key `key`, its last use noted; None for an unknown or revoked one."""
        if not key.startswith(KEY_PREFIX):
            return None
        record = _record_key(digest(key))
        fields = cast(dict[str, str], self.client.hgetall(record))
        if not fields:
            return None
        found = _parse(fields)
        now = time.time()
        if found.last_used is None or now - found.last_used >= LAST_USED_RESOLUTION_SECONDS:
            # Only while the record exists: a key revoked meanwhile is not brought back as a stub.
            self.client.eval(_TOUCH, 1, record, repr(now))
            found.last_used = now
        return found


_TOUCH = "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'last_used', ARGV[1]) end"
