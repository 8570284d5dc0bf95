"""``python -m cldprov_async.testing``: the fake server as a process (see ``_cli``).

Imports only ``_cli`` from the package.
"""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
