"""Ages on the command line: ``90d``, ``12h``, ``30m``, ``45s`` or plain seconds (``2.5`` too),
for ``--older-than``, ``--grace``, ``--prune-after``, ``--max-age``, ``--verify-timeout`` and
``--hook-timeout``; and back to text, for the resume command and the audit's policy.

May import: the standard library only. It sits at the bottom of the CLI beside ``common``
and ``output``, so every command may import it.
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta

_AGE = re.compile(r"(\d+(?:\.\d+)?)([dhms]?)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}


def parse_age(text: str, *, zero: bool = False) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or seconds; 0 only when ``zero`` (argparse's
    ArgumentTypeError otherwise, so the message names the option)."""
    found = _AGE.fullmatch(text.strip())
    if found is None or (float(found[1]) == 0 and not zero):
        least = "" if zero else "positive "
        raise argparse.ArgumentTypeError(
            f"expected a {least}age such as 90d, 12h, 30m, 45s or seconds, not {text!r}"
        )
    return timedelta(seconds=float(found[1]) * _UNITS[found[2]])


def age_or_zero(text: str) -> timedelta:
    """``parse_age`` allowing 0 (``--grace 0``)."""
    return parse_age(text, zero=True)


def age_flag(age: timedelta) -> str:
    """The shortest exact text ``parse_age`` reads back as ``age``: ``90d``, ``36h``, ``45s``,
    ``2.5s``."""
    seconds = age.total_seconds()
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:.6f}".rstrip("0") + "s"
