"""Python processes forked from a pre-imported interpreter: a fork server for the tests.

A test of the command line, a fleet worker or a documented example needs a real process: its
own memory, exit status, pipes and signals. It does not need a fresh interpreter's start-up:
importing aiohttp, attrs and cattrs again costs about half a CPU-second here, for some 150
processes a run of the suite. So each test process starts this file once as a server (a new
interpreter that imports the library and its dependencies, then waits), and ``Popen`` and
``run``, which take ``subprocess``'s arguments, ask it to fork a child for
``[sys.executable, ("-u"), ("-m" MOD | "-c" CODE | SCRIPT), ARGS...]``. The child gets the
caller's three standard descriptors, environment, working directory and session, and runs the
target as ``python`` would: ``__main__``, ``sys.argv``, ``sys.path`` (the target's directory,
``PYTHONPATH``, the interpreter's own), fresh standard streams, the signals the caller ignores
or blocks (as ``exec`` passes them on), and the exit status (an
uncaught exception is 1, an uncaught KeyboardInterrupt dies of SIGINT). The server reports
its pid at once and its wait status when it ends; ``Popen.wait``, ``poll``, ``communicate``,
``send_signal`` and ``kill`` work as they do on a child of one's own.

Anything else starts a real process, as ``subprocess`` does: interpreter options, another
program, a shell, ``pass_fds``, a variable read only at start-up, a ``PYTHONPATH`` that would
shadow a pre-imported package, or no server. The server starts from a clean interpreter, so
nothing a test set in its own process (providers, patches, handlers) reaches the child.
``tests/test_forked.py`` runs one probe both ways and compares what it sees.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import json
import os
import runpy
import select
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: What the server imports before it forks: what the CLI, the fake server, the fleet
#: workers and the examples import.
PRELOAD = (
    "cldprov_async",
    "cldprov_async._cli",
    "cldprov_async.testing",
    "aiohttp.web",
    "redis.asyncio",
    "asyncio",
    "json",
    "logging",
)

#: Variables a Python interpreter reads only when it starts: a child that sets them gets one.
_STARTUP_ONLY = (
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "PYTHONDEVMODE",
    "PYTHONFAULTHANDLER",
    "PYTHONTRACEMALLOC",
    "PYTHONWARNINGS",
    "PYTHONIOENCODING",
    "PYTHONSAFEPATH",
    "PYTHONINSPECT",
    "PYTHONHOME",
    "PYTHONVERBOSE",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONINTMAXSTRDIGITS",
    "PYTHONMALLOC",
)


# --- what python would run -----------------------------------------------------------------------
def target_of(args: Any) -> dict[str, Any] | None:
    """``python ARGS`` as a module, code or script to run and its argv; None for anything else."""
    if isinstance(args, (str, bytes, os.PathLike)) or not args:
        return None
    argv = [os.fspath(a) for a in args]
    if any(not isinstance(a, str) for a in argv) or argv[0] != sys.executable:
        return None
    rest, unbuffered = argv[1:], False
    while rest and rest[0] == "-u":
        rest, unbuffered = rest[1:], True
    if len(rest) >= 2 and rest[0] in ("-m", "-c"):
        kind = "module" if rest[0] == "-m" else "code"
        return {"kind": kind, "what": rest[1], "argv": [rest[0], *rest[2:]], "u": unbuffered}
    if rest and not rest[0].startswith("-"):
        return {"kind": "script", "what": rest[0], "argv": rest, "u": unbuffered}
    return None


# --- the server and its children ----------------------------------------------------------------
def _stdio_errors(environ: Mapping[str, str]) -> str:
    """stdin's and stdout's error handler as Python chooses it: ``surrogateescape`` in UTF-8
    mode, the C and POSIX locales and the locales Python coerces C to."""
    if environ.get("PYTHONUTF8") == "1":
        return "surrogateescape"
    ctype = environ.get("LC_ALL") or environ.get("LC_CTYPE") or environ.get("LANG") or "C"
    legacy = ("C", "POSIX", "C.UTF-8", "C.utf8", "UTF-8")
    return "surrogateescape" if ctype in legacy else "strict"


def _std_streams(unbuffered: bool, errors: str) -> None:
    """Standard streams over descriptors 0-2, as a new interpreter opens them."""

    def writer(fd: int, errors: str, line: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "w", closefd=False)
        binary: Any = raw if unbuffered else io.BufferedWriter(raw)
        return io.TextIOWrapper(
            binary, encoding="utf-8", errors=errors, line_buffering=line, write_through=unbuffered
        )

    reader = io.BufferedReader(io.FileIO(0, "r", closefd=False))
    sys.stdin = io.TextIOWrapper(reader, encoding="utf-8", errors=errors)
    sys.stdout = writer(1, errors, os.isatty(1))
    sys.stderr = writer(2, "backslashreplace", True)
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr  # type: ignore[misc]


def _signals(ignored: list[int], blocked: list[int]) -> None:
    """Signal dispositions as ``exec`` leaves them to a new interpreter (what the caller
    ignores stays ignored, the rest is default) and as Python then sets them up."""
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        handler: Any = signal.SIG_IGN if sig in ignored else signal.SIG_DFL
        if sig == signal.SIGINT and handler == signal.SIG_DFL:
            handler = signal.default_int_handler
        elif sig in (signal.SIGPIPE, signal.SIGXFSZ):
            handler = signal.SIG_IGN
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _run(request: dict[str, Any], base_path: list[str]) -> int:
    """In the forked child, descriptors in place: run as ``python`` would; its exit status."""
    _signals(request["ignored"], request["blocked"])
    if request["session"]:
        os.setsid()
    environ: dict[str, str] = request["env"]
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(environ)
    sys.dont_write_bytecode = bool(environ.get("PYTHONDONTWRITEBYTECODE"))
    _std_streams(request["u"] or bool(environ.get("PYTHONUNBUFFERED")), _stdio_errors(environ))
    kind, what = request["kind"], request["what"]
    first = {"module": os.getcwd(), "script": os.path.dirname(os.path.abspath(what))}.get(kind, "")
    extra = [os.path.abspath(p) for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [first, *extra, *base_path]
    sys.argv = list(request["argv"])
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    try:
        if kind == "module":
            runpy._run_module_as_main(what)  # type: ignore[attr-defined]
        elif kind == "script":
            runpy.run_path(what, run_name="__main__")
        else:
            exec(compile(what, "<string>", "exec"), main.__dict__)
        status = 0
    except SystemExit as stop:
        status = _exit_status(stop.code)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        _finish(0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        status = 130
    except BaseException:
        sys.excepthook(*sys.exc_info())
        status = 1
    return _finish(status)


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _finish(status: int) -> int:
    """Interpreter shutdown: non-daemon threads, atexit, then the streams (120 if stdout fails)."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout and status == 0:
                status = 120
    return status


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One request: an 8-byte length, JSON, and the three descriptors with its first bytes."""
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    size = int(data[:8])
    body = data[8:]
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise EOFError("the request was cut short")
        body += chunk
    return json.loads(body), list(fds)


def _fork(conn: socket.socket, base_path: list[str]) -> tuple[int, int] | None:
    """Fork one child for the request on ``conn``: its pid and a pidfd, after the pid is sent."""
    try:
        request, fds = _receive(conn)
    except (OSError, EOFError, ValueError):
        return None
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            for number, fd in enumerate(fds):
                os.dup2(fd, number)
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            status = _run(request, base_path)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"{pid}\n".encode())
    return pid, os.pidfd_open(pid)


def serve(path: str) -> None:
    """The server: import, listen at ``path``, fork on request, report each child's end; stop
    when the test process that started it closes our stdin."""
    for name in PRELOAD:
        importlib.import_module(name)
    base_path = sys.path[1:]  # without this file's directory
    import gc

    gc.freeze()  # what the children share stays out of their collections (and copies)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    waiting: dict[int, tuple[int, socket.socket]] = {}
    with selectors.DefaultSelector() as chosen:
        chosen.register(listener, selectors.EVENT_READ)
        chosen.register(sys.stdin, selectors.EVENT_READ)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while True:
            for key, _ in chosen.select():
                if key.fileobj is sys.stdin:
                    if not os.read(0, 1024):
                        return
                elif key.fileobj is listener:
                    conn, _ = listener.accept()
                    started = _fork(conn, base_path)
                    if started is None:
                        conn.close()
                        continue
                    pid, pidfd = started
                    waiting[pidfd] = (pid, conn)
                    chosen.register(pidfd, selectors.EVENT_READ)
                else:
                    pidfd = key.fd
                    pid, conn = waiting.pop(pidfd)
                    chosen.unregister(pidfd)
                    os.close(pidfd)
                    _, status = os.waitpid(pid, 0)
                    with contextlib.suppress(OSError):  # the test process went first
                        conn.sendall(f"{status}\n".encode())
                    conn.close()


# --- the test side ------------------------------------------------------------------------------
_lock = threading.Lock()
_server: tuple[subprocess.Popen[bytes], str] | None = None


def _server_path() -> str | None:
    """The server's socket, started on first use (None if it cannot start)."""
    global _server
    with _lock:
        if _server is None or _server[0].poll() is not None:
            if _server is not None:  # it died: its socket goes with it
                _remove(_server[1])
            path = os.path.join(tempfile.mkdtemp(prefix="forked-"), "server.sock")
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            proc = subprocess.Popen(
                [sys.executable, __file__, path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                cwd=Path(__file__).parent,
            )
            assert proc.stdout is not None
            if proc.stdout.readline() != b"ready\n":
                proc.kill()
                proc.wait()
                _remove(path)
                return None
            _server = (proc, path)
            atexit.register(_stop, proc, path)
        return _server[1]


def _remove(path: str) -> None:
    """The server's socket and its directory."""
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))


