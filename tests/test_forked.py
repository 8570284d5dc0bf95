"""The suite's forked Python processes (``tests/forked.py``) behave as real ``python`` ones.

One probe reports what a program can see of its interpreter; it runs both ways (after
importing what the fork server imports) and the two reports must be equal. Exit statuses,
signals and descriptors are checked on their own.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import forked
import pytest

PROBE = r"""
import asyncio, atexit, importlib, json, logging, os, signal, sys, warnings

# What the fork server imports, so both children have the same modules' import-time effects
# (aiohttp.web adds a warnings filter, for one).
for name in PRELOAD:
    importlib.import_module(name)

atexit.register(lambda: print("atexit ran", file=sys.stderr))
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
logging.getLogger("probe").info("logged")
warnings.warn("a deprecation", DeprecationWarning)


async def main():
    return asyncio.get_running_loop() is not None


seen = {
    "argv": sys.argv[1:],
    "argv0": os.path.basename(sys.argv[0]),
    "main_file": os.path.basename(getattr(sys.modules["__main__"], "__file__", "-")),
    "name": __name__,
    "path": sys.path,
    "cwd": os.getcwd(),
    "env": os.environ.get("PROBE_VALUE"),
    "pythonpath": os.environ.get("PYTHONPATH"),
    "stdin": sys.stdin.read(),
    "streams": [(s.encoding, s.errors, s.line_buffering) for s in (sys.stdout, sys.stderr)],
    "signals": {
        name: repr(signal.getsignal(getattr(signal, name)))
        for name in ("SIGINT", "SIGTERM", "SIGPIPE", "SIGCHLD", "SIGXFSZ")
    },
    "wakeup_fd": signal.set_wakeup_fd(-1),
    "warnings": [(a, c.__name__, getattr(m, "pattern", m)) for a, _, c, m, _ in warnings.filters],
    "root_handlers": len(logging.root.handlers),
    "loop": asyncio.run(main()),
    "bytecode": sys.dont_write_bytecode,
}
print(json.dumps(seen, sort_keys=True))
sys.exit(int(sys.argv[1]))
"""


def _both(args: list[str], **kw: Any) -> tuple[subprocess.CompletedProcess[str], ...]:
    real = subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)
    fork = forked.run(args, capture_output=True, text=True, timeout=60, **kw)
    return real, fork


@pytest.mark.parametrize(
    ("how", "locale", "ignore"), [("script", "", False), ("-m", "C.UTF-8", False), ("-c", "", True)]
)
def test_a_forked_child_sees_what_a_new_interpreter_sees(
    how: str, locale: str, ignore: bool, tmp_path: Path
) -> None:
    """(With ``ignore``, this process ignores SIGINT and SIGTERM, as a job started in the
    background does, and ``exec`` passes that on; a suite run in the background ignores them
    throughout.)"""
    probe = PROBE.replace("PRELOAD", repr(forked.PRELOAD))
    (tmp_path / "probe.py").write_text(probe)
    env = {"PROBE_VALUE": "here", "PYTHONPATH": str(tmp_path / "lib"), "PATH": os.environ["PATH"]}
    env |= {"LANG": locale} if locale else {}
    target = {"script": [str(tmp_path / "probe.py")], "-c": ["-c", probe], "-m": ["-m", "probe"]}
    args = [sys.executable, *target[how], "3", "more"]
    # This process has handlers, filters and loggers a new interpreter would not.
    logging.getLogger("probe").setLevel(logging.ERROR)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for sig in handlers if ignore else ():
            signal.signal(sig, signal.SIG_IGN)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            real, fork = _both(args, env=env, cwd=tmp_path, input="from stdin")
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert (fork.returncode, real.returncode) == (3, 3)
    assert json.loads(fork.stdout) == json.loads(real.stdout)
    assert json.loads(fork.stdout)["stdin"] == "from stdin"
    sigint = json.loads(fork.stdout)["signals"]["SIGINT"]
    assert ("SIG_IGN" in sigint) is (ignore or handlers[signal.SIGINT] == signal.SIG_IGN), sigint
    assert fork.stderr.splitlines()[0] == "INFO logged"
    assert fork.stderr.splitlines()[-1] == "atexit ran" == real.stderr.splitlines()[-1]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("raise RuntimeError('boom')", 1),
        ("import sys; sys.exit('a message')", 1),
        ("import sys; sys.exit(None)", 0),
        ("raise KeyboardInterrupt", -signal.SIGINT),
        ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", -signal.SIGTERM),
    ],
)
def test_exit_statuses_are_pythons(code: str, status: int) -> None:
    real, fork = _both([sys.executable, "-c", code])
    assert fork.returncode == real.returncode == status
    assert fork.stderr.splitlines()[-1:] == real.stderr.splitlines()[-1:]


def test_a_signal_reaches_the_child_and_its_handlers() -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    with forked.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 7


def test_the_child_keeps_none_of_this_processs_descriptors() -> None:
    """A listening socket closed here is closed: a child holding it would queue connections."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    code = "import time; print('up', flush=True); time.sleep(60)"
    with forked.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == "up\n"
        listener.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        child.kill()


def test_the_child_is_forked_and_other_commands_start_a_real_process() -> None:
    """A forked child has this process's modules already imported (the reason for it all);
    ``-X``, a variable read only at start-up or another program is a real process."""
    code = "import sys; print('aiohttp' in sys.modules)"
    assert forked.run([sys.executable, "-c", code], capture_output=True).stdout == b"True\n"
    real = [
        [sys.executable, "-X", "utf8", "-c", code],
        [sys.executable, "-c", code, "--env"],
        ["sh", "-c", f'{sys.executable} -c "{code}"'],
    ]
    for args in real:
        env = {**os.environ, "PYTHONHASHSEED": "1"} if "--env" in args else None
        done = forked.run(args, capture_output=True, env=env, timeout=60)
        assert done.stdout == b"False\n", args


def test_the_server_stops_with_its_test_process_and_leaves_no_socket() -> None:
    """A test process that used the server: at its exit the server is gone, and so is the
    directory of its socket (a run of the suite made dozens)."""
    here = Path(__file__).parent
    code = (
        "import os, sys, forked\n"
        "forked.run([sys.executable, '-c', 'pass'], check=True)\n"
        "pid, path = forked._server[0].pid, forked._server[1]\n"
        "assert os.path.exists(path)\n"
        "print(pid, path)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=here, timeout=60
    )
    assert done.returncode == 0, done.stderr
    pid, path = done.stdout.split()
    assert not Path(path).parent.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
