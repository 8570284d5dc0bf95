"""The tests' virtual-time loop (tests/virtual_time.py) skips idle waits and nothing else."""

from __future__ import annotations

import asyncio
import time

import virtual_time


def test_an_hour_of_sleeping_is_skipped_and_the_wall_clock_moves_with_it() -> None:
    async def main() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        clock = virtual_time.clock()
        t0, w0 = loop.time(), clock()
        await asyncio.sleep(3600)
        await clock.sleep(60)
        return loop.time() - t0, clock() - w0, time.time() - w0

    real_start = time.monotonic()
    loop_moved, wall_moved, real_wall_moved = virtual_time.run(main)
    assert loop_moved >= 3660 and abs(wall_moved - loop_moved) < 0.5
    assert real_wall_moved < 600  # the machine's clock did not live through the hour
    assert time.monotonic() - real_start < 600


def test_io_still_wakes_the_loop_before_any_jump() -> None:
    async def main() -> tuple[bytes, float]:
        loop = asyncio.get_running_loop()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        t0 = loop.time()
        # A far timer pending meanwhile: the answer must come before the loop jumps to it.
        far = loop.call_later(3600, lambda: None)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        line = await reader.readline()
        moved = loop.time() - t0
        far.cancel()
        writer.close()
        server.close()
        await server.wait_closed()
        return line, moved

    line, moved = virtual_time.run(main)
    assert line == b"ping\n"
    assert moved < 3600


def test_a_stalled_loop_runs_each_timers_consequences_before_the_next_timer() -> None:
    """A 0.01 s sleep and a 0.05 s deadline, and the loop stalls 0.2 s (a preemption on a
    loaded machine): the sleeper wakes and finishes before the deadline's timer runs, as it
    would on an idle machine; the clock never goes back."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        events: list[str] = []
        seen: list[float] = []

        async def sleeper() -> None:
            await asyncio.sleep(0.01)
            events.append("woke")

        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)  # the sleeper's timer is set
        loop.call_later(0.05, lambda: events.append("deadline" if not task.done() else "late"))
        seen.append(loop.time())
        time.sleep(0.2)  # noqa: ASYNC251 (the stall: both timers are due in real time)
        seen.append(loop.time())
        await task
        await asyncio.sleep(0.1)
        seen.append(loop.time())
        assert seen == sorted(seen)
        return events

    assert virtual_time.run(main) == ["woke", "late"]
