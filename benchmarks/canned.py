"""A canned HTTP/1.1 server: the same answer to every request, as fast as Python can send it.

    python -m benchmarks.canned             # prints CANNED_URL=http://127.0.0.1:PORT
    python -m benchmarks.canned --keys 100  # listings of 100 keys instead of 3; SIGTERM stops it

For attributing a client's CPU (``benchmarks.micro``), not for benchmarks of behaviour: with the
fake server each answer costs about as much CPU as the client's request, so on 2 cores the client
often waits on the server, and how much CPU it burns per call then depends on that pace (fewer
answers per event-loop turn, more system calls each). This server answers in a few microseconds,
so a client is always the bottleneck and its CPU per call is its own. GET gets a 3-key listing
(``--keys N``: N keys), anything else one key; keep-alive; no routing, no auth, no state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

_KEY = {
    "name": "key-1",
    "api_key": "123456789012345",
    "api_secret": "abcdefghijklmnopqrstuvwxyz0",
    "created_at": "2026-11-26T14:58:30Z",
    "updated_at": "2026-11-26T14:58:30Z",
    "enabled": True,
}
ONE_KEY = json.dumps(_KEY)


def listing(keys: int) -> str:
    """``keys`` keys, every second one named apart (3 keys: key-1, key-2, key-1)."""
    rows = [{**_KEY, "name": "key-2"} if i % 2 else _KEY for i in range(keys)]
    return json.dumps({"access_keys": rows, "total": keys})


def _response(body: str) -> bytes:
    data = body.encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\nServer: canned\r\n\r\n"
    )
    return head.encode() + data


_ANSWERS = {b"GET": _response(listing(3))}
_DEFAULT = _response(ONE_KEY)


class _Canned(asyncio.Protocol):
    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

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
            out.append(_ANSWERS.get(head[: head.find(b" ")], _DEFAULT))
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
    _ANSWERS[b"GET"] = _response(listing(max(0, parser.parse_args().keys)))
    asyncio.run(serve())
