"""The ``rotate`` command: choose product environments (``select``: ids, a file, or the whole
account with filters), take the rotation lock, then rotate, plan (``--dry-run``) or skip
them (``--older-than``, through the key cache), streaming each result (``--jsonl``) or
reporting them at the end (a table, or ``--json``; ``report``).

Classic mode retires the old keys in the same run. Lifecycle mode (``--deploy-hook``,
``--grace``, ``--prune-after``) runs ``_lifecycle_run``: a new key is verified, handed off
(the hook, or without one the ``--jsonl`` line), and the older keys retire after the grace.

Before its first write a run prints its name and the command that resumes it on stderr, so
even a run killed outright can be resumed from its log: the same command with ``--name``
gives back every touched environment's key and secret and makes no second key. SIGINT and
SIGTERM are passed to running hooks and stop the run: what finished is reported, and how to
resume. When stdout goes away (``| head``), no new environment starts, the ones in flight
finish, and the run exits 1 saying how many it touched and how to get their secrets back.

May import: ``ages``, ``select``, ``common``, ``output``, ``progress`` and ``report`` (below
it in the CLI), the standard library and the rest of cldprov_async. Not the parser or
``__init__``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from .. import _rotation
from .._bulk import lifecycle_iter
from .._bulk_args import bulk_retries
from .._client import CldProvisioning
from .._hook import ShellHook
from .._labels import check_run_name
from .._lifecycle import LifecyclePolicy
from .._lifecycle_run import LifecycleRun, delivering
from .._rotation import RotationResult
from ..errors import RotationLockedError
from ..models import ProductEnvironment, check_id
from .ages import age_flag
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_OK, PROG, UsageError, connect
from .output import SafeStream, environments
from .progress import RunProgress, ticking
from .report import Report, plan_totals
from .select import choose, named_ids

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def is_lifecycle(args: argparse.Namespace) -> bool:
    """Any of --deploy-hook, --grace (even 0), --prune-after: the lifecycle's rules."""
    return args.deploy_hook is not None or args.grace is not None or args.prune_after is not None


def resume_command(args: argparse.Namespace, name: str, ids: Sequence[str] | None = None) -> str:
    """The same ``rotate`` with ``--name``; ``ids`` narrows it to those environments."""
    if args.all:
        chosen = ["--all"]
    elif ids is not None and len(ids) <= 20:
        chosen = list(ids)
    else:
        chosen = [*args.subs, *(["--from-file", args.from_file] if args.from_file else [])]
    options = [*chosen, "--name", name, "--retire", args.retire]
    if args.enabled_only:
        options.append("--enabled-only")
    if args.prefix:
        options += ["--prefix", args.prefix]
    for flag, value in (
        ("--older-than", args.older_than),
        ("--grace", args.grace),
        ("--prune-after", args.prune_after),
    ):
        if value is not None:
            options += [flag, age_flag(value)]
    if args.verify:
        options.append("--verify")
        if args.verify_timeout != timedelta(seconds=120):
            options += ["--verify-timeout", age_flag(args.verify_timeout)]
    if args.deploy_hook is not None:
        options += ["--deploy-hook", args.deploy_hook]
        if args.hook_timeout != timedelta(seconds=60):
            options += ["--hook-timeout", age_flag(args.hook_timeout)]
    if args.concurrency != 8:
        options += ["--concurrency", str(args.concurrency)]
    options += ["--jsonl"] if args.jsonl else ["--json"] if args.json else []
    return f"{PROG} rotate {shlex.join(options)}"


def _check(args: argparse.Namespace, lifecycle: bool) -> str:
    """Usage errors that argparse cannot express, before anything is sent; the run's name."""
    name = args.name if args.name is not None else _rotation.run_name()
    check_id(name, "--name")
    if args.json and args.jsonl:
        raise UsageError("rotate: choose --json or --jsonl, not both")
    if not lifecycle:
        return name
    try:
        check_run_name(name, "--name")
    except ValueError as exc:
        raise UsageError(f"rotate: {exc}") from None
    if args.retire == "keep" and (args.grace is not None or args.prune_after is not None):
        raise UsageError(
            "rotate: --retire keep retires nothing: it takes no --grace or --prune-after"
        )
    if args.deploy_hook is None and not args.jsonl and not args.dry_run:
        raise UsageError(
            "rotate: without --deploy-hook the hand-off is the --jsonl line on stdout:"
            " add --jsonl (or --deploy-hook CMD)"
        )
    return name


async def _feed(items: Sequence[str], report: Report) -> AsyncIterator[str]:
    """The chosen environments, until stdout goes away (then no new one starts)."""
    for item in items:
        if report.closed:
            return
        yield item


