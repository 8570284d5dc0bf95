"""Fuzz the response side: whatever a server sends, only library errors come out.

Each example is one answer (status, headers, body) served by a real server on 127.0.0.1
to a fresh client, so the middleware, the converter and the error mapping all run. Server
and client share a virtual-time loop (``tests/virtual_time.py``): a Retry-After or a backoff
the answer asks for jumps instead of passing; what the client makes of it is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
import virtual_time
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import MAIN_KEY

import cldprov_async
from cldprov_async import CldProvisioning, RetryConfig, Security

QUICK = RetryConfig(max_attempts=2, max_wait=0.3, backoff_initial=0.001, backoff_max=0.01)
KEY = MAIN_KEY

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Near-misses of the real shapes find more than random noise does.
key_like = st.fixed_dictionaries(
    {},
    optional={k: json_values | st.just(v) for k, v in KEY.items()} | {"dedicated_for": json_values},
)
bodies = st.one_of(
    json_values.map(json.dumps),
    key_like.map(json.dumps),
    st.fixed_dictionaries(
        {"access_keys": st.lists(key_like, max_size=3), "total": json_values}
    ).map(json.dumps),
    st.fixed_dictionaries({"error": json_values}).map(json.dumps),
    key_like.map(json.dumps).map(lambda s: s[: len(s) // 2]),  # truncated
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
    st.just("<html><body>502 Bad Gateway</body></html>"),
)
header_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    st.integers(-5, 10**12).map(str),
    st.just("Thu, 01 Jan 1970 00:00:00 GMT"),
    st.just("Tue, 18 Aug 2099 17:00:00 GMT"),
)
header_names = st.sampled_from(
    [
        "X-FeatureRateLimit-Limit",
        "X-FeatureRateLimit-Remaining",
        "X-FeatureRateLimit-Reset",
        "Retry-After",
        "Content-Type",
        "X-Request-Id",
    ]
)
answers = st.tuples(
    st.sampled_from(
        [200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 409, 418, 420, 429, 500, 503]
    ),
    st.dictionaries(header_names, header_values, max_size=4),
    bodies,
)
operations = st.sampled_from(["list", "generate", "update", "delete_by_name", "delete"])


async def _call(client: CldProvisioning, op: str) -> object:
    keys = client.access_keys
    if op == "list":
        return await keys.list({"sub_account_id": "s"})
    if op == "generate":
        return await keys.generate("s", {"name": "n"})
    if op == "update":
        return await keys.update("s", "1", {"enabled": False})
    if op == "delete_by_name":
        return await keys.delete_by_name("s", "n")
    return await keys.delete("s", "1")


@pytest.mark.slow
def test_any_answer_yields_a_model_or_a_library_error() -> None:
    current: dict[str, Any] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        status, headers, body = current["answer"]
        headers = {k: v for k, v in headers.items() if k != "Content-Type" or v}
        if 300 <= status < 400:
            headers["Location"] = "http://127.0.0.1:9/elsewhere"
        return web.Response(status=status, text=body, headers=headers)

    async def start() -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"

    with asyncio.Runner(loop_factory=virtual_time.VirtualTimeLoop) as runner:
        server, url = runner.run(start())
        security = Security(provisioning_api_key="k", provisioning_api_secret="secret")

        async def one(op: str) -> None:
            async with CldProvisioning(
                account_id="a",
                security=security,
                server_url=url,
                retry_config=QUICK,
                clock=virtual_time.clock(),
            ) as client:
                # Anything but a library error (KeyError, TypeError, ...) fails the test.
                with contextlib.suppress(cldprov_async.CldProvisioningError):
                    await asyncio.wait_for(_call(client, op), 5)

        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
        @given(answer=answers, op=operations)
        def check(answer: tuple[int, dict[str, str], str], op: str) -> None:
            current["answer"] = answer
            runner.run(one(op))

        try:
            check()
        finally:
            runner.run(server.cleanup())
