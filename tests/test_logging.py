"""Log records carry their facts as ``cldprov_*`` attributes, and never a credential."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import virtual_time

from cldprov_async import RetryConfig
from cldprov_async.testing import FakeProvisioningServer, RateLimitPolicy

SECRET = "PROVISIONING-SECRET-log-31"
FAST = RetryConfig(backoff_initial=0.01, backoff_max=0.02)
FACTS = (
    "cldprov_operation",
    "cldprov_method",
    "cldprov_path",
    "cldprov_status",
    "cldprov_attempt",
    "cldprov_wait_s",
)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[list[logging.LogRecord]]:
    logger = logging.getLogger("cldprov_async")
    handler, level = Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)
    for record in handler.records:  # at every level, in the message and every attribute
        assert SECRET not in record.getMessage()
        assert SECRET not in repr(vars(record))
        assert "Basic " not in repr(vars(record))


def facts(record: logging.LogRecord) -> dict[str, object]:
    return {k: getattr(record, k) for k in FACTS if hasattr(record, k)}


def fake(**kwargs: object) -> FakeProvisioningServer:
    return FakeProvisioningServer(sub_accounts=["env-a"], api_secret=SECRET, **kwargs)  # type: ignore[arg-type]


async def test_a_retry_record_carries_its_facts(captured: list[logging.LogRecord]) -> None:
    async with fake() as server, server.client(retry_config=FAST) as client:
        server.inject("503", route="list")
        await client.access_keys.list({"sub_account_id": "env-a"})
        path = server.journal[0].path
    (record,) = [r for r in captured if r.getMessage().startswith("retrying")]
    assert record.levelno == logging.INFO
    got = facts(record)
    wait = got.pop("cldprov_wait_s")
    assert got == {
        "cldprov_operation": "access_keys.list",
        "cldprov_method": "GET",
        "cldprov_path": path,
        "cldprov_status": 503,
        "cldprov_attempt": 2,  # the attempt about to be made, as the message says
    }
    assert isinstance(wait, float) and 0 <= wait <= 0.02
    assert f"{wait:.2f}s" in record.getMessage() and "(attempt 2 of 5)" in record.getMessage()


async def test_a_dropped_connection_has_no_status(captured: list[logging.LogRecord]) -> None:
    async with fake() as server, server.client(retry_config=FAST) as client:
        server.inject("drop_before", route="update")
        key = server.keys("env-a")[0].api_key
        await client.access_keys.update("env-a", key, {"enabled": False})
    (record,) = [r for r in captured if r.getMessage().startswith("retrying")]
    got = facts(record)
    assert "cldprov_status" not in got
    assert got["cldprov_operation"] == "access_keys.update"
    assert got["cldprov_method"] == "PUT"


async def test_a_gate_wait_record_carries_its_facts(captured: list[logging.LogRecord]) -> None:
    async with fake(rate_limit=RateLimitPolicy(limit=1, window=1.0)) as server:
        async with server.client() as client:
            await asyncio.gather(
                *(client.access_keys.list({"sub_account_id": "env-a"}) for _ in range(2))
            )
            await client.access_keys.list({"sub_account_id": "env-a"})  # the window is spent
        assert len(server.journal) == 3
    waits = [r for r in captured if "waits for the rate-limit gate" in r.getMessage()]
    first, spent = waits  # one queued behind the probe, one behind the spent window
    for record in waits:
        assert record.levelno == logging.DEBUG
        got = facts(record)
        assert got["cldprov_operation"] == "access_keys.list"
        assert got["cldprov_method"] == "GET"
        assert str(got["cldprov_path"]).endswith("/sub_accounts/env-a/access_keys")
    assert "cldprov_wait_s" not in facts(first)  # unknown until the first answer
    wait = vars(spent)["cldprov_wait_s"]
    assert 0 < wait <= 1.1
    assert f"{wait:.2f}s" in spent.getMessage()


async def test_a_failed_rotation_record_carries_its_facts(
    captured: list[logging.LogRecord],
) -> None:
    async with fake() as server, server.client() as client:
        result = await client.access_keys.rotate("no-such-env")
    assert not result.ok
    (record,) = [r for r in captured if r.levelno == logging.WARNING]
    assert record.getMessage().startswith("rotation of no-such-env failed")
    got = facts(record)
    assert got["cldprov_operation"] == "access_keys.rotate"
    assert got["cldprov_status"] == 404
    assert got["cldprov_method"] == "GET"
    assert vars(record)["cldprov_sub_account_id"] == "no-such-env"


@pytest.mark.slow
@virtual_time.on_virtual_time
async def test_every_record_the_library_logs_has_structured_facts(
    captured: list[logging.LogRecord],
) -> None:
    limit = RateLimitPolicy(limit=2, window=1.0)
    async with fake(rate_limit=limit, clock=virtual_time.clock()) as server:
        server.inject("503", route="list")
        server.inject("drop_after", route="generate")
        async with server.client(retry_config=FAST, clock=server.clock) as client:
            await asyncio.gather(
                client.access_keys.rotate("env-a", name="r"),
                client.access_keys.rotate("no-such-env"),
                *(client.access_keys.list({"sub_account_id": "env-a"}) for _ in range(3)),
            )
    assert len(captured) >= 3
    for record in captured:
        assert record.name == "cldprov_async"
        assert facts(record), record.getMessage()
