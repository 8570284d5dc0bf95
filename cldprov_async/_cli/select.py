"""Choosing product environments, as ``rotate`` and ``audit`` both do: ids on the command
line, ``--from-file``, or the whole account (``--all``, or only ``--prefix`` / ``--enabled-only``),
narrowed by those filters.

May import: ``common``, the standard library and the rest of cldprov_async (client,
models, the listing's limit). The commands import it.
"""

from __future__ import annotations

import argparse
import sys

from .._client import CldProvisioning
from .._product_environments import MAX_LISTED
from ..models import ProductEnvironment
from .common import UsageError


def read_ids(source: str) -> list[str]:
    """One id a line; blank lines and ``#`` comments are skipped. ``-`` is stdin."""
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    ids = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [i for i in ids if i]


def whole_account(args: argparse.Namespace) -> bool:
    """``--all``, or filters with no ids: the filters apply to the whole account."""
    named = bool(args.subs) or args.from_file is not None
    return bool(args.all) or (not named and bool(args.enabled_only or args.prefix))


def named_ids(args: argparse.Namespace, command: str, *, required: bool = True) -> list[str]:
    """The ids named on the command line and in ``--from-file``, checked; [] for the whole
    account. Naming none (no filter either) is refused when ``required``, else it means the
    whole account; an empty ``--from-file`` is always refused."""
    ids = list(args.subs)
    if args.from_file is not None:
        ids += read_ids(args.from_file)
    if args.all:
        if ids:
            raise UsageError(f"{command}: give ids (or --from-file) or --all, not both")
        return []
    if not ids:
        if whole_account(args) or (not required and args.from_file is None):
            return []
        raise UsageError(
            f"{command}: give at least one sub-account id, --from-file, --all, --prefix"
            " or --enabled-only"
        )
    seen: set[str] = set()
    for sub in ids:
        if sub in seen:
            raise UsageError(f"{command}: sub-account {sub!r} is given twice")
        seen.add(sub)
    return ids


def matches(env: ProductEnvironment, args: argparse.Namespace) -> bool:
    if args.enabled_only and not env.enabled:
        return False
    return not args.prefix or env.name.casefold().startswith(args.prefix.casefold())


async def choose(
    client: CldProvisioning, args: argparse.Namespace, ids: list[str], *, listed: bool = False
) -> tuple[list[str], list[ProductEnvironment]]:
    """The environments chosen (``ids`` from ``named_ids``: [] is the whole account), and
    as the listing shows them (when one was needed, or ``listed``: the key cache wants their
    key ids and flags, a lifecycle run or ``--verify`` their cloud names; named ids are
    listed 100 at a time). Filters narrow named ids too, client-side: the API ignores its
    other filters when given ``ids``. An id the listing does not know is kept, so its 404 is
    reported rather than silently dropped."""
    api = client.product_environments
    if not ids:
        enabled = True if args.enabled_only else None
        listing = await api.list(enabled=enabled, prefix=args.prefix or None)
        return [env.id for env in listing.sub_accounts], list(listing.sub_accounts)
    if not (args.enabled_only or args.prefix or listed):
        return ids, []
    known: dict[str, ProductEnvironment] = {}
    for start in range(0, len(ids), MAX_LISTED):
        listing = await api.list(ids=ids[start : start + MAX_LISTED])
        known.update((env.id, env) for env in listing.sub_accounts)
    chosen = [sub for sub in ids if sub not in known or matches(known[sub], args)]
    return chosen, [known[sub] for sub in chosen if sub in known]
