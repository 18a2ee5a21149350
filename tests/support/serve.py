"""A real ``jwkit serve`` subprocess on a free loopback port, for any test folder.

Free ports without a race: :func:`free_port` binds port 0 and releases it, so another process
on this (shared) machine may take the port before ``jwkit serve`` binds it. ``start()`` therefore
(1) counts the server as up only when the ``/healthz`` answer comes from a socket that *our*
process listens on (``/proc``: another server that took the port does not count), and (2) when
the port was picked here and ``jwkit serve`` could not bind it, picks another and starts again.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@contextmanager
def serve_in_thread(app: Any, **config: Any) -> Iterator[str]:
    """``app`` on a real uvicorn in a thread (``config``: more ``uvicorn.Config`` options);
    yields its base URL. The socket listens before the thread starts, so the first request
    can never race the server's start."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def wait_for(probe: Callable[[], Any], timeout: float = 15) -> Any:
    """Poll ``probe`` (a subprocess's state: no event to wait on) until it answers something
    truthy; its last answer at ``timeout`` (an ``AssertionError`` inside counts as ``None``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except AssertionError:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PASSED = frozenset({"JWKIT_FAST_PATH"})


def server_env(
    home: Path, *, admin_token: str, admin_password: str, **extra: str
) -> dict[str, str]:
    """The environment of a server whose state lives in ``home/.jwkit``; no JWKIT_* leaks in
    but ``JWKIT_FAST_PATH`` (so the suite can run with the fast path off, as a CI job does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWKIT_") or k in _PASSED}
    env.update(
        JWKIT_HOME=str(home / ".jwkit"),
        JWKIT_ADMIN_TOKEN=admin_token,
        JWKIT_ADMIN_PASSWORD=admin_password,
        JWKIT_LOG_LEVEL="warning",
    )
    env.update(extra)
    return env


class PortTaken(RuntimeError):
    """Another process bound the picked port before ``jwkit serve`` did."""


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on loopback ``port`` (Linux ``/proc``;
    elsewhere, trust the ``/healthz`` answer)."""
    try:
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return True
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    inodes = {
        f"socket:[{cols[9]}]"
        for cols in (line.split() for line in table)
        if cols[1] in wanted and cols[3] == "0A"  # local address, state LISTEN
    }
    for fd in fds:
        try:
            if os.readlink(fd) in inodes:
                return True
        except OSError:
            continue
    return False


@dataclass
class ServerProcess:
    """One ``jwkit serve`` subprocess; ``start()`` returns once ``/healthz`` answers."""

    home: Path
    env: dict[str, str]
    port: int = 0  # 0: pick a free port, and another one if it is taken before the bind
    proc: subprocess.Popen[bytes] | None = None
    _auto_port: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.port:
            self.port, self._auto_port = free_port(), True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> ServerProcess:
        attempts = 5 if self._auto_port else 1
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / f"server-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jwkit.cli", "serve", "--port", str(self.port)],
                cwd=self.home, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log()
                if self._auto_port and "address already in use" in text.lower():
                    raise PortTaken(self.port)
                raise RuntimeError(f"jwkit serve exited early:\n{text}")
            try:
                answered = httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                answered = False
            if answered and _listens(self.proc.pid, self.port):
                return self
            time.sleep(0.1)  # polling a subprocess's readiness: no event to wait on
        self.stop()
        raise RuntimeError(f"jwkit serve did not start:\n{self.log()}")

    def api(self) -> httpx.Client:
        """A client for the admin API, authenticated with the server's admin token."""
        token = self.env["JWKIT_ADMIN_TOKEN"]
        return httpx.Client(
            base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {token}"}
        )

    def log(self) -> str:
        return (self.home / f"server-{self.port}.log").read_text(errors="replace")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
