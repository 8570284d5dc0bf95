"""The key cache in a file: one JSON document per account and server, mode 0600.

Writes are atomic and safe between processes: under an exclusive ``flock`` on a lock file
beside it, the document is read again, merged with this process's changes (``merge``) and
written to a temporary file in the same directory, which then replaces it (``os.replace``).
A reader never takes the lock: it sees the old document or the new one, never a torn one.
Without ``fcntl`` (Windows) writes are still atomic, but two processes writing at once may
lose one's changes: that costs listings, never a wrong answer.

The blocking work runs in a thread, so the event loop never waits on the disk or the lock.

Imports: nothing from the package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

FORMAT = "cldprov-async key cache"
VERSION = 1

Merge = Callable[[dict[str, object]], dict[str, object]]


class StoreUnreadable(Exception):
    """The store as a whole is not what we write (bad JSON, another format)."""


class StoreUnavailable(Exception):
    """The store could not be reached or written (a disk error, Redis down)."""


def default_directory(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/cldprov-async``, else ``~/.cache/cldprov-async`` (the XDG base
    directory rules: a relative ``XDG_CACHE_HOME`` is ignored)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "cldprov-async"


class FileStore:
    """One account's cache at ``path``; ``server`` and ``account_id`` are written into it
    and checked on reading."""

    def __init__(self, path: Path, *, server: str, account_id: str) -> None:
        self.path = path
        self.where = str(path)
        self._head = {"format": FORMAT, "version": VERSION, "server": server}
        self._head["account_id"] = account_id

    async def load(self, ids: Collection[str]) -> dict[str, object]:
        """Every entry (``ids`` is a hint a file does not need); {} when there is no file."""
        return await asyncio.to_thread(self._read)

    async def save(self, changes: Mapping[str, object], merge: Merge) -> None:
        await asyncio.to_thread(self._write, merge)

    async def close(self) -> None:
        return None

    # -- in a thread -----------------------------------------------------------------------

    def _read(self) -> dict[str, object]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreUnavailable(f"cannot read it: {exc.strerror or exc}") from None
        return self._parse(data)

    def _parse(self, data: bytes) -> dict[str, object]:
        try:
            doc: Any = json.loads(data)
        except ValueError:
            raise StoreUnreadable("not valid JSON") from None
        if not isinstance(doc, dict) or any(doc.get(k) != v for k, v in self._head.items()):
            raise StoreUnreadable("not a key cache of this account and server")
        entries = doc.get("environments")
        if not isinstance(entries, dict):
            raise StoreUnreadable("its environments are not an object")
        return entries

    def _write(self, merge: Merge) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self._locked():
                try:
                    current = self._read()
                except StoreUnreadable:
                    current = {}  # rebuilt from what this process knows
                doc = {**self._head, "environments": merge(current)}
                self._replace(json.dumps(doc, separators=(",", ":")).encode())
        except OSError as exc:
            raise StoreUnavailable(f"cannot write it: {exc.strerror or exc}") from None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd closes, or its holder dies
            yield
        finally:
            os.close(fd)

    def _replace(self, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:  # mkstemp made it 0600
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
