"""The command line, run as a subprocess against the fake server: exit codes, output, and what
the server holds afterwards."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import forked
import pytest
from cli_here import run_here

from cldprov_async.testing import FakeKey, FakeProvisioningServer

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT_URL = "account://fake-key:fake-secret@fake-account"
PROVISIONING_SECRET = "fake-secret"
SUBS = ["sub-1", "sub-2", "sub-3"]
MASK = "********"


def cli(
    *args: str,
    server: FakeProvisioningServer | None = None,
    stdin: str | None = None,
    account_url: str | None = ACCOUNT_URL,
    stderr: int | None = subprocess.PIPE,
    here: bool = False,
    fresh: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cldprov_async`` (with ``--server-url`` first when a server is given),
    forked from the suite's pre-imported interpreter (``tests/forked.py``), or ``fresh``: a new
    interpreter; ``here``: its ``main()`` in this process, for what is refused before anything
    starts."""
    env = {k: v for k, v in os.environ.items() if k != "CLOUDINARY_ACCOUNT_URL"}
    env["PYTHONPATH"] = str(ROOT)
    if account_url is not None:
        env["CLOUDINARY_ACCOUNT_URL"] = account_url
    prefix = ["--server-url", server.url] if server is not None else []
    io: dict[str, Any] = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    if here:
        assert stdin is None and stderr == subprocess.PIPE
        result = run_here([*prefix, *args], env)
    else:
        result = (subprocess.run if fresh else forked.run)(
            [sys.executable, "-m", "cldprov_async", *prefix, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=60,
            **io,
        )
    output = result.stdout + (result.stderr or "")
    assert PROVISIONING_SECRET not in output
    assert "Traceback" not in output
    return result


@pytest.fixture
def server() -> Iterator[FakeProvisioningServer]:
    with FakeProvisioningServer(sub_accounts=SUBS, keys_per_sub_account=2).run_in_thread() as fake:
        yield fake


def by_name(server: FakeProvisioningServer, sub: str) -> dict[str, FakeKey]:
    return {k.name: k for k in server.keys(sub)}


def check_rotated(
    server: FakeProvisioningServer, sub: str, name: str, old: list[FakeKey]
) -> FakeKey:
    """One enabled key, the new one; the old keys are still there, disabled."""
    keys = server.keys(sub)
    assert [k.name for k in keys if k.enabled] == [name]
    for key in old:
        assert not next(k for k in keys if k.api_key == key.api_key).enabled
    return by_name(server, sub)[name]


# -- keys ------------------------------------------------------------------------------------


def test_keys_list_table_masks_secrets(server: FakeProvisioningServer) -> None:
    result = cli("keys", "list", "sub-1", server=server)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "API_KEY",
        "ENABLED",
        "DEDICATED",
        "CREATED_AT",
        "API_SECRET",
    ]
    for key in server.keys("sub-1"):
        row = next(line for line in lines if key.api_key in line)
        assert row.split()[0] == key.name and row.split()[-1] == MASK
        assert key.api_secret not in result.stdout
    # Columns are aligned: every row's api_key starts where the header's does.
    column = lines[0].index("API_KEY")
    assert all(line[column:].split()[0].isdigit() for line in lines[1:])


def test_keys_list_json_with_and_without_secrets(server: FakeProvisioningServer) -> None:
    args = ["keys", "list", "sub-1", "--sort-by", "name", "--sort-order", "asc", "--json"]
    masked = json.loads(cli(*args, server=server).stdout)
    shown = json.loads(cli("--show-secrets", *args, server=server).stdout)
    held = by_name(server, "sub-1")
    assert [k["name"] for k in masked["access_keys"]] == ["key-1", "key-2"]
    assert masked["total"] == 2
    assert {k["api_secret"] for k in masked["access_keys"]} == {MASK}
    assert {k["name"]: k["api_secret"] for k in shown["access_keys"]} == {
        name: key.api_secret for name, key in held.items()
    }
    first = shown["access_keys"][0]
    assert first["enabled"] is True and first["dedicated_for"] == []
    assert first["created_at"] == held["key-1"].created_at  # ISO-8601, as the server sent it
    assert server.journal[-1].query == {"sort_by": "name", "sort_order": "asc"}


def test_keys_generate_prints_the_new_secret_once(server: FakeProvisioningServer) -> None:
    result = cli("keys", "generate", "sub-1", "--name", "ci", server=server)
    assert result.returncode == 0, result.stderr
    key = by_name(server, "sub-1")["ci"]
    assert key.enabled
    assert result.stdout.count(key.api_secret) == 1
    line = next(line for line in result.stdout.splitlines() if key.api_secret in line)
    assert line == f"NEW SECRET (shown once, store it now): {key.api_secret}"
    assert key.api_key in result.stdout


