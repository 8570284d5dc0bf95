"""The argument parser: the global options, every subcommand and its options, each
subcommand bound to its handler (``args.handler``).

May import: the command modules (``keys``, ``rotate``, ``audit``, ``demo``), ``ages`` and
``common``, the standard library and the rest of cldprov_async (config, models, rotation,
version). Only ``__init__`` imports this module.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from .. import _rotation
from .._config import ACCOUNT_URL_ENV, REGIONS
from .._version import __version__
from ..models import SortBy, SortOrder
from .ages import age_or_zero, parse_age
from .audit import audit
from .common import PROG
from .demo import demo
from .keys import keys_delete, keys_generate, keys_list, keys_update
from .rotate import rotate


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _positive_float(text: str) -> float:
    value = _float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _reserve(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _selection(p: argparse.ArgumentParser) -> None:
    """How ``rotate`` and ``audit`` choose environments (``select``)."""
    p.add_argument("subs", metavar="SUB", nargs="*", help="product environment ids")
    p.add_argument(
        "--from-file", metavar="FILE", help="more ids, one a line (# comments); - for stdin"
    )
    p.add_argument("--all", action="store_true", help="every product environment of the account")
    p.add_argument(
        "--enabled-only",
        action="store_true",
        help="only enabled environments (without ids: of the whole account)",
    )
    p.add_argument(
        "--prefix",
        metavar="P",
        help="only environments whose name starts with P, case-insensitive (without ids: of"
        " the whole account)",
    )
    p.add_argument(
        "--refresh",
        action="store_true",
        help="list every environment's keys, trusting no key cache entry (it is rewritten)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Manage and rotate Cloudinary access keys through the Provisioning API.",
        epilog=f"Try `{PROG} demo`: it runs against a built-in fake server, no credentials needed.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--account-url",
        metavar="URL",
        help=f"account://KEY:SECRET@ACCOUNT_ID (default: ${ACCOUNT_URL_ENV}; prefer the"
        " variable, since arguments show in process lists)",
    )
    parser.add_argument("--region", choices=REGIONS, default="api", help="default: api")
    parser.add_argument("--server-url", metavar="URL", help="an API base URL instead of a region")
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="per request attempt (default: 30)",
    )
    parser.add_argument(
        "--rate-limit-url",
        metavar="URL",
        help="the Redis of a rate-limit budget shared with other processes: redis://,"
        " rediss://, unix://, redis+sentinel://HOST:PORT[,...]/SERVICE or"
        " redis+cluster://HOST:PORT[,...] (default: $CLDPROV_RATE_LIMIT_URL;"
        " needs cldprov-async[redis])",
    )
    parser.add_argument(
        "--bulk-reserve",
        type=_reserve,
        default=0.1,
        metavar="FRACTION",
        help="share of each rate-limit window a rotation leaves to other (normal) calls of the"
        " account, in [0, 1) (default: 0.1; 0 when nothing else shares the account)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    parser.add_argument(
        "--show-secrets", action="store_true", help="print existing keys' secrets unmasked"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keys = commands.add_parser("keys", help="list, generate, update or delete access keys")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser("list", help="the keys of a product environment")
    p.add_argument("sub", metavar="SUB", help="product environment (sub-account) id")
    p.add_argument("--sort-by", choices=[s.value for s in SortBy])
    p.add_argument("--sort-order", choices=[s.value for s in SortOrder])
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(handler=keys_list)

    p = actions.add_parser("generate", help="a new key; prints its secret once")
    p.add_argument("sub", metavar="SUB")
    p.add_argument("--name", help="recommended: a named key survives a retried request")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=keys_generate)

    p = actions.add_parser("update", help="rename, enable/disable or dedicate a key")
    p.add_argument("sub", metavar="SUB")
    p.add_argument("key", metavar="KEY", help="the key's api_key")
    p.add_argument("--name", help="new name")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)
    p.add_argument("--dedicate-webhooks", action="store_true", help="make it the key for webhooks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=keys_update)

    p = actions.add_parser("delete", help="delete a key by api_key or by --name")
    p.add_argument("sub", metavar="SUB")
    p.add_argument("key", metavar="KEY", nargs="?", help="the key's api_key")
    p.add_argument("--name", help="delete the key with this name instead")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=keys_delete)

    p = commands.add_parser(
        "rotate",
        help="give product environments one new key each and retire the old ones",
        description="Each product environment gets one new enabled key (dedicated for webhooks"
        " if an old one was), then its old enabled keys are retired. Progress goes to stderr."
        " Exit status: 0 nothing failed, 1 any failed (each is listed), 2 usage error, 3 another"
        " run holds the account's rotation lock.",
    )
    _selection(p)
    p.add_argument(
        "--retire",
        choices=_rotation.RETIRE_MODES,
        default="disable",
        help="what happens to the old enabled keys (default: disable)",
    )
    p.add_argument(
        "--name", help="the new keys' name (default: rotated-TIME-RANDOM); reuse it to resume"
    )
    p.add_argument("--concurrency", type=_positive_int, default=8, metavar="N", help="default: 8")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument(
        "--dry-run", action="store_true", help="only list the keys and say what a run would do"
    )
    p.add_argument(
        "--older-than",
        type=parse_age,
        metavar="AGE",
        help="rotate only where the newest enabled key is older than AGE (90d, 12h, 30m, 45s"
        " or seconds); the key cache spares the key listing of environments that did not change",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="before anything retires, prove the new key works: the Admin API's ping with it",
    )
    p.add_argument(
        "--verify-timeout",
        type=parse_age,
        default=timedelta(seconds=120),
        metavar="AGE",
        help="how long --verify retries a key not accepted yet (default: 120s)",
    )
    life = p.add_argument_group(
        "lifecycle (any of these): NAME@pending -> verified -> handed off (NAME@current) ->"
        " older keys retired after the grace -> retired keys pruned"
    )
    life.add_argument(
        "--deploy-hook",
        metavar="CMD",
        help="hand each new key off by running CMD through the shell (JSON on stdin: api_key,"
        " api_secret, ...); exit 0 means delivered. Without it the --jsonl line is the hand-off",
    )
    life.add_argument(
        "--hook-timeout",
        type=parse_age,
        default=timedelta(seconds=60),
        metavar="AGE",
        help="kill a hook's process group past this (default: 60s)",
    )
    life.add_argument(
        "--grace",
        type=age_or_zero,
        metavar="AGE",
        help="retire the older keys once the new one has been handed off this long (0 allowed)",
    )
    life.add_argument(
        "--prune-after",
        type=age_or_zero,
        metavar="AGE",
        help="delete keys a rotation retired (disabled) at least AGE ago",
    )
    p.add_argument(
        "--jsonl", action="store_true", help="a JSON line on stdout as each environment finishes"
    )
    p.set_defaults(handler=rotate)

    p = commands.add_parser(
        "audit",
        help="every product environment's keys and rotation state at a glance (read only)",
        description="One row per product environment (the whole account unless ids or a file"
        " are given): keys, enabled keys, ages of the newest and oldest enabled keys, the"
        " webhooks key and the lifecycle state under rotate's policy. Only reads; takes no"
        " lock; never prints a secret. The key cache makes a repeated audit cost one request"
        " when nothing changed. Exit status: 0, or 1 when --max-age finds an environment"
        " needing attention or an environment could not be audited; 2 usage error.",
    )
    _selection(p)
    p.add_argument(
        "--older-than",
        type=parse_age,
        default=parse_age("90d"),
        metavar="AGE",
        help="a newest enabled key older than AGE is due for rotation (default: 90d)",
    )
    p.add_argument(
        "--grace",
        type=age_or_zero,
        default=age_or_zero("0"),
        metavar="AGE",
        help="how long a handed-off key serves beside the older ones, as for rotate (default: 0)",
    )
    p.add_argument(
        "--prune-after",
        type=age_or_zero,
        metavar="AGE",
        help="retired keys are due for deletion this long after retirement, as for rotate",
    )
    p.add_argument(
        "--max-age",
        type=parse_age,
        metavar="AGE",
        help="monitoring: exit 1 when any newest enabled key is older than AGE, an environment"
        " has no enabled key, or a hand-off has been pending for more than a day",
    )
    p.add_argument("--concurrency", type=_positive_int, default=8, metavar="N", help="default: 8")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON document on stdout")
    output.add_argument(
        "--jsonl", action="store_true", help="a JSON line on stdout as each environment is ready"
    )
    output.add_argument("--csv", action="store_true", help="CSV on stdout, a header first")
    p.set_defaults(handler=audit)

    p = commands.add_parser("demo", help="a bulk rotation against a built-in fake server")
    p.add_argument("--environments", type=_positive_int, default=36, metavar="N")
    p.add_argument("--seed", type=int, default=1, help="of the fake server's faults")
    p.set_defaults(handler=demo)
    return parser
