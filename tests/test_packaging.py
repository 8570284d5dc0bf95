"""Ready to publish, and usable as a user gets it: built, checked, installed in a fresh venv.

One build (``python -m build``: the sdist, then the wheel from it) and one fresh virtual
environment serve the module: slow steps, done once. In that venv the wheel is installed with
its ``[test]`` extra, as a user's project would, and a user's module is type-checked with
``mypy --strict`` while a user's tests run with the ``cldprov_aioresponses`` fixture.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from heavy import lowered

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

USER_MODULE = '''
"""A user's module: every public operation, every error caught, typed."""

from __future__ import annotations

from datetime import datetime

from cldprov_async import (
    AccessKey,
    AccessKeysResponse,
    CldProvisioning,
    CldProvisioningError,
    ConflictError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    RetryConfig,
    RotationResult,
    Security,
    SuccessResponse,
)


async def main(url: str) -> list[str]:
    seen: list[str] = []
    retry = RetryConfig(max_attempts=3)
    async with CldProvisioning("acc", Security("key", "secret"), server_url=url) as client:
        keys = client.access_keys
        try:
            listing: AccessKeysResponse = await keys.list({"sub_account_id": "sub-1"})
            seen.extend(k.api_key for k in listing.access_keys)
            made: AccessKey = await keys.generate("sub-1", {"name": "ci"}, retries=retry)
            created: datetime = made.created_at
            seen.append(created.isoformat())
            updated: AccessKey = await keys.update("sub-1", made.api_key, {"enabled": False})
            seen.append(str(updated.enabled))
            gone: SuccessResponse = await keys.delete("sub-1", made.api_key, timeout_ms=5000)
            seen.append(gone.message)
            await keys.generate("sub-1", {"name": "other"})
            by_name: SuccessResponse = await keys.delete_by_name("sub-1", "other")
            seen.append(by_name.message)
            async for key in keys.iter_keys("sub-1", page_size=10):
                seen.append(key.name)
            result: RotationResult = await keys.rotate("sub-1", retire="delete")
            many: list[RotationResult] = await keys.rotate_many(["sub-1"], concurrency=2)
            seen.extend(str(r.ok) for r in [result, *many])
        except RateLimitedError as exc:
            reset: datetime | None = exc.reset_at
            seen.append(f"rate limited until {reset}")
        except (NotFoundError, ConflictError) as exc:
            status: int | None = exc.status_code
            seen.append(f"{status}")
        except OutcomeUnknownError as exc:
            seen.append(str(exc))
        except CldProvisioningError as exc:
            seen.append(f"{type(exc).__name__}: {exc}")
    return seen
'''

#: A mistake mypy must catch, or it is not reading our types at all.
USER_MISTAKE = """
from cldprov_async import CldProvisioning


async def wrong(client: CldProvisioning) -> int:
    return await client.access_keys.generate("sub-1")
"""

USER_TESTS = '''
"""A user's tests, mocking aiohttp's transport with the plugin's aioresponses fixture."""

import aiohttp
import pytest
from aioresponses import aioresponses

from cldprov_async import CldProvisioning, NotFoundError, Security

KEYS = "https://api.cloudinary.com/v1_1/provisioning/accounts/acc/sub_accounts/env/access_keys"
KEY = {
    "name": "ci",
    "api_key": "123",
    "api_secret": "s3cr3t",
    "enabled": True,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}


def test_aiohttp_is_the_one_that_broke_aioresponses():
    assert tuple(int(p) for p in aiohttp.__version__.split(".")[:2]) >= (3, 14)


async def test_generate(cldprov_aioresponses: aioresponses) -> None:
    cldprov_aioresponses.post(KEYS, payload=KEY)
    async with CldProvisioning("acc", Security("k", "s")) as client:
        key = await client.access_keys.generate("env", {"name": "ci"})
    assert key.api_secret == "s3cr3t"
    ((_, calls),) = cldprov_aioresponses.requests.items()
    assert calls[0].kwargs["data"] == b'{"name": "ci"}'


async def test_not_found(cldprov_aioresponses: aioresponses) -> None:
    cldprov_aioresponses.get(KEYS, status=404, payload={"error": {"message": "no env"}})
    async with CldProvisioning("acc", Security("k", "s")) as client:
        with pytest.raises(NotFoundError):
            await client.access_keys.list({"sub_account_id": "env"})
