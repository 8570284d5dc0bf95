"""``cldprov-async rotate`` at account scale, as an operator runs it (a real process):
choosing environments (--all, --enabled-only, --prefix), --dry-run, --older-than, --jsonl,
SIGTERM with a resume hint, and SIGKILL at a random point then the same command again.
Assertions read the fake server's journal and state, not only the printed output."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import forked
import pytest
from cli_here import run_here

from cldprov_async.testing import FakeProvisioningServer, RateLimitPolicy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT_URL = "account://fake-key:fake-secret@fake-account"
LISTING = "/v1_1/provisioning/accounts/fake-account/sub_accounts"
DAY = 86400.0
#: id -> (name, enabled)
ENVS = {
    "e1": ("Prod EU", True),
    "e2": ("production-us", True),
    "e3": ("Staging", True),
    "e4": ("prod old", False),
}


def command(server: FakeProvisioningServer, *args: str) -> list[str]:
    return [sys.executable, "-m", "cldprov_async", "--server-url", server.url, "rotate", *args]


def environ() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "CLOUDINARY_ACCOUNT_URL": ACCOUNT_URL}


def run(
    server: FakeProvisioningServer, *args: str, here: bool = False
) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own; ``here``: its ``main()`` in this one (for what is
    refused before anything starts)."""
    if here:
        result = run_here(command(server, *args)[3:], environ())
    else:
        result = forked.run(
            command(server, *args),
            env=environ(),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    assert "Traceback" not in result.stderr
    assert "fake-secret" not in result.stdout + result.stderr
    return result


@pytest.fixture
def server() -> Iterator[FakeProvisioningServer]:
    fake = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=2)
    for sub, (name, enabled) in ENVS.items():
        fake.add_sub_account(sub, name=name, cloud_name=sub, enabled=enabled)
    with fake.run_in_thread():
        yield fake


def key_routes(server: FakeProvisioningServer) -> list[tuple[str, str]]:
    """(method, sub-account) of every access-key request received."""
    return [
        (e.method, e.path.split("/")[6])
        for e in server.journal
        if e.route != "list_product_environments"
    ]


def test_dry_run_all_enabled_with_a_prefix_sends_only_gets(server: FakeProvisioningServer) -> None:
    before = {sub: server.keys(sub) for sub in ENVS}
    result = run(server, "--all", "--enabled-only", "--prefix", "PROD", "--dry-run", "--name", "n")
    assert result.returncode == 0, result.stderr
    assert {e.method for e in server.journal} == {"GET"}
    first = server.journal[0]
    assert (first.path, first.query_pairs) == (LISTING, (("enabled", "true"), ("prefix", "PROD")))
    assert sorted(key_routes(server)) == [("GET", "e1"), ("GET", "e2")]
    assert {sub: server.keys(sub) for sub in ENVS} == before
    out = result.stdout
    assert "requests needed   8" in out  # list + generate + two retirements, twice
    assert "budget            none announced" in out
    rows = [line.split() for line in out.splitlines() if line[:2] in ("e1", "e2")]
    assert rows == [["e1", "planned", "n", "2", "-", "4"], ["e2", "planned", "n", "2", "-", "4"]]


