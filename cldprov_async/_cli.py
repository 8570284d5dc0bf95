"""The ``cldprov-async`` command line (also ``python -m cldprov_async``), on argparse.

Exit codes: 0 success, 1 an API error or a failed rotation, 2 a usage or configuration
error, 130 interrupted. Data goes to stdout (a table, or one JSON document with
``--json``); progress, summaries and errors go to stderr. Secrets of existing keys are
masked unless ``--show-secrets``; a newly created key's secret is always printed, once,
because the API never shows it again. The provisioning secret is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from . import _rotation
from ._client import CldProvisioning
from ._config import ACCOUNT_URL_ENV, REGIONS, resolve_credentials
from ._rotation import RotationResult
from ._version import __version__
from .errors import CldProvisioningError
from .models import AccessKey, DedicatedFor, SortBy, SortOrder, check_id

if TYPE_CHECKING:
    from .testing import FakeProvisioningServer

PROG = "cldprov-async"
MASK = "********"
NEW_SECRET_LABEL = "NEW SECRET (shown once, store it now):"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class UsageError(ValueError):
    """A bad combination of arguments that argparse cannot express; exits 2."""


# -- formatting ------------------------------------------------------------------------------


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _environments(n: int) -> str:
    return f"{n} product environment{'' if n == 1 else 's'}"


def _secret(value: str | None, show: bool) -> str | None:
    return value if show or value is None else MASK


def _one_line(exc: BaseException) -> str:
    """Library errors carry status and server message in str(); others need their type."""
    text = str(exc) if isinstance(exc, CldProvisioningError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _error_json(exc: BaseException | None) -> dict[str, Any] | None:
    if exc is None:
        return None
    status = exc.status_code if isinstance(exc, CldProvisioningError) else None
    return {"type": type(exc).__name__, "status": status, "message": _one_line(exc)}


def _key_json(key: AccessKey, show: bool) -> dict[str, Any]:
    return {
        "name": key.name,
        "api_key": key.api_key,
        "api_secret": _secret(key.api_secret, show),
        "enabled": key.enabled,
        "dedicated_for": [str(d) for d in key.dedicated_for],
        "created_at": _iso(key.created_at),
        "updated_at": _iso(key.updated_at),
    }


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _keys_table(keys: Iterable[AccessKey], show: bool | None) -> str:
    """``show=None`` leaves the secret column out (the caller prints the secret itself)."""
    headers = ["NAME", "API_KEY", "ENABLED", "DEDICATED", "CREATED_AT"]
    if show is not None:
        headers.append("API_SECRET")
    rows = []
    for key in keys:
        row = [
            key.name or "-",
            key.api_key,
            "yes" if key.enabled else "no",
            ",".join(key.dedicated_for) or "-",
            _iso(key.created_at),
        ]
        if show is not None:
            row.append(_secret(key.api_secret, show) or "-")
        rows.append(row)
    return _table(headers, rows)


def _print_json(document: object) -> None:
    print(json.dumps(document, indent=2))


# -- the client ------------------------------------------------------------------------------


def _connect(args: argparse.Namespace) -> CldProvisioning:
    """A client from the global options; credentials only from --account-url or the env."""
    url = args.account_url or os.environ.get(ACCOUNT_URL_ENV)
    if not url:
        raise UsageError(
            f"no credentials: set {ACCOUNT_URL_ENV}=account://KEY:SECRET@ACCOUNT_ID"
            " (or pass --account-url)"
        )
    account_id, security = resolve_credentials(None, None, env={ACCOUNT_URL_ENV: url})
    return CldProvisioning(
        account_id,
        security,
        server_url=args.server_url,
        region=args.region,
        timeout=args.timeout,
    )


# -- keys ------------------------------------------------------------------------------------


async def _keys_list(args: argparse.Namespace) -> int:
    request = {"sub_account_id": args.sub, "sort_by": args.sort_by, "sort_order": args.sort_order}
    async with _connect(args) as client:
        listing = await client.access_keys.list(request)
    keys = listing.access_keys
    if args.json:
        _print_json(
            {
                "sub_account_id": args.sub,
                "total": listing.total if listing.total is not None else len(keys),
                "access_keys": [_key_json(k, args.show_secrets) for k in keys],
            }
        )
    else:
        print(_keys_table(keys, args.show_secrets) if keys else "(no access keys)")
    return EXIT_OK


async def _keys_generate(args: argparse.Namespace) -> int:
    async with _connect(args) as client:
        key = await client.access_keys.generate(
            args.sub, {"name": args.name, "enabled": not args.disabled}
        )
    if args.json:
        _print_json(
            {
                "sub_account_id": args.sub,
                "access_key": _key_json(key, args.show_secrets),
                "new_api_secret": key.api_secret,
            }
        )
    else:
        print(_keys_table([key], None))
        print()
        print(NEW_SECRET_LABEL, key.api_secret or "(the server returned none)")
    return EXIT_OK


async def _keys_update(args: argparse.Namespace) -> int:
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
    async with _connect(args) as client:
        key = await client.access_keys.update(args.sub, args.key, change)
    if args.json:
        _print_json({"sub_account_id": args.sub, "access_key": _key_json(key, args.show_secrets)})
    else:
        print(_keys_table([key], args.show_secrets))
    return EXIT_OK


async def _keys_delete(args: argparse.Namespace) -> int:
    if (args.key is None) == (args.name is None):
        raise UsageError("keys delete: pass either KEY or --name NAME")
    async with _connect(args) as client:
        if args.key is not None:
            reply = await client.access_keys.delete(args.sub, args.key)
        else:
            reply = await client.access_keys.delete_by_name(args.sub, args.name)
    what = f"access key {args.key}" if args.key is not None else f"access key named {args.name!r}"
    if args.json:
        target = {"api_key": args.key} if args.key is not None else {"name": args.name}
        _print_json({"sub_account_id": args.sub, "deleted": target, "message": reply.message})
    else:
        print(f"Deleted {what} from {args.sub}.")
    return EXIT_OK


# -- rotate ----------------------------------------------------------------------------------


class Progress:
    """Rotation progress on stderr: a redrawn bar on a terminal, one plain line otherwise
    (so logs and CI output stay readable)."""

    BAR = 30

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.live = stream.isatty()
        self.results: list[RotationResult] = []
        self.started = time.monotonic()
        self._drawn = False

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)

    def start(self) -> None:
        if self.live:
            self._draw()

    def update(self, done: int, total: int, result: RotationResult) -> None:
        self.results.append(result)
        if self.live:
            self._draw()
            return
        if result.ok and result.new_key is not None:
            outcome = f"rotated (new api_key {result.new_key.api_key})"
        else:
            outcome = f"FAILED: {_one_line(result.error or Exception('no new key'))}"
        width = len(str(total))
        self.stream.write(f"[{done:>{width}}/{total}] {result.sub_account_id}: {outcome}\n")
        self.stream.flush()

    def _draw(self) -> None:
        done = len(self.results)
        filled = self.BAR * done // max(1, self.total)
        bar = "#" * filled + "-" * (self.BAR - filled)
        elapsed = time.monotonic() - self.started
        self.stream.write(f"\r[{bar}] {done}/{self.total}  failed {self.failed}  {elapsed:5.1f}s")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _read_ids(source: str) -> list[str]:
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


def _rotation_ids(args: argparse.Namespace) -> list[str]:
    ids = list(args.subs)
    if args.from_file is not None:
        ids += _read_ids(args.from_file)
    if not ids:
        raise UsageError("rotate: give at least one sub-account id, or --from-file")
    seen: set[str] = set()
    for sub in ids:
        if sub in seen:
            raise UsageError(f"rotate: sub-account {sub!r} is given twice")
        seen.add(sub)
    return ids


def _report_rotation(
    results: Sequence[RotationResult], args: argparse.Namespace, name: str, total: int
) -> None:
    """Results and new secrets on stdout; the summary and each failure on stderr."""
    show = args.show_secrets
    failed = [r for r in results if not r.ok]
    if args.json:
        _print_json(
            {
                "name": name,
                "retire": args.retire,
                "total": total,
                "rotated": len(results) - len(failed),
                "failed": len(failed),
                "results": [
                    {
                        "sub_account_id": r.sub_account_id,
                        "ok": r.ok,
                        "error": _error_json(r.error),
                        "new_key": None if r.new_key is None else _key_json(r.new_key, show),
                        "new_api_secret": None if r.new_key is None else r.new_key.api_secret,
                        "retired": [_key_json(k, show) for k in r.retired],
                    }
                    for r in results
                ],
            }
        )
    else:
        retired = {"disable": "disabled", "delete": "deleted", "keep": "kept"}[args.retire]
        rows = [
            [
                r.sub_account_id,
                "ok" if r.ok else "FAILED",
                r.new_key.api_key if r.new_key is not None else "-",
                f"{len(r.retired)} {retired}",
            ]
            for r in results
        ]
        print(_table(["SUB_ACCOUNT", "RESULT", "NEW_API_KEY", "OLD_KEYS"], rows))
        created = [(r.sub_account_id, r.new_key) for r in results if r.new_key is not None]
        if created:
            print()
            print("NEW SECRETS (shown once, store them now):")
            rows = [
                [sub, key.name, key.api_key, key.api_secret or "(none returned)"]
                for sub, key in created
            ]
            print(_table(["SUB_ACCOUNT", "NAME", "API_KEY", "API_SECRET"], rows))
    err = sys.stderr
    print(
        f"rotated {len(results) - len(failed)} of {_environments(total)}"
        f" (new key name {name!r}, old keys: {args.retire})",
        file=err,
    )
    for r in failed:
        print(f"failed: {r.sub_account_id}: {_one_line(r.error or Exception())}", file=err)
    if failed:
        again = " ".join(r.sub_account_id for r in failed)
        print(f"to resume the failed ones: {PROG} rotate --name {name} {again}", file=err)


async def _rotate(args: argparse.Namespace) -> int:
    ids = _rotation_ids(args)
    name = args.name if args.name is not None else _rotation.run_name()
    check_id(name, "--name")
    async with _connect(args) as client:
        progress = Progress(len(ids), sys.stderr)
        print(f"rotating {_environments(len(ids))}...", file=sys.stderr)
        progress.start()
        try:
            results = await client.access_keys.rotate_many(
                ids,
                concurrency=args.concurrency,
                on_progress=progress.update,
                name=name,
                retire=args.retire,
            )
        except asyncio.CancelledError:
            # Interrupted: the keys created so far exist; their secrets must not be lost.
            progress.close()
            _report_rotation(progress.results, args, name, len(ids))
            print(f"interrupted: run again with --name {name} to finish the rest", file=sys.stderr)
            raise
        finally:
            progress.close()
    _report_rotation(results, args, name, len(ids))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


# -- demo ------------------------------------------------------------------------------------


async def _demo(args: argparse.Namespace) -> int:
    """Rotate every environment of an in-process fake server and check the result."""
    from .testing import FakeProvisioningServer, Faults, RateLimit  # only the demo needs it

    count, limit, fault_rate = args.environments, 40, 0.08
    subs = [f"env-{i:02d}" for i in range(1, count + 1)]
    server = FakeProvisioningServer(
        sub_accounts=subs,
        keys_per_sub_account=1,
        rate_limit=RateLimit(limit=limit, window=1.0),
        faults=Faults(rate=fault_rate),
        seed=args.seed,
    )
    dedicated = set(subs[::3])
    for sub in subs:
        server.add_key(
            sub, name="webhooks" if sub in dedicated else None, dedicated=sub in dedicated
        )
    before = {sub: {k.api_key for k in server.keys(sub)} for sub in subs}
    name = _rotation.run_name()
    intro = (
        "No Cloudinary credentials are needed: this starts a fake Provisioning API on"
        f" 127.0.0.1 and drives it with the real client. The fake server holds {count}"
        f" product environments with 2 access keys each ({len(dedicated)} dedicate one to"
        f" webhooks), allows {limit} requests per second, and makes about {fault_rate:.0%}"
        " of requests fail (5xx errors, HTML error pages, dropped connections, truncated"
        " bodies, delays). Each environment gets one new key, its old keys are disabled,"
        " and a webhook dedication moves to the new key."
    )
    print(f"{PROG} demo: a bulk key rotation against a built-in fake server\n")
    print(textwrap.fill(intro, width=79), end="\n\n")
    async with server:
        async with server.client() as client:
            print(f"Rotating at {server.url}, 8 environments at a time:", flush=True)
            progress = Progress(count, sys.stderr)
            progress.start()
            try:
                results = await client.access_keys.rotate_many(
                    subs, concurrency=8, on_progress=progress.update, name=name
                )
            finally:
                progress.close()
            elapsed = time.monotonic() - progress.started
        sent, served = client.stats, server.stats
    problems = _check_demo(server, results, before, dedicated)
    failed = [r for r in results if not r.ok]
    # "\xa0" keeps "kind xN" on one line: textwrap breaks at ASCII whitespace only.
    kinds = ", ".join(f"{kind}\xa0x{n}" for kind, n in sorted(served.faults.items()))
    total_faults = sum(served.faults.values())
    faults = [
        line.replace("\xa0", " ")
        for line in textwrap.wrap(f"{total_faults}: {kinds or 'none'}", width=44)
    ]
    paced = " (the client paces itself to the server's budget)"
    rows = [
        ["product environments rotated", f"{count - len(failed)} of {count}"],
        ["rotations failed", str(len(failed))],
        ["requests sent by the client", f"{sent.sent} ({limit} per second allowed)"],
        ["requests retried", str(sent.retried)],
        ["rejected by the rate limit", f"{sent.rejected}{paced if not sent.rejected else ''}"],
        ["faults injected by the server", faults[0]],
        *([["", more] for more in faults[1:]]),
        ["keys created on the server", str(server.keys_created)],
        ["elapsed", f"{elapsed:.1f} s"],
    ]
    print()
    print("Summary")
    print("\n".join("  " + line for line in _table(["", ""], rows).splitlines()[1:]))
    for r in failed:
        print(f"  failed: {r.sub_account_id}: {_one_line(r.error or Exception())}")
    print()
    if problems:
        print("Verification FAILED (read from the fake server's state):")
        print("\n".join(f"  {p}" for p in problems))
        return EXIT_FAILED
    verified = (
        f"Verified from the server's state: each of the {count} environments ends with"
        " exactly one enabled key, the new one, holding the secret the client received;"
        f" the {len(dedicated)} webhook dedications moved to the new keys."
    )
    print(textwrap.fill(verified, width=79))
    return EXIT_OK


def _check_demo(
    server: FakeProvisioningServer,
    results: Sequence[RotationResult],
    before: dict[str, set[str]],
    dedicated: set[str],
) -> list[str]:
    """What the server holds that a correct rotation would not have left behind."""
    problems = []
    for r in results:
        sub = r.sub_account_id
        if r.new_key is None:
            problems.append(f"{sub}: no new key")
            continue
        keys = {k.api_key: k for k in server.keys(sub)}
        enabled = [k for k in keys.values() if k.enabled]
        new = keys.get(r.new_key.api_key)
        if new is None or new.api_key in before[sub]:
            problems.append(f"{sub}: the new key is not a new key on the server")
        elif [k.api_key for k in enabled] != [new.api_key]:
            problems.append(f"{sub}: {len(enabled)} enabled keys instead of just the new one")
        elif new.api_secret != r.new_key.api_secret:
            problems.append(f"{sub}: the client holds a different secret than the server")
        elif sub in dedicated and "webhooks" not in new.dedicated_for:
            problems.append(f"{sub}: the webhook dedication did not move to the new key")
    return problems


# -- the parser ------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


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
    p.set_defaults(handler=_keys_list)

    p = actions.add_parser("generate", help="a new key; prints its secret once")
    p.add_argument("sub", metavar="SUB")
    p.add_argument("--name", help="recommended: a named key survives a retried request")
    p.add_argument("--disabled", action="store_true", help="create it disabled")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_keys_generate)

    p = actions.add_parser("update", help="rename, enable/disable or dedicate a key")
    p.add_argument("sub", metavar="SUB")
    p.add_argument("key", metavar="KEY", help="the key's api_key")
    p.add_argument("--name", help="new name")
    state = p.add_mutually_exclusive_group()
    state.add_argument("--enable", dest="enabled", action="store_const", const=True)
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)
    p.add_argument("--dedicate-webhooks", action="store_true", help="make it the key for webhooks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_keys_update)

    p = actions.add_parser("delete", help="delete a key by api_key or by --name")
    p.add_argument("sub", metavar="SUB")
    p.add_argument("key", metavar="KEY", nargs="?", help="the key's api_key")
    p.add_argument("--name", help="delete the key with this name instead")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_keys_delete)

    p = commands.add_parser(
        "rotate",
        help="give product environments one new key each and retire the old ones",
        description="Each product environment gets one new enabled key (dedicated for webhooks"
        " if an old one was), then its old enabled keys are retired. Progress goes to stderr."
        " Exit status: 0 all rotated, 1 any failed (each is listed), 2 usage error.",
    )
    p.add_argument("subs", metavar="SUB", nargs="*", help="product environment ids")
    p.add_argument(
        "--from-file", metavar="FILE", help="more ids, one a line (# comments); - for stdin"
    )
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
    p.set_defaults(handler=_rotate)

    p = commands.add_parser("demo", help="a bulk rotation against a built-in fake server")
    p.add_argument("--environments", type=_positive_int, default=36, metavar="N")
    p.add_argument("--seed", type=int, default=1, help="of the fake server's faults")
    p.set_defaults(handler=_demo)
    return parser


# -- entry point -----------------------------------------------------------------------------


def _logging(verbosity: int) -> logging.Handler:
    """-v shows the library's retries; without it its warnings stay quiet (we report them)."""
    logger = logging.getLogger("cldprov_async")
    handler: logging.Handler = logging.NullHandler()
    if verbosity:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.setLevel(logging.INFO if verbosity == 1 else logging.DEBUG)
    logger.addHandler(handler)
    return handler


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: keep main() returning
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler = args.handler
    log_handler = _logging(args.verbose)
    try:
        return asyncio.run(handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `... | head`: stop quietly, as the shell tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except CldProvisioningError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, TypeError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        logging.getLogger("cldprov_async").removeHandler(log_handler)
