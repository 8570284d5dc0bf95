"""The ``cldprov-async`` command line (also ``python -m cldprov_async``), on argparse.

Exit codes: 0 success, 1 an API error, a failed rotation or an ``audit --max-age`` finding,
2 a usage or configuration error, 3 the account's rotation lock is held by another run, 130
interrupted. Data goes to stdout (a table, or one JSON document with ``--json``); progress,
summaries and errors go to stderr. Secrets of existing keys are masked unless
``--show-secrets``; a newly created key's secret is always printed, once, because the API
never shows it again. The provisioning secret is never printed.

This module holds the entry point ``main`` (``[project.scripts]`` and ``__main__`` name it)
and re-exports ``build_parser``. The package, top to bottom: ``__init__`` -> ``parser`` ->
the commands (``keys``, ``rotate``, ``audit``, ``demo``) -> ``common`` and ``output``; a
module imports only those below it. This one may import any of them, the standard library
and the rest of cldprov_async (errors); nothing else in cldprov_async imports the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from ..errors import CldProvisioningError
from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, PROG, Handler
from .output import one_line
from .parser import build_parser

__all__ = ["build_parser", "main"]


def _logging(verbosity: int) -> logging.Handler:
    """-v shows the library's retries; without it its warnings stay quiet (we report them),
    except the key cache's: nothing else says that a run costs listings because of it."""
    logger = logging.getLogger("cldprov_async")
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    if verbosity:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.setLevel(logging.INFO if verbosity == 1 else logging.DEBUG)
    else:
        handler.setFormatter(logging.Formatter(f"{PROG}: warning: %(message)s"))
        handler.addFilter(lambda record: record.name == "cldprov_async.keycache")
        handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    return handler


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: keep main() returning
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Handler = args.handler
    log_handler = _logging(args.verbose)
    try:
        return asyncio.run(handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `... | head`: stop quietly, as the shell tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except CldProvisioningError as exc:
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except (ValueError, TypeError) as exc:
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        logging.getLogger("cldprov_async").removeHandler(log_handler)