'''


def run(*cmd: str | Path, cwd: Path | None = None, timeout: float = 300) -> str:
    """``cmd``'s output; it must succeed. Run at a lower priority (``heavy``), as is mypy."""
    done = subprocess.run(
        lowered([str(c) for c in cmd]), capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    assert done.returncode == 0, f"{cmd}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # With the dev environment's hatchling: an isolated build would first make two venvs
    # and install the backend into each (`pip install -e .` has built in isolation already).
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, timeout=600)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory, dist: dict[str, Path]) -> Path:
    """A fresh venv holding the wheel with its [test] extra: a user's project.

    Made without pip (ensurepip alone takes seconds) and filled by this environment's pip
    (``--python``), which resolves and installs exactly as a pip inside it would."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    pip(python, "install", "-q", "--no-compile", f"{dist['wheel']}[test]", timeout=600)
    return python


def pip(python: Path, *args: str, timeout: float = 300) -> str:
    """This environment's pip acting on the environment of ``python``."""
    return run(sys.executable, "-m", "pip", "--python", python, *args, timeout=timeout)


def test_twine_accepts_the_wheel_and_sdist_strictly(dist: dict[str, Path]) -> None:
    out = run(sys.executable, "-m", "twine", "check", "--strict", dist["wheel"], dist["sdist"])
    assert out.count("PASSED") == 2


def test_the_wheel_is_typed_and_describes_itself(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = wheel.namelist()
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(wheel.read(metadata).decode())
    assert "cldprov_async/py.typed" in names
    assert "cldprov_async/testing/_aioresponses.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    classifiers = meta.get_all("Classifier") or []
    for wanted in (
        "Framework :: AsyncIO",
        "Typing :: Typed",
        *(f"Programming Language :: Python :: 3.{minor}" for minor in (11, 12, 13, 14)),
    ):
        assert wanted in classifiers
    assert meta["License-Expression"] == "MIT"
    assert meta["License-File"] == "LICENSE"
    assert meta["Requires-Python"] == ">=3.11"
    assert {u.partition(",")[0] for u in meta.get_all("Project-URL") or []} >= {
        "Homepage",
        "Changelog",
        "Issues",
    }
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "## A first look" in (meta.get_payload() or "")
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"test", "otel", "dev"} <= extras
    test_deps = [r for r in meta.get_all("Requires-Dist") or [] if "extra == 'test'" in r]
    assert sorted(r.split(";")[0].split(">")[0].strip() for r in test_deps) == [
        "aioresponses",
        "pytest",
        "pytest-asyncio",
    ]


def test_the_sdist_holds_the_tests_docs_readme_and_license(dist: dict[str, Path]) -> None:
    with tarfile.open(dist["sdist"]) as sdist:
        names = {n.partition("/")[2] for n in sdist.getnames()}
    for wanted in (
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "pyproject.toml",
        "cldprov_async/py.typed",
        "tests/conftest.py",
        "tests/test_packaging.py",
        "tests/samples.py",
        "mkdocs.yml",
        "docs/hooks/cldprov_apiref.py",
        "docs/guides/rotation.md",
    ):
        assert wanted in names
    assert not any(n.startswith((".venv/", "dist/")) for n in names)


def test_a_user_module_type_checks_strictly_against_the_installed_wheel(
    user_venv: Path, tmp_path: Path
) -> None:
    """mypy (ours) reads the user's environment (``--python-executable``), as it finds any
    installed package: the wheel's ``py.typed`` and types, nothing of this checkout. One run
    over both modules: the user's passes, the deliberate mistake is caught."""
    (tmp_path / "user_app.py").write_text(USER_MODULE)
    (tmp_path / "user_mistake.py").write_text(USER_MISTAKE)
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
    mypy += ["--python-executable", str(user_venv), "user_app.py", "user_mistake.py"]
    done = subprocess.run(lowered(mypy), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith("user_mistake.py:"), done.stdout
    assert 'Incompatible return value type (got "AccessKey", expected "int")' in errors[0]
    assert "Found 1 error in 1 file (checked 2 source files)" in done.stdout


def test_the_test_extra_is_what_users_tests_need_and_no_more(user_venv: Path) -> None:
    # What `pip list --format=freeze` prints, read from the venv's installed distributions
    # here (a pip process costs a second and a half of CPU to say the same).
    (site_packages,) = user_venv.parent.parent.glob("lib/python3*/site-packages")
    installed = "\n".join(
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in importlib.metadata.distributions(path=[str(site_packages)])
    ).lower()
    for wanted in ("pytest==", "pytest-asyncio==", "aioresponses=="):
        assert wanted in installed
    for ours in ("hypothesis", "cloudinary-account-provisioning", "pydantic", "httpx"):
        assert f"{ours}==" not in installed
    assert "opentelemetry" not in installed  # [otel] is its own extra


def test_a_users_aioresponses_tests_pass_on_aiohttp_3_14(user_venv: Path, tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    out = run(
        user_venv,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=auto",
        cwd=tmp_path,
    )
    assert "3 passed" in out
