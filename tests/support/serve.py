"""A real ``jwkit serve`` subprocess on a free loopback port, for any test folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


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


@dataclass
class ServerProcess:
    """One ``jwkit serve`` subprocess; ``start()`` returns once ``/healthz`` answers."""

    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ServerProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / f"server-{self.port}.log", "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jwkit.cli", "serve", "--port", str(self.port)],
                cwd=self.home, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jwkit serve exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
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
