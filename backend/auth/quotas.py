"""Each owner's fair share of the service: jobs in flight, images and bytes per UTC day, upload size.

An upload holds a slot among its owner's jobs in flight from before its first byte is read, and charges its
bytes and images to the day's counters once the zip is checked; both are undone if the upload fails, so a
refused or broken upload costs the owner nothing. The checks and the charges are Lua scripts: two uploads
of one owner at once cannot both take the last slot or the last images of the day.

Keys (under backend.jobs.keys.PREFIX): owner:<o>:inflight (zset, user hash -> time the upload or area job
started; a member leaves once its job is no longer active (queued, searching, fetching, processing,
archiving), or after STALE_UPLOAD_SECONDS without a job), quota:<o>:<yyyymmdd> (hash images, bytes; expires
after two days). An area job holds a slot among the jobs in flight like an upload; its windows are not
charged to the day's images (they are known only once the scenes are read).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import cast

import redis
from fastapi import HTTPException

from backend.auth.principal import Principal
from backend.core.config import MB
from backend.jobs.keys import PREFIX

IN_FLIGHT_RETRY_SECONDS = 30
# A declared Content-Length includes the multipart framing: this much over the quota is the zip's exact
# size checked while streaming, not refused up front.
FRAMING_BYTES = 64 * 1024
STALE_UPLOAD_SECONDS = 3600  # an upload this old with no job died with its API process
DAY_KEY_TTL_SECONDS = 2 * 86400

# KEYS: inflight zset. ARGV: (3 of the caller's), stale-before, job key prefix, user key prefix.
# Drops the members whose job is no longer active (or that never got a job and are stale).
_PRUNE = """
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  local hash, started = members[i], tonumber(members[i + 1])
  local job = redis.call('GET', ARGV[6] .. hash)
  local live
  if job then
    local state = redis.call('HGET', ARGV[5] .. job, 'state')
    live = state == 'queued' or state == 'searching' or state == 'fetching' or state == 'processing'
      or state == 'archiving'
  else
    live = started > tonumber(ARGV[4])
  end
  if not live then redis.call('ZREM', KEYS[1], hash) end
