"""The ``demo`` command: a bulk rotation against an in-process fake server, a summary of
what the client and server saw, and a check of the result against the server's state.

May import: ``common`` and ``output`` (below it in the CLI), the standard library, the rest
of cldprov_async (rotation) and, only inside the command (and under TYPE_CHECKING),
``cldprov_async.testing``. Not the parser or ``__init__``, which import this module.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import _rotation
from .._rotation import RotationResult
from .common import EXIT_FAILED, EXIT_OK, PROG
from .output import Progress, one_line, table

if TYPE_CHECKING:
    from ..testing import FakeProvisioningServer


async def demo(args: argparse.Namespace) -> int:
    """Rotate every environment of an in-process fake server and check the result."""
    from ..testing import FakeProvisioningServer, Faults, RateLimitPolicy  # only the demo

    count, limit, fault_rate = args.environments, 40, 0.08
    subs = [f"env-{i:02d}" for i in range(1, count + 1)]
    server = FakeProvisioningServer(
        sub_accounts=subs,
        keys_per_sub_account=1,
        rate_limit=RateLimitPolicy(limit=limit, window=1.0),
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
    print("\n".join("  " + line for line in table(["", ""], rows).splitlines()[1:]))
    for r in failed:
        print(f"  failed: {r.sub_account_id}: {one_line(r.error or Exception())}")
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
