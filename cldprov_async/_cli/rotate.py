"""The ``rotate`` command: choose product environments (``select``: ids, a file, or the
whole account with filters), then rotate, plan (``--dry-run``) or skip them
(``--older-than``, through the key cache), streaming each result (``--jsonl``) or reporting
them at the end (a table, or ``--json``).

New secrets go only to ``--jsonl`` and ``--json``; the human output says where to find
them. Progress and failures go to stderr (``progress``). SIGINT and SIGTERM stop the run:
what finished is reported, and how to resume.

May import: ``common``, ``output``, ``ages``, ``select`` and ``progress`` (below it in the
CLI), the standard library and the rest of cldprov_async. Not the parser or ``__init__``,
which import it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import signal
import sys
from collections.abc import Sequence
from typing import Any

from .. import _rotation
from .._budget import BudgetTracker
from .._client import CldProvisioning
from .._rotation import RotationResult
from ..models import check_id
from .ages import age_flag
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG, UsageError, connect
from .output import environments, error_json, key_json, one_line, print_json, table
from .progress import RunProgress, duration, ticking
from .select import choose, named_ids, whole_account

# -- reporting ---------------------------------------------------------------------------------


def result_json(r: RotationResult, show: bool) -> dict[str, Any]:
    """One environment's outcome; the new key's secret is in ``new_api_secret``."""
    doc: dict[str, Any] = {
        "sub_account_id": r.sub_account_id,
        "status": r.status,
        "ok": r.ok,
        "new_key": None if r.new_key is None else key_json(r.new_key, show),
        "new_api_secret": None if r.new_key is None else r.new_key.api_secret,
        "retired": [key_json(k, show) for k in r.retired],
        "reason": r.skipped if r.error is None else one_line(r.error),
        "error": error_json(r.error),
    }
    if r.plan is not None:
        doc["plan"] = {
            "new_key_name": r.plan.new_key_name,
            "creates_key": r.plan.creates_key,
            "retire": [key_json(k, False) for k in r.plan.retire],
            "dedication_moves": r.plan.dedication_moves,
            "requests": r.plan.requests,
        }
    return doc


def plan_totals(
    results: Sequence[RotationResult], budget: BudgetTracker, client: CldProvisioning
) -> dict[str, Any]:
    """Environments, requests a run needs, the announced budget, and the estimated duration."""
    budget.observe(client.rate_limit)
    planned = [r.plan for r in results if r.plan is not None]
    requests = sum(p.requests for p in planned)
    snap = budget.snapshot
    seconds = budget.seconds_for(requests)
    return {
        "environments": len(results),
        "planned": len(planned),
        "skipped": sum(r.status == "skipped" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "requests_needed": requests,
        "budget": None
        if snap is None
        else {
            "limit": snap.limit,
            "remaining": snap.remaining,
            "reset_at": None if snap.reset_at is None else snap.reset_at.isoformat(),
        },
        "window_seconds": budget.window,
        "window_known": budget.window_known,
        "estimated_seconds": 0.0 if seconds is None else seconds,
    }


def _totals_text(totals: dict[str, Any]) -> str:
    b = totals["budget"]
    announced = (
        "none announced"
        if b is None
        else f"{b['remaining']} of {b['limit']} left in this window (resets {b['reset_at']})"
    )
    window = duration(totals["window_seconds"]) + ("" if totals["window_known"] else ", assumed")
    return "\n".join(
        [
            f"environments      {totals['environments']} ({totals['planned']} to rotate,"
            f" {totals['skipped']} skipped, {totals['failed']} failed)",
            f"requests needed   {totals['requests_needed']}",
            f"budget            {announced}; window {window}",
            f"estimated time    {duration(totals['estimated_seconds'])} waiting for windows",
        ]
    )


class Report:
    """Where results go: a JSON line each (``--jsonl``, nothing kept), or kept for the end."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.kept: list[RotationResult] = []
        self.failed: list[str] = []
        self.counts = {"rotated": 0, "skipped": 0, "failed": 0, "planned": 0}

    def add(self, r: RotationResult) -> None:
        self.counts[r.status] += 1
        if r.error is not None:
            self.failed.append(r.sub_account_id)
        if self.args.jsonl:
            sys.stdout.write(json.dumps(result_json(r, self.args.show_secrets)) + "\n")
            sys.stdout.flush()
            if r.plan is None:
                return
        self.kept.append(r)

    def finish(self, name: str, ids: Sequence[str], totals: dict[str, Any] | None) -> None:
        """Results in the order the environments were chosen; the summary on stderr."""
        args = self.args
        total = len(ids)
        position = {sub: n for n, sub in enumerate(ids)}
        self.kept.sort(key=lambda r: position.get(r.sub_account_id, total))
        if args.json:
            doc = {
                "name": name,
                "retire": args.retire,
                "total": total,
                **self.counts,
                "results": [result_json(r, args.show_secrets) for r in self.kept],
            }
            if totals is not None:
                doc["totals"] = totals
            print_json(doc)
        elif not args.jsonl:
            self._table()
            if totals is not None:
                print()
                print(_totals_text(totals))
        elif totals is not None:
            print(_totals_text(totals), file=sys.stderr)
        c = self.counts
        verb = "planned" if args.dry_run else "rotated"
        print(
            f"{verb} {c['planned'] if args.dry_run else c['rotated']} of {environments(total)},"
            f" skipped {c['skipped']}, failed {c['failed']}"
            f" (new key name {name!r}, old keys: {args.retire})",
            file=sys.stderr,
        )
        if c["rotated"] and not (args.json or args.jsonl):
            print(
                "new secrets are not printed here: run with --jsonl or --json, or see them"
                f" with `{PROG} --show-secrets keys list SUB`",
                file=sys.stderr,
            )

    def _table(self) -> None:
        if self.args.dry_run:
            rows = [
                [
                    r.sub_account_id,
                    r.status,
                    r.plan.new_key_name if r.plan else "-",
                    str(len(r.plan.retire)) if r.plan else "-",
                    ("moves" if r.plan.dedication_moves else "-") if r.plan else "-",
                    str(r.plan.requests) if r.plan else r.skipped or "-",
                ]
                for r in self.kept
            ]
            headers = ["SUB_ACCOUNT", "STATUS", "NEW_KEY", "RETIRES", "WEBHOOKS", "REQUESTS"]
            print(table(headers, rows))
            return
        retired = {"disable": "disabled", "delete": "deleted", "keep": "kept"}[self.args.retire]
        rows = [
            [
                r.sub_account_id,
                r.status,
                r.new_key.api_key if r.new_key is not None else "-",
                f"{len(r.retired)} {retired}",
                r.skipped or "",
            ]
            for r in self.kept
        ]
        print(table(["SUB_ACCOUNT", "STATUS", "NEW_API_KEY", "OLD_KEYS", "REASON"], rows))


