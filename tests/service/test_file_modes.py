"""State files are private: ``JWKIT_HOME`` 0700, ``jwkit.db`` and its ``-wal``/``-shm`` 0600.

A real ``jwkit serve`` starts under a umask of 0 (the worst a user can have), once on a fresh
home and once on a home an older version or a hand left at 0755 with a 0644 database; the
modes are read from the real files while the server runs. A home this process cannot tighten
is refused at start with a message that says how to fix it.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jwkit.service.files import InsecurePathError, private_dir, private_file

from .conftest import AUTH, server_env

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """Processes started meanwhile (the server) inherit umask 0: every mode is as asked."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _use_the_database(url: str) -> None:
    """A write through the server, so SQLite has its WAL files in use."""
    r = httpx.post(f"{url}/api/v1/projects", json={"name": "modes"}, headers=AUTH, timeout=30)
    assert r.status_code == 201, r.text


def _assert_private(home: Path) -> None:
    assert _mode(home) == 0o700
    assert _mode(home / "master.key") == 0o600
    for name in ("jwkit.db", "jwkit.db-wal", "jwkit.db-shm"):
        assert (home / name).exists(), name
        assert _mode(home / name) == 0o600, name


def test_a_fresh_home_is_private(spawn: Any, tmp_path: Path, umask_zero: None) -> None:
    server = spawn()
    _use_the_database(server.url)
    _assert_private(tmp_path / ".jwkit")


def test_an_existing_open_home_and_database_are_tightened(
    spawn: Any, tmp_path: Path, umask_zero: None
) -> None:
    home = tmp_path / ".jwkit"
    home.mkdir(mode=0o755)
    conn = sqlite3.connect(home / "jwkit.db")  # a database left by hand, mode 0644
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE leftover (x)")
    conn.commit()
    os.chmod(home / "jwkit.db", 0o644)
    os.chmod(home / "jwkit.db-wal", 0o644)
    assert _mode(home) == 0o755 and _mode(home / "jwkit.db-wal") == 0o644
    server = spawn()
    conn.close()
    _use_the_database(server.url)
    _assert_private(home)
    assert "had mode 755; changed to 700" in server.log()
    assert "had mode 644; changed to 600" in server.log()


def test_a_database_outside_home_is_private_too(
    spawn: Any, tmp_path: Path, umask_zero: None
) -> None:
    elsewhere = tmp_path / "data" / "db"
    server = spawn(JWKIT_DATABASE_URL=f"sqlite:///{elsewhere / 'service.db'}")
    _use_the_database(server.url)
    assert _mode(elsewhere) == 0o700
    for name in ("service.db", "service.db-wal", "service.db-shm"):
        assert _mode(elsewhere / name) == 0o600, name


def _cannot_chmod(path: Path) -> bool:
    try:
        os.chmod(path, stat.S_IMODE(path.stat().st_mode))
    except OSError:
        return True
    return False


PROC_DIR = Path("/proc/1")  # mode 0555, and no one may chmod it, not even root


@pytest.mark.skipif(
    not PROC_DIR.is_dir() or not _cannot_chmod(PROC_DIR),
    reason="needs a directory this process cannot chmod",
)
def test_a_home_that_cannot_be_tightened_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InsecurePathError, match="chmod 700 /proc/1"):
        private_dir(PROC_DIR)
    env = server_env(tmp_path, JWKIT_HOME=str(PROC_DIR))
    done = subprocess.run(
        [sys.executable, "-m", "jwkit.cli", "serve", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "readable by other users" in done.stderr and "chmod 700 /proc/1" in done.stderr


def test_private_file_creates_and_tightens(tmp_path: Path, umask_zero: None) -> None:
    new = tmp_path / "new"
    private_file(new)
    assert _mode(new) == 0o600 and new.read_bytes() == b""
    old = tmp_path / "old"
    old.write_text("kept")
    os.chmod(old, 0o664)
    private_file(old)
    assert _mode(old) == 0o600 and old.read_text() == "kept"
