"""The ``audit`` command: every chosen environment's keys and lifecycle state, judged with
rotate's policy flags, as a table with a summary (default), one JSON document (``--json``),
a JSON line per environment as it is ready (``--jsonl``) or CSV (``--csv``).

It only reads (GETs), takes no lock and prints no secret, whatever ``--show-secrets`` says.
``--max-age AGE`` turns it into a monitor: exit 1 when any environment's newest enabled key
is older than AGE, it has no enabled key, or a hand-off has been pending for over a day.

May import: ``common``, ``output``, ``ages`` and ``select`` (below it in the CLI), the
standard library and the rest of cldprov_async.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timedelta
from typing import Any, TextIO

from .._audit import AuditReport, AuditRow
from .._lifecycle import age_text
from .ages import age_flag
from .common import EXIT_FAILED, EXIT_OK, connect
from .output import environments, iso, iso_due, table
from .select import named_ids

#: Characters of the longest bar in the age histogram; attention lines printed at most.
BAR = 30
SHOWN = 20


def _iso(when: datetime | None) -> str | None:
    return None if when is None else iso(when)


def _seconds(age: timedelta | None) -> int | None:
    return None if age is None else int(age.total_seconds())


def row_json(r: AuditRow) -> dict[str, Any]:
    """One environment; ages as seconds and as text, dates in UTC. Never a secret."""
    return {
        "sub_account_id": r.sub_account_id,
        "cloud_name": r.cloud_name,
        "name": r.name,
        "environment_enabled": r.environment_enabled,
        "keys": r.keys,
        "enabled_keys": r.enabled_keys,
        "newest_enabled_created_at": _iso(r.newest_enabled_created_at),
        "newest_enabled_age_seconds": _seconds(r.newest_enabled_age),
        "newest_enabled_age": None
        if r.newest_enabled_age is None
        else age_text(r.newest_enabled_age),
        "oldest_enabled_created_at": _iso(r.oldest_enabled_created_at),
        "oldest_enabled_age_seconds": _seconds(r.oldest_enabled_age),
        "oldest_enabled_age": None
        if r.oldest_enabled_age is None
        else age_text(r.oldest_enabled_age),
        "webhooks_key": r.webhooks_key,
        "state": r.state,
        "in_grace_until": _iso(r.in_grace_until),
        "pending_since": _iso(r.pending_since),
        "next": r.next,
        "next_at": None if r.next_at is None else iso_due(r.next_at),
        "from_cache": r.from_cache,
        "error": r.error,
    }


def _age_cell(age: timedelta | None) -> str:
    return "-" if age is None else age_text(age)


def _table(report: AuditReport) -> str:
    headers = ["SUB_ACCOUNT", "CLOUD_NAME", "NAME", "KEYS", "ENABLED", "NEWEST", "OLDEST"]
    rows = [
        [
            r.sub_account_id,
            r.cloud_name or "-",
            r.name or "-",
            str(r.keys),
            str(r.enabled_keys),
            _age_cell(r.newest_enabled_age),
            _age_cell(r.oldest_enabled_age),
            r.webhooks_key or "-",
            r.state_text if r.error is None else f"error: {r.error}",
        ]
        for r in report.rows
    ]
    return table([*headers, "WEBHOOKS", "STATE"], rows)


def summary_text(report: AuditReport) -> str:
    """Counts per state, where the keys came from, and the histogram of newest key ages."""
    s = report.summary
    requests = s.listings + s.key_listings
    counts = ", ".join(f"{n} {state}" for state, n in s.states.items() if n)
    lines = [
        f"{environments(s.environments)}: {counts or 'none'}; {s.failed} failed",
        f"keys from the key cache for {s.from_cache}, listed for {s.key_listings}"
        f" ({requests} request{'' if requests == 1 else 's'})",
        "newest enabled key age:",
    ]
    top = max((n for _, n in s.newest_ages), default=0)
    width = max(len(label) for label, _ in s.newest_ages)
    for label, n in s.newest_ages:
        bar = "#" * (max(1, round(BAR * n / top)) if n else 0)
        lines.append(f"  {label.ljust(width)}  {bar.ljust(BAR)}  {n}")
    return "\n".join(lines)


def _policy_json(report: AuditReport) -> dict[str, Any]:
    p = report.policy
    return {
        "older_than": None if p.older_than is None else age_flag(p.older_than),
        "grace": age_flag(p.grace),
        "prune_after": None if p.prune_after is None else age_flag(p.prune_after),
    }


def _print_document(doc: dict[str, Any]) -> None:
    """The document indented, but each environment on one line (last): thousands of them
    stay readable, and are written by the JSON module's fast encoder."""
    rest = {k: v for k, v in doc.items() if k != "environments"}
    head = json.dumps(rest, indent=2).removesuffix("\n}")
    rows = ",\n".join(f"    {json.dumps(row)}" for row in doc["environments"])
    body = f"[\n{rows}\n  ]" if rows else "[]"
    sys.stdout.write(f'{head},\n  "environments": {body}\n}}\n')


