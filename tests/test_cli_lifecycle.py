"""``cldprov-async rotate`` in lifecycle mode, as cron runs it: the deploy hook, the ``--jsonl``
line as the hand-off, grace on a moved clock, the dry run's ``next``, the lock's exit 3 and
signals passed to hooks (those two in real processes), usage errors. Assertions read the fake
server's state."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import forked
import pytest
from cli_here import run_here

from cldprov_async import RotationLock
from cldprov_async.testing import FakeProvisioningServer, ManualClock

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT_URL = "account://fake-key:fake-secret@fake-account"
T0 = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
def fake() -> Iterator[FakeProvisioningServer]:
    server = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=0, clock=ManualClock(T0))
    for sub in ("e1", "e2"):
        server.add_sub_account(sub, cloud_name=f"{sub}-cloud")
        server.add_key(sub, name="prod", created_at=T0 - 100 * DAY)
    with server.run_in_thread():
        yield server


def environ(tmp_path: Path, now: float = T0) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CLOUDINARY_ACCOUNT_URL": ACCOUNT_URL,
        "CLDPROV_LOCK_DIR": str(tmp_path / "locks"),
        "CLDPROV_TEST_NOW": str(now),
        "SOMETHING_SECRET": "fake-secret",  # the provisioning secret: never a hook's
    }


def command(fake: FakeProvisioningServer, *args: str) -> list[str]:
    return [sys.executable, "-m", "cldprov_async", "--server-url", fake.url, "rotate", *args]


def run(
    fake: FakeProvisioningServer, tmp_path: Path, *args: str, now: float = T0
) -> subprocess.CompletedProcess[str]:
    result = forked.run(
        command(fake, *args),
        env=environ(tmp_path, now),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr
    assert "fake-secret" not in result.stdout + result.stderr
    return result


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def here(fake: FakeProvisioningServer, tmp_path: Path) -> Run:
    """``rotate`` run in this process (``main()``), for what needs no process of its own."""

    def rotate_here(*args: str, now: float = T0) -> subprocess.CompletedProcess[str]:
        result = run_here(["--server-url", fake.url, "rotate", *args], environ(tmp_path, now))
        assert "Traceback" not in result.stderr
        assert "fake-secret" not in result.stdout + result.stderr
        return result

    return rotate_here


def lines(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    return {doc["sub_account_id"]: doc for doc in docs}


def state(fake: FakeProvisioningServer, sub: str) -> list[tuple[str, bool]]:
    return [(k.name, k.enabled) for k in fake.keys(sub)]


def test_a_deploy_hook_hands_off_then_the_old_keys_retire(
    fake: FakeProvisioningServer, tmp_path: Path, here: Run
) -> None:
    to = f"{tmp_path}/$CLDPROV_SUB_ACCOUNT_ID"
    hook = f"cat > {to}.json; env > {to}.env; echo noise"
    args = ["--all", "--verify", "--deploy-hook", hook, "--grace", "0", "--jsonl", "--name", "n1"]
    result = here(*args)
    assert result.returncode == 0, result.stderr
    assert "noise" not in result.stdout  # the hook's output never reaches ours
    docs = lines(result)
    for sub in ("e1", "e2"):
        doc = docs[sub]
        assert doc["status"] == "rotated"
        assert doc["steps"] == ["generated", "verified", "handed_off", "retired"]
        assert state(fake, sub) == [("prod@retired", False), ("n1@current", True)]
        got = json.loads((tmp_path / f"{sub}.json").read_text())
        current = fake.keys(sub)[1]
        assert (got["api_key"], got["api_secret"]) == (current.api_key, current.api_secret)
        assert doc["new_api_secret"] == current.api_secret and got["name"] == "n1@pending"
        env = (tmp_path / f"{sub}.env").read_text()
        assert "fake-secret" not in env and "CLOUDINARY_ACCOUNT_URL" not in env
        assert f"CLDPROV_CLOUD_NAME={sub}-cloud" in env
    assert "rotated 2" in result.stderr and "run 'n1'" in result.stderr


def test_without_a_hook_the_line_is_the_hand_off_and_a_later_run_retires(
    fake: FakeProvisioningServer, here: Run
) -> None:
    args = ["e1", "--grace", "7d", "--prune-after", "30d", "--older-than", "30d", "--jsonl"]
    first = here(*args)
    assert first.returncode == 0, first.stderr
    doc = lines(first)["e1"]
    assert (doc["status"], doc["steps"]) == ("handed_off", ["generated", "handed_off"])
    new = next(k for k in fake.keys("e1") if k.name.endswith("@current"))
    assert doc["new_api_secret"] == new.api_secret
    assert doc["in_grace_until"] == "2027-01-22T08:00:00Z"  # T0 + 7 days
    # Eight days on (the server's clock and the CLI's): the old key retires.
    clock = fake.clock
    assert isinstance(clock, ManualClock)
    clock.advance(8 * DAY)
    plan = here("e1", "--grace", "7d", "--dry-run", "--jsonl", now=T0 + 8 * DAY)
    assert (lines(plan)["e1"]["status"], lines(plan)["e1"]["next"]) == ("planned", "retire")
    second = here(*args, now=T0 + 8 * DAY)
    doc = lines(second)["e1"]
    assert (doc["status"], doc["steps"], doc["new_key"]) == ("retired", ["retired"], None)
    assert state(fake, "e1") == [("prod@retired", False), (new.name, True)]
    args = ["e1", "--prune-after", "30d", "--older-than", "90d", "--dry-run", "--jsonl"]
    plan = here(*args, now=T0 + 8 * DAY)
    got = lines(plan)["e1"]
    assert (got["next"], got["next_at"]) == ("prune", "2027-02-22T08:00:00Z")


def test_a_dry_runs_totals_count_only_what_is_due_now(
    fake: FakeProvisioningServer, here: Run
) -> None:
    """e1 in grace (its new key handed off a day ago), e2 due for a new key."""
    first = here("e1", "--grace", "7d", "--jsonl")
    assert first.returncode == 0, first.stderr
    clock = fake.clock
    assert isinstance(clock, ManualClock)
    clock.advance(DAY)
    plan = here("--all", "--grace", "7d", "--older-than", "30d", "--dry-run", now=T0 + DAY)
    assert plan.returncode == 0, plan.stderr
    assert "environments      2 (1 to rotate, 1 skipped (1 in grace), 0 failed)" in plan.stdout
    as_json = here("--all", "--grace", "7d", "--older-than", "30d", "--dry-run", "--json")
    totals = json.loads(as_json.stdout)["totals"]
    assert (totals["planned"], totals["skipped"], totals["in_grace"]) == (1, 1, 1)


def test_the_night_after_costs_the_listing_and_a_resume_gives_the_secrets_back(
    fake: FakeProvisioningServer, here: Run
) -> None:
    """The key cache under the command line (issue 19): nights with nothing due send the
    listing only; a resume (issue 23) lists what its run touched, for the secrets."""

    def routes() -> list[str]:
        got = sorted(str(e.route) for e in fake.journal)
        fake.clear_journal()
        return got

    args = ["--all", "--older-than", "30d", "--grace", "7d", "--jsonl"]
    first = here(*args, "--name", "n1")
    assert {d["status"] for d in lines(first).values()} == {"handed_off"}
    routes()
    second = here(*args)
    assert routes() == ["list_product_environments"]
    assert {d["status"] for d in lines(second).values()} == {"in_grace"}
    again = here(*args, "--name", "n1")  # the resume: both listed, nothing written
    assert routes() == ["list", "list", "list_product_environments"]
    for sub, doc in lines(first).items():
        assert lines(again)[sub]["new_api_secret"] == doc["new_api_secret"]
    clock = fake.clock
    assert isinstance(clock, ManualClock)
    clock.advance(8 * DAY)  # the grace is over
    third = here(*args, now=T0 + 8 * DAY)
    assert {d["status"] for d in lines(third).values()} == {"retired"}
    assert routes() == ["list", "list", "list_product_environments", "update", "update"]
    here(*args, now=T0 + 8 * DAY)
    assert routes() == ["list_product_environments"]


def test_a_second_run_exits_3_naming_the_holder_before_any_write(
    fake: FakeProvisioningServer, tmp_path: Path
) -> None:
    lock = RotationLock(f"127.0.0.1:{fake.port}", "fake-account", directory=tmp_path / "locks")
    asyncio.run(lock.acquire())
    try:
        result = run(fake, tmp_path, "--all", "--jsonl")
    finally:
        asyncio.run(lock.release())
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert f"pid {os.getpid()}" in line and f"host {lock.me['host']}" in line
    assert fake.journal == [] and fake.keys_created == 0
    assert run(fake, tmp_path, "--all", "--jsonl").returncode == 0  # released: runs


def test_a_failing_hook_fails_its_environment_with_its_stderr(
    fake: FakeProvisioningServer, here: Run
) -> None:
    hook = 'echo "vault: permission denied" >&2; exit 4'
    result = here("e1", "--deploy-hook", hook, "--grace", "0", "--jsonl")
    assert result.returncode == 1
    doc = lines(result)["e1"]
    assert doc["status"] == "failed" and doc["steps"] == ["generated"]
    assert "exited with status 4" in doc["reason"] and "vault: permission denied" in doc["reason"]
    pending = next(k for k in fake.keys("e1") if k.name.endswith("@pending"))
    assert doc["new_api_secret"] == pending.api_secret  # nothing lost
    assert state(fake, "e1")[0] == ("prod", True)  # the old key still serves


def test_sigterm_reaches_the_running_hook_and_the_run_says_how_to_resume(
    fake: FakeProvisioningServer, tmp_path: Path
) -> None:
    marker = tmp_path / "hook-got-term"
    started = tmp_path / "hook-started"
    hook = f"trap 'echo term > {marker}; exit 9' TERM; touch {started}; sleep 30 & wait"
    proc = forked.Popen(
        command(fake, "e1", "--deploy-hook", hook, "--grace", "0", "--jsonl", "--name", "t"),
        env=environ(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(500):
        if started.exists():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert marker.read_text().strip() == "term"
    assert "Traceback" not in err and "to resume:" in err and "--name t" in err
    assert state(fake, "e1") == [("prod", True), ("t@pending", True)]  # nothing retired


@pytest.mark.parametrize(
    "args",
    [
        ["e1", "--grace", "1d"],  # without a hook, the hand-off is the --jsonl line
        ["e1", "--retire", "keep", "--grace", "1d", "--jsonl"],
        ["e1", "--name", "a@b", "--grace", "0", "--jsonl"],
        ["e1", "--grace", "-1d", "--jsonl"],
        ["e1", "--hook-timeout", "0", "--deploy-hook", "true"],
    ],
)
def test_lifecycle_usage_errors_exit_2_before_sending(
    fake: FakeProvisioningServer, args: list[str], here: Run
) -> None:
    result = here(*args)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("cldprov-async") and "error" in last
    assert fake.journal == []


def test_the_guides_file_hook_writes_each_key_with_mode_0600(
    fake: FakeProvisioningServer, tmp_path: Path, here: Run
) -> None:
    guide = (ROOT / "docs" / "guides" / "rotation-in-production.md").read_text()
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", guide, flags=re.S) if "umask 077" in b]
    store = tmp_path / "store"
    store.mkdir()
    script = tmp_path / "deliver.sh"
    script.write_text(block.replace("dir=/etc/myapp/cloudinary", f"dir={store}"))
    result = here("--all", "--deploy-hook", f"sh {script}", "--grace", "0", "--jsonl")
    assert result.returncode == 0, result.stderr
    for sub in ("e1", "e2"):
        written = store / f"{sub}-cloud.json"
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        current = next(k for k in fake.keys(sub) if k.enabled)
        assert json.loads(written.read_text())["api_secret"] == current.api_secret
    assert sorted(p.name for p in store.iterdir()) == ["e1-cloud.json", "e2-cloud.json"]


def test_verify_alone_stays_classic(fake: FakeProvisioningServer, here: Run) -> None:
    fake.refuse_ping("e2")
    result = here("--all", "--verify", "--verify-timeout", "2s", "--jsonl", "--name", "c")
    assert result.returncode == 1
    docs = lines(result)
    assert (docs["e1"]["status"], docs["e1"]["steps"]) == (
        "rotated",
        ["generated", "verified", "retired"],
    )
    assert state(fake, "e1") == [("prod", False), ("c", True)]  # no labels in classic mode
    assert docs["e2"]["status"] == "failed" and "refused key" in docs["e2"]["reason"]
    assert state(fake, "e2") == [("prod", True), ("c", True)]  # nothing retired
    assert "in_grace_until" not in docs["e1"]  # lifecycle fields only in lifecycle mode
