"""GET /api/account: who the caller is, their quotas and today's use."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from backend.api.deps import CallerDep, RedisDep, SettingsDep
from backend.auth.account import Account, account

router = APIRouter(tags=["accounts"])


@router.get("/account", name="account", summary="Who am I: owner, sign-in, quotas, today's use")
async def who_am_i(caller: CallerDep, client: RedisDep, settings: SettingsDep) -> Account:
    """The caller's account (with auth on, 401 without a credential); with AUTH_MODE none, that it is off."""
    return await run_in_threadpool(account, client, caller, settings.AUTH_MODE)
