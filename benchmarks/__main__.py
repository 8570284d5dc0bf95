"""The one way in: ``python -m benchmarks COMMAND [options]`` (``--help`` lists the commands).

Each command is a runner module's ``main(argv)``; a new benchmark is one more line in
``COMMANDS``. Child processes the runners start (the worker, the canned server, a counted
client) are internal, not commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: command -> (module, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "benchmarks.run",
        "the full run (~25 min on 2 cores): throughput, latency, CPU, rate limits, rotation,"
        " fleet, instructions; writes RESULTS.md, results.json, results.png",
    ),
    "instructions": (
        "benchmarks.instructions",
        "instructions per call under valgrind, against the raw and the plain aiohttp loops",
    ),
    "parts": (
        "benchmarks.instruction_parts",
        "instructions of the request path's pieces, each alone (to price a change)",
    ),
    "micro": ("benchmarks.micro", "CPU per call layer by layer: the pieces and a ladder of loops"),
    "profile": ("benchmarks.profile", "one client's loop under pyinstrument or cProfile"),
    "fleet": ("benchmarks.fleet", "processes sharing one budget through Redis (in `run` too)"),
    "fleet-ha": (
        "benchmarks.fleet_ha",
        "the shared budget on Sentinel and Cluster, through failovers; writes FLEET_HA.md",
    ),
    "scale": (
        "benchmarks.scale",
        "rotation at account scale (5,000 environments), killed and resumed; writes SCALE.md",
    ),
    "key-cache": (
        "benchmarks.key_cache",
        "what daily runs and audits cost in requests with the key cache; writes KEY_CACHE.md",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    listing = "\n".join(f"  {name:13} {about}" for name, (_, about) in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of cldprov_async. `python -m benchmarks COMMAND --help` for"
        " a command's options.",
        epilog=f"commands:\n{listing}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    if not argv or argv[0] in ("-h", "--help"):
        p.print_help()
        return 0 if argv else 2
    args = p.parse_args(argv[:1])
    module = importlib.import_module(COMMANDS[args.command][0])
    code: int = module.main(argv[1:])
    return code


if __name__ == "__main__":
    raise SystemExit(main())
