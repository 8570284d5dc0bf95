"""The ``keys`` commands: ``list``, ``generate``, ``update`` and ``delete`` one product
environment's access keys. Each takes the parsed arguments and returns the exit status.

May import: ``common`` and ``output`` (below it in the CLI), the standard library and the
rest of cldprov_async (models). Not the parser or ``__init__``, which import this module.
"""

from __future__ import annotations

import argparse

from ..models import DedicatedFor
from .common import EXIT_OK, UsageError, connect
from .output import key_json, keys_table, print_json

NEW_SECRET_LABEL = "NEW SECRET (shown once, store it now):"


async def keys_list(args: argparse.Namespace) -> int:
    request = {"sub_account_id": args.sub, "sort_by": args.sort_by, "sort_order": args.sort_order}
    async with connect(args) as client:
        listing = await client.access_keys.list(request)
    keys = listing.access_keys
    if args.json:
        print_json(
            {
                "sub_account_id": args.sub,
                "total": listing.total if listing.total is not None else len(keys),
                "access_keys": [key_json(k, args.show_secrets) for k in keys],
            }
        )
    else:
        print(keys_table(keys, args.show_secrets) if keys else "(no access keys)")
    return EXIT_OK


async def keys_generate(args: argparse.Namespace) -> int:
    async with connect(args) as client:
        key = await client.access_keys.generate(
            args.sub, {"name": args.name, "enabled": not args.disabled}
        )
    if args.json:
        print_json(
            {
                "sub_account_id": args.sub,
                "access_key": key_json(key, args.show_secrets),
                "new_api_secret": key.api_secret,
            }
        )
    else:
        print(keys_table([key], None))
        print()
        print(NEW_SECRET_LABEL, key.api_secret or "(the server returned none)")
    return EXIT_OK


async def keys_update(args: argparse.Namespace) -> int:
    change: dict[str, object] = {}
    if args.name is not None:
        change["name"] = args.name
    if args.enabled is not None:
        change["enabled"] = args.enabled
    if args.dedicate_webhooks:
        change["dedicated_for"] = DedicatedFor.WEBHOOKS
    if not change:
        raise UsageError(
            "nothing to update: pass --name, --enable, --disable or --dedicate-webhooks"
        )
    async with connect(args) as client:
        key = await client.access_keys.update(args.sub, args.key, change)
    if args.json:
        print_json({"sub_account_id": args.sub, "access_key": key_json(key, args.show_secrets)})
    else:
        print(keys_table([key], args.show_secrets))
    return EXIT_OK


async def keys_delete(args: argparse.Namespace) -> int:
    if (args.key is None) == (args.name is None):
        raise UsageError("keys delete: pass either KEY or --name NAME")
    async with connect(args) as client:
        if args.key is not None:
            reply = await client.access_keys.delete(args.sub, args.key)
        else:
            reply = await client.access_keys.delete_by_name(args.sub, args.name)
    what = f"access key {args.key}" if args.key is not None else f"access key named {args.name!r}"
    if args.json:
        target = {"api_key": args.key} if args.key is not None else {"name": args.name}
        print_json({"sub_account_id": args.sub, "deleted": target, "message": reply.message})
    else:
        print(f"Deleted {what} from {args.sub}.")
    return EXIT_OK
