"""Private files: the state directory is 0700 and the SQLite database files are 0600.

``JWKIT_HOME`` holds the master key file and, by default, the SQLite database, whose rows
include the console's argon2 hash, session CSRF tokens and the sealed private keys: no other
local user may read any of it. :func:`private_dir` creates the directory 0700, or tightens an
existing one (a directory made by hand or by an older version is usually 0755) and logs that
it did; :func:`private_file` does the same for a file at 0600. SQLite creates its ``-wal``
and ``-shm`` files with the mode of the database file, so creating that file 0600 before the
first connection covers them; existing ones are tightened too. A path this process cannot
tighten (another user's) is refused with :class:`InsecurePathError`: the service does not
start on state others can read. Nothing happens on platforms without POSIX modes.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = [
    "SQLITE_SIDE_FILES",
    "InsecurePathError",
    "private_dir",
    "private_file",
    "private_sqlite_files",
]

log = logging.getLogger("jwkit.service")

#: Files SQLite keeps beside a database file (WAL mode, and the rollback journal).
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")
_POSIX = os.name == "posix"


class InsecurePathError(RuntimeError):
    """A state path is readable by other users and cannot be tightened by this process."""


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077 == 0:
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:
        raise InsecurePathError(
            f"{path} has mode {current:o}, readable by other users, and cannot be changed to "
            f"{mode:o} ({exc.strerror}); fix it with: chmod {mode:o} {path}"
        ) from None
    log.warning("%s had mode %o; changed to %o", path, current, mode)


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700, or tighten it to 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _POSIX:
        _tighten(path, 0o700)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists; tighten it to 0600."""
    if not _POSIX:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _tighten(path, 0o600)
    else:
        os.close(fd)  # a umask can only narrow 0600


def private_sqlite_files(database: Path) -> None:
    """The database file 0600 (created empty if missing) and its side files, if any, too."""
    private_file(database)
    for suffix in SQLITE_SIDE_FILES:
        side = database.with_name(database.name + suffix)
        if side.exists():
            _tighten(side, 0o600)
