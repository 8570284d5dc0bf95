"""Rendering for every command: aligned tables, JSON documents, secret masking, one-line
errors, and the rotation progress on stderr (a live bar on a terminal, plain lines otherwise).

May import: the standard library and the rest of cldprov_async (errors, models, rotation's
result type). Nothing from the CLI: it sits at the bottom, so every CLI module may import it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO, cast

from .._rotation import RotationResult
from ..errors import CldProvisioningError
from ..models import AccessKey

MASK = "********"


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_due(value: datetime) -> str:
    """When a step falls due, at the server's resolution: the whole second at or after it
    (a strict "older than" falls due a microsecond past its boundary)."""
    if value.microsecond:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return iso(value)


def environments(n: int) -> str:
    return f"{n} product environment{'' if n == 1 else 's'}"


def _secret(value: str | None, show: bool) -> str | None:
    return value if show or value is None else MASK


def one_line(exc: BaseException) -> str:
    """Library errors carry status and server message in str(); others need their type."""
    text = str(exc) if isinstance(exc, CldProvisioningError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def error_json(exc: BaseException | None) -> dict[str, Any] | None:
    if exc is None:
        return None
    status = exc.status_code if isinstance(exc, CldProvisioningError) else None
    return {"type": type(exc).__name__, "status": status, "message": one_line(exc)}


def key_json(key: AccessKey, show: bool) -> dict[str, Any]:
    return {
        "name": key.name,
        "api_key": key.api_key,
        "api_secret": _secret(key.api_secret, show),
        "enabled": key.enabled,
        "dedicated_for": [str(d) for d in key.dedicated_for],
        "created_at": iso(key.created_at),
        "updated_at": iso(key.updated_at),
    }


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def keys_table(keys: Iterable[AccessKey], show: bool | None) -> str:
    """``show=None`` leaves the secret column out (the caller prints the secret itself)."""
    headers = ["NAME", "API_KEY", "ENABLED", "DEDICATED", "CREATED_AT"]
    if show is not None:
        headers.append("API_SECRET")
    rows = []
    for key in keys:
        row = [
            key.name or "-",
            key.api_key,
            "yes" if key.enabled else "no",
            ",".join(key.dedicated_for) or "-",
            iso(key.created_at),
        ]
        if show is not None:
            row.append(_secret(key.api_secret, show) or "-")
        rows.append(row)
    return table(headers, rows)


def print_json(document: object) -> None:
    print(json.dumps(document, indent=2))


def reader_gone(exc: BaseException) -> bool:
    """Whether a write failed because the reading end went away (EPIPE, a closed pipe)."""
    return isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.EPIPE


def silence(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at /dev/null (its reader is gone), so that what is
    still buffered, or written later, goes nowhere instead of failing at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


class SafeStream:
    """stderr for a long run: a write whose reader went away (``2>&1 | head``) is dropped
    instead of raising, so losing the log never stops a rotation half way."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except (OSError, ValueError) as exc:
                self._lost(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except (OSError, ValueError) as exc:
                self._lost(exc)

    def isatty(self) -> bool:
        return not self.gone and self.stream.isatty()

    def _lost(self, exc: BaseException) -> None:
        if isinstance(exc, OSError) and not reader_gone(exc):
            raise exc
        self.gone = True
        silence(self.stream)

    def as_text_io(self) -> TextIO:
        return cast(TextIO, self)


class StatusLine:
    """One line on a terminal, redrawn in place (``redraw``), ended by ``close``."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._drawn = False

    def redraw(self, text: str) -> None:
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class Progress(StatusLine):
    """Rotation progress on stderr: a redrawn bar on a terminal, one plain line otherwise
    (so logs and CI output stay readable)."""

    BAR = 30

    def __init__(self, total: int, stream: TextIO) -> None:
        super().__init__(stream)
        self.total = total
        self.live = stream.isatty()
        self.results: list[RotationResult] = []
        self.started = time.monotonic()

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)

    def start(self) -> None:
        if self.live:
            self._draw()

    def update(self, done: int, total: int, result: RotationResult) -> None:
        self.results.append(result)
        if self.live:
            self._draw()
            return
        if result.ok and result.new_key is not None:
            outcome = f"rotated (new api_key {result.new_key.api_key})"
        else:
            outcome = f"FAILED: {one_line(result.error or Exception('no new key'))}"
        width = len(str(total))
        self.stream.write(f"[{done:>{width}}/{total}] {result.sub_account_id}: {outcome}\n")
        self.stream.flush()

    def _draw(self) -> None:
        done = len(self.results)
        filled = self.BAR * done // max(1, self.total)
        bar = "#" * filled + "-" * (self.BAR - filled)
        elapsed = time.monotonic() - self.started
        self.redraw(f"[{bar}] {done}/{self.total}  failed {self.failed}  {elapsed:5.1f}s")