def test_keys_generate_json_disabled(server: FakeProvisioningServer) -> None:
    result = cli(
        "keys", "generate", "sub-2", "--name", "off", "--disabled", "--json", server=server
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    key = by_name(server, "sub-2")["off"]
    assert not key.enabled
    assert doc["new_api_secret"] == key.api_secret
    assert doc["access_key"]["api_secret"] == MASK
    assert doc["access_key"]["api_key"] == key.api_key and doc["access_key"]["enabled"] is False
    assert server.journal[-1].body == {"name": "off", "enabled": False}


def test_keys_update(server: FakeProvisioningServer) -> None:
    key = server.keys("sub-1")[0]
    args = ["--name", "renamed", "--disable", "--dedicate-webhooks"]
    result = cli("keys", "update", "sub-1", key.api_key, *args, server=server)
    assert result.returncode == 0, result.stderr
    assert "renamed" in result.stdout and key.api_secret not in result.stdout
    assert server.journal[-1].body == {
        "name": "renamed",
        "enabled": False,
        "dedicated_for": "webhooks",
    }
    held = by_name(server, "sub-1")["renamed"]
    assert (held.enabled, held.dedicated_for) == (False, ("webhooks",))

    result = cli("keys", "update", "sub-1", key.api_key, "--enable", "--json", server=server)
    doc = json.loads(result.stdout)
    assert doc["access_key"]["enabled"] is True
    assert doc["access_key"]["dedicated_for"] == ["webhooks"]
    assert by_name(server, "sub-1")["renamed"].enabled


def test_keys_delete_by_key_and_by_name(server: FakeProvisioningServer) -> None:
    first, second = server.keys("sub-1")
    result = cli("keys", "delete", "sub-1", first.api_key, server=server)
    assert result.returncode == 0, result.stderr
    assert first.api_key in result.stdout
    assert server.keys("sub-1") == [second]

    result = cli("keys", "delete", "sub-1", "--name", second.name, "--json", server=server)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["deleted"] == {"name": second.name}
    assert server.keys("sub-1") == []


def test_api_error_is_one_line(server: FakeProvisioningServer) -> None:
    result = cli("keys", "delete", "sub-1", "--name", "missing", server=server)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert "404" in lines[0] and "'missing' not found" in lines[0]
    assert len(server.keys("sub-1")) == 2


# -- configuration and usage -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["keys"],
        ["keys", "delete", "sub-1"],
        ["keys", "delete", "sub-1", "123", "--name", "n"],
        ["keys", "update", "sub-1", "123"],
        ["keys", "update", "sub-1", "123", "--enable", "--disable"],
        ["keys", "list", "sub-1", "--sort-by", "size"],
        ["--timeout", "0", "keys", "list", "sub-1"],
        ["rotate"],
        ["rotate", "sub-1", "sub-1"],
        ["rotate", "sub-1", "--concurrency", "0"],
        ["rotate", "--from-file", "/nonexistent/ids.txt"],
        ["--rate-limit-url", "memcached://127.0.0.1:1", "keys", "list", "sub-1"],
    ],
)
def test_usage_errors_exit_2(server: FakeProvisioningServer, args: list[str]) -> None:
    result = cli(*args, server=server, here=True)
    assert result.returncode == 2, result.stderr
    assert "error:" in result.stderr
    assert server.journal == []


def test_a_usage_error_is_the_process_exit_status_and_one_line(
    server: FakeProvisioningServer,
) -> None:
    """The in-process cases above say and return what the real process does."""
    args = ("rotate", "sub-1", "--concurrency", "0")
    real, here = cli(*args, server=server, fresh=True), cli(*args, server=server, here=True)
    assert (real.returncode, real.stdout, real.stderr) == (2, "", here.stderr)
    assert here.returncode == 2
    last = real.stderr.strip().splitlines()[-1]
    assert last == "cldprov-async rotate: error: argument --concurrency: must be at least 1, not 0"
    assert server.journal == []


def test_plain_http_to_a_remote_host_is_a_configuration_error() -> None:
    result = cli("--server-url", "http://example.com", "keys", "list", "sub-1", here=True)
    assert result.returncode == 2
    assert "https" in result.stderr


def test_missing_credentials_exit_2() -> None:
    result = cli("keys", "list", "sub-1", account_url=None, here=True)
    assert result.returncode == 2
    assert "CLOUDINARY_ACCOUNT_URL" in result.stderr


def test_malformed_account_url_is_not_echoed() -> None:
    result = cli(
        "--account-url", "account://key:hunter2-secret", "keys", "list", "sub-1", here=True
    )
    assert result.returncode == 2
    assert "CLOUDINARY_ACCOUNT_URL" in result.stderr and "hunter2" not in result.stderr


# -- rotate ----------------------------------------------------------------------------------


