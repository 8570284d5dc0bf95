"""The README's examples run as written, and its commands are the ones CI uses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
#: What each example must print, so a block that silently does nothing fails.
EXPECTED = {
    0: ["main_key", "('webhooks',)", "ok"],
    1: ["ACCOUNT_ID", "https://api-eu.cloudinary.com", "/prefix"],
    2: ["404", "409"],
    3: ["rotated 50 of 50 environments", "keys created: 50"],
    4: [
        "chosen: ['env-0', 'env-1']",
        "env-0 planned 3",
        "env-1 skipped newest enabled key 'key-1' is 10d old, not older than 90d",
        "requests sent in the dry run: {'GET'}",
        "env-0 rotated",
        "second run: ['skipped', 'skipped']",
    ],
    5: [
        "env-a current 10 days",
        "env-b due 120 days",
        "1 due",
        "attention: env-b newest enabled key is 120d old",
        "requests of a second audit: 1",
    ],
    6: [
        "keys: ['api', 'cron', 'worker']",
        "clients created: 1, requests it sent: 4",
        "after shutdown: this CldProvisioning client is closed",
    ],
}
#: The pytest files: one with the fake server, one with aioresponses.
TESTS = [b for b in BLOCKS if "def test_" in b]


def test_every_python_block_is_checked() -> None:
    assert len(TESTS) == 2
    assert len(BLOCKS) == len(EXPECTED) + len(TESTS)
    assert not any("def test_" in BLOCKS[i] for i in EXPECTED)


@pytest.mark.parametrize("index", sorted(EXPECTED))
def test_example_runs(index: int, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index])
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    for fragment in EXPECTED[index]:
        assert fragment in done.stdout, done.stdout


@pytest.mark.parametrize("index", range(len(TESTS)), ids=["fake server", "aioresponses"])
def test_pytest_example_passes_with_the_installed_plugin(tmp_path: Path, index: int) -> None:
    (tmp_path / "test_example.py").write_text(TESTS[index])
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_ci_installs_and_tests_with_the_readme_commands() -> None:
    install, test = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)[:2]
    ci = (ROOT / ".ci" / "run").read_text()
    assert install.endswith("&& .venv/bin/cldprov-async demo")
    assert install.removesuffix(" && .venv/bin/cldprov-async demo") in ci
    assert test in ci