def _stop(proc: subprocess.Popen[bytes], path: str) -> None:
    """At this process's exit: the server's stdin closes, it stops; wait for it (and so count
    its CPU time, its children's included, as this process's children's), then remove its
    socket's directory."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    _remove(path)


def _shadows(environ: Mapping[str, str]) -> bool:
    """Would ``PYTHONPATH`` find another copy of a package the server has imported?"""
    for entry in filter(None, environ.get("PYTHONPATH", "").split(os.pathsep)):
        for name in {p.split(".")[0] for p in PRELOAD}:
            here = Path(entry, name)
            module = sys.modules.get(name) or importlib.import_module(name)
            origin = Path(module.__file__ or "").resolve().parent
            if here.exists() and here.resolve() != origin:
                return True
    return False


def _readline(conn: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            raise ChildProcessError("the fork server went away")
        line += byte
    return line


class Popen(subprocess.Popen[Any]):
    """``subprocess.Popen`` whose ``python`` commands are forked by the server."""

    _forked: socket.socket | None = None

    def _execute_child(
        self,
        args: Any,
        executable: Any,
        preexec_fn: Any,
        close_fds: bool,
        pass_fds: Sequence[int],
        cwd: Any,
        env: Mapping[str, str] | None,
        startupinfo: Any,
        creationflags: int,
        shell: bool,
        p2cread: int,
        p2cwrite: int,
        c2pread: int,
        c2pwrite: int,
        errread: int,
        errwrite: int,
        restore_signals: bool,
        gid: Any,
        gids: Any,
        uid: Any,
        umask: int,
        start_new_session: bool,
        process_group: int | None,
    ) -> None:
        target = target_of(args)
        environ = dict(os.environ if env is None else env)
        plain = not (shell or executable or preexec_fn or pass_fds or gids or umask >= 0)
        plain = plain and gid is None and uid is None and process_group in (None, -1)
        plain = plain and not any(name in environ for name in _STARTUP_ONLY)
        path = _server_path() if target is not None and plain and not _shadows(environ) else None
        if target is None or path is None:
            super()._execute_child(  # type: ignore[misc]
                args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo,
                creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                restore_signals, gid, gids, uid, umask, start_new_session, process_group,
            )  # fmt: skip
            return
        request = {**target, "env": environ, "session": start_new_session}
        restored = (signal.SIGPIPE, signal.SIGXFSZ) if restore_signals else ()
        request["ignored"] = [
            int(sig)
            for sig in signal.valid_signals()
            if sig not in (signal.SIGKILL, signal.SIGSTOP, *restored)
            and signal.getsignal(sig) == signal.SIG_IGN
        ]
        request["blocked"] = [int(sig) for sig in signal.pthread_sigmask(signal.SIG_BLOCK, [])]
        request["cwd"] = os.path.abspath(os.fspath(cwd) if cwd is not None else os.getcwd())
        body = json.dumps(request).encode()
        fds = [p2cread, c2pwrite, errwrite]
        fds = [fd if fd != -1 else number for number, fd in enumerate(fds)]
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(path)
            socket.send_fds(conn, [b"%08d" % len(body) + body[: 1 << 15]], fds)
            conn.sendall(body[1 << 15 :])
            self.pid = int(_readline(conn))
        except BaseException:
            conn.close()
            raise
        finally:
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)  # type: ignore[attr-defined]
        self._child_created = True
        self._forked = conn

    def _try_wait(self, wait_flags: int) -> tuple[int, int]:
        conn = self._forked
        if conn is None:
            return super()._try_wait(wait_flags)  # type: ignore[misc,no-any-return]
        if wait_flags & os.WNOHANG and not select.select([conn], [], [], 0)[0]:
            return (0, 0)
        status = int(_readline(conn))
        conn.close()
        return (self.pid, status)

    def _internal_poll(self, _deadstate: int | None = None, **_: Any) -> int | None:
        if self._forked is None:
            return super()._internal_poll(_deadstate=_deadstate)  # type: ignore[misc,no-any-return]
        if self.returncode is None and self._waitpid_lock.acquire(False):  # type: ignore[attr-defined]
            try:
                if self.returncode is None:
                    pid, status = self._try_wait(os.WNOHANG)
                    if pid == self.pid:
                        self._handle_exitstatus(status)  # type: ignore[attr-defined]
            except OSError:
                if _deadstate is not None:
                    self.returncode = _deadstate
            finally:
                self._waitpid_lock.release()  # type: ignore[attr-defined]
        return self.returncode


def run(
    args: Sequence[Any],
    *,
    input: Any = None,
    capture_output: bool = False,
    timeout: float | None = None,
    check: bool = False,
    **kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` over ``Popen`` above."""
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    with Popen(args, **kwargs) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        status = proc.poll()
        assert status is not None
    if check and status:
        raise subprocess.CalledProcessError(status, proc.args, out, err)
    return subprocess.CompletedProcess(proc.args, status, out, err)


if __name__ == "__main__":
    serve(sys.argv[1])
