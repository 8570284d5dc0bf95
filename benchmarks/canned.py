"""A canned HTTP/1.1 server: answers shaped like the live API's, as fast as Python sends them.

    python -m benchmarks.canned             # prints CANNED_URL=http://127.0.0.1:PORT
    python -m benchmarks.canned --keys 100  # listings of 100 keys instead of 3; SIGTERM stops it

For counting a client's own cost (``benchmarks.instructions``), not for benchmarks of
behaviour: with the fake server each answer costs about as much CPU as the client's request,
so on 2 cores the client often waits on the server. This server answers in microseconds, so
the client is always the bottleneck. No auth and no state, but the answers are what a client
of the live API reads:

* every answer carries ``X-FeatureRateLimit-Limit``/``-Remaining``/``-Reset`` (a budget of a
  million, ``Remaining`` counting down by one per answer, the reset an hour after start-up);
* bodies carry fields the spec lacks (the live API adds some; clients must ignore them), keys
  have their own dates, and one key of a listing is dedicated (``"dedicated_for": ["webhooks"]``);
* ``GET .../access_keys`` a listing of ``--keys`` keys, ``GET .../sub_accounts`` three product
  environments, ``DELETE`` a success message, anything else one key; keep-alive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from email.utils import formatdate
from typing import Any

LIMIT = 1_000_000
_EXTRA = {"customer_id": 7, "origin": {"source": "provisioning", "tags": []}}


def _stamp(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_790_000_000 + 60 * minute))


def key(i: int) -> dict[str, Any]:
    """The i-th key: its own name, api_key and dates (updated after it was created)."""
    out: dict[str, Any] = {
        "name": f"key-{i}",
        "api_key": f"{123456789012345 + i}",
        "api_secret": f"abcdefghijklmnopqrstuvwx{i:03d}",
        "created_at": _stamp(i),
        "updated_at": _stamp(i + 7),
        "enabled": i % 4 != 3,
        **_EXTRA,
    }
    if i == 1:
        out["dedicated_for"] = ["webhooks"]
    return out


def listing(keys: int) -> str:
    return json.dumps({"access_keys": [key(i) for i in range(keys)], "total": keys, "page": 1})


def environments(n: int = 3) -> str:
    envs = [
        {
            "id": f"{i:031x}",
            "name": f"env {i}",
            "cloud_name": f"cloud-{i}",
            "enabled": True,
            "created_at": _stamp(i),
            "updated_at": _stamp(i + 1),
            "api_access_keys": [
                {"key": f"{900000 + 2 * i + k}", "secret": f"s{i}{k}", "enabled": True}
                for k in range(2)
            ],
            "plan": "free",
        }
        for i in range(n)
    ]
    return json.dumps({"sub_accounts": envs})


BODIES = {
    "keys": listing(3).encode(),
    "environments": environments().encode(),
    "key": json.dumps(key(0)).encode(),
    "deleted": json.dumps({"message": "ok", "request_id": "r-1"}).encode(),
}


class _Canned(asyncio.Protocol):
    remaining = LIMIT  # shared by every connection: one budget, as on the live API
    reset = formatdate(time.time() + 3600, usegmt=True)

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def _answer(self, head: bytes) -> bytes:
        method, _, rest = head.partition(b" ")
        target = rest.partition(b" ")[0].partition(b"?")[0]
        if method == b"GET":
            body = BODIES["environments" if target.endswith(b"/sub_accounts") else "keys"]
        else:
            body = BODIES["deleted" if method == b"DELETE" else "key"]
        _Canned.remaining = max(0, _Canned.remaining - 1)
        return (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nServer: canned\r\n"
            f"X-FeatureRateLimit-Limit: {LIMIT}\r\n"
            f"X-FeatureRateLimit-Remaining: {_Canned.remaining}\r\n"
            f"X-FeatureRateLimit-Reset: {_Canned.reset}\r\n\r\n"
        ).encode() + body

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            length = 0
            marker = head.lower().find(b"content-length:")
            if marker >= 0:
                line_end = head.find(b"\r\n", marker)
                length = int(head[marker + 15 : line_end if line_end >= 0 else None])
            if len(buffer) < end + 4 + length:
                break
            out.append(self._answer(head))
            buffer = buffer[end + 4 + length :]
        self._buffer = buffer
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


async def serve() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(_Canned, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"CANNED_URL=http://127.0.0.1:{port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.canned", description=__doc__)
    parser.add_argument("--keys", type=int, default=3, help="keys per listing (default 3)")
    BODIES["keys"] = listing(max(0, parser.parse_args().keys)).encode()
    asyncio.run(serve())
