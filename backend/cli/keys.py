"""`oilspill keys create NAME | list | revoke NAME | quota OWNER`: API keys for AUTH_MODE=api-key, and the
quotas of an owner (a key's name or an OIDC subject), on the server itself.

These commands talk to the service's Redis (REDIS_URL, as the API reads it), not to the API: whoever may
make keys is whoever may reach the service's Redis. `create` prints the key once; only its hash is kept.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

import redis

from backend.auth.keys import ApiKey, KeyRefused, KeyStore
from backend.auth.overrides import OwnerQuotas
from backend.auth.principal import QuotaOverrides
from backend.cli.http import EXIT_UNREACHABLE, EXIT_USAGE, CLIError
from backend.core.config import settings
from backend.jobs.store import connect

QUOTA_OPTIONS = {
    "jobs_in_flight": "jobs queued or running at once",
    "images_per_day": "images accepted per UTC day",
    "mb_per_day": "upload megabytes accepted per UTC day",
    "max_upload_mb": "the largest single upload, MB",
}


def _redis() -> redis.Redis:
    client = connect(settings.redis_url)
    try:
        client.ping()
    except redis.RedisError as exc:
        where = settings.redis_url
        raise CLIError(f"cannot reach Redis at {where} ({exc}); set REDIS_URL", EXIT_UNREACHABLE) from exc
    return client


def _store() -> KeyStore:
    return KeyStore(_redis())


def _when(timestamp: float | None) -> str:
    return "never" if timestamp is None else f"{datetime.fromtimestamp(timestamp, UTC):%Y-%m-%d %H:%M:%S}"


def _quotas(key: ApiKey, owners: OwnerQuotas) -> str:
    effective = owners.get(key.name).before(key.quotas).over(settings)
    return ", ".join(f"{name}={getattr(effective, name)}" for name in QUOTA_OPTIONS)


def create(args: argparse.Namespace) -> int:
    overrides = QuotaOverrides.model_validate({name: getattr(args, name) for name in QUOTA_OPTIONS})
    try:
        key = _store().create(args.name, admin=args.admin, quotas=overrides)
    except KeyRefused as exc:
        raise CLIError(str(exc), EXIT_USAGE) from exc
    print(key)
    print(f"key {args.name!r} created; it is shown only now. Send it as `Authorization: Bearer <key>`.")
    return 0


def list_keys(args: argparse.Namespace) -> int:
    store = _store()
    keys, owners = store.list(), OwnerQuotas(store.client)
    if args.json:
        print(json.dumps([k.model_dump() for k in keys], indent=2))
        return 0
    print(f"{'name':24}  {'created (UTC)':19}  {'last used (UTC)':19}  admin  quotas")
    for key in keys:
        admin = "yes" if key.admin else "no"
        when = f"{_when(key.created_at):19}  {_when(key.last_used):19}"
        print(f"{key.name:24}  {when}  {admin:5}  {_quotas(key, owners)}")
    return 0


def revoke(args: argparse.Namespace) -> int:
    if not _store().revoke(args.name):
        raise CLIError(f"no key named {args.name!r}", EXIT_USAGE)
    print(f"key {args.name!r} revoked: requests with it get 401 from now on")
    return 0


def quota(args: argparse.Namespace) -> int:
    """Show, set or clear an owner's quota overrides: they apply to its keys and to its OIDC tokens."""
    owners = OwnerQuotas(_redis())
    changes = QuotaOverrides.model_validate({name: getattr(args, name) for name in QUOTA_OPTIONS})
    if args.clear and changes != QuotaOverrides():
        raise CLIError("--clear drops every override of the owner: give it alone", EXIT_USAGE)
    if args.clear:
        cleared = owners.clear(args.owner)
        print(f"{args.owner!r}: overrides {'cleared' if cleared else 'were not set'}; QUOTA_* defaults apply")
        return 0
    found = owners.set(args.owner, changes)
    effective = found.over(settings)
    shown = ", ".join(
        f"{name}={getattr(effective, name)}{'' if getattr(found, name) is None else ' (set)'}"
        for name in QUOTA_OPTIONS
    )
    print(f"{args.owner!r}: {shown}")
    return 0


def _quota_options(command: argparse.ArgumentParser, default: str) -> None:
    for name, what in QUOTA_OPTIONS.items():
        flag = f"--{name.replace('_', '-')}"
        command.add_argument(flag, dest=name, type=_positive, help=f"{what} (default: {default})")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a quota is a whole number of at least 1, not {text}")
    return value


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `keys` command and its subcommands, on the CLI's parser."""
    keys = commands.add_parser("keys", help="API keys (AUTH_MODE=api-key), in the service's Redis")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    make = sub.add_parser("create", help="create a key and print it (once)")
    make.add_argument("name", help="the key's owner name: its jobs are recorded under it")
    make.add_argument("--admin", action="store_true", help="may list and open every job")
    _quota_options(make, "QUOTA_*")
    make.set_defaults(run=create)
    ls = sub.add_parser("list", help="the keys: name, creation, last use, quotas (never the key)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=list_keys)
    rm = sub.add_parser("revoke", help="revoke a key: it gets 401 from then on")
    rm.add_argument("name")
    rm.set_defaults(run=revoke)
    owner = sub.add_parser(
        "quota",
        help="show or set an owner's quotas (a key's name or an OIDC subject); they win over the key's own",
    )
    owner.add_argument("owner", help="a key's name, or an OIDC token's subject (sub), e.g. 'auth0|alice'")
    _quota_options(owner, "unchanged")
    owner.add_argument("--clear", action="store_true", help="drop the owner's overrides")
    owner.set_defaults(run=quota)
