"""``python -m cldprov_async``: the same command line as the ``cldprov-async`` script.

Imports only the CLI.
"""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