# -- the command -------------------------------------------------------------------------------


async def rotate(args: argparse.Namespace) -> int:
    named = named_ids(args, "rotate")
    lifecycle = is_lifecycle(args)
    name = _check(args, lifecycle)
    err = SafeStream(sys.stderr).as_text_io()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    hooks: list[ShellHook] = []
    terminated = False

    def on_signal(signum: int) -> None:
        nonlocal terminated
        terminated = True
        for hook in hooks:
            hook.send_signal(signum)  # a hook in its own process group gets the run's signal
        if task is not None:
            task.cancel()

    with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
    report = Report(args, err, lifecycle=lifecycle)
    finished: set[str] = set()
    ids: list[str] = []
    try:
        async with connect(args) as client:
            lock = None if args.dry_run else client.rotation_lock()
            if lock is not None:
                try:
                    await lock.acquire()
                except RotationLockedError as exc:
                    print(f"{PROG}: {exc}", file=err)
                    return EXIT_LOCKED
            try:
                if args.deploy_hook is not None:
                    hooks.append(client.deploy_hook(args.deploy_hook, _seconds(args.hook_timeout)))
                # The listing gives the cloud names (the ping, the hook) and, deciding by age,
                # the key ids and flags that let the key cache spare unchanged environments.
                listed = lifecycle or args.verify or args.older_than is not None
                ids, envs = await choose(client, args, named, listed=listed)
                if lock is not None:
                    print(
                        f"{PROG}: run {name!r}; if it stops before the end, this gives back every"
                        f" new key and secret and finishes it:\n  {resume_command(args, name)}",
                        file=err,
                    )
                verb = "planning" if args.dry_run else "rotating"
                print(f"{verb} {environments(len(ids))}...", file=err)
                progress = RunProgress(len(ids), err, client, concurrency=args.concurrency)
                async with ticking(progress):
                    items = _feed(ids, report)
                    stream = _stream(client, args, name, items, envs, report, hooks)
                    async for result in stream:
                        finished.add(result.sub_account_id)
                        report.add(result)
                        progress.update(result)
                totals = None
                if args.dry_run:
                    totals = plan_totals(report.kept, progress.budget, client)
            finally:
                if lock is not None:
                    await lock.release()
    except asyncio.CancelledError:
        # Interrupted: the keys created so far exist; their secrets must not be lost.
        report.finish(name, ids, None)
        unfinished = [sub for sub in ids if sub not in finished]
        print(
            f"interrupted: {len(finished)} of {environments(len(ids))} finished; to resume:"
            f"\n  {resume_command(args, name, unfinished)}",
            file=err,
        )
        if not terminated:
            raise
        return EXIT_INTERRUPTED
    finally:
        with contextlib.suppress(NotImplementedError):
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)
    report.finish(name, ids, totals)
    if report.closed:
        print(
            f"{PROG}: stdout was closed, so no new environment was started and those in"
            f" flight were finished; {environments(len(report.touched))} touched by this run."
            " Their new keys and secrets are not lost: this prints them (making no second"
            f" key) and finishes the run:\n  {resume_command(args, name)}",
            file=err,
        )
        return EXIT_FAILED
    if report.failed:
        again = resume_command(args, name, report.failed if not args.all else None)
        print(f"to resume the failed ones: {again}", file=err)
        return EXIT_FAILED
    return EXIT_OK


def _seconds(age: timedelta) -> float:
    return age.total_seconds()


def _stream(
    client: CldProvisioning,
    args: argparse.Namespace,
    name: str,
    items: AsyncIterator[str],
    listing: Sequence[ProductEnvironment],
    report: Report,
    hooks: list[ShellHook],
) -> AsyncIterator[RotationResult]:
    verify = client.ping_verifier(_seconds(args.verify_timeout)) if args.verify else None
    if not is_lifecycle(args):
        return client.access_keys.rotate_iter(
            items,
            concurrency=args.concurrency,
            name=name,
            retire=args.retire,
            verify=verify,
            max_age=args.older_than,
            dry_run=args.dry_run,
            listing=listing,
            refresh=args.refresh,
        )
    policy = LifecyclePolicy(
        args.older_than, args.grace or timedelta(0), args.prune_after, args.retire
    )
    run = LifecycleRun(
        name,
        policy,
        delivering(hooks[0]) if hooks else report.hand_off,
        verify,
        bulk_retries(client.access_keys),
        client.clock,
        hand_off_last=not hooks,
    )
    return lifecycle_iter(
        client.access_keys,
        items,
        run,
        concurrency=args.concurrency,
        dry_run=args.dry_run,
        listing=listing,
        refresh=args.refresh,
    )
