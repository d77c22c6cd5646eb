"""GET /api/account ("who am I"): the caller's owner name, how they signed in, and their quotas with
today's use, so a client can see a 429 coming instead of meeting it."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Literal

import redis
from pydantic import BaseModel, Field

from backend.auth.principal import Principal, Quotas
from backend.auth.quotas import jobs_in_flight, next_midnight, used_today
from backend.auth.settings import AuthMode
from backend.core.config import MB

AUTH_OFF = (
    "Accounts are off (AUTH_MODE=none): anyone who reaches the API may upload, a user hash alone opens its "
    "results, and there are no owners and no quotas."
)


class Usage(BaseModel):
    """What the owner uses now and has used today (UTC), counted as the quotas count it."""

    jobs_in_flight: int = Field(description="Uploads and area jobs queued or running now.")
    images_today: int = Field(description="Images accepted today.")
    mb_today: float = Field(description="Upload megabytes accepted today.")
    day_resets_at: datetime = Field(description="When the day's counters start again (next UTC midnight).")
    resets_in_seconds: int


class Remaining(BaseModel):
    """What is left of each quota now: what the next upload may still take."""

    jobs_in_flight: int
    images_today: int
    mb_today: float


class Account(BaseModel):
    """Who the credential stands for. With AUTH_MODE none: `auth` false, a message, and nothing else."""

    auth: bool = Field(description="Whether accounts are on (AUTH_MODE api-key or oidc).")
    auth_mode: AuthMode
    message: str | None = Field(None, description="With auth off: what that means.")
    owner: str | None = Field(None, description="The owner name jobs are recorded under.")
    via: Literal["api-key", "oidc"] | None = Field(None, description="How the caller authenticated.")
    admin: bool = Field(False, description="Sees and opens every job.")
    quotas: Quotas | None = None
    usage: Usage | None = None
    remaining: Remaining | None = None


def account(client: redis.Redis, caller: Principal | None, mode: AuthMode) -> Account:
    """The caller's account; with auth off (`caller` None), the answer that there are no accounts."""
    if caller is None:
        return Account(auth=False, auth_mode=mode, message=AUTH_OFF)
    now = time.time()
    in_flight = jobs_in_flight(client, caller.owner, now)
    images, size = used_today(client, caller.owner, now)
    reset = next_midnight(now)
    limits = caller.quotas
    return Account(
        auth=True,
        auth_mode=mode,
        owner=caller.owner,
        via="oidc" if caller.via == "oidc" else "api-key",
        admin=caller.admin,
        quotas=limits,
        usage=Usage(
            jobs_in_flight=in_flight,
            images_today=images,
            mb_today=round(size / MB, 3),
            day_resets_at=reset,
            resets_in_seconds=max(0, round(reset.timestamp() - now)),
        ),
        remaining=Remaining(
            jobs_in_flight=max(0, limits.jobs_in_flight - in_flight),
            images_today=max(0, limits.images_per_day - images),
            mb_today=max(0.0, round(limits.mb_per_day - size / MB, 3)),
        ),
    )
