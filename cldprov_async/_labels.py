"""The lifecycle's labels in key names: ``RUN@pending``, ``RUN@current``, ``BASE@retired``.

One small pure module owns their format and parse, so every reader (the decision, the
engine, an audit, a cache) splits a name the same way and ``str(parse_name(n)) == n``.
Only an exact label after the last ``@`` counts; anything else is a hand-made name.

Imports: nothing from the package (the bottom layer).
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Final, Literal

from attrs import frozen

Label = Literal["pending", "current", "retired"]
_LABELS: Final[dict[str, Label]] = {
    "pending": "pending",
    "current": "current",
    "retired": "retired",
}
SEPARATOR: Final = "@"
_RETIRED_TAG: Final = "retired-"


# -- names and labels --------------------------------------------------------------------------


@frozen
class KeyName:
    """A key's name split into its ``base`` and its lifecycle ``label`` (None: hand-made).

    ``tag`` is what follows ``retired-`` in ``BASE@retired-TAG`` (the api_key of a retired
    key whose plain retired name was taken). ``str()`` gives the name back exactly.
    """

    base: str
    label: Label | None = None
    tag: str = ""

    def __str__(self) -> str:
        if self.label is None:
            return self.base
        if self.tag:
            return f"{self.base}{SEPARATOR}{_RETIRED_TAG}{self.tag}"
        return f"{self.base}{SEPARATOR}{self.label}"


@functools.lru_cache(maxsize=4096)
def parse_name(name: str) -> KeyName:
    """Split a key name; only an exact known label after the last ``@`` counts as one."""
    base, sep, tail = name.rpartition(SEPARATOR)
    if not sep or not base:
        return KeyName(name)
    label = _LABELS.get(tail)
    if label is not None:
        return KeyName(base, label)
    if tail.startswith(_RETIRED_TAG) and len(tail) > len(_RETIRED_TAG):
        return KeyName(base, "retired", tail[len(_RETIRED_TAG) :])
    return KeyName(name)


def check_run_name(name: object, param: str = "name") -> str:
    """A lifecycle run's name: a non-empty str without ``@`` (the labels' separator)."""
    if not isinstance(name, str):
        raise TypeError(f"{param} must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError(f"{param} must not be empty")
    if SEPARATOR in name:
        raise ValueError(f"{param} must not contain {SEPARATOR!r}: it separates the labels")
    return name


def pending_name(run: str) -> str:
    """The name a run gives the key it makes: ``RUN@pending``."""
    return str(KeyName(run, "pending"))


def current_name(key_name: str) -> str:
    """The name a handed-off key takes: its base with the ``current`` label."""
    return str(KeyName(parse_name(key_name).base, "current"))


def retired_name(name: str, api_key: str, taken: Collection[str] = ()) -> str:
    """The name a key a rotation retires takes: ``BASE@retired``, or ``BASE@retired-API_KEY``
    when that one is in ``taken``. An unnamed key's base is its api_key."""
    base = parse_name(name).base if name else api_key
    plain = str(KeyName(base, "retired"))
    return plain if plain not in taken else str(KeyName(base, "retired", api_key))