end
"""

# ARGV: user hash, now, limit, then _PRUNE's. Returns the jobs in flight before this one (or -n if that is
# at the limit: nothing held).
_HOLD = (
    _PRUNE
    + """
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then return -n end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], 2 * 86400)
return n
"""
)

# ARGV: three unused, then _PRUNE's. Returns the jobs in flight.
_COUNT = _PRUNE + "return redis.call('ZCARD', KEYS[1])\n"

# KEYS: day hash. ARGV: images, bytes, image limit, byte limit, ttl.
# Returns {0, images, bytes} when charged, {1 | 2, used images, used bytes} when over the images | bytes.
_CHARGE = """
local images = tonumber(redis.call('HGET', KEYS[1], 'images') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
if images + tonumber(ARGV[1]) > tonumber(ARGV[3]) then return {1, images, bytes} end
if bytes + tonumber(ARGV[2]) > tonumber(ARGV[4]) then return {2, images, bytes} end
redis.call('HINCRBY', KEYS[1], 'images', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {0, images + tonumber(ARGV[1]), bytes + tonumber(ARGV[2])}
"""


def inflight_key(owner: str) -> str:
    return f"{PREFIX}owner:{owner}:inflight"


def day_key(owner: str, now: float) -> str:
    return f"{PREFIX}quota:{owner}:{datetime.fromtimestamp(now, UTC):%Y%m%d}"


def next_midnight(now: float) -> datetime:
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day + timedelta(days=1)


def _prune_args(now: float) -> tuple[str, str, str]:
    return repr(now - STALE_UPLOAD_SECONDS), PREFIX + "job:", PREFIX + "user:"


def jobs_in_flight(client: redis.Redis, owner: str, now: float) -> int:
    """The owner's jobs queued or running now (as the next upload's hold would count them)."""
    return int(client.eval(_COUNT, 1, inflight_key(owner), "", "", "", *_prune_args(now)))


def used_today(client: redis.Redis, owner: str, now: float) -> tuple[int, int]:
    """Images and bytes charged to the owner today (UTC)."""
    images, size = cast(list[str | None], client.hmget(day_key(owner, now), ["images", "bytes"]))
    return int(images or 0), int(size or 0)


def too_many(detail: str, retry_after: float) -> HTTPException:
    seconds = max(1, round(retry_after))
    return HTTPException(429, detail, headers={"Retry-After": str(seconds)})


class UploadQuota:
    """One upload's use of its owner's quotas: hold(), charge(), and release() if it fails."""

    def __init__(self, client: redis.Redis, caller: Principal, service_max_bytes: int | None = None) -> None:
        self.client = client
        self.caller = caller
        self.quotas = caller.quotas
        self.service_max_bytes = service_max_bytes
        self.user_hash: str | None = None
        self.charged: tuple[str, int, int] | None = None

    @property
    def max_upload_bytes(self) -> int:
        return self.quotas.max_upload_mb * MB

    @property
    def binds(self) -> bool:
        """Whether the owner's largest upload, not the service's (MAX_UPLOAD_MB), is the limit in force."""
        return self.service_max_bytes is None or self.max_upload_bytes <= self.service_max_bytes

    def too_large(self) -> HTTPException:
        """413, not 429: waiting never lets this upload in, so there is no Retry-After to give."""
        return HTTPException(
            413,
            f"Quota: the largest upload for {self.caller.owner!r} is {self.quotas.max_upload_mb} MB "
            "(max_upload_mb); this one is larger, and waiting will not help: split it into smaller zips.",
            headers={"Connection": "close"},
        )

    def _day_reset(self, now: float) -> str:
        reset = next_midnight(now)
        return f"it resets at {reset:%Y-%m-%d %H:%M} UTC, in {reset.timestamp() - now:.0f} s"

    def hold(self, user_hash: str, declared: int | None) -> None:
        """Before a byte is read: 413 over the largest upload, 429 over jobs in flight or the day's bytes."""
        owner, now = self.caller.owner, time.time()
        if declared is not None and declared > self.max_upload_bytes + FRAMING_BYTES:
            raise self.too_large()
        if declared is not None:
            used = int(cast(str | None, self.client.hget(day_key(owner, now), "bytes")) or 0)
            if used + declared > self.quotas.mb_per_day * MB + FRAMING_BYTES:
                raise self._over_bytes(used, now)
        held = int(
            self.client.eval(
                _HOLD,
                1,
                inflight_key(owner),
                user_hash,
                repr(now),
                self.quotas.jobs_in_flight,
                *_prune_args(now),
            )
        )
        if held < 0:
            raise too_many(
                f"Quota reached: jobs in flight for {owner!r} ({-held} of {self.quotas.jobs_in_flight} "
                "queued or running). Another upload is accepted as soon as one of them finishes; retry in "
                f"{IN_FLIGHT_RETRY_SECONDS} s.",
                IN_FLIGHT_RETRY_SECONDS,
            )
        self.user_hash = user_hash

    def _over_bytes(self, used: int, now: float) -> HTTPException:
        limit = self.quotas.mb_per_day
        return too_many(
            f"Quota reached: upload megabytes per day for {self.caller.owner!r} ({used / MB:.1f} of "
            f"{limit} MB used today, mb_per_day); {self._day_reset(now)}.",
            next_midnight(now).timestamp() - now,
        )

    def charge(self, size: int, images: int) -> None:
        """Once the zip is checked: its bytes and images on the day's counters, or 429 if they do not fit."""
        now = time.time()
        key = day_key(self.caller.owner, now)
        limits = (self.quotas.images_per_day, self.quotas.mb_per_day * MB, DAY_KEY_TTL_SECONDS)
        reply = cast(list[int], self.client.eval(_CHARGE, 1, key, images, size, *limits))
        over, used_images, used_bytes = reply
        if over == 1:
            raise too_many(
                f"Quota reached: images per day for {self.caller.owner!r} ({used_images} of "
                f"{self.quotas.images_per_day} used today, images_per_day; this upload has {images}); "
                f"{self._day_reset(now)}.",
                next_midnight(now).timestamp() - now,
            )
        if over == 2:
            raise self._over_bytes(int(used_bytes), now)
        self.charged = (key, images, size)

    def release(self) -> None:
        """The upload failed: give back its slot and what it charged."""
        if self.charged is not None:
            key, images, size = self.charged
            pipe = self.client.pipeline()
            pipe.hincrby(key, "images", -images)
            pipe.hincrby(key, "bytes", -size)
            pipe.execute()
            self.charged = None
        if self.user_hash is not None:
            self.client.zrem(inflight_key(self.caller.owner), self.user_hash)
            self.user_hash = None


def upload_quota(
    client: redis.Redis, caller: Principal | None, service_max_bytes: int | None = None
) -> UploadQuota | None:
    """The quota of an upload by `caller` (MAX_UPLOAD_MB: `service_max_bytes`); None when auth is off."""
    return None if caller is None else UploadQuota(client, caller, service_max_bytes)