def test_rotate_all_succeed(server: FakeProvisioningServer) -> None:
    old = {sub: server.keys(sub) for sub in SUBS}
    result = cli("rotate", *SUBS, "--name", "rot-1", server=server)
    assert result.returncode == 0, result.stderr
    for sub in SUBS:
        new = check_rotated(server, sub, "rot-1", old[sub])
        # The human output never shows a secret; it says where to find them.
        assert new.api_secret not in result.stdout + result.stderr
        row = next(line for line in result.stdout.splitlines() if new.api_key in line)
        assert row.split() == [sub, "rotated", new.api_key, "2", "disabled"]
        assert all(k.api_secret not in result.stdout for k in old[sub])
    assert "--show-secrets keys list SUB" in result.stderr
    # Not a terminal: plain progress lines (the first and the last here), no carriage returns.
    assert "\r" not in result.stderr
    assert re.search(r"^\[3/3\] failed 0, skipped 0, \d+/min, waited 0s", result.stderr, re.M)
    assert "rotated 3 of 3 product environments" in result.stderr


def test_rotate_with_an_unknown_sub_account(server: FakeProvisioningServer) -> None:
    old = {sub: server.keys(sub) for sub in SUBS}
    result = cli("rotate", "sub-1", "nope", "sub-2", "--name", "rot", "--json", server=server)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert (doc["total"], doc["rotated"], doc["failed"]) == (3, 2, 1)
    assert [r["sub_account_id"] for r in doc["results"]] == ["sub-1", "nope", "sub-2"]
    failed = doc["results"][1]
    assert failed["ok"] is False and failed["new_key"] is None
    assert failed["error"]["status"] == 404
    assert re.search(r"^failed: nope: 404 .*not found", result.stderr, re.MULTILINE)
    for entry in (doc["results"][0], doc["results"][2]):
        new = check_rotated(server, entry["sub_account_id"], "rot", old[entry["sub_account_id"]])
        assert entry["new_api_secret"] == new.api_secret
        assert entry["new_key"]["api_secret"] == MASK
        assert {k["api_key"] for k in entry["retired"]} == {
            k.api_key for k in old[entry["sub_account_id"]]
        }
    assert server.keys("sub-3") == old["sub-3"]


@pytest.mark.slow
def test_rotate_prints_the_secret_of_a_key_created_before_a_failure(
    server: FakeProvisioningServer,
) -> None:
    server.inject("500", route="update", count=10)  # retiring the old keys fails
    result = cli("rotate", "sub-1", "--name", "half", "--jsonl", server=server)
    assert result.returncode == 1
    new = by_name(server, "sub-1")["half"]
    assert new.enabled
    (line,) = result.stdout.splitlines()
    doc = json.loads(line)
    assert (doc["status"], doc["new_api_secret"]) == ("failed", new.api_secret)
    assert doc["new_key"]["api_key"] == new.api_key and doc["error"]["status"] == 500
    assert re.search(r"^failed: sub-1: 500 ", result.stderr, re.MULTILINE)
    assert "rotate sub-1 --name half" in result.stderr  # how to resume


def test_rotate_from_file_and_stdin(server: FakeProvisioningServer, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("# product environments\nsub-1\n\n  sub-2  # the second one\n")
    result = cli(
        "rotate", "--from-file", str(ids), "--retire", "delete", "--name", "f", server=server
    )
    assert result.returncode == 0, result.stderr
    for sub in ("sub-1", "sub-2"):
        assert [(k.name, k.enabled) for k in server.keys(sub)] == [("f", True)]
    assert len(server.keys("sub-3")) == 2

    args = ["rotate", "--from-file", "-", "--retire", "keep", "--name", "s"]
    result = cli(*args, server=server, stdin="sub-3\n# done\n")
    assert result.returncode == 0, result.stderr
    assert [(k.name, k.enabled) for k in server.keys("sub-3")] == [
        ("key-1", True),
        ("key-2", True),
        ("s", True),
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_rotate_draws_a_live_bar_on_a_terminal(server: FakeProvisioningServer) -> None:
    import pty

    master, slave = pty.openpty()
    try:
        result = cli("rotate", "sub-1", server=server, stderr=slave)
    finally:
        os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    assert result.returncode == 0
    assert b"\r\x1b[K[1/1] failed 0, skipped 0" in drawn  # one line, redrawn in place
    assert b"\n[1/1]" not in drawn  # no plain lines on a terminal


# -- demo ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo() -> None:
    started = time.monotonic()
    result = cli("demo", account_url=None, fresh=True)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 30
    out = result.stdout
    assert "no cloudinary credentials are needed" in out.lower()
    assert "Summary" in out
    assert re.search(r"product environments rotated\s+36 of 36", out)
    for label in ("requests sent", "requests retried", "rejected by the rate limit", "elapsed"):
        assert label in out
    assert "Verified" in out
    assert re.search(r"^\[36/36\] env-\d\d: rotated", result.stderr, re.MULTILINE)