def test_dry_run_json_totals_carry_the_announced_budget(server: FakeProvisioningServer) -> None:
    server.rate_limit = RateLimitPolicy(limit=1000, window=3600)
    result = run(server, "--all", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    totals = doc["totals"]
    assert totals["environments"] == 4 and totals["requests_needed"] == 16
    assert totals["budget"]["limit"] == 1000
    assert totals["budget"]["remaining"] == 1000 - 5  # the listing and four key listings
    assert totals["estimated_seconds"] == 0.0  # it fits the window
    assert [r["status"] for r in doc["results"]] == ["planned"] * 4
    assert doc["results"][0]["plan"]["retire"][0]["api_secret"] == "********"


def test_explicit_ids_are_narrowed_by_the_filters_too(server: FakeProvisioningServer) -> None:
    result = run(server, "e3", "e4", "e1", "--enabled-only", "--name", "x")
    assert result.returncode == 0, result.stderr
    (listing,) = [e for e in server.journal if e.route == "list_product_environments"]
    assert listing.query_pairs == (("ids[]", "e3"), ("ids[]", "e4"), ("ids[]", "e1"))
    assert {sub for _, sub in key_routes(server)} == {"e1", "e3"}
    assert [k.enabled for k in server.keys("e4")] == [True, True]  # not chosen: untouched


def test_jsonl_streams_one_object_per_environment_with_the_new_secret(
    server: FakeProvisioningServer,
) -> None:
    result = run(server, "--all", "--jsonl", "--name", "j")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(doc["sub_account_id"] for doc in lines) == sorted(ENVS)
    for doc in lines:
        held = {k.name: k for k in server.keys(doc["sub_account_id"])}
        assert doc["status"] == "rotated" and doc["error"] is None and doc["reason"] is None
        assert doc["new_api_secret"] == held["j"].api_secret
        assert {k["name"] for k in doc["retired"]} == {"key-1", "key-2"}
        assert all(k["api_secret"] == "********" for k in doc["retired"])
        assert [k.name for k in held.values() if k.enabled] == ["j"]
        assert held["key-1"].api_secret not in result.stdout  # old secrets stay masked


def test_jsonl_lines_arrive_while_the_run_goes_on(server: FakeProvisioningServer) -> None:
    """Under a tight limit the run lasts a few windows; the first line is out long before."""
    server.rate_limit = RateLimitPolicy(limit=4, window=1.0)
    started = time.monotonic()
    proc = forked.Popen(
        command(server, "--all", "--jsonl", "--concurrency", "1"),
        env=environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    first_at = time.monotonic() - started
    rest, _ = proc.communicate(timeout=120)
    total = time.monotonic() - started
    assert proc.returncode == 0
    assert first["status"] == "rotated" and len(rest.splitlines()) == 3
    assert first_at < total - 1.0  # streamed: not held back until the end


def test_older_than_skips_fresh_keys_and_rejects_a_bad_age(
    server: FakeProvisioningServer,
) -> None:
    server.add_key("e1", name="ancient", created_at=time.time() - 400 * DAY)  # not the newest
    first = run(server, "--all", "--older-than", "1h", "--jsonl")
    assert first.returncode == 0, first.stderr
    docs = [json.loads(line) for line in first.stdout.splitlines()]
    assert {d["status"] for d in docs} == {"skipped"}  # every newest key was made just now
    assert len(docs) == 4 and server.keys_created == 0
    assert {e.method for e in server.journal} == {"GET"}
    server.clear_journal()
    result = run(server, "--all", "--older-than", "bad", here=True)
    assert result.returncode == 2 and "--older-than" in result.stderr
    assert server.journal == []


def test_older_than_rotates_old_environments_once(tmp_path: Path) -> None:
    now = time.time()
    server = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=0)
    for n in range(4):
        server.add_sub_account(f"s{n}")
        server.add_key(f"s{n}", created_at=now - (30 if n % 2 else 120) * DAY)
    with server.run_in_thread():
        first = run(server, "--all", "--older-than", "90d", "--jsonl")
        assert first.returncode == 0, first.stderr
        docs = {d["sub_account_id"]: d for d in map(json.loads, first.stdout.splitlines())}
        assert {s: d["status"] for s, d in docs.items()} == {
            "s0": "rotated",
            "s1": "skipped",
            "s2": "rotated",
            "s3": "skipped",
        }
        assert "not older than 90d" in docs["s1"]["reason"]
        created = server.keys_created
        server.clear_journal()
        second = run(server, "--all", "--older-than", "90d")
        assert second.returncode == 0, second.stderr
        assert server.keys_created == created == 2
        assert {e.method for e in server.journal} == {"GET"}
        assert "rotated 0 of 4 product environments, skipped 4" in second.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--all", "e1"],
        ["--json", "--jsonl", "--all"],
        ["--all", "--older-than", "0d"],
        ["--all", "--older-than", "3w"],
    ],
)
def test_usage_errors_exit_2_before_sending(
    server: FakeProvisioningServer, args: list[str]
) -> None:
    result = run(server, *args, here=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("cldprov-async")
    assert "error:" in result.stderr.strip().splitlines()[-1]
    assert server.journal == []


def many_environments(n: int, limit: int) -> FakeProvisioningServer:
    server = FakeProvisioningServer(
        sub_accounts=[f"env-{i:03d}" for i in range(n)],
        keys_per_sub_account=2,
        rate_limit=RateLimitPolicy(limit=limit, window=1.0),
        keep_journal=False,
    )
    return server


def check_exactly_one_new_key(server: FakeProvisioningServer, n: int, name: str) -> None:
    for i in range(n):
        keys = server.keys(f"env-{i:03d}")
        assert [k.name for k in keys if k.enabled] == [name], keys
        assert sum(k.name == name for k in keys) == 1
        assert len(keys) == 3
    assert server.keys_created == n


#: Run a command with SIGINT at its default, as from a terminal: a suite started in the
#: background (nohup, `&`) passes SIGINT on ignored, and a process that inherits it ignored
#: rightly keeps ignoring it. (exec keeps the pid, so the test signals the command itself.)
AS_FROM_A_TERMINAL = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL);"
    " os.execv(sys.argv[1], sys.argv[1:])",
]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_cleanly_and_says_how_to_resume(signum: signal.Signals) -> None:
    server = many_environments(40, limit=20)
    with server.run_in_thread():
        proc = forked.Popen(
            [*AS_FROM_A_TERMINAL, *command(server, "--all", "--name", "term", "--jsonl")],
            env=environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # the run is under way
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        # What finished before the signal was written out whole (the first line was read).
        assert all(json.loads(line)["status"] == "rotated" for line in out.splitlines())
        assert "interrupted:" in err and "Traceback" not in err
        hint = err.split("to resume:")[1].split()
        assert hint[:3] == ["cldprov-async", "rotate", "--all"] and "term" in hint
        server.rate_limit = None  # the limit only kept the run going until the signal
        again = run(server, *hint[2:], "--jsonl")
        assert again.returncode == 0, again.stderr
    check_exactly_one_new_key(server, 40, "term")


def test_sigkill_at_a_random_point_then_the_same_command_finishes_exactly() -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    server = many_environments(60, limit=40)
    args = ["--all", "--name", "killed", "--jsonl", "--concurrency", "8"]
    with server.run_in_thread():
        proc = forked.Popen(
            command(server, *args),
            env=environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL, f"seed {seed}: the run ended before the kill"
        server.rate_limit = None  # the limit only kept the run going until the kill
        again = run(server, *args)
        assert again.returncode == 0, (seed, again.stderr)
        lines: list[dict[str, Any]] = [json.loads(line) for line in again.stdout.splitlines()]
        assert len(lines) == 60
    check_exactly_one_new_key(server, 60, "killed")
