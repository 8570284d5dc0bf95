"""``cldprov-async audit`` (and selection as ``rotate`` shares it), run in this process against
the fake server in a thread: outputs, the monitoring exit status, GETs only, no secret, the
key cache's savings and warnings. Two audits at once run as real processes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import forked
import pytest

from cldprov_async import RotationLock
from cldprov_async._cli import main
from cldprov_async.testing import FakeProvisioningServer

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
PROVISIONING_SECRET = "audit-secret-zz9"
ACCOUNT_URL = f"account://fake-key:{PROVISIONING_SECRET}@fake-account"
#: environment -> (name, [(key name, age in days, enabled)])
ENVS = {
    "env-fresh": ("Prod fresh", [("k", 10, True)]),
    "env-old": ("Prod old", [("k", 120, True)]),
    "env-pending": ("Stage pending", [("k", 50, True), ("r@pending", 3, True)]),
    "env-off": ("Stage off", [("k", 5, False)]),
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvisioningServer]:
    server = FakeProvisioningServer(
        sub_accounts=(), keys_per_sub_account=0, api_secret=PROVISIONING_SECRET
    )
    now = time.time()
    for sub, (name, keys) in ENVS.items():
        server.add_sub_account(sub, name=name)
        for key, age, enabled in keys:
            server.add_key(sub, name=key, enabled=enabled, created_at=now - age * DAY)
    monkeypatch.setenv("CLOUDINARY_ACCOUNT_URL", ACCOUNT_URL)
    with server.run_in_thread():
        yield server


def run(
    fake: FakeProvisioningServer, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """The CLI in this process; no secret of the server may appear in what it prints."""
    fake.clear_journal()
    code = main(["--server-url", fake.url, *args])
    out, err = capsys.readouterr()
    secrets = [PROVISIONING_SECRET, *(k.api_secret for sub in ENVS for k in fake.keys(sub))]
    assert not any(s in out + err for s in secrets)
    assert "Traceback" not in err
    return code, out, err


def test_the_table_summary_and_histogram(
    fake: FakeProvisioningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(fake, capsys, "--show-secrets", "audit")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        *("SUB_ACCOUNT", "CLOUD_NAME", "NAME", "KEYS", "ENABLED"),
        *("NEWEST", "OLDEST", "WEBHOOKS", "STATE"),
    ]
    rows = {line.split()[0]: line for line in lines[1:5]}
    assert rows["env-old"].endswith("due") and " 120d " in rows["env-old"]
    assert rows["env-pending"].endswith("hand-off pending")
    assert rows["env-off"].endswith("no enabled key")
    assert (
        "4 product environments: 1 current, 1 due, 1 hand-off pending, 1 no enabled key;"
        " 0 failed" in out
    )
    assert "  90-180d  ##############################  1" in out
    assert {e.method for e in fake.journal} == {"GET"}


def test_json_jsonl_and_csv(
    fake: FakeProvisioningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(fake, capsys, "audit", "--json", "--grace", "7d", "--prune-after", "30d")
    assert code == 0 and "4 product environments" in err
    doc = json.loads(out)
    assert doc["policy"] == {"older_than": "90d", "grace": "7d", "prune_after": "30d"}
    assert [r["sub_account_id"] for r in doc["environments"]] == list(ENVS)
    assert doc["summary"]["states"]["due"] == 1
    old = doc["environments"][1]
    assert old["newest_enabled_age"] == "120d" and old["state"] == "due"
    assert not any("secret" in key for row in doc["environments"] for key in row)

    code, out, err = run(fake, capsys, "audit", "--jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["sub_account_id"] for r in lines) == sorted(ENVS)
    assert "newest enabled key age:" in err and code == 0

    code, out, _ = run(fake, capsys, "audit", "--csv")
    table = list(csv.DictReader(io.StringIO(out)))
    assert [r["sub_account_id"] for r in table] == list(ENVS)
    assert table[0]["from_cache"] in ("true", "false") and table[3]["newest_enabled_age"] == ""

    code, out, _ = run(fake, capsys, "audit", "--json", "--prefix", "no such")
    assert (code, json.loads(out)["environments"]) == (0, [])

    code, _, err = run(fake, capsys, "audit", "--json", "--csv")
    assert code == 2 and "not allowed with" in err


def test_max_age_is_a_monitor(
    fake: FakeProvisioningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(fake, capsys, "audit", "--max-age", "100d")
    assert code == 1
    assert "max-age 100d: 3 product environments need attention" in err
    assert "env-old: newest enabled key is 120d old" in err
    assert "env-pending: hand-off pending for 3d" in err
    assert "env-off: no enabled key" in err
    code, _, err = run(fake, capsys, "audit", "--max-age", "100d", "--prefix", "prod f")
    assert (code, "attention" in err) == (0, False)
    code, _, _ = run(fake, capsys, "audit", "--max-age", "5d", "env-fresh")
    assert code == 1
    code, out, _ = run(fake, capsys, "audit", "env-fresh", "no-such-env")
    assert code == 1 and "; 1 failed" in out
    assert "error: not in the account's product-environment listing" in out


def test_a_warm_run_costs_the_listing_and_the_pending_one(
    fake: FakeProvisioningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run(fake, capsys, "audit")
    assert len(fake.journal) == 1 + len(ENVS)
    _, out, _ = run(fake, capsys, "audit")
    assert sorted(e.path.split("/")[-2] for e in fake.journal) == ["env-pending", "fake-account"]
    assert "keys from the key cache for 3, listed for 1 (2 requests)" in out
    run(fake, capsys, "audit", "--refresh")
    assert len(fake.journal) == 1 + len(ENVS)


def test_a_corrupt_cache_is_one_warning(
    fake: FakeProvisioningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _, before, _ = run(fake, capsys, "audit", "--json")
    [cache] = (Path(os.environ["XDG_CACHE_HOME"]) / "cldprov-async").glob("keys-*.json")
    cache.write_text("][")
    code, after, err = run(fake, capsys, "audit", "--json")
    assert code == 0
    assert err.count("cldprov-async: warning: key cache") == 1 and "unreadable" in err
    states = [[r["state"] for r in json.loads(doc)["environments"]] for doc in (before, after)]
    assert states[0] == states[1]


def test_bad_ages_are_usage_errors(
    fake: FakeProvisioningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (["--older-than", "0"], ["--max-age", "soon"], ["--grace=-1d"]):
        code, _, err = run(fake, capsys, "audit", *args)
        assert code == 2, args
        assert "expected a" in err
    code, _, _ = run(fake, capsys, "audit", "--grace", "0", "--older-than", "45s")
    assert code == 0
    assert fake.journal  # that one ran


def test_filters_without_ids_mean_the_whole_account(
    fake: FakeProvisioningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        fake, capsys, "rotate", "--prefix", "prod", "--older-than", "90d", "--dry-run", "--json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert sorted(r["sub_account_id"] for r in doc["results"]) == ["env-fresh", "env-old"]
    code, _, err = run(fake, capsys, "rotate", "--enabled-only", "--dry-run")
    assert code == 0 and "planning 4 product environments" in err
    code, _, err = run(fake, capsys, "rotate", "--dry-run")
    assert code == 2 and "--prefix or --enabled-only" in err
    code, out, _ = run(
        fake, capsys, "audit", "env-old", "env-fresh", "--prefix", "PROD O", "--json"
    )
    assert [r["sub_account_id"] for r in json.loads(out)["environments"]] == ["env-old"]


def test_rotate_older_than_uses_the_cache(
    fake: FakeProvisioningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run(fake, capsys, "audit")  # warms the cache rotate shares
    code, _, _ = run(fake, capsys, "rotate", "--all", "--older-than", "90d")
    assert code == 0
    listed = sorted(e.path.split("/")[-2] for e in fake.journal if e.route == "list")
    assert listed == ["env-old", "env-pending"]  # the one due, and the pending hand-off
    code, _, _ = run(fake, capsys, "rotate", "env-fresh", "env-old", "--older-than", "90d")
    assert code == 0
    assert [e.route for e in fake.journal] == ["list_product_environments"]


def test_two_audits_at_once_in_two_processes(fake: FakeProvisioningServer) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "cldprov_async", "--server-url", fake.url, "audit", "--json"]
    procs = [forked.Popen(cmd, env=env, stdout=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert all(len(json.loads(o)["environments"]) == len(ENVS) for o in outs)
    assert {e.method for e in fake.journal} == {"GET"}


def test_audit_runs_while_a_rotation_holds_the_lock(
    fake: FakeProvisioningServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``audit`` only reads: it never takes the rotation lock, so it runs beside a rotation
    (which a second ``rotate`` is refused)."""
    monkeypatch.setenv("CLDPROV_LOCK_DIR", str(tmp_path))
    lock = RotationLock(f"127.0.0.1:{fake.port}", "fake-account", directory=tmp_path)
    asyncio.run(lock.acquire())
    try:
        code, out, _ = run(fake, capsys, "audit", "--json")
        assert code == 0 and len(json.loads(out)["environments"]) == len(ENVS)
        assert {e.method for e in fake.journal} == {"GET"}
        code, _, err = run(fake, capsys, "rotate", "--all", "--jsonl")
        assert code == 3 and f"pid {os.getpid()}" in err
        assert fake.journal == []  # refused before sending anything
    finally:
        asyncio.run(lock.release())