def _write_csv(report: AuditReport, out: TextIO) -> None:
    docs = [row_json(r) for r in report.rows]
    writer = csv.DictWriter(out, fieldnames=list(row_json(AuditRow("")).keys()))
    writer.writeheader()
    for doc in docs:
        writer.writerow({k: _cell(v) for k, v in doc.items()})


def _cell(value: object) -> object:
    """CSV cells as the JSON says them: empty for null, true/false for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _attention(report: AuditReport, max_age: timedelta) -> list[str]:
    """Why the monitor fails, one line per environment (at most ``SHOWN``), on stderr."""
    found = report.needs_attention(max_age)
    if not found:
        return []
    lines = [f"max-age {age_flag(max_age)}: {environments(len(found))} need attention"]
    lines += [f"  {row.sub_account_id}: {why}" for row, why in found[:SHOWN]]
    if len(found) > SHOWN:
        lines.append(f"  ... and {len(found) - SHOWN} more")
    return lines


def summary_json(report: AuditReport) -> dict[str, Any]:
    """The summary as JSON: counts per state, the histogram as label -> rows."""
    s = report.summary
    return {
        "environments": s.environments,
        "states": s.states,
        "failed": s.failed,
        "newest_enabled_ages": dict(s.newest_ages),
        "from_cache": s.from_cache,
        "key_listings": s.key_listings,
        "listings": s.listings,
    }


async def audit(args: argparse.Namespace) -> int:
    named = named_ids(args, "audit", required=False)

    def stream(row: AuditRow) -> None:
        sys.stdout.write(json.dumps(row_json(row)) + "\n")
        sys.stdout.flush()

    async with connect(args) as client:
        report = await client.access_keys.audit(
            named or None,
            prefix=args.prefix or None,
            enabled_only=args.enabled_only,
            older_than=args.older_than,
            grace=args.grace,
            prune_after=args.prune_after,
            refresh=args.refresh,
            concurrency=args.concurrency,
            on_row=stream if args.jsonl else None,
        )
        server = str(client.server_url)
    attention = [] if args.max_age is None else _attention(report, args.max_age)
    if args.json:
        doc: dict[str, Any] = {
            "account_id": client.account_id,
            "server_url": server,
            "now": _iso(report.now),
            "policy": _policy_json(report),
            "summary": summary_json(report),
            "environments": [row_json(r) for r in report.rows],
        }
        if args.max_age is not None:
            doc["max_age"] = {
                "age": age_flag(args.max_age),
                "attention": [
                    {"sub_account_id": r.sub_account_id, "why": why}
                    for r, why in report.needs_attention(args.max_age)
                ],
            }
        _print_document(doc)
    elif args.csv:
        _write_csv(report, sys.stdout)
    elif not args.jsonl:
        print(_table(report))
        print()
        print(summary_text(report))
    if args.json or args.jsonl or args.csv:
        print(summary_text(report), file=sys.stderr)
    for line in attention:
        print(line, file=sys.stderr)
    return EXIT_FAILED if attention or report.summary.failed else EXIT_OK
