"""Quota overrides per owner name, for API keys and OIDC subjects alike (`oilspill keys quota OWNER`).

A key can carry overrides from its creation, but a JWT's subject has no record of its own: the quotas an
operator grants an owner therefore live under the owner's name, where every credential of that owner finds
them. The owner's overrides come first, then the key's own, then the QUOTA_* defaults; the newer, per-owner
grant wins because it is what an operator changes after a key is out.

Key (under backend.jobs.keys.PREFIX): owner:<o>:quotas (hash quota name -> int; no expiry).
"""

from __future__ import annotations

from typing import cast

import redis

from backend.auth.principal import QuotaOverrides
from backend.jobs.keys import PREFIX

QUOTA_FIELDS = tuple(QuotaOverrides.model_fields)


def overrides_key(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:quotas"


class OwnerQuotas:
    """Read and change the quota overrides of owners in one Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get(self, owner: str) -> QuotaOverrides:
        fields = cast(dict[str, str], self.client.hgetall(overrides_key(owner)))
        return QuotaOverrides.model_validate({f: int(fields[f]) for f in QUOTA_FIELDS if fields.get(f)})

    def set(self, owner: str, changes: QuotaOverrides) -> QuotaOverrides:
        """Set the quotas `changes` names (the others stay as they were); then all the owner's overrides."""
        given = {f: str(v) for f, v in changes.model_dump().items() if v is not None}
        if given:
            self.client.hset(overrides_key(owner), mapping=given)  # type: ignore[arg-type]
        return self.get(owner)

    def clear(self, owner: str) -> bool:
        """Back to the key's own quotas and the defaults. False if the owner had no overrides."""
        return bool(self.client.delete(overrides_key(owner)))
