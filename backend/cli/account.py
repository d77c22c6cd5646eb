"""`oilspill account`: who the API takes this key (or token) for, its quotas and what is left of them."""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx

from backend.cli.http import check


def _fetch(client: httpx.Client) -> dict[str, Any]:
    found: dict[str, Any] = check(client.get("/api/account")).json()
    return found


def text(account: dict[str, Any]) -> str:
    """The account in lines: owner and sign-in, then each quota with today's use and what is left."""
    if not account["auth"]:
        return str(account["message"])
    quotas, usage, left = account["quotas"], account["usage"], account["remaining"]
    role = ", admin" if account["admin"] else ""
    return "\n".join(
        [
            f"owner {account['owner']} (via {account['via']}{role})",
            f"jobs in flight   {usage['jobs_in_flight']} of {quotas['jobs_in_flight']}",
            f"images today     {usage['images_today']} of {quotas['images_per_day']} "
            f"({left['images_today']} left)",
            f"MB today         {usage['mb_today']:.1f} of {quotas['mb_per_day']} "
            f"({left['mb_today']:.1f} left)",
            f"largest upload   {quotas['max_upload_mb']} MB",
            f"day resets at    {usage['day_resets_at'][:16].replace('T', ' ')} UTC "
            f"(in {usage['resets_in_seconds']} s)",
        ]
    )


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], client: Any
) -> argparse.ArgumentParser:
    """`oilspill account [--json]`; `client` makes the HTTP client from the parsed arguments."""

    def run(args: argparse.Namespace) -> int:
        with client(args) as http:
            account = _fetch(http)
        print(json.dumps(account, indent=2) if args.json else text(account))
        return 0

    command = commands.add_parser("account", help="who the API takes --key for, quotas and today's use")
    command.set_defaults(run=run)
    return command
