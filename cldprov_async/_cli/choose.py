"""Which product environments a ``rotate`` covers: ids on the command line, ``--from-file``
(``-`` for stdin), or ``--all``, narrowed by ``--enabled-only`` and ``--prefix``.

When the rotation needs each environment's cloud name (``--verify``, a lifecycle run), the
chosen ones come back as the listing's ``ProductEnvironment`` objects (named ids are listed
100 at a time); an id the listing does not know is kept as it is, so its 404 is reported
rather than silently dropped.

May import: ``common`` (beside it at the bottom of the CLI), the standard library and the
rest of cldprov_async (client, models).
"""

from __future__ import annotations

import argparse
import sys

from .._client import CldProvisioning
from ..models import ProductEnvironment
from .common import UsageError

#: The most ids one product-environment listing takes.
IDS_PER_LISTING = 100
#: What a rotation is given: an id, or an environment of the listing.
Chosen = str | ProductEnvironment


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


def named_ids(args: argparse.Namespace) -> list[str]:
    """The ids named on the command line or in ``--from-file`` ([] with ``--all``)."""
    ids = list(args.subs)
    if args.from_file is not None:
        ids += read_ids(args.from_file)
    if args.all:
        if ids:
            raise UsageError("rotate: give ids (or --from-file) or --all, not both")
        return []
    if not ids:
        raise UsageError("rotate: give at least one sub-account id, --from-file, or --all")
    seen: set[str] = set()
    for sub in ids:
        if sub in seen:
            raise UsageError(f"rotate: sub-account {sub!r} is given twice")
        seen.add(sub)
    return ids


def _matches(env: ProductEnvironment, args: argparse.Namespace) -> bool:
    if args.enabled_only and not env.enabled:
        return False
    return not args.prefix or env.name.casefold().startswith(args.prefix.casefold())


async def choose(
    client: CldProvisioning, args: argparse.Namespace, ids: list[str], *, environments: bool
) -> list[Chosen]:
    """The environments to rotate, as ids, or (``environments``) as listed environments.

    Filters narrow named ids too, client-side: the API ignores its other filters when
    ``ids`` is given.
    """
    api = client.product_environments
    if args.all:
        enabled = True if args.enabled_only else None
        listing = await api.list(enabled=enabled, prefix=args.prefix or None)
        if environments:
            return list(listing.sub_accounts)
        return [env.id for env in listing.sub_accounts]
    if not (args.enabled_only or args.prefix or environments):
        return list(ids)
    known: dict[str, ProductEnvironment] = {}
    for start in range(0, len(ids), IDS_PER_LISTING):
        listing = await api.list(ids=ids[start : start + IDS_PER_LISTING])
        known.update((env.id, env) for env in listing.sub_accounts)
    chosen = [sub for sub in ids if sub not in known or _matches(known[sub], args)]
    if not environments:
        return list(chosen)
    return [known.get(sub, sub) for sub in chosen]


def chosen_id(item: Chosen) -> str:
    return item if isinstance(item, str) else item.id
