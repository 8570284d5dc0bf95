"""``ShellHook``: a deploy hook, the shell command that hands a new key to its consumers.

Modelled on certbot's ``--deploy-hook``: run through the shell once per environment whose
new key is handed off, after verification and before any older key retires. The hook gets
one JSON object on stdin (``sub_account_id``, ``cloud_name``, ``api_key``, ``api_secret``,
``name``, ``created_at``) and ``CLDPROV_SUB_ACCOUNT_ID``, ``CLDPROV_CLOUD_NAME``,
``CLDPROV_API_KEY`` in its environment, which is ours minus the provisioning credentials;
the secret is never in its arguments or environment. Exit status 0 means delivered.

It runs in a process group of its own, so a timeout kills all it started, and a signal to
the run reaches it only through ``send_signal`` (the CLI passes SIGTERM/SIGINT on). Its
stdout is discarded (it never reaches ours); the last lines of its stderr, secrets masked,
explain a failure. A failed hand-off leaves the key pending and is retried by the next run
with the same key: hooks must be idempotent.

Imports: models, errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Iterable, Mapping
from datetime import UTC

from .errors import HandOffError
from .models import AccessKey, ProductEnvironment

#: What the hook's environment never inherits (besides any variable holding a hidden value):
#: the provisioning credentials, and the Redis URL of the budget and lock (it may hold a
#: password).
CREDENTIAL_VARIABLES = ("CLOUDINARY_ACCOUNT_URL", "CLDPROV_RATE_LIMIT_URL")
#: The failure reason keeps this much of the hook's stderr.
TAIL_LINES, TAIL_BYTES = 5, 1024
_KEEP = 64 * 1024  # stderr bytes held while the hook runs
_MASK = "********"
_STOP_GRACE = 5.0  # seconds a signalled hook gets before its group is killed


class ShellHook:
    """A deploy hook usable as ``deliver=`` (``await hook(key, environment)``).

    Args:
        command: run with ``/bin/sh -c``; it reads the JSON object from stdin.
        timeout: seconds the hook may run; then its whole process group is killed.
        environ: the environment it inherits (``os.environ`` by default), minus
            ``CLOUDINARY_ACCOUNT_URL``, ``CLDPROV_RATE_LIMIT_URL`` and any variable whose
            value contains a ``hide`` value.
        hide: values never passed to the hook's environment and masked in its stderr (the
            provisioning secret: ``client.deploy_hook()`` passes it).

    Attributes:
        command: the shell command.
        timeout: seconds the hook may run.

    Raises:
        ValueError: an empty command or a timeout that is not a positive number.
    """

    def __init__(
        self,
        command: str,
        *,
        timeout: float = 60.0,
        environ: Mapping[str, str] | None = None,
        hide: Iterable[str] = (),
    ) -> None:
        if not isinstance(command, str) or not command.strip():
            raise ValueError("command must be a non-empty shell command")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.command = command
        self.timeout = float(timeout)
        self._hide = tuple(h for h in hide if h)
        base = os.environ if environ is None else environ
        self._environ = {
            name: value
            for name, value in base.items()
            if name not in CREDENTIAL_VARIABLES and not any(h in value for h in self._hide)
        }
        self._running: set[asyncio.subprocess.Process] = set()
        #: The run's signal once it came, and the hooks it reached.
        self._signal: int | None = None
        self._told: set[asyncio.subprocess.Process] = set()

    def __repr__(self) -> str:
        return f"ShellHook({self.command!r}, timeout={self.timeout})"

    @property
    def running(self) -> int:
        """How many hooks run now."""
        return len(self._running)

    def send_signal(self, signum: int) -> None:
        """Pass a signal to the process group of every hook running now (the CLI passes on
        the SIGTERM or SIGINT that stops its run), and mark the run as stopping.

        Args:
            signum: The signal's number (``signal.SIGTERM``).
        """
        self._signal = signum
        for proc in list(self._running):
            self._tell(proc, signum)

    def _tell(self, proc: asyncio.subprocess.Process, signum: int) -> None:
        self._told.add(proc)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)

    async def __call__(self, key: AccessKey, environment: ProductEnvironment) -> None:
        """Run the hook for ``key``; return when it exited 0.

        Raises:
            HandOffError: it exited non-zero, was killed, or ran past the timeout.
        """
        secret = key.api_secret or ""
        payload = json.dumps(
            {
                "sub_account_id": environment.id,
                "cloud_name": environment.cloud_name,
                "api_key": key.api_key,
                "api_secret": key.api_secret,
                "name": key.name,
                "created_at": key.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            }
        ).encode()
        env = {
            **self._environ,
            "CLDPROV_SUB_ACCOUNT_ID": environment.id,
            "CLDPROV_CLOUD_NAME": environment.cloud_name,
            "CLDPROV_API_KEY": key.api_key,
        }
        # Started whole even if the run stops meanwhile (a cancelled start would kill the shell
        # alone, leaving its children), and then stopped as a running hook is.
        starting = asyncio.ensure_future(
            asyncio.create_subprocess_shell(
                self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: killed whole, signalled by us
            )
        )
        cancelled: asyncio.CancelledError | None = None
        try:
            proc = await asyncio.shield(starting)
        except asyncio.CancelledError as exc:
            cancelled = exc
            try:
                proc = await starting
            except Exception:
                raise exc from None  # it never started: the run stops all the same
        self._running.add(proc)
        if self._signal is not None:  # the run's signal came while the hook started
            self._tell(proc, self._signal)
        held = bytearray()
        reader = asyncio.create_task(_collect(proc, held))
        timed_out = False
        try:
            if cancelled is not None:
                raise cancelled
            await _feed(proc, payload)
            try:
                async with asyncio.timeout(self.timeout):
                    status = await proc.wait()
            except TimeoutError:
                timed_out = True
                _kill(proc)
                status = await proc.wait()
        except asyncio.CancelledError:
            # The run stops: the hook got the run's signal (else SIGTERM now) and a moment to
            # exit by itself; then what is left of its group is killed.
            if proc not in self._told:
                self._tell(proc, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_STOP_GRACE):
                    await asyncio.shield(proc.wait())
            _kill(proc)
            raise
        finally:
            self._running.discard(proc)
            self._told.discard(proc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):  # a child may hold stderr open
                    await asyncio.shield(reader)
            reader.cancel()
        if status == 0 and not timed_out:
            return
        tail = self._tail(held, secret)
        if timed_out:
            what = f"timed out after {self.timeout:g}s (its process group was killed)"
        elif status < 0:
            what = f"was killed by signal {-status}"
        else:
            what = f"exited with status {status}"
        raise HandOffError(
            f"deploy hook {what}" + (f"; stderr: {tail}" if tail else ""),
            exit_status=status,
            timed_out=timed_out,
            stderr_tail=tail,
        )

    def _tail(self, held: bytearray, secret: str) -> str:
        text = held.decode("utf-8", "replace")
        for hidden in (secret, *self._hide):
            if hidden:
                text = text.replace(hidden, _MASK)
        lines = [line.strip() for line in text.splitlines() if line.strip()][-TAIL_LINES:]
        joined = " | ".join(lines)
        return joined[-TAIL_BYTES:]


async def _feed(proc: asyncio.subprocess.Process, payload: bytes) -> None:
    """Write the JSON object to the hook's stdin and close it (a hook may not read it)."""
    stdin = proc.stdin
    if stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(payload + b"\n")
        await stdin.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.close()


async def _collect(proc: asyncio.subprocess.Process, held: bytearray) -> None:
    stream = proc.stderr
    if stream is None:
        return
    while chunk := await stream.read(4096):
        held += chunk
        if len(held) > _KEEP:
            del held[: len(held) - _KEEP]


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