def _resume_hint(args: argparse.Namespace, name: str, unfinished: list[str]) -> str:
    if args.all or (whole_account(args) and len(unfinished) > 20):
        chosen = ["--all"]
    elif len(unfinished) <= 20:
        chosen = unfinished
    else:
        chosen = [*args.subs, *(["--from-file", args.from_file] if args.from_file else [])]
    options = [*chosen, "--name", name, "--retire", args.retire]
    if args.enabled_only:
        options.append("--enabled-only")
    if args.prefix:
        options += ["--prefix", args.prefix]
    if args.older_than is not None:
        options += ["--older-than", age_flag(args.older_than)]
    return f"{PROG} rotate {shlex.join(options)}"


# -- the command -------------------------------------------------------------------------------


async def rotate(args: argparse.Namespace) -> int:
    named = named_ids(args, "rotate")
    name = args.name if args.name is not None else _rotation.run_name()
    check_id(name, "--name")
    if args.json and args.jsonl:
        raise UsageError("rotate: choose --json or --jsonl, not both")
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    report = Report(args)
    finished: set[str] = set()
    ids: list[str] = []
    try:
        async with connect(args) as client:
            # With --older-than the listing's key ids let the key cache skip unchanged ones.
            ids, envs = await choose(client, args, named, listed=args.older_than is not None)
            verb = "planning" if args.dry_run else "rotating"
            print(f"{verb} {environments(len(ids))}...", file=sys.stderr)
            progress = RunProgress(len(ids), sys.stderr, client, concurrency=args.concurrency)
            async with ticking(progress):
                stream = client.access_keys.rotate_iter(
                    ids,
                    concurrency=args.concurrency,
                    name=name,
                    retire=args.retire,
                    max_age=args.older_than,
                    dry_run=args.dry_run,
                    listing=envs,
                    refresh=args.refresh,
                )
                async for result in stream:
                    finished.add(result.sub_account_id)
                    report.add(result)
                    progress.update(result)
            totals = plan_totals(report.kept, progress.budget, client) if args.dry_run else None
    except asyncio.CancelledError:
        # Interrupted: the keys created so far exist; their secrets must not be lost.
        report.finish(name, ids, None)
        unfinished = [sub for sub in ids if sub not in finished]
        print(
            f"interrupted: {len(finished)} of {environments(len(ids))} finished; to resume:"
            f"\n  {_resume_hint(args, name, unfinished)}",
            file=sys.stderr,
        )
        if not terminated:
            raise
        return EXIT_INTERRUPTED
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGTERM)
    report.finish(name, ids, totals)
    if report.failed:
        again = _resume_hint(args, name, report.failed if not args.all else [])
        print(f"to resume the failed ones: {again}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
