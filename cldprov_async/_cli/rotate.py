"""The ``rotate`` command: give product environments one new key each, retire the old ones,
and report every result (new secrets on stdout; progress, summary and failures on stderr).

May import: ``common`` and ``output`` (below it in the CLI), the standard library and the
rest of cldprov_async (rotation, models). Not the parser or ``__init__``, which import it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from .. import _rotation
from .._rotation import RotationResult
from ..models import check_id
from .common import EXIT_FAILED, EXIT_OK, PROG, UsageError, connect
from .output import Progress, environments, error_json, key_json, one_line, print_json, table


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
        print_json(
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
                        "error": error_json(r.error),
                        "new_key": None if r.new_key is None else key_json(r.new_key, show),
                        "new_api_secret": None if r.new_key is None else r.new_key.api_secret,
                        "retired": [key_json(k, show) for k in r.retired],
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
        print(table(["SUB_ACCOUNT", "RESULT", "NEW_API_KEY", "OLD_KEYS"], rows))
        created = [(r.sub_account_id, r.new_key) for r in results if r.new_key is not None]
        if created:
            print()
            print("NEW SECRETS (shown once, store them now):")
            rows = [
                [sub, key.name, key.api_key, key.api_secret or "(none returned)"]
                for sub, key in created
            ]
            print(table(["SUB_ACCOUNT", "NAME", "API_KEY", "API_SECRET"], rows))
    err = sys.stderr
    print(
        f"rotated {len(results) - len(failed)} of {environments(total)}"
        f" (new key name {name!r}, old keys: {args.retire})",
        file=err,
    )
    for r in failed:
        print(f"failed: {r.sub_account_id}: {one_line(r.error or Exception())}", file=err)
    if failed:
        again = " ".join(r.sub_account_id for r in failed)
        print(f"to resume the failed ones: {PROG} rotate --name {name} {again}", file=err)


async def rotate(args: argparse.Namespace) -> int:
    ids = _rotation_ids(args)
    name = args.name if args.name is not None else _rotation.run_name()
    check_id(name, "--name")
    async with connect(args) as client:
        progress = Progress(len(ids), sys.stderr)
        print(f"rotating {environments(len(ids))}...", file=sys.stderr)
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
