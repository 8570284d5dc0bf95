"""Where a rotation's results go: one JSON line per environment as it finishes (``--jsonl``),
one JSON document (``--json``) or a table at the end, and the summary on stderr.

Without a deploy hook, a lifecycle run's hand-off *is* the environment's ``--jsonl`` line:
``Report.hand_off`` writes and flushes it before the hand-off is recorded on the server, so a
line that could not be written (stdout closed) leaves the key pending for the next run.
When stdout goes away (a closed pipe, EPIPE), ``closed`` turns true, nothing more is written
there, and the run is told to start no new environment.

May import: ``common`` and ``output`` (beside it at the bottom of the CLI), the standard
library and the rest of cldprov_async (budget, client, rotation's result, lifecycle names).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .._budget import BudgetTracker
from .._client import CldProvisioning
from .._lifecycle import STATUSES
from .._rotation import RotationResult
from ..errors import HandOffError
from ..models import AccessKey, ProductEnvironment
from .common import PROG
from .output import (
    environments,
    error_json,
    iso,
    iso_due,
    key_json,
    one_line,
    print_json,
    reader_gone,
    silence,
    table,
)
from .progress import duration


def result_json(r: RotationResult, show: bool, lifecycle: bool = False) -> dict[str, Any]:
    """One environment's outcome; the new key's secret is in ``new_api_secret`` only."""
    doc: dict[str, Any] = {
        "sub_account_id": r.sub_account_id,
        "status": r.status,
        "ok": r.ok,
        "steps": list(r.steps),
        "new_key": None if r.new_key is None else key_json(r.new_key, show),
        "new_api_secret": None if r.new_key is None else r.new_key.api_secret,
        "retired": [key_json(k, show) for k in r.retired],
        "reason": r.skipped if r.error is None else one_line(r.error),
        "error": error_json(r.error),
    }
    if lifecycle:
        doc["deleted"] = [key_json(k, show) for k in r.deleted]
        doc["in_grace_until"] = None if r.in_grace_until is None else iso(r.in_grace_until)
    if r.plan is not None:
        doc["plan"] = {
            "new_key_name": r.plan.new_key_name,
            "creates_key": r.plan.creates_key,
            "retire": [key_json(k, False) for k in r.plan.retire],
            "dedication_moves": r.plan.dedication_moves,
            "requests": r.plan.requests,
        }
        if lifecycle:
            doc["next"] = r.next
            doc["next_at"] = None if r.next_at is None else iso_due(r.next_at)
    return doc


def plan_totals(
    results: Sequence[RotationResult], budget: BudgetTracker, client: CldProvisioning
) -> dict[str, Any]:
    """Environments, requests a run needs, the announced budget, and the estimated duration.

    ``planned`` counts the environments a real run would change now; a lifecycle dry run
    plans every environment, and those with nothing due (``in_grace`` among them) are
    ``skipped``."""
    budget.observe(client.rate_limit)
    plans = [r.plan for r in results if r.plan is not None]
    requests = sum(p.requests for p in plans)
    snap = budget.snapshot
    seconds = budget.seconds_for(requests)
    ok = [r for r in results if r.error is None]
    return {
        "environments": len(results),
        "planned": sum(r.plan is not None and r.skipped is None for r in ok),
        "skipped": sum(r.skipped is not None for r in ok),
        "in_grace": sum(r.next == "in_grace" and r.skipped is not None for r in ok),
        "failed": len(results) - len(ok),
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
    grace = f" ({totals['in_grace']} in grace)" if totals["in_grace"] else ""
    return "\n".join(
        [
            f"environments      {totals['environments']} ({totals['planned']} to rotate,"
            f" {totals['skipped']} skipped{grace}, {totals['failed']} failed)",
            f"requests needed   {totals['requests_needed']}",
            f"budget            {announced}; window {window}",
            f"estimated time    {duration(totals['estimated_seconds'])} waiting for windows",
        ]
    )


class Report:
    """Results as they come: a JSON line each (``--jsonl``, nothing kept), or kept for the end.

    ``err`` is where the summary goes (the run's stderr). ``lifecycle`` adds the lifecycle's
    fields to each line and counts its statuses.
    """

    def __init__(self, args: argparse.Namespace, err: TextIO, *, lifecycle: bool = False) -> None:
        self.args = args
        self.err = err
        self.lifecycle = lifecycle
        self.kept: list[RotationResult] = []
        self.failed: list[str] = []
        self.counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self.written: set[str] = set()  # environments whose line (their hand-off) is out
        self.touched: set[str] = set()  # environments this run changed or holds a key of
        self.closed = False  # stdout went away: nothing more is written there

    def write(self, r: RotationResult) -> bool:
        """Write ``r``'s JSON line and flush it; False once stdout is gone."""
        if self.closed:
            return False
        line = json.dumps(result_json(r, self.args.show_secrets, self.lifecycle)) + "\n"
        self._out(lambda: sys.stdout.write(line))
        return not self.closed

    async def hand_off(self, key: AccessKey, env: ProductEnvironment, r: RotationResult) -> None:
        """Without a hook, the hand-off is the environment's line, written and flushed."""
        if not self.write(r):
            raise HandOffError("stdout is closed: the new key was not handed off")
        self.written.add(r.sub_account_id)

    def add(self, r: RotationResult) -> None:
        self.counts[r.status] += 1
        if r.new_key is not None or r.steps:
            self.touched.add(r.sub_account_id)
        if r.error is not None:
            self.failed.append(r.sub_account_id)
        if r.sub_account_id in self.written:
            if r.error is not None:  # its line went out as the hand-off; recording it failed
                print(
                    f"{PROG}: {r.sub_account_id}: handed off on stdout, but recording the"
                    f" hand-off failed ({one_line(r.error)}); the next run hands it off again",
                    file=self.err,
                )
            return
        if self.args.jsonl:
            self.write(r)
            if r.plan is None:
                return
        self.kept.append(r)

    def finish(self, name: str, ids: Sequence[str], totals: dict[str, Any] | None) -> None:
        """Results in the order the environments were chosen; the summary on stderr."""
        args = self.args
        total = len(ids)
        position = {sub: n for n, sub in enumerate(ids)}
        self.kept.sort(key=lambda r: position.get(r.sub_account_id, total))
        if self.closed:
            pass
        elif args.json:
            doc: dict[str, Any] = {
                "name": name,
                "retire": args.retire,
                "total": total,
                **self.counts,
                "results": [result_json(r, args.show_secrets, self.lifecycle) for r in self.kept],
            }
            if totals is not None:
                doc["totals"] = totals
            self._out(lambda: print_json(doc))
        elif not args.jsonl:
            self._out(self._table)
            if totals is not None:
                self._out(lambda: print("\n" + _totals_text(totals)))
        elif totals is not None:
            print(_totals_text(totals), file=self.err)
        print(self._summary(name, total), file=self.err)
        if self.counts["rotated"] + self.counts["handed_off"] and not (args.json or args.jsonl):
            print(
                "new secrets are not printed here: run with --jsonl or --json, or see them"
                f" with `{PROG} --show-secrets keys list SUB`",
                file=self.err,
            )

    def _out(self, write: Callable[[], object]) -> None:
        """Write to stdout and flush; a reader that went away closes it for the run."""
        try:
            write()
            sys.stdout.flush()
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError) and not reader_gone(exc):
                raise
            self.closed = True
            silence(sys.stdout)

    def _summary(self, name: str, total: int) -> str:
        c, args = self.counts, self.args
        if not self.lifecycle:
            verb = "planned" if args.dry_run else "rotated"
            return (
                f"{verb} {c['planned'] if args.dry_run else c['rotated']} of"
                f" {environments(total)}, skipped {c['skipped']}, failed {c['failed']}"
                f" (new key name {name!r}, old keys: {args.retire})"
            )
        counted = ", ".join(f"{status} {n}" for status, n in c.items() if n)
        return f"{environments(total)}: {counted or 'none'} (run {name!r})"

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
                    *([_next_text(r)] if self.lifecycle else []),
                ]
                for r in self.kept
            ]
            headers = ["SUB_ACCOUNT", "STATUS", "NEW_KEY", "RETIRES", "WEBHOOKS", "REQUESTS"]
            print(table(headers + (["NEXT"] if self.lifecycle else []), rows))
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


def _next_text(r: RotationResult) -> str:
    if r.next is None:
        return "-"
    return r.next if r.next_at is None else f"{r.next} at {iso_due(r.next_at)}"
