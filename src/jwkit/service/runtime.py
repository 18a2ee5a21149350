"""The service object one process runs: settings, database, vault, in-memory state, clock.

``Service.open(settings)`` migrates the schema, stores configured admin credentials (or creates
them on first start) and loads the published snapshots. HTTP handlers and the scheduler call
:meth:`Service.write` for every change, which commits and then refreshes this replica's state
(only the projects the change touched: :meth:`~jwkit.service.state.ServiceState.refresh`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session

from jwkit.service.domain import admins, keys
from jwkit.service.domain.common import unix_now
from jwkit.service.domain.tokens import DPOP_ALGORITHMS
from jwkit.service.files import private_dir
from jwkit.service.keys import KeyBackendError, Keyring, KeyUnavailable, open_keyring
from jwkit.service.settings import Settings
from jwkit.service.state import ServiceState
from jwkit.service.store.db import STARTUP_TIMEOUT, Database
from jwkit.service.store.models import Key
from jwkit.service.vault import Vault, load_master_key
from jwkit.verify.dpop import DPoPVerifier

__all__ = ["Service"]

log = logging.getLogger("jwkit.service")


class Service:
    """Everything a replica needs, wired once."""

    def __init__(
        self, settings: Settings, db: Database, vault: Vault, clock: Callable[[], int] = unix_now
    ) -> None:
        self.settings = settings
        self.db = db
        self.vault = vault
        self.clock = clock
        self.state = ServiceState(settings, db, vault, clock)
        #: Checks the token endpoint's DPoP proofs (RFC 9449 §5); its ``jti`` cache is this
        #: replica's own (bounded), so a proof replayed to another replica within its iat
        #: window is not caught there (docs/dpop.md).
        self.dpop = DPoPVerifier(algorithms=DPOP_ALGORITHMS, clock=clock)
        self.generated: admins.GeneratedCredentials | None = None

    @classmethod
    def open(
        cls, settings: Settings, *, clock: Callable[[], int] = unix_now, migrate: bool = True
    ) -> Service:
        private_dir(settings.home)  # 0700, tightened if it exists (see service.files)
        master = load_master_key(
            settings.master_key.get_secret_value() if settings.master_key else None,
            settings.home,
        )
        keyring = open_keyring(settings, master)  # KeyBackendError: no fallback, no start
        db = Database(settings.resolved_database_url, timeout=settings.db_timeout)
        service = cls(settings, db, keyring, clock)
        try:
            # start-up may wait for another replica's (or worker's): longer deadlines
            with db.extended_deadline(STARTUP_TIMEOUT):
                if migrate:
                    db.migrate()
                service.generated = service.ensure_admin()
                service.check_backends()
                service.state.reload()
                service.state.check_master_key()
        except BaseException:
            keyring.close()
            db.dispose()
            raise
        return service

    def check_backends(self) -> None:
        """Refuse to start when published keys live in a backend that is not configured
        (e.g. ``JWKIT_PKCS11_MODULE`` dropped while keys are in the token)."""
        vault = self.vault
        if not isinstance(vault, Keyring):
            return
        with self.read() as session:
            used = set(
                session.execute(
                    select(Key.backend).where(Key.state.in_(keys.PUBLISHED_STATES)).distinct()
                ).scalars()
            )
        for name in sorted(used):
            try:
                vault.backend(name)
            except KeyUnavailable as exc:
                raise KeyBackendError(exc.message) from None

    def ensure_admin(self) -> admins.GeneratedCredentials | None:
        s = self.settings
        with self.db.session() as session, session.begin():
            # replicas starting at once on a fresh database: one creates the admin, the
            # others then find it (the lock migrations take)
            self.db.setup_lock(session)
            return admins.ensure_admin(
                session,
                token=s.admin_token.get_secret_value() if s.admin_token else None,
                password=s.admin_password.get_secret_value() if s.admin_password else None,
                now=self.clock(),
            )

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self.db.session() as session:  # closing rolls back without expiring objects
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction; on commit this replica rebuilds the projects it changed at once."""
        with self.db.session() as session:
            with session.begin():
                yield session
        self.state.refresh()

    def close(self) -> None:
        try:
            self.state.status.wait_refills(5.0)  # a block being reserved: let it commit
            self.state.status.close()
            self.state.status.flush()
        finally:
            self.db.dispose()
            if isinstance(self.vault, Keyring):
                self.vault.close()
